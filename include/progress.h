#ifndef AMP2S3_PROGRESS_H
#define AMP2S3_PROGRESS_H
/*
 * progress: what a run shows while it runs, and its peak download rate.
 *
 * progress_start() starts one timer thread.  About four times a second it
 * samples the run's counters, gauges and waits (runctl.h) and either
 * redraws the live line on the terminal (log_progress(), fitted to the
 * terminal's width) or, every ${interval_s} seconds, logs one progress
 * record at info level (log_fields(): in JSON the same fields as
 * members).  The workers only count; they never draw.  progress_stop()
 * ends the thread, clears the line and returns the peak rate.
 *
 * The rest are pure functions used by the thread: the rate over a sliding
 * window, the ETA, and the line's fields fitted to a width.
 *
 * Thread-safety: progress_start() and progress_stop() from one thread
 * (the run's); the pure functions are reentrant.
 */
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "runctl.h"

struct progress_opts {
	struct logger *lg;
	struct runctl *ctl;
	int fetch;              /* the run downloads (fetch, all) */
	int upload;             /* the run uploads (sync, all) */
	int live;               /* redraw a line on the terminal, else ... */
	int interval_s;         /* ... a record every this many s; 0: none */
};

struct progress;

/*
 * progress_start(o): a running timer thread for the run of ${o} (copied;
 * its logger and runctl must outlive it), or NULL (a warning logged: the
 * run goes on without progress).  The thread ends by itself when the run
 * is cancelled, and at progress_stop().
 */
struct progress *progress_start(const struct progress_opts *o);

/*
 * progress_stop(pg): end ${pg}'s thread, wait for it, clear the live line
 * and free ${pg}.  Returns the peak download rate in bytes per second:
 * the highest rate over PROGRESS_RATE_SPAN_MS seen, or, for a run too
 * short for one (PROGRESS_RATE_MIN_MS), the average; 0 for NULL.
 */
double progress_stop(struct progress *pg);

/* --- pure parts ------------------------------------------------------ */

#define PROGRESS_TICK_MS 250        /* the thread's period */
#define PROGRESS_RATE_SPAN_MS 5000  /* the rate is over the last 5 s ... */
#define PROGRESS_RATE_MIN_MS 1000   /* ... once the samples span 1 s */
#define PROGRESS_RATE_SLOTS 32      /* samples kept: > SPAN / TICK */

/* A counter's recent samples, for its rate over a sliding window.  All
 * zero is an empty one. */
struct progress_rate {
	int64_t t[PROGRESS_RATE_SLOTS];
	uint64_t v[PROGRESS_RATE_SLOTS];
	int head;               /* the slot written next */
	int n;                  /* samples held */
};

/* progress_rate_add(r, t_ms, v): the counter was ${v} at ${t_ms} (not
 * earlier than the last sample); the oldest sample goes when every slot
 * is full. */
void progress_rate_add(struct progress_rate *r, int64_t t_ms, uint64_t v);

/*
 * progress_rate_get(r, span_ms, min_ms): units per second from the oldest
 * sample that is at most ${span_ms} older than the newest, to the newest;
 * -1 if those two are less than ${min_ms} apart (too early to say).
 */
double progress_rate_get(const struct progress_rate *r, int64_t span_ms,
    int64_t min_ms);

/*
 * progress_eta_s(elapsed_ms, done, total): the seconds the ${total} -
 * ${done} units left take at the pace of ${done} in ${elapsed_ms}
 * (rounded up); -1 if that cannot be estimated: nothing done yet,
 * everything done, or no time passed.
 */
int64_t progress_eta_s(int64_t elapsed_ms, uint64_t done, uint64_t total);

/*
 * progress_wait_text(w, buf, len): what the pool waits for according to
 * ${w}, into ${buf} (NUL-terminated, cut to ${len}): "429: pausing 12 s",
 * "retrying 20251101T00..T23 in 8 s (503)" (plus " +2 more" when other
 * windows wait too), both joined by "; ", or "" when nothing waits.
 * Seconds are rounded up.
 */
void progress_wait_text(const struct run_waits *w, char *buf, size_t len);

/* What one line or record shows. */
struct progress_snap {
	int fetch, upload;      /* the sides the run has (progress_opts) */
	uint64_t hours_done;    /* with data, empty or failed */
	uint64_t hours_total;
	uint64_t hours_failed;
	uint64_t bytes;         /* downloaded, answers arriving included */
	double rate;            /* bytes/s lately; < 0: not known yet */
	uint64_t uploads_done;  /* stored or failed */
	uint64_t uploads_queued;
	uint64_t uploads_failed;
	int64_t in_flight;      /* export requests under way */
	int64_t fetch_limit, fetch_ceiling;     /* ceiling 0: not shown */
	int64_t upload_limit, upload_ceiling;   /* ceiling 0: not shown */
	int64_t elapsed_s;
	int64_t eta_s;          /* < 0: not known */
	char wait[160];         /* progress_wait_text(), "" none */
};

/*
 * progress_line(s, sep, width, buf, len): ${s}'s fields joined by ${sep}
 * into ${buf} (NUL-terminated, cut to ${len}), e.g.
 *   hours 30/72  412.5 MB  18.4 MB/s  4 in flight  concurrency 3 of 4
 *   uploads 24/30  ETA 1m05s  429: pausing 12 s
 * With ${width} > 0 the result has at most ${width} columns: the least
 * important fields are left out first (upload concurrency, concurrency,
 * in flight, uploads, ETA, rate, bytes, the wait; the hours stay), and
 * what is still too wide is cut.  Returns the length written.
 */
size_t progress_line(const struct progress_snap *s, const char *sep,
    int width, char *buf, size_t len);

/*
 * progress_fields(s, f, max): ${s} as JSON members into ${f} (at most
 * ${max}; 16 is enough): hours_done, hours_total, hours_failed,
 * bytes_downloaded, rate_bytes_per_s (null until known), in_flight
 * (fetching runs), uploads_done, uploads_queued, uploads_failed (uploading
 * runs), fetch_limit, fetch_ceiling, upload_limit, upload_ceiling (when
 * the ceiling is set), elapsed_s, eta_s and wait (null when none).
 * String members point into ${s}.  Returns the number filled.
 */
size_t progress_fields(const struct progress_snap *s, struct log_field *f,
    size_t max);

#endif
