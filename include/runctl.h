#ifndef AMP2S3_RUNCTL_H
#define AMP2S3_RUNCTL_H
/*
 * runctl: what every thread of a run shares — the cancel flag, why the run
 * stopped, its counters, cancellable sleeps and the progress line.
 *
 * Cancelling sets the flag, wakes every runctl_sleep() and calls each
 * registered wake hook (fetch workers register curl_multi_wakeup), so no
 * thread waits longer than its current library call.  All functions are
 * thread-safe.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct logger;

/* Why a run stopped early; the first reason set wins. */
enum run_stop {
	STOP_NONE = 0,
	STOP_AUTH,    /* Export API or S3 refused the credentials/region */
	STOP_IO,      /* local disk error */
	STOP_SIGINT,
	STOP_SIGTERM
};

struct run_stats {
	atomic_uint_fast64_t requests;     /* export requests sent */
	atomic_uint_fast64_t retries;      /* export requests repeated */
	atomic_uint_fast64_t splits;       /* windows split in halves */
	atomic_uint_fast64_t hours_data;   /* hours fetched with events */
	atomic_uint_fast64_t hours_empty;  /* hours fetched empty */
	atomic_uint_fast64_t hours_failed; /* hours given up on */
	atomic_uint_fast64_t bytes_zip;    /* export answer bytes */
	atomic_uint_fast64_t reread;       /* 200 answers unpacked from the
	                                      complete file, not streamed */
	atomic_uint_fast64_t bytes_out;    /* JSONL bytes written */
	atomic_uint_fast64_t events;
	atomic_uint_fast64_t uploads;      /* hours stored */
	atomic_uint_fast64_t upload_bytes;
	atomic_uint_fast64_t upload_failed;
	atomic_uint_fast64_t local_removed;/* local files already stored */
	atomic_uint_fast64_t retry_by_code[600]; /* retries by the HTTP status
	                                      that caused them, 0 transport */
};

#define RUNCTL_MAX_HOOKS 4

struct runctl {
	atomic_int cancel;
	atomic_int stop;               /* enum run_stop */
	struct run_stats st;
	int64_t t0_ms;                 /* monotonic start */
	uint64_t total_hours;          /* hours to fetch, for progress */
	struct logger *lg;
	int progress;                  /* draw a progress line */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t last_draw_ms;
	void (*hook[RUNCTL_MAX_HOOKS])(void *);
	void *hook_arg[RUNCTL_MAX_HOOKS];
	int nhooks;
};

/* runctl_init(c, lg, progress): 0 or -1. */
int runctl_init(struct runctl *c, struct logger *lg, int progress);

/* runctl_destroy(c). */
void runctl_destroy(struct runctl *c);

/* runctl_add_hook(c, fn, arg): call fn(arg) on cancel.  0 or -1 (full).
 * If already cancelled, fn(arg) is called at once. */
int runctl_add_hook(struct runctl *c, void (*fn)(void *), void *arg);

/* runctl_remove_hook(c, fn, arg): forget a hook (before arg is freed). */
void runctl_remove_hook(struct runctl *c, void (*fn)(void *), void *arg);

/* runctl_cancel(c, why): stop the run (idempotent; keeps the first why). */
void runctl_cancel(struct runctl *c, enum run_stop why);

/* runctl_cancelled(c): non-zero once cancelled. */
int runctl_cancelled(struct runctl *c);

/* runctl_sleep(c, ms): wait ${ms} or until cancelled.  Returns 0 if the
 * time passed, -1 if cancelled. */
int runctl_sleep(struct runctl *c, int64_t ms);

/* runctl_now_ms(): a monotonic clock in milliseconds. */
int64_t runctl_now_ms(void);

/* runctl_progress(c, force): redraw the progress line at most 4 times a
 * second (every time if ${force}); no-op unless progress is on. */
void runctl_progress(struct runctl *c, int force);


#endif
