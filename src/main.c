/*
 * amp2s3: keep an S3 bucket complete with hourly Amplitude exports.
 *
 * DESIGN
 * main() configures, takes the data directory's lock and hands over to
 * run_command().  Signals: SIGINT/SIGTERM are blocked in every thread and
 * taken by one signal thread with sigwait(); the first cancels the run
 * gracefully (stop planning, abort transfers, remove temporaries, exit
 * 130/143), a second one exits at once.  SIGPIPE and SIGXFSZ are ignored so
 * that a broken socket or a file-size limit is an error return, not death.
 */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "localdir.h"
#include "log.h"
#include "metrics.h"
#include "run.h"
#include "runctl.h"
#include "store.h"

struct sigctx {
	struct runctl *ctl;
	struct logger *lg;
	sigset_t set;
};

static void *
signal_main(void *arg)
{
	struct sigctx *sc = arg;
	int sig, count = 0;

	for (;;) {
		if (sigwait(&sc->set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			return (NULL);
		if (++count > 1)
			_exit(sig == SIGINT ? EXIT_SIGINT : EXIT_SIGTERM);
		log_warn(sc->lg, "%s: stopping (in-flight work is cancelled "
		    "and temporaries removed; again to exit at once)",
		    sig == SIGINT ? "SIGINT" : "SIGTERM");
		runctl_cancel(sc->ctl, sig == SIGINT ? STOP_SIGINT :
		    STOP_SIGTERM);
	}
}

static void
on_sigusr2(int sig)
{
	(void)sig; /* only there to interrupt flock(2) */
}

static void
interrupt_lock_wait(void *arg)
{
	pthread_kill(*(pthread_t *)arg, SIGUSR2);
}

static int
stop_code(struct runctl *ctl)
{
	return (atomic_load(&ctl->stop) == STOP_SIGTERM ? EXIT_SIGTERM :
	    EXIT_SIGINT);
}

static struct store *
open_store(const struct config *cfg, struct logger *lg, struct runctl *ctl)
{
	char err[600];
	struct store *st;

	if (!config_need_store(cfg))
		return (NULL);
	if (cfg->dev) {
		st = store_open_dir(cfg->dev_dir, cfg->s3_prefix, err,
		    sizeof(err));
	} else {
		struct s3_config sc = {
			.bucket = cfg->bucket, .region = cfg->aws_region,
			.endpoint = cfg->s3_endpoint,
			.access_key = cfg->aws_access_key,
			.secret_key = cfg->aws_secret_key,
			.session_token = cfg->aws_session_token,
			.path_style = cfg->path_style,
			.ca_bundle = cfg->ca_bundle,
			.max_keys = cfg->s3_max_keys,
			.multipart_threshold = cfg->multipart_threshold,
			.part_size = cfg->part_size,
			.max_attempts = cfg->max_attempts,
			.connect_timeout_ms = cfg->connect_timeout_s * 1000,
			.low_speed_time_s = cfg->stall_timeout_s,
			.cancel = &ctl->cancel,
		};
		st = store_open_s3(&sc, cfg->s3_prefix, lg, err, sizeof(err));
	}
	if (st == NULL)
		log_error(lg, "%s", err);
	return (st);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct logger *lg = NULL;
	struct runctl ctl;
	struct sigctx sc;
	struct store *st = NULL;
	pthread_t sigth;
	char err[600];
	int rc, lockfd = -1, removed, sig_started = 0, ctl_ok = 0;
	int64_t started_s = (int64_t)time(NULL);
	pthread_t lock_waiter;
	struct sigaction sa;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr2;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	/* Everything here is UTC.  Fixing TZ also stops glibc from re-reading
	 * it inside every mktime() libzip makes from several threads. */
	setenv("TZ", "UTC", 1);
	tzset();

	rc = config_load(&cfg, argc, argv, hour_now(), err, sizeof(err));
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "amp2s3: %s\n", err);
		config_free(&cfg);
		return (rc < 0 ? EXIT_USAGE : EXIT_OK);
	}
	if ((lg = log_open(cfg.log_level, cfg.log_format, cfg.log_file)) ==
	    NULL) {
		fprintf(stderr, "amp2s3: cannot open log file %s: %s\n",
		    cfg.log_file, strerror(errno));
		config_free(&cfg);
		return (EXIT_USAGE);
	}
	if (cfg.env_file_open_mode)
		log_warn(lg, "%s holds secrets but is readable by others "
		    "(mode %03o): chmod 600 %s", cfg.env_file_used,
		    (unsigned)cfg.env_file_open_mode, cfg.env_file_used);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(lg, "curl_global_init failed");
		rc = EXIT_IO;
		goto out;
	}
	if (runctl_init(&ctl, lg, cfg.progress == -1 ? log_is_tty(lg) :
	    cfg.progress) != 0) {
		rc = EXIT_IO;
		goto out_curl;
	}
	ctl_ok = 1;

	/* Signals: blocked here, so every thread created later inherits the
	 * mask; only the signal thread receives them. */
	sc.ctl = &ctl;
	sc.lg = lg;
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	if (pthread_create(&sigth, NULL, signal_main, &sc) == 0)
		sig_started = 1;

	started_s = (int64_t)time(NULL);
	if (cfg.cmd == CMD_STATUS) {
		/* Read-only: no lock, no cleaning. */
		if (config_need_store(&cfg) &&
		    (st = open_store(&cfg, lg, &ctl)) == NULL) {
			rc = EXIT_USAGE;
			goto out_sig;
		}
		rc = run_status(&cfg, lg, st);
		store_free(st);
		goto out_sig;
	}
	/* --wait-lock blocks in flock(2); a cancel interrupts it with
	 * SIGUSR2 (handler without SA_RESTART), so SIGTERM/SIGINT still end
	 * a run that waits for another. */
	if (cfg.wait_lock) {
		lock_waiter = pthread_self();
		runctl_add_hook(&ctl, interrupt_lock_wait, &lock_waiter);
		if (localdir_lock(cfg.data_dir, 0, NULL, &lockfd, err,
		    sizeof(err)) == 1)
			log_info(lg, "waiting for another run's lock on %s",
			    cfg.data_dir);
	}
	if (lockfd < 0)
		rc = localdir_lock(cfg.data_dir, cfg.wait_lock, &ctl.cancel,
		    &lockfd, err, sizeof(err));
	else
		rc = 0;
	if (cfg.wait_lock)
		runctl_remove_hook(&ctl, interrupt_lock_wait, &lock_waiter);
	if (rc == 2) {
		rc = stop_code(&ctl);
		goto out_sig;
	}
	if (rc != 0) {
		log_error(lg, "%s", err);
		rc = rc > 0 ? EXIT_LOCKED : EXIT_IO;
		goto out_sig;
	}
	if (localdir_clean(cfg.data_dir, &removed))
		log_warn(lg, "cannot clean temporaries in %s: %s",
		    cfg.data_dir, strerror(errno));
	else if (removed)
		log_info(lg, "removed %d temporary files left by an earlier "
		    "run", removed);

	if (config_need_store(&cfg) &&
	    (st = open_store(&cfg, lg, &ctl)) == NULL) {
		rc = EXIT_USAGE;
		goto out_sig;
	}
	rc = run_command(&cfg, lg, &ctl, st);
	store_free(st);

out_sig:
	/* Metrics for every run that got this far, early exits included. */
	if (cfg.cmd != CMD_STATUS && cfg.metrics_file &&
	    metrics_write(cfg.metrics_file, &ctl, rc, started_s,
	    (int64_t)time(NULL), err, sizeof(err))) {
		log_error(lg, "%s", err);
		if (rc == EXIT_OK)
			rc = EXIT_IO;
	}
	if (sig_started) {
		pthread_kill(sigth, SIGUSR1);
		pthread_join(sigth, NULL);
	}
	if (lockfd >= 0)
		close(lockfd);
	if (ctl_ok)
		runctl_destroy(&ctl);
out_curl:
	curl_global_cleanup();
out:
	log_close(lg);
	config_free(&cfg);
	return (rc);
}
