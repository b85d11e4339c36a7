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
 * SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are blocked in every
 * thread and taken by one signal thread, which reads them from a
 * signalfd and never ends because of one: the first SIGINT/SIGTERM
 * cancels the run gracefully (stop planning, abort transfers, remove
 * temporaries, exit 130/143), a second one exits at once; SIGHUP reopens
 * --log-file (log rotation); the others are logged and ignored.  main
 * ends the thread through a pipe of its own, never by a signal that
 * someone else could send.  If the thread cannot start, the mask is put
 * back, so SIGINT/SIGTERM keep their default action (the run ends at
 * once, without cleanup) instead of being ignored.  SIGPIPE and SIGXFSZ
 * are ignored so that a broken socket or a file-size limit is an error
 * return, not death.  SIGUSR2 interrupts a --wait-lock flock(2): main
 * unblocks it for itself only while it waits, and a cancel hook sends it
 * to main.
 */
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
	sigset_t set;           /* the signals the thread takes */
	sigset_t old;           /* the mask before, put back on failure */
	int sfd;                /* signalfd of ${set} */
	int stop[2];            /* pipe: main writes a byte to end the thread */
	pthread_t th;
	int started;
};

/* The range should end this many hours before now: the Export API has an
 * hour "at a minimum within 2 hours" after it ended. */
#define API_DELAY_HOURS 3

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

static const char *
signal_name(int sig)
{
	switch (sig) {
	case SIGINT:
		return ("SIGINT");
	case SIGTERM:
		return ("SIGTERM");
	case SIGHUP:
		return ("SIGHUP");
	case SIGUSR1:
		return ("SIGUSR1");
	case SIGUSR2:
		return ("SIGUSR2");
	default:
		return ("a signal");
	}
}

/* What one signal ${sig} does; *${stops} counts SIGINT/SIGTERM. */
static void
on_signal(struct sigctx *sc, int sig, int *stops)
{
	switch (sig) {
	case SIGINT:
	case SIGTERM:
		if (++*stops > 1)
			_exit(sig == SIGINT ? EXIT_SIGINT : EXIT_SIGTERM);
		log_warn(sc->lg, "%s: stopping (in-flight work is cancelled "
		    "and temporaries removed; again to exit at once)",
		    signal_name(sig));
		runctl_cancel(sc->ctl, sig == SIGINT ? STOP_SIGINT :
		    STOP_SIGTERM);
		break;
	case SIGHUP:
		if (log_reopen(sc->lg) != 0)
			log_warn(sc->lg, "SIGHUP: cannot reopen the log file: "
			    "%s", ERRSTR(errno));
		else
			log_info(sc->lg, "SIGHUP: log file reopened");
		break;
	default:
		log_info(sc->lg, "%s: ignored", signal_name(sig));
		break;
	}
}

static void *
signal_main(void *arg)
{
	struct sigctx *sc = arg;
	struct signalfd_siginfo si;
	struct pollfd pf[2];
	int stops = 0;

	for (;;) {
		pf[0] = (struct pollfd){ .fd = sc->sfd, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = sc->stop[0], .events = POLLIN };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ENOMEM)
				continue;
			log_error(sc->lg, "signal thread: poll: %s",
			    ERRSTR(errno));
			return (NULL);
		}
		if (pf[1].revents != 0)
			return (NULL);
		if ((pf[0].revents & POLLIN) &&
		    read(sc->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(sc, (int)si.ssi_signo, &stops);
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

/*
 * Block the signals the signal thread takes here, so that every thread
 * created later inherits the mask, and start that thread.  If it cannot
 * start, the mask is put back (logged).
 */
static void
start_signals(struct app *a)
{
	struct sigctx *sc = &a->sig;
	int rc = 0;

	sc->ctl = a->ctl;
	sc->lg = a->lg;
	sc->sfd = sc->stop[0] = sc->stop[1] = -1;
	sigemptyset(&sc->set);
	sigaddset(&sc->set, SIGINT);
	sigaddset(&sc->set, SIGTERM);
	sigaddset(&sc->set, SIGHUP);
	sigaddset(&sc->set, SIGUSR1);
	sigaddset(&sc->set, SIGUSR2);
	if ((rc = pthread_sigmask(SIG_BLOCK, &sc->set, &sc->old)) != 0)
		goto fail;
	if ((sc->sfd = signalfd(-1, &sc->set, SFD_CLOEXEC)) < 0 ||
	    pipe(sc->stop) != 0 ||
	    fcntl(sc->stop[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(sc->stop[1], F_SETFD, FD_CLOEXEC) != 0) {
		rc = errno;
		goto fail_mask;
	}
	if ((rc = pthread_create(&sc->th, NULL, signal_main, sc)) != 0)
		goto fail_mask;
	sc->started = 1;
	return;
fail_mask:
	(void)pthread_sigmask(SIG_SETMASK, &sc->old, NULL);
fail:
	if (sc->sfd >= 0)
		close(sc->sfd);
	if (sc->stop[0] >= 0) {
		close(sc->stop[0]);
		close(sc->stop[1]);
	}
	sc->sfd = sc->stop[0] = sc->stop[1] = -1;
	log_warn(a->lg, "cannot start the signal thread (%s): SIGINT and "
	    "SIGTERM will end the run at once, without removing its "
	    "temporaries", ERRSTR(rc));
}

static void
stop_signals(struct app *a)
{
	struct sigctx *sc = &a->sig;

	if (!sc->started)
		return;
	while (write(sc->stop[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(sc->th, NULL);
	close(sc->sfd);
	close(sc->stop[0]);
	close(sc->stop[1]);
	sc->started = 0;
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
		/* Read-only commands leave a missing folder missing. */
		st = store_open_dir(cfg->dev_dir, cfg->s3_prefix,
		    cfg->file_mode, cfg->cmd != CMD_STATUS && !cfg->dry_run,
		    err, sizeof(err));
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

/* 1 if ${path} is ${dir} or lies inside it (both real paths). */
static int
path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return (1);
	return (strncmp(path, dir, n) == 0 && (path[n] == '\0' ||
	    path[n] == '/'));
}

/*
 * --dev: the store folder must neither be the data directory nor lie
 * inside it nor hold it, or the store's objects would be the local hours
 * themselves (listed as "already stored", then deleted).  Compares real
 * paths, of what exists (run: both were just created).  ${strict}: a
 * path that cannot be resolved is an error too.  0 or EXIT_USAGE
 * (logged).
 */
static int
check_dev_dir(struct app *a, int strict)
{
	const struct config *cfg = &a->cfg;
	char *data = NULL, *dev = NULL;
	const char *rel = NULL;
	int rc = 0;

	if (!cfg->dev)
		return (0);
	if ((data = realpath(cfg->data_dir, NULL)) == NULL ||
	    (dev = realpath(cfg->dev_dir, NULL)) == NULL) {
		if (strict) {
			log_error(a->lg, "cannot resolve %s: %s", data == NULL ?
			    cfg->data_dir : cfg->dev_dir, ERRSTR(errno));
			rc = EXIT_USAGE;
		}
		goto out;
	}
	if (strcmp(data, dev) == 0)
		rel = "is";
	else if (path_within(dev, data))
		rel = "is inside";
	else if (path_within(data, dev))
		rel = "holds";
	if (rel != NULL) {
		log_error(a->lg, "--dev-dir %s %s the data directory %s: the "
		    "store must be a folder of its own (refusing)",
		    cfg->dev_dir, rel, cfg->data_dir);
		rc = EXIT_USAGE;
	}
out:
	free(data);
	free(dev);
	return (rc);
}

/* `status`: read-only, no lock, no cleaning. */
static int
cmd_status(struct app *a)
{
	struct store *st = NULL;
	int rc;

	if ((rc = check_dev_dir(a, 0)) != 0)
		return (rc);
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
	sigset_t usr2;
	char err[600];
	int rc = 1;

	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	if (cfg->wait_lock) {
		cancel_hook_add(cancel, &hook, interrupt_lock_wait, &self);
		if ((rc = localdir_lock(cfg->data_dir, cfg->file_mode, 0, NULL,
		    &a->lockfd, err, sizeof(err))) == 1) {
			log_info(a->lg, "waiting for another run's lock on %s",
			    cfg->data_dir);
			/* Only this thread, only while it waits. */
			(void)pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
		}
	}
	if (rc == 1)
		rc = localdir_lock(cfg->data_dir, cfg->file_mode,
		    cfg->wait_lock, cancel, &a->lockfd, err, sizeof(err));
	if (cfg->wait_lock) {
		if (a->sig.started)
			(void)pthread_sigmask(SIG_BLOCK, &usr2, NULL);
		cancel_hook_remove(cancel, &hook);
	}
	if (rc == 2)
		return (runctl_stop_reason(a->ctl) == STOP_SIGTERM ?
		    EXIT_SIGTERM : EXIT_SIGINT);
	if (rc != 0) {
		log_error(a->lg, "%s%s", err, rc > 0 ?
		    " (use --wait-lock to wait for it)" : "");
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

/* Warn when the data directory exists and lets others in further than
 * --file-mode asks (hours hold end users' personal data). */
static void
warn_open_data_dir(struct app *a)
{
	const struct config *cfg = &a->cfg;
	unsigned want = localdir_dir_mode(cfg->file_mode), extra;
	struct stat sb;

	if (stat(cfg->data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return;
	if ((extra = (unsigned)sb.st_mode & 077 & ~want) != 0)
		log_warn(a->lg, "data directory %s is open to others (mode "
		    "%03o) and its hours hold personal data: chmod %03o %s "
		    "(or set --file-mode)", cfg->data_dir,
		    (unsigned)sb.st_mode & 0777, want, cfg->data_dir);
}

/* fetch, sync, all --dry-run: no lock (a real run may go on), no
 * cleaning, nothing created. */
static int
cmd_dry(struct app *a)
{
	struct store *st = NULL;
	int rc;

	if (config_need_store(&a->cfg) && (st = open_store(a)) == NULL)
		return (EXIT_USAGE);
	if ((rc = check_dev_dir(a, 0)) == 0)
		rc = run_command(&a->cfg, a->lg, a->ctl, st);
	store_free(st);
	return (rc);
}

/* fetch, sync, all: under the lock. */
static int
cmd_run(struct app *a)
{
	struct store *st = NULL;
	int rc;

	if (a->cfg.dry_run)
		return (cmd_dry(a));
	warn_open_data_dir(a);
	if ((rc = take_lock(a)) != 0)
		return (rc);
	if (config_need_store(&a->cfg) && (st = open_store(a)) == NULL)
		return (EXIT_USAGE);
	if ((rc = check_dev_dir(a, 1)) == 0) {
		clean_leftovers(a);
		rc = run_command(&a->cfg, a->lg, a->ctl, st);
	}
	store_free(st);
	return (rc);
}

/* 1 if the host of the URL ${url} (after "scheme://") is a loopback
 * address: localhost, 127.0.0.0/8 or [::1]. */
static int
host_is_loopback(const char *url)
{
	const char *h = strstr(url, "://"), *end, *at;
	size_t n;

	h = h != NULL ? h + 3 : url;
	end = h + strcspn(h, "/?#");
	if ((at = memchr(h, '@', (size_t)(end - h))) != NULL)
		h = at + 1;
	if (*h == '[')
		return (strncmp(h, "[::1]", 5) == 0);
	n = strcspn(h, ":/?#");
	if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
		return (1);
	if (n < 4 || strncmp(h, "127.", 4) != 0)
		return (0);
	for (size_t i = 4; i < n; i++)
		if (h[i] != '.' && (h[i] < '0' || h[i] > '9'))
			return (0);
	return (1);
}

/* Warnings about settings that work but may not do what is meant. */
static void
warn_settings(struct app *a)
{
	const struct config *cfg = &a->cfg;
	char end[HOUR_API_LEN];

	if (cfg->cmd != CMD_FETCH && cfg->cmd != CMD_ALL)
		return;
	if (cfg->api_url != NULL && strncasecmp(cfg->api_url, "http://", 7) ==
	    0 && !host_is_loopback(cfg->api_url))
		log_warn(a->lg, "--api-url is plain http: the API key and "
		    "secret go over the network unencrypted (use https)");
	if (hour_now() - cfg->end < API_DELAY_HOURS) {
		hour_format_api(cfg->end, end);
		log_warn(a->lg, "the range ends at %s, less than %d hours "
		    "ago: the Export API may not have those hours yet (it "
		    "has an hour at a minimum within 2 hours), and an hour "
		    "fetched empty is not fetched again (--lag-hours %d or "
		    "more avoids this)", end, API_DELAY_HOURS,
		    API_DELAY_HOURS);
	}
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
	warn_settings(a);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(a->lg, "curl_global_init failed");
		return (EXIT_IO);
	}
	if ((a->ctl = runctl_new(a->lg)) == NULL)
		return (EXIT_IO);
	return (0);
}

/* Metrics for every run that got this far, early exits included. */
static int
write_metrics(struct app *a, int rc)
{
	char err[600];

	if (a->cfg.cmd == CMD_STATUS || a->cfg.dry_run ||
	    a->cfg.metrics_file == NULL)
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
