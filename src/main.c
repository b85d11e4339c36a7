/*
 * amp2s3: keep an S3 bucket complete with hourly Amplitude exports.
 *
 * DESIGN
 * main() configures, takes the data directory's lock and hands over to
 * run_command() (or run_status(), which takes no lock).  An S3 store
 * gets its credentials from the AWS chain (creds.h), opened once before
 * the store and freed after it (and so after every thread that used it
 * was joined); the creds handle may refresh them from any thread that
 * asks, under its own lock.  Signals:
 * SIGINT/SIGTERM are blocked in every thread and taken by one signal
 * thread with sigwait(); the first cancels the run gracefully (stop
 * planning, abort transfers, remove temporaries, exit 130/143), a second
 * one exits at once.  SIGUSR1 (sent by main) ends the signal thread.
 * SIGPIPE and SIGXFSZ are ignored so that a broken socket or a file-size
 * limit is an error return, not death.  SIGUSR2 only interrupts a
 * --wait-lock flock(2) (a cancel hook sends it).
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

#include "cancel.h"
#include "config.h"
#include "creds.h"
#include "errbuf.h"
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
	pthread_t th;
	int started;
};

/* What main() sets up, for the steps that use it. */
struct app {
	struct config cfg;
	struct logger *lg;
	struct runctl *ctl;
	struct sigctx sig;
	struct creds *creds;       /* S3 only; outlives the store */
	struct config_hint hint;   /* for config_s3_hint() */
	int lockfd;
	int64_t started_s;
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

/* The process-wide settings every run needs before anything else. */
static void
setup_process(void)
{
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
}

/* Block INT, TERM and USR1 here, so that every thread created later
 * inherits the mask, and start the one thread that takes them. */
static void
start_signals(struct app *a)
{
	struct sigctx *sc = &a->sig;

	sc->ctl = a->ctl;
	sc->lg = a->lg;
	sigemptyset(&sc->set);
	sigaddset(&sc->set, SIGINT);
	sigaddset(&sc->set, SIGTERM);
	sigaddset(&sc->set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sc->set, NULL);
	sc->started = pthread_create(&sc->th, NULL, signal_main, sc) == 0;
}

static void
stop_signals(struct app *a)
{
	if (a->sig.started) {
		pthread_kill(a->sig.th, SIGUSR1);
		pthread_join(a->sig.th, NULL);
	}
}

/*
 * The S3 credentials into a->creds, from the first source of the chain
 * that has them; the bucket's region from the profile when no setting
 * names one, else us-east-1.  0, or -1 with the one line logged (every
 * source tried, by the variables that configure it).
 */
static int
open_creds(struct app *a)
{
	struct config *cfg = &a->cfg;
	struct creds_tried tried;
	char err[600], line[2600];
	const char *region, *detail;

	cfg->aws.cancel = runctl_cancel_flag(a->ctl);
	if ((a->creds = creds_open(&cfg->aws, a->lg, &tried, err,
	    sizeof(err))) == NULL) {
		if (tried.no_source)
			config_creds_missing(&tried, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "S3 credentials: %s", err);
		log_error(a->lg, "%s", line);
		return (-1);
	}
	detail = creds_detail(a->creds);
	log_info(a->lg, "S3 credentials from %s%s%s%s",
	    creds_source(a->creds), detail[0] ? " (" : "", detail,
	    detail[0] ? ")" : "");
	if (cfg->aws_region == NULL) {
		region = creds_region(a->creds);
		if ((cfg->aws_region = strdup(region != NULL ? region :
		    "us-east-1")) == NULL) {
			log_error(a->lg, "out of memory");
			return (-1);
		}
	}
	a->hint.cfg = cfg;
	a->hint.creds = a->creds;
	return (0);
}

static struct store *
open_store(struct app *a)
{
	const struct config *cfg = &a->cfg;
	char err[600];
	struct store *st;

	if (!cfg->dev && open_creds(a) != 0)
		return (NULL);
	if (cfg->dev) {
		st = store_open_dir(cfg->dev_dir, cfg->s3_prefix, err,
		    sizeof(err));
	} else {
		struct s3_config sc = {
			.bucket = cfg->bucket, .region = cfg->aws_region,
			.endpoint = cfg->s3_endpoint,
			.creds = a->creds,
			.path_style = cfg->path_style,
			.ca_bundle = cfg->ca_bundle,
			.max_keys = cfg->s3_max_keys,
			.multipart_threshold = cfg->multipart_threshold,
			.part_size = cfg->part_size,
			.max_attempts = cfg->max_attempts,
			.connect_timeout_ms = cfg->connect_timeout_s * 1000,
			.stall_timeout_s = cfg->stall_timeout_s,
			.min_speed = cfg->min_speed,
			.cancel = runctl_cancel_flag(a->ctl),
			.hint = config_s3_hint,
			.hint_ctx = &a->hint,
			.sse = cfg->sse,
			.sse_kms_key_id = cfg->sse_kms_key_id,
			.sse_bucket_key = cfg->sse_bucket_key,
			.storage_class = cfg->storage_class,
		};
		st = store_open_s3(&sc, cfg->s3_prefix, a->lg, err,
		    sizeof(err));
	}
	if (st == NULL)
		log_error(a->lg, "%s", err);
	return (st);
}

/* `status`: read-only, no lock, no cleaning. */
static int
cmd_status(struct app *a)
{
	struct store *st = NULL;
	int rc;

	if (config_need_store(&a->cfg) && (st = open_store(a)) == NULL)
		return (EXIT_USAGE);
	rc = run_status(&a->cfg, a->lg, st);
	store_free(st);
	return (rc);
}

static void
interrupt_lock_wait(void *arg)
{
	pthread_kill(*(pthread_t *)arg, SIGUSR2);
}

/*
 * Take the data directory's lock into a->lockfd.  --wait-lock blocks in
 * flock(2); a cancel interrupts it with SIGUSR2 (handler without
 * SA_RESTART), so SIGTERM/SIGINT still end a run that waits for another.
 * Returns 0 or the exit code (logged).
 */
static int
take_lock(struct app *a)
{
	const struct config *cfg = &a->cfg;
	struct cancel *cancel = runctl_cancel_flag(a->ctl);
	struct cancel_hook hook;
	pthread_t self = pthread_self();
	char err[600];
	int rc = 1;

	if (cfg->wait_lock) {
		cancel_hook_add(cancel, &hook, interrupt_lock_wait, &self);
		if ((rc = localdir_lock(cfg->data_dir, 0, NULL, &a->lockfd, err,
		    sizeof(err))) == 1)
			log_info(a->lg, "waiting for another run's lock on %s",
			    cfg->data_dir);
	}
	if (rc == 1)
		rc = localdir_lock(cfg->data_dir, cfg->wait_lock, cancel,
		    &a->lockfd, err, sizeof(err));
	if (cfg->wait_lock)
		cancel_hook_remove(cancel, &hook);
	if (rc == 2)
		return (runctl_stop_reason(a->ctl) == STOP_SIGTERM ?
		    EXIT_SIGTERM : EXIT_SIGINT);
	if (rc != 0) {
		log_error(a->lg, "%s", err);
		return (rc > 0 ? EXIT_LOCKED : EXIT_IO);
	}
	return (0);
}

/* Remove the temporaries a killed run left in the data directory. */
static void
clean_leftovers(struct app *a)
{
	int removed;

	if (localdir_clean(a->cfg.data_dir, &removed))
		log_warn(a->lg, "cannot clean temporaries in %s: %s",
		    a->cfg.data_dir, ERRSTR(errno));
	else if (removed)
		log_info(a->lg, "removed %d temporary files left by an earlier "
		    "run", removed);
}

/* fetch, sync, all: under the lock. */
static int
cmd_run(struct app *a)
{
	struct store *st = NULL;
	int rc;

	if ((rc = take_lock(a)) != 0)
		return (rc);
	clean_leftovers(a);
	if (config_need_store(&a->cfg) && (st = open_store(a)) == NULL)
		return (EXIT_USAGE);
	rc = run_command(&a->cfg, a->lg, a->ctl, st);
	store_free(st);
	return (rc);
}

/* Configuration, logger, curl, the run's shared state.  0 or the exit
 * code (for --help and --version: 0 with a->ctl NULL). */
static int
start_up(struct app *a, int argc, char **argv)
{
	char err[600];
	int rc;

	rc = config_load(&a->cfg, argc, argv, hour_now(), err, sizeof(err));
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "amp2s3: %s\n", err);
		return (rc < 0 ? EXIT_USAGE : EXIT_OK);
	}
	if ((a->lg = log_open(a->cfg.log_level, a->cfg.log_format,
	    a->cfg.log_file)) == NULL) {
		fprintf(stderr, "amp2s3: cannot open log file %s: %s\n",
		    a->cfg.log_file, ERRSTR(errno));
		return (EXIT_USAGE);
	}
	if (a->cfg.env_file_open_mode)
		log_warn(a->lg, "%s holds secrets but is readable by others "
		    "(mode %03o): chmod 600 %s", a->cfg.env_file_used,
		    (unsigned)a->cfg.env_file_open_mode, a->cfg.env_file_used);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(a->lg, "curl_global_init failed");
		return (EXIT_IO);
	}
	if ((a->ctl = runctl_new(a->lg, a->cfg.progress == -1 ?
	    log_is_tty(a->lg) : a->cfg.progress)) == NULL)
		return (EXIT_IO);
	return (0);
}

/* Metrics for every run that got this far, early exits included. */
static int
write_metrics(struct app *a, int rc)
{
	char err[600];

	if (a->cfg.cmd == CMD_STATUS || a->cfg.metrics_file == NULL)
		return (rc);
	if (metrics_write(a->cfg.metrics_file, a->ctl, rc, a->started_s,
	    (int64_t)time(NULL), err, sizeof(err))) {
		log_error(a->lg, "%s", err);
		if (rc == EXIT_OK)
			rc = EXIT_IO;
	}
	return (rc);
}

int
main(int argc, char **argv)
{
	struct app a = { .lockfd = -1 };
	int rc;

	setup_process();
	a.started_s = (int64_t)time(NULL);
	if ((rc = start_up(&a, argc, argv)) == 0 && a.ctl != NULL) {
		start_signals(&a);
		rc = a.cfg.cmd == CMD_STATUS ? cmd_status(&a) : cmd_run(&a);
		rc = write_metrics(&a, rc);
		stop_signals(&a);
	}
	if (a.lockfd >= 0)
		close(a.lockfd);
	creds_free(a.creds);
	runctl_free(a.ctl);
	if (a.lg != NULL)
		curl_global_cleanup();
	log_close(a.lg);
	config_free(&a.cfg);
	return (rc);
}
