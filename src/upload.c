/*
 * upload: store complete hour files, then delete them locally.
 *
 * DESIGN
 * - Threads: M workers popping hours from one bounded queue (queue.h).
 *   Producers are the fetch workers (pipelined `all`: an hour is queued
 *   the moment its file is renamed into place) and the main thread
 *   (hours already on disk).  The bound gives back-pressure: fetching
 *   pauses when uploads lag, so the data directory cannot fill up.
 * - Ordering: none between hours; each hour's own sequence is strict:
 *   the file is opened once (O_NOFOLLOW) and that descriptor is what is
 *   stored; store_put() returns STORE_OK only once the object is complete
 *   in the store, and only then is the local name unlinked, if it still
 *   names the file that was stored.
 * - Completion: upload_close() closes the queue; workers drain it and
 *   leave; a cancel closes it too (queued hours stay on disk for the next
 *   run).  Counters go to runctl; nothing is reported back otherwise.
 * - Concurrency: the workers are a ceiling.  Each store_put() runs in a
 *   slot of the pool's limiter (limiter.h; its DESIGN says who changes
 *   the limit, under which lock): a worker waits for a slot before it
 *   starts an upload and gives it back after, a stored object counting
 *   towards one more.  S3 retries a 503 SlowDown inside the call, so the
 *   pool learns of it through the store's slowdown hook (upload_slowdown,
 *   set before the workers start and cleared after they are joined),
 *   which lowers the limit at once: uploads in flight finish, no new one
 *   starts until fewer than the limit are in flight.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cancel.h"
#include "errbuf.h"
#include "limiter.h"
#include "localdir.h"
#include "log.h"
#include "queue.h"
#include "runctl.h"
#include "store.h"
#include "upload.h"

struct upload_pool {
	struct upload_opts o;
	struct queue *q;
	pthread_t *th;
	int nth;
	struct limiter *lim;        /* uploads at once (its own lock) */
	struct cancel_hook hook;    /* upload_wake on cancel */
};

/*
 * Open the hour file ${path} for upload: never through a symlink (the
 * scan skipped symlinks; a name swapped for one since is refused), and
 * only a regular file.  The descriptor, with its stat in *${sb}, or -1
 * (logged, counted).
 */
static int
open_hour(struct upload_pool *p, const char *name, const char *path,
    struct stat *sb)
{
	int fd, e = 0;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		e = errno;
	else if (fstat(fd, sb) != 0)
		e = errno;
	else if (S_ISREG(sb->st_mode))
		return (fd);
	if (fd >= 0)
		close(fd);
	log_error(p->o.lg, "upload %s failed (file kept): cannot read %s: %s",
	    name, path, e != 0 ? ERRSTR(e) : "not a regular file");
	runctl_count(p->o.ctl, RUN_UPLOAD_FAILED, 1);
	return (-1);
}

/*
 * The upload of ${path} (open at ${fd}, stat ${sb}) was confirmed: remove
 * the name, but only if it still names that very file (a file put there
 * since was not uploaded).
 */
static void
remove_uploaded(struct upload_pool *p, const char *name, const char *path,
    const struct stat *sb)
{
	struct stat now;

	if (lstat(path, &now) != 0) {
		if (errno != ENOENT)
			log_warn(p->o.lg, "uploaded %s but cannot delete %s: "
			    "%s", name, path, ERRSTR(errno));
		return;
	}
	if (now.st_dev != sb->st_dev || now.st_ino != sb->st_ino) {
		log_warn(p->o.lg, "uploaded %s, but %s was replaced meanwhile: "
		    "not deleted", name, path);
		return;
	}
	if (unlink(path) && errno != ENOENT)
		log_warn(p->o.lg, "uploaded %s but cannot delete %s: %s", name,
		    path, ERRSTR(errno));
}

/* Mirror a move of the limit from ${was} to ${now} into the run. */
static void
limit_moved(struct upload_pool *p, int was, int now)
{
	if (now == was)
		return;
	/* A display: two moves may set it out of order; upload_join sets
	 * the final value. */
	runctl_gauge_set(p->o.ctl, RUN_UPLOAD_LIMIT, limiter_limit(p->lim));
	runctl_count(p->o.ctl, now < was ? RUN_UPLOAD_LIMIT_DOWN :
	    RUN_UPLOAD_LIMIT_UP, 1);
	log_debug(p->o.lg, "uploads at once: %d of %d (was %d)", now,
	    p->o.workers, was);
}

/* The store's slowdown hook: S3 asked a worker's call to slow down. */
static void
upload_slowdown(void *arg)
{
	struct upload_pool *p = arg;
	int was, now;

	now = limiter_refused(p->lim, &was);
	limit_moved(p, was, now);
}

/* store_put() in a slot of the pool's limit.  STORE_CANCELLED if the run
 * was cancelled while waiting for one. */
static enum store_status
put_in_slot(struct upload_pool *p, amp_hour h, int fd, char *err,
    size_t errlen)
{
	enum store_status s;
	int was, now;

	if (limiter_acquire(p->lim))
		return (STORE_CANCELLED);
	s = store_put(p->o.store, h, fd, err, errlen);
	now = limiter_release(p->lim, s == STORE_OK ? LIMITER_OK :
	    LIMITER_OTHER, &was);
	limit_moved(p, was, now);
	return (s);
}

static void
upload_one(struct upload_pool *p, amp_hour h)
{
	struct runctl *ctl = p->o.ctl;
	char path[4096], name[HOUR_FILE_LEN], err[600];
	struct stat sb;
	enum store_status s;
	int fd;

	hour_format_file(h, name);
	if (localdir_path(p->o.data_dir, p->o.gzip, h, path, sizeof(path))) {
		log_error(p->o.lg, "upload %s: path too long in %s", name,
		    p->o.data_dir);
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		return;
	}
	if ((fd = open_hour(p, name, path, &sb)) < 0)
		return;
	s = put_in_slot(p, h, fd, err, sizeof(err));
	switch (s) {
	case STORE_OK:
		remove_uploaded(p, name, path, &sb);
		runctl_count(ctl, RUN_UPLOADS, 1);
		runctl_count(ctl, RUN_UPLOAD_BYTES, (uint64_t)sb.st_size);
		log_debug(p->o.lg, "uploaded %s (%" PRIu64 " bytes) to %s",
		    name, (uint64_t)sb.st_size, store_describe(p->o.store));
		break;
	case STORE_CANCELLED:
		break;
	case STORE_FATAL:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "%s", err);
		runctl_cancel(ctl, STOP_AUTH);
		break;
	case STORE_FAIL:
	default:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "upload %s failed (file kept): %s", name,
		    err);
		break;
	}
	close(fd);
}

static void *
upload_main(void *arg)
{
	struct upload_pool *p = arg;
	void *item;

	while (queue_pop(p->q, &item) == 0) {
		amp_hour h = *(amp_hour *)item;
		free(item);
		if (!runctl_cancelled(p->o.ctl))
			upload_one(p, h);
	}
	return (NULL);
}

static void
upload_wake(void *arg)
{
	queue_close(((struct upload_pool *)arg)->q);
}

struct upload_pool *
upload_start(const struct upload_opts *opts)
{
	struct upload_pool *p;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	p->o = *opts;
	if ((p->lim = limiter_new(opts->workers, !opts->fixed_concurrency,
	    runctl_cancel_flag(opts->ctl))) == NULL ||
	    (p->q = queue_init((size_t)(opts->queue_cap > 0 ?
	    opts->queue_cap : 1))) == NULL ||
	    (p->th = calloc((size_t)opts->workers, sizeof(*p->th))) == NULL) {
		log_error(opts->lg, "cannot start the upload workers");
		limiter_free(p->lim);
		queue_free(p->q);
		free(p->th);
		free(p);
		return (NULL);
	}
	runctl_gauge_set(opts->ctl, RUN_UPLOAD_CEILING, opts->workers);
	runctl_gauge_set(opts->ctl, RUN_UPLOAD_LIMIT, limiter_limit(p->lim));
	/* Before the workers start: no call of the store runs now. */
	store_on_slowdown(p->o.store, upload_slowdown, p);
	cancel_hook_add(runctl_cancel_flag(opts->ctl), &p->hook, upload_wake,
	    p);
	for (int i = 0; i < opts->workers; i++) {
		if ((rc = pthread_create(&p->th[i], NULL, upload_main, p))) {
			log_error(opts->lg, "pthread_create: %s",
			    ERRSTR(rc));
			runctl_cancel(opts->ctl, STOP_IO);
			break;
		}
		p->nth++;
	}
	return (p);
}

int
upload_submit(struct upload_pool *p, amp_hour hour)
{
	amp_hour *h;

	if (runctl_cancelled(p->o.ctl) || (h = malloc(sizeof(*h))) == NULL)
		return (-1);
	*h = hour;
	runctl_count(p->o.ctl, RUN_UPLOADS_QUEUED, 1);
	if (queue_push(p->q, h)) {
		free(h);
		return (-1);
	}
	return (0);
}

void
upload_close(struct upload_pool *p)
{
	queue_close(p->q);
}

void
upload_join(struct upload_pool *p)
{
	void *item;

	if (p == NULL)
		return;
	queue_close(p->q);
	for (int i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	store_on_slowdown(p->o.store, NULL, NULL);
	runctl_gauge_set(p->o.ctl, RUN_UPLOAD_LIMIT, limiter_limit(p->lim));
	cancel_hook_remove(runctl_cancel_flag(p->o.ctl), &p->hook);
	while (queue_trypop(p->q, &item) == 0)
		free(item);
	queue_free(p->q);
	limiter_free(p->lim);
	free(p->th);
	free(p);
}
