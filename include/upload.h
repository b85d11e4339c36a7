#ifndef AMP2S3_UPLOAD_H
#define AMP2S3_UPLOAD_H
/*
 * upload: the pool of upload workers.
 *
 * upload_submit() queues an hour whose complete file is in the data
 * directory (blocking while the bounded queue is full); a worker stores it
 * (store.h) and deletes the local file only after the store confirmed that
 * very object.  A failed upload keeps its file and counts in
 * runctl.st.upload_failed; a fatal store error cancels the run.
 *
 * ${workers} is a ceiling: each upload takes a slot of the pool's
 * concurrency limit (limiter.h), which S3's 503 SlowDown answers lower
 * (through store_on_slowdown()) unless ${fixed_concurrency}.
 */
#include "hour.h"

struct logger;
struct runctl;
struct store;

struct upload_opts {
	struct store *store;
	const char *data_dir;
	int gzip;               /* local files are .jsonl.gz (localdir.h) */
	int workers;            /* the most uploads at once */
	int fixed_concurrency;  /* hold the limit at ${workers} */
	int queue_cap;
	struct logger *lg;
	struct runctl *ctl;
};

struct upload_pool;

/* upload_start(opts): a running pool or NULL (logged).  ${opts} and what
 * it points to must outlive the pool. */
struct upload_pool *upload_start(const struct upload_opts *opts);

/* upload_submit(p, hour): 0, or -1 if the run was cancelled. */
int upload_submit(struct upload_pool *p, amp_hour hour);

/* upload_close(p): no more submissions; workers finish the queue. */
void upload_close(struct upload_pool *p);

/* upload_join(p): wait for the workers and free the pool. */
void upload_join(struct upload_pool *p);

#endif
