/*
 * upload: store complete hour files, or prove the store holds them, then
 * delete them locally (see upload.h for what each mode does).
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
 *   run).  Counters go to runctl; in a dry run the verdicts go to the
 *   caller's callback, from the workers' threads.
 * - Concurrency: the workers are a ceiling.  Each store_put(), and each
 *   store_same() (proving reads the store too), runs in a slot of the
 *   pool's limiter (limiter.h; its DESIGN says who changes the limit,
 *   under which lock): a worker waits for a slot before it starts a
 *   request and gives it back after, an answer counting towards one
 *   more.  S3 retries a 503 SlowDown inside the call, so the
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
	struct cancel_hook hook;    /* upload_wake on cancel */
	struct limiter *lim;        /* uploads at once (its own lock) */
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

/* Store the file open at ${fd} as ${h}; 0 once the store confirmed it,
 * then the local name is removed.  -1 (logged, counted) otherwise. */
static int
put(struct upload_pool *p, amp_hour h, const char *name, const char *path,
    int fd, const struct stat *sb)
{
	struct runctl *ctl = p->o.ctl;
	char err[600];

	switch (put_in_slot(p, h, fd, err, sizeof(err))) {
	case STORE_OK:
		remove_uploaded(p, name, path, sb);
		runctl_count(ctl, RUN_UPLOADS, 1);
		runctl_count(ctl, RUN_UPLOAD_BYTES, (uint64_t)sb->st_size);
		log_debug(p->o.lg, "uploaded %s (%" PRIu64 " bytes) to %s",
		    name, (uint64_t)sb->st_size, store_describe(p->o.store));
		return (0);
	case STORE_CANCELLED:
		return (-1);
	case STORE_FATAL:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "%s", err);
		runctl_cancel(ctl, STOP_AUTH);
		return (-1);
	case STORE_FAIL:
	default:
		runctl_count(ctl, RUN_UPLOAD_FAILED, 1);
		log_error(p->o.lg, "upload %s failed (file kept): %s", name,
		    err);
		return (-1);
	}
}

/* store_same() in a slot of the pool's limit: proving reads the store
 * too (HEAD, GET), and S3 throttles them like writes. */
static enum store_status
same_in_slot(struct upload_pool *p, const struct upload_item *it, int fd,
    uint64_t size, int *same, char *why, size_t whylen)
{
	enum store_status s;
	int was, now;

	if (limiter_acquire(p->lim))
		return (STORE_CANCELLED);
	s = store_same(p->o.store, it->hour, fd, size, &it->obj, same, why,
	    whylen);
	now = limiter_release(p->lim, s == STORE_OK ? LIMITER_OK :
	    LIMITER_OTHER, &was);
	limit_moved(p, was, now);
	return (s);
}

/* What the store holds of ${it}, against the file open at ${fd} of
 * ${size} bytes; ${why}: the reason when UPLOAD_UNPROVEN. */
static enum upload_verdict
verdict_of(struct upload_pool *p, const struct upload_item *it, int fd,
    uint64_t size, char *why, size_t whylen)
{
	int same = 0;

	if (!it->stored)
		return (UPLOAD_NOT_STORED);
	runctl_count(p->o.ctl, RUN_HOURS_CHECKED, 1);
	if (it->obj.size != size)
		return (UPLOAD_OTHER_SIZE);
	if (same_in_slot(p, it, fd, size, &same, why, whylen) != STORE_OK)
		return (UPLOAD_UNPROVEN);
	return (same ? UPLOAD_SAME : UPLOAD_OTHER_BYTES);
}

/* A local hour the store holds with the same bytes: remove it. */
static void
remove_stored(struct upload_pool *p, const struct upload_item *it,
    const char *name, const char *path, const struct stat *sb)
{
	remove_uploaded(p, name, path, sb);
	runctl_count(p->o.ctl, it->mode == UPLOAD_SYNC ? RUN_LOCAL_REMOVED :
	    RUN_HOURS_UNCHANGED, 1);
	log_debug(p->o.lg, "%s is already stored with the same bytes: "
	    "removed", path);
}

/* A local hour (SYNC) whose stored object differs: keep both. */
static void
conflict(struct upload_pool *p, const struct upload_item *it,
    const char *path, uint64_t size, enum upload_verdict v, const char *why)
{
	char name[HOUR_API_LEN];

	hour_format_api(it->hour, name);
	runctl_count(p->o.ctl, RUN_HOURS_CONFLICT, 1);
	log_warn(p->o.lg, "hour %s: the stored object (%" PRIu64 " bytes) %s "
	    "the local file %s (%" PRIu64 " bytes): conflict, both "
	    "kept%s%s",
	    name, it->obj.size, v == UPLOAD_UNPROVEN ? "cannot be compared "
	    "with" : "differs from", path, size, v == UPLOAD_UNPROVEN ?
	    ": " : "", v == UPLOAD_UNPROVEN ? why : "");
}

/* A fresh export (REFRESH) that differs from its stored object: upload
 * it over the object. */
static void
replace(struct upload_pool *p, const struct upload_item *it,
    const char *name, const char *path, int fd, const struct stat *sb,
    enum upload_verdict v, const char *why)
{
	if (put(p, it->hour, name, path, fd, sb) != 0)
		return;
	runctl_count(p->o.ctl, RUN_HOURS_REPLACED, 1);
	log_info(p->o.lg, "replaced %s in %s: %" PRIu64 " bytes, now %" PRIu64
	    "%s%s", name, store_describe(p->o.store), it->obj.size,
	    (uint64_t)sb->st_size, v == UPLOAD_UNPROVEN ? " (the old one "
	    "could not be read to compare: " : "", v == UPLOAD_UNPROVEN ?
	    why : "");
}

/* Do what ${it}'s mode says for the verdict ${v} (see upload.h). */
static void
act(struct upload_pool *p, const struct upload_item *it,
    enum upload_verdict v, const char *name, const char *path, int fd,
    const struct stat *sb, const char *why)
{
	if (v == UPLOAD_SAME) {
		remove_stored(p, it, name, path, sb);
		return;
	}
	if (v == UPLOAD_NOT_STORED) {
		if (it->mode != UPLOAD_SYNC)
			runctl_count(p->o.ctl, RUN_HOURS_NEW, 1);
		if (it->mode != UPLOAD_CHECK)
			(void)put(p, it->hour, name, path, fd, sb);
		return;
	}
	switch (it->mode) {
	case UPLOAD_SYNC:
		conflict(p, it, path, (uint64_t)sb->st_size, v, why);
		break;
	case UPLOAD_REFRESH:
		replace(p, it, name, path, fd, sb, v, why);
		break;
	case UPLOAD_CHECK:
		runctl_count(p->o.ctl, RUN_HOURS_CHANGED, 1);
		log_info(p->o.lg, "%s differs from the stored object (%" PRIu64
		    " bytes, the export %" PRIu64 "): kept in %s", name,
		    it->obj.size, (uint64_t)sb->st_size, p->o.data_dir);
		break;
	}
}

static void
upload_one(struct upload_pool *p, const struct upload_item *it)
{
	char path[4096], name[HOUR_FILE_LEN], why[600] = "";
	enum upload_verdict v;
	struct stat sb;
	int fd;

	hour_format_file(it->hour, name);
	if (localdir_path(p->o.data_dir, p->o.gzip, it->hour, path,
	    sizeof(path))) {
		log_error(p->o.lg, "upload %s: path too long in %s", name,
		    p->o.data_dir);
		runctl_count(p->o.ctl, RUN_UPLOAD_FAILED, 1);
		return;
	}
	if ((fd = open_hour(p, name, path, &sb)) < 0)
		return;
	v = verdict_of(p, it, fd, (uint64_t)sb.st_size, why, sizeof(why));
	if (p->o.dry)
		p->o.verdict(p->o.verdict_ctx, it, v, (uint64_t)sb.st_size);
	else if (!runctl_cancelled(p->o.ctl))
		act(p, it, v, name, path, fd, &sb, why);
	close(fd);
}

static void *
upload_main(void *arg)
{
	struct upload_pool *p = arg;
	void *item;

	while (queue_pop(p->q, &item) == 0) {
		if (!runctl_cancelled(p->o.ctl))
			upload_one(p, item);
		free(item);
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
upload_submit(struct upload_pool *p, const struct upload_item *it)
{
	struct upload_item *c;

	if (runctl_cancelled(p->o.ctl) || (c = malloc(sizeof(*c))) == NULL)
		return (-1);
	*c = *it;
	runctl_count(p->o.ctl, RUN_UPLOADS_QUEUED, 1);
	if (queue_push(p->q, c)) {
		free(c);
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
