#ifndef AMP2S3_RUNCTL_H
#define AMP2S3_RUNCTL_H
/*
 * runctl: what every thread of a run shares — its cancel flag (cancel.h)
 * and why it stopped, its counters and gauges, and what the fetch pool
 * waits for.  The pools write them; progress.h reads them.
 *
 * Modules below the command layer that only need to stop (s3, unpack,
 * localdir) get the cancel flag itself (runctl_cancel_flag()); the pools
 * (fetch, upload) count and cancel through the functions here.
 *
 * Thread-safety: every function but runctl_new()/runctl_free() may be
 * called from any thread.  Counters and gauges are atomics; the waits
 * have their own mutex, a leaf.
 */
#include <stdint.h>

#include "hour.h"

struct cancel;
struct logger;

/* Why a run stopped early; the first reason set wins. */
enum run_stop {
	STOP_NONE = 0,
	STOP_AUTH,    /* Export API or S3 refused the credentials/region */
	STOP_IO,      /* local disk error */
	STOP_SIGINT,
	STOP_SIGTERM
};

/* The run's counters (README "Metrics" says what each means). */
enum run_counter {
	RUN_REQUESTS,       /* export requests sent */
	RUN_RETRIES,        /* export requests repeated */
	RUN_SPLITS,         /* windows split in halves */
	RUN_HOURS_DATA,     /* hours fetched with events */
	RUN_HOURS_EMPTY,    /* hours fetched empty */
	RUN_HOURS_FAILED,   /* hours given up on */
	RUN_BYTES_ZIP,      /* export answer bytes */
	RUN_REREAD,         /* 200 answers unpacked from the complete file */
	RUN_BYTES_OUT,      /* bytes written to hour files */
	RUN_EVENTS,         /* events (lines) written */
	RUN_UPLOADS,        /* hours stored */
	RUN_UPLOAD_BYTES,   /* bytes stored */
	RUN_UPLOAD_FAILED,  /* uploads given up on */
	RUN_LOCAL_REMOVED,  /* local hours found already stored, removed */
	RUN_BYTES_RECEIVED, /* answer body bytes as they arrive (every try) */
	RUN_UPLOADS_QUEUED, /* hours handed to the upload pool */
	RUN_HOURS_CONFLICT, /* local hours whose stored object has another
	                       size: both kept */
	RUN_HOURS_NOT_FOUND, /* hours of windows failed by a 404 that was
	                        not the Export API's own (also counted in
	                        RUN_HOURS_FAILED) */
	RUN_HOURS_CHECKED,  /* local hours compared with a stored object */
	RUN_HOURS_UNCHANGED, /* refresh: exports equal to the stored object */
	RUN_HOURS_REPLACED, /* refresh: stored objects replaced by exports */
	RUN_HOURS_NEW,      /* refresh: exports of hours the store lacked */
	RUN_HOURS_CHANGED,  /* fetch --refresh: exports kept, they differ */
	RUN_FETCH_LIMIT_DOWN,  /* times the fetch pool lowered its limit */
	RUN_FETCH_LIMIT_UP,    /* ... and raised it */
	RUN_UPLOAD_LIMIT_DOWN, /* the same for the upload pool */
	RUN_UPLOAD_LIMIT_UP,
	RUN_NCOUNTERS
};

/* The run's gauges: values that go up and down (the pools set them, the
 * progress line, the summary and the metrics read them). */
enum run_gauge {
	RUN_FETCH_LIMIT,     /* export requests allowed at once now */
	RUN_FETCH_CEILING,   /* ... at most (-j) */
	RUN_UPLOAD_LIMIT,    /* uploads allowed at once now */
	RUN_UPLOAD_CEILING,  /* ... at most (-u) */
	RUN_FETCH_INFLIGHT,  /* export requests under way */
	RUN_NGAUGES
};

/* The HTTP statuses retries are counted by: 0 (transport error) or
 * 100..RUNCTL_MAX_CODE-1. */
#define RUNCTL_MAX_CODE 600

struct runctl;

/* runctl_new(lg): a run starting now; NULL (logged on ${lg}) on
 * failure. */
struct runctl *runctl_new(struct logger *lg);

/* runctl_free(ctl): no thread may use ${ctl} any more.  NULL: no-op. */
void runctl_free(struct runctl *ctl);

/* runctl_cancel_flag(ctl): the run's cancel flag, for lower modules. */
struct cancel *runctl_cancel_flag(struct runctl *ctl);

/* runctl_cancel(ctl, why): stop the run (see cancel_trigger()). */
void runctl_cancel(struct runctl *ctl, enum run_stop why);

/* runctl_cancelled(ctl): non-zero once cancelled. */
int runctl_cancelled(const struct runctl *ctl);

/* runctl_stop_reason(ctl): why the run was cancelled, or STOP_NONE. */
enum run_stop runctl_stop_reason(const struct runctl *ctl);

/* runctl_sleep(ctl, ms): cancel_sleep() on the run's flag: 0 if the time
 * passed, -1 if cancelled. */
int runctl_sleep(struct runctl *ctl, int64_t ms);

/* runctl_count(ctl, c, n): add ${n} to counter ${c}.
 * runctl_counter(ctl, c): its value now. */
void runctl_count(struct runctl *ctl, enum run_counter c, uint64_t n);
uint64_t runctl_counter(const struct runctl *ctl, enum run_counter c);

/* runctl_gauge_set(ctl, g, v): gauge ${g} is ${v} now.
 * runctl_gauge_add(ctl, g, d): gauge ${g} moves by ${d}.
 * runctl_gauge(ctl, g): its value (0 until set). */
void runctl_gauge_set(struct runctl *ctl, enum run_gauge g, int64_t v);
void runctl_gauge_add(struct runctl *ctl, enum run_gauge g, int64_t d);
int64_t runctl_gauge(const struct runctl *ctl, enum run_gauge g);

/* runctl_count_retry(ctl, code): a retry caused by the HTTP status
 * ${code} (0 or out of range: a transport error).
 * runctl_retries_by(ctl, code): how many so far. */
void runctl_count_retry(struct runctl *ctl, long code);
uint64_t runctl_retries_by(const struct runctl *ctl, int code);

/* runctl_set_total_hours(ctl, n): the hours this run fetches, for the
 * progress line's total and ETA.  runctl_total_hours(ctl): that number
 * (0 until set). */
void runctl_set_total_hours(struct runctl *ctl, uint64_t n);
uint64_t runctl_total_hours(const struct runctl *ctl);

/* runctl_elapsed_ms(ctl): milliseconds since runctl_new(). */
int64_t runctl_elapsed_ms(const struct runctl *ctl);

/*
 * What the fetch pool waits for, for the progress line.
 *
 * runctl_pool_paused(ctl, until_ms, code): the whole pool pauses until
 * ${until_ms} (cancel_clock_ms()) because of the HTTP status ${code}
 * (a 429); of several pauses the one that ends last is kept.
 *
 * runctl_retry_sleep(ctl, ms, first, nhours, why): runctl_sleep() before
 * the window of ${nhours} hours from ${first} is asked again, known to
 * runctl_waits() while it lasts; ${why} (copied, cut to fit) is what the
 * last try got ("503", "timeout").  Returns as runctl_sleep().
 *
 * runctl_waits(ctl, now_ms, out): fill *${out} with the waits running at
 * ${now_ms}.
 */
struct run_waits {
	int64_t pause_ms;       /* left of the pool's pause; 0: none */
	long pause_code;        /* the status that caused it */
	int retrying;           /* windows sleeping before a retry */
	/* Of those, the one whose sleep ends first: */
	amp_hour first;
	int nhours;
	int64_t retry_ms;       /* left of its sleep */
	char why[24];
};
void runctl_pool_paused(struct runctl *ctl, int64_t until_ms, long code);
int runctl_retry_sleep(struct runctl *ctl, int64_t ms, amp_hour first,
    int nhours, const char *why);
void runctl_waits(struct runctl *ctl, int64_t now_ms, struct run_waits *out);

#endif
