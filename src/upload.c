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
 *   store_put() returns STORE_OK only once the object is complete in the
 *   store, and only then is the local file unlinked.
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
put_in_slot(struct upload_pool *p, amp_hour h, const char *path, char *err,
    size_t errlen)
{
	enum store_status s;
	int was, now;

	if (limiter_acquire(p->lim))
		return (STORE_CANCELLED);
	s = store_put(p->o.store, h, path, err, errlen);
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

	hour_format_file(h, name);
	if (localdir_path(p->o.data_dir, p->o.gzip, h, path, sizeof(path)) ||
	    stat(path, &sb)) {
		log_error(p->o.lg, "upload %s: cannot read %s: %s", name, path,
		    ERRSTR(errno));
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		return;
	}
	s = put_in_slot(p, h, path, err, sizeof(err));
	switch (s) {
	case STORE_OK:
		if (unlink(path) && errno != ENOENT)
			log_warn(p->o.lg, "uploaded %s but cannot delete %s: "
			    "%s", name, path, ERRSTR(errno));
		runctl_count(ctl, RUN_UPLOADS, 1);
		runctl_count(ctl, RUN_UPLOAD_BYTES, (uint64_t)sb.st_size);
		log_debug(p->o.lg, "uploaded %s (%" PRIu64 " bytes) to %s",
		    name, (uint64_t)sb.st_size, store_describe(p->o.store));
		runctl_progress(ctl, 0);
		return;
	case STORE_CANCELLED:
		return;
	case STORE_FATAL:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "%s", err);
		runctl_cancel(ctl, STOP_AUTH);
		return;
	case STORE_FAIL:
	default:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "upload %s failed (file kept): %s", name,
		    err);
		return;
	}
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
