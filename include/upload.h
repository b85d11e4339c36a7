#ifndef AMP2S3_UPLOAD_H
#define AMP2S3_UPLOAD_H
/*
 * upload: the pool of upload workers — where a complete local hour meets
 * the store.
 *
 * upload_submit() queues an hour whose complete file is in the data
 * directory (blocking while the bounded queue is full), with what the
 * store's listing said of it.  A worker then does what the hour's mode
 * says, and deletes the local file only once the store provably holds
 * its bytes (store_same(): a size is no proof) or confirmed that very
 * upload:
 *
 *   mode        not stored           stored, same bytes   stored, other bytes
 *   SYNC        upload               delete local         conflict: keep both
 *   REFRESH     upload (new)         delete (unchanged)   upload over it
 *                                                         (replaced)
 *   CHECK       keep (new)           delete (unchanged)   keep (changed)
 *
 * SYNC is a local hour of unknown origin (sync, all): it never replaces a
 * stored object.  REFRESH (all --refresh) and CHECK (fetch --refresh) are
 * hours this run has just exported and verified.  An hour whose bytes
 * cannot be proven either way (the store refused to be read) is treated
 * as other bytes, with the reason logged.  With ${dry}, nothing is
 * uploaded or deleted: each verdict goes to ${verdict} instead.
 *
 * A failed upload keeps its file and counts in RUN_UPLOAD_FAILED; a fatal
 * store error cancels the run.  Counters: runctl (RUN_UPLOADS,
 * RUN_LOCAL_REMOVED, RUN_HOURS_CONFLICT, RUN_HOURS_CHECKED,
 * RUN_HOURS_UNCHANGED, RUN_HOURS_REPLACED, RUN_HOURS_NEW,
 * RUN_HOURS_CHANGED).
 *
 * ${workers} is a ceiling: each upload takes a slot of the pool's
 * concurrency limit (limiter.h), which S3's 503 SlowDown answers lower
 * (through store_on_slowdown()) unless ${fixed_concurrency}.
 */
#include <stdint.h>

#include "hour.h"
#include "store.h"

struct logger;
struct runctl;

enum upload_mode { UPLOAD_SYNC, UPLOAD_REFRESH, UPLOAD_CHECK };

/* An hour to handle, and what the store's listing said of it. */
struct upload_item {
	amp_hour hour;
	enum upload_mode mode;
	int stored;                /* the listing has an object for it */
	struct store_object obj;   /* if ${stored} */
};

/* What a worker found (reported to opts->verdict with opts->dry). */
enum upload_verdict {
	UPLOAD_NOT_STORED,         /* would be uploaded (SYNC, REFRESH) */
	UPLOAD_SAME,               /* the store holds these bytes */
	UPLOAD_OTHER_SIZE,         /* the stored object has another size */
	UPLOAD_OTHER_BYTES,        /* same size, other bytes */
	UPLOAD_UNPROVEN            /* could not be read to compare */
};

struct upload_opts {
	struct store *store;
	const char *data_dir;
	int gzip;               /* local files are .jsonl.gz (localdir.h) */
	int workers;            /* the most uploads at once */
	int fixed_concurrency;  /* hold the limit at ${workers} */
	int queue_cap;
	struct logger *lg;
	struct runctl *ctl;
	/* Plan only: report each verdict, change nothing.  ${verdict} may be
	 * called from several workers at once. */
	int dry;
	void (*verdict)(void *ctx, const struct upload_item *it,
	    enum upload_verdict v, uint64_t local_size);
	void *verdict_ctx;
};

struct upload_pool;

/* upload_start(opts): a running pool or NULL (logged).  ${opts} and what
 * it points to must outlive the pool. */
struct upload_pool *upload_start(const struct upload_opts *opts);

/* upload_submit(p, it): queue a copy of ${it}.  0, or -1 if the run was
 * cancelled. */
int upload_submit(struct upload_pool *p, const struct upload_item *it);

/* upload_close(p): no more submissions; workers finish the queue. */
void upload_close(struct upload_pool *p);

/* upload_join(p): wait for the workers and free the pool. */
void upload_join(struct upload_pool *p);

#endif
