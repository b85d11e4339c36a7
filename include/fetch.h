#ifndef AMP2S3_FETCH_H
#define AMP2S3_FETCH_H
/*
 * fetch: the pool of export workers.
 *
 * fetch_start() starts ${workers} threads.  The planner hands windows in
 * with fetch_submit() (blocking while the bounded queue is full) and says
 * fetch_plan_done() when it has no more.  Each worker downloads a window
 * to a temporary file in the data directory while unpacking it
 * (unpack_stream), classifies the answer (retry.h), retries, splits, or
 * hands the written window to a committer thread, and every completed
 * hour is reported to the ${on_hour} callback: from a committer thread for
 * unpacked windows (after their commit), from a worker's thread for empty
 * ones (404).  The pool ends by itself when the planner is done and every
 * submitted window (and its splits) is finished; fetch_join() waits for
 * that.  Cancellation and counters go through runctl.
 *
 * ${workers} is a ceiling: a worker takes a slot of the pool's
 * concurrency limit (limiter.h) before each request, and the limit
 * follows the API's 429s unless ${fixed_concurrency}.
 */
#include <stdint.h>

#include "hour.h"
#include "plan.h"
#include "unpack.h"

struct logger;
struct runctl;

struct fetch_opts {
	const char *api_url;
	const char *api_key;    /* secret: only handed to libcurl */
	const char *secret_key; /* secret: only handed to libcurl */
	const char *ca_bundle;  /* NULL: system CAs */
	const char *data_dir;
	/* What to check when the API refuses the credentials (401/403): the
	 * configuration layer's words, naming its settings. */
	const char *auth_hint;
	int workers;            /* the most requests at once (limiter.h) */
	int fixed_concurrency;  /* hold the limit at ${workers} */
	int queue_cap;          /* windows waiting; >= 1 */
	int max_attempts;
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	long connect_timeout_s;
	long stall_timeout_s;   /* stall.h: the window ... */
	uint64_t min_speed;     /* ... and the bytes/s it must average */
	struct unpack_opts unpack; /* caps, page cache */
	enum unpack_format format; /* hour files: .jsonl or .jsonl.gz */
	struct logger *lg;
	struct runctl *ctl;
	/* Called once per hour made complete on disk (empty or not). */
	void (*on_hour)(void *ctx, amp_hour hour);
	void *on_hour_ctx;
};

struct fetch_pool;

/* fetch_start(opts): a running pool, or NULL (message logged).  ${opts}
 * and its strings must outlive the pool. */
struct fetch_pool *fetch_start(const struct fetch_opts *opts);

/* fetch_submit(p, w): queue a copy of ${w}.  Returns 0, or -1 if the run
 * was cancelled (stop planning). */
int fetch_submit(struct fetch_pool *p, const struct window *w);

/* fetch_limit(p): the requests ${p} allows at once now (its concurrency
 * limit, 1..workers), for sizing the windows still to cut. */
int fetch_limit(struct fetch_pool *p);

/* fetch_plan_done(p): no more fetch_submit() calls will follow. */
void fetch_plan_done(struct fetch_pool *p);

/* fetch_join(p): wait for every worker to finish and free the pool. */
void fetch_join(struct fetch_pool *p);

#endif
