/*
 * progress: the live line, the progress records and the peak rate (see
 * progress.h).
 *
 * DESIGN
 * - Threads: one timer thread per run (progress_main).  It sleeps
 *   PROGRESS_TICK_MS at a time in cancel_sleep() on its own flag
 *   ${stop}, which progress_stop() triggers; it also leaves at the first
 *   tick after the run is cancelled.  progress_stop() joins it before
 *   the summary is written, so nothing is drawn after the summary.
 * - Data: the thread reads only what the workers publish for it in
 *   runctl (atomic counters and gauges; the waits under runctl's leaf
 *   mutex).  Everything else — the rate's samples, the peak, the last
 *   line drawn — belongs to the thread until progress_stop() has joined
 *   it, and to the caller after.  No lock of this file's own.
 * - Output: on a terminal, log_progress() (log.c clears the line before
 *   every message and redraws it after, in the same write); elsewhere,
 *   log_fields() at info level every ${interval_s} seconds.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "errbuf.h"
#include "hour.h"
#include "log.h"
#include "progress.h"
#include "runctl.h"

#define LINE_MAX_BYTES 400      /* a line, whatever the width */

struct progress {
	struct progress_opts o;
	struct cancel *stop;
	pthread_t th;
	int64_t t0_ms;
	/* The thread's until joined, then progress_stop()'s: */
	struct progress_rate rate;
	double peak;            /* bytes/s; < 0 until a rate was known */
	char last[LINE_MAX_BYTES];
};

/* --- pure parts ------------------------------------------------------ */

void
progress_rate_add(struct progress_rate *r, int64_t t_ms, uint64_t v)
{
	r->t[r->head] = t_ms;
	r->v[r->head] = v;
	r->head = (r->head + 1) % PROGRESS_RATE_SLOTS;
	if (r->n < PROGRESS_RATE_SLOTS)
		r->n++;
}

double
progress_rate_get(const struct progress_rate *r, int64_t span_ms,
    int64_t min_ms)
{
	int newest, oldest, k;

	if (r->n == 0)
		return (-1);
	newest = (r->head + PROGRESS_RATE_SLOTS - 1) % PROGRESS_RATE_SLOTS;
	oldest = newest;
	/* Walk back while the next older sample is still within the span. */
	for (int i = 1; i < r->n; i++) {
		k = (newest + PROGRESS_RATE_SLOTS - i) % PROGRESS_RATE_SLOTS;
		if (r->t[newest] - r->t[k] > span_ms)
			break;
		oldest = k;
	}
	if (r->t[newest] - r->t[oldest] < min_ms ||
	    r->t[newest] - r->t[oldest] <= 0)
		return (-1);
	return ((double)(r->v[newest] - r->v[oldest]) * 1000.0 /
	    (double)(r->t[newest] - r->t[oldest]));
}

int64_t
progress_eta_s(int64_t elapsed_ms, uint64_t done, uint64_t total)
{
	double ms;

	if (done == 0 || done >= total || elapsed_ms <= 0)
		return (-1);
	ms = (double)elapsed_ms / (double)done * (double)(total - done);
	return ((int64_t)((ms + 999.0) / 1000.0));
}

/* "20251101T05", "20251101T00..T23" (one day), or both hours in full. */
static void
window_label(amp_hour first, int n, char *buf, size_t len)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN];

	hour_format_api(first, a);
	hour_format_api(first + (n > 1 ? n : 1) - 1, b);
	if (n <= 1)
		snprintf(buf, len, "%s", a);
	else if (memcmp(a, b, 8) == 0)
		snprintf(buf, len, "%s..%s", a, b + 8);
	else
		snprintf(buf, len, "%s..%s", a, b);
}

/* Whole seconds in ${ms}, rounded up. */
static int64_t
secs_up(int64_t ms)
{
	return ((ms + 999) / 1000);
}

void
progress_wait_text(const struct run_waits *w, char *buf, size_t len)
{
	char win[32], more[32] = "";
	size_t used = 0;
	int n;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (w->pause_ms > 0) {
		n = snprintf(buf, len, "%ld: pausing %" PRId64 " s",
		    w->pause_code, secs_up(w->pause_ms));
		used = n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
	}
	if (w->retrying > 0 && used < len) {
		window_label(w->first, w->nhours, win, sizeof(win));
		if (w->retrying > 1)
			snprintf(more, sizeof(more), " +%d more",
			    w->retrying - 1);
		snprintf(buf + used, len - used, "%sretrying %s in %" PRId64
		    " s (%s)%s", used ? "; " : "", win, secs_up(w->retry_ms),
		    w->why, more);
	}
}

/* "183 kB", "412.5 MB", "1.23 GB" (powers of 1000, as the summary). */
static void
fmt_bytes(double b, const char *suffix, char *buf, size_t len)
{
	if (b < 1e6)
		snprintf(buf, len, "%.0f kB%s", b / 1e3, suffix);
	else if (b < 1e9)
		snprintf(buf, len, "%.1f MB%s", b / 1e6, suffix);
	else
		snprintf(buf, len, "%.2f GB%s", b / 1e9, suffix);
}

/* "45 s", "2m05s", "3h07m", "2d03h". */
static void
fmt_duration(int64_t s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%" PRId64 " s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60,
		    s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600,
		    s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400,
		    s % 86400 / 3600);
}

/* The line's fields, in the order shown; lower ranks are kept longer. */
enum field { F_HOURS, F_BYTES, F_RATE, F_INFLIGHT, F_CONC, F_UPLOADS,
	F_UPCONC, F_ETA, F_WAIT, F_N };
static const int field_rank[F_N] = {
	[F_HOURS] = 0, [F_WAIT] = 1, [F_BYTES] = 2, [F_RATE] = 3,
	[F_ETA] = 4, [F_UPLOADS] = 5, [F_INFLIGHT] = 6, [F_CONC] = 7,
	[F_UPCONC] = 8,
};

/* "${what} ${done}/${of}", then " (N failed)" when ${failed}. */
static void
fmt_count(const char *what, uint64_t done, uint64_t of, uint64_t failed,
    char *buf, size_t len)
{
	if (failed > 0)
		snprintf(buf, len, "%s %" PRIu64 "/%" PRIu64 " (%" PRIu64
		    " failed)", what, done, of, failed);
	else
		snprintf(buf, len, "%s %" PRIu64 "/%" PRIu64, what, done, of);
}

/* Each field of ${s} into ${f} ("" when not shown). */
static void
line_fields(const struct progress_snap *s, char f[F_N][LINE_MAX_BYTES / 2])
{
	const size_t L = LINE_MAX_BYTES / 2;
	char d[32];

	for (int i = 0; i < F_N; i++)
		f[i][0] = '\0';
	if (s->fetch) {
		fmt_count("hours", s->hours_done, s->hours_total,
		    s->hours_failed, f[F_HOURS], L);
		fmt_bytes((double)s->bytes, "", f[F_BYTES], L);
		if (s->rate >= 0)
			fmt_bytes(s->rate, "/s", f[F_RATE], L);
		snprintf(f[F_INFLIGHT], L, "%" PRId64 " in flight",
		    s->in_flight);
		if (s->fetch_ceiling > 0)
			snprintf(f[F_CONC], L, "concurrency %" PRId64 " of %"
			    PRId64, s->fetch_limit, s->fetch_ceiling);
	}
	if (s->upload) {
		fmt_count("uploads", s->uploads_done, s->uploads_queued,
		    s->uploads_failed, f[F_UPLOADS], L);
		if (s->upload_ceiling > 0)
			snprintf(f[F_UPCONC], L, "upload concurrency %" PRId64
			    " of %" PRId64, s->upload_limit,
			    s->upload_ceiling);
	}
	if (s->eta_s >= 0) {
		fmt_duration(s->eta_s, d, sizeof(d));
		snprintf(f[F_ETA], L, "ETA %s", d);
	}
	snprintf(f[F_WAIT], L, "%s", s->wait);
}

/* The width of the fields in ${on} joined by ${seplen}-byte separators. */
static size_t
joined_len(char f[F_N][LINE_MAX_BYTES / 2], const int on[F_N],
    size_t seplen)
{
	size_t total = 0;
	int k = 0;

	for (int i = 0; i < F_N; i++) {
		if (!on[i])
			continue;
		total += (k++ > 0 ? seplen : 0) + strlen(f[i]);
	}
	return (total);
}

size_t
progress_line(const struct progress_snap *s, const char *sep, int width,
    char *buf, size_t len)
{
	char f[F_N][LINE_MAX_BYTES / 2];
	int on[F_N], k = 0;
	size_t used = 0, seplen = strlen(sep), cut;

	if (len == 0)
		return (0);
	line_fields(s, f);
	for (int i = 0; i < F_N; i++)
		on[i] = f[i][0] != '\0';
	/* Leave out the least important field until the rest fits. */
	while (width > 0 && joined_len(f, on, seplen) > (size_t)width) {
		int worst = -1;
		for (int i = 0; i < F_N; i++)
			if (on[i] && field_rank[i] > 0 && (worst < 0 ||
			    field_rank[i] > field_rank[worst]))
				worst = i;
		if (worst < 0)
			break;
		on[worst] = 0;
	}
	buf[0] = '\0';
	for (int i = 0; i < F_N; i++) {
		if (!on[i])
			continue;
		snprintf(buf + used, len - used, "%s%s", k++ > 0 ? sep : "",
		    f[i]);
		used += strlen(buf + used);
	}
	cut = width > 0 && used > (size_t)width ? (size_t)width : used;
	buf[cut] = '\0';
	return (cut);
}

size_t
progress_fields(const struct progress_snap *s, struct log_field *f,
    size_t max)
{
	size_t n = 0;

#define INT(k, v) do { if (n < max) f[n++] = (struct log_field){ \
	.key = (k), .type = LOG_FIELD_INT, .i = (int64_t)(v) }; } while (0)
#define STR(k, v) do { if (n < max) f[n++] = (struct log_field){ \
	.key = (k), .type = (v) != NULL ? LOG_FIELD_STR : LOG_FIELD_NULL, \
	.s = (v) }; } while (0)
	if (s->fetch) {
		INT("hours_done", s->hours_done);
		INT("hours_total", s->hours_total);
		INT("hours_failed", s->hours_failed);
		INT("bytes_downloaded", s->bytes);
		if (s->rate >= 0)
			INT("rate_bytes_per_s", s->rate + 0.5);
		else
			STR("rate_bytes_per_s", (const char *)NULL);
		INT("in_flight", s->in_flight);
	}
	if (s->upload) {
		INT("uploads_done", s->uploads_done);
		INT("uploads_queued", s->uploads_queued);
		INT("uploads_failed", s->uploads_failed);
	}
	if (s->fetch_ceiling > 0) {
		INT("fetch_limit", s->fetch_limit);
		INT("fetch_ceiling", s->fetch_ceiling);
	}
	if (s->upload_ceiling > 0) {
		INT("upload_limit", s->upload_limit);
		INT("upload_ceiling", s->upload_ceiling);
	}
	INT("elapsed_s", s->elapsed_s);
	if (s->eta_s >= 0)
		INT("eta_s", s->eta_s);
	else
		STR("eta_s", (const char *)NULL);
	STR("wait", s->wait[0] != '\0' ? s->wait : NULL);
#undef INT
#undef STR
	return (n);
}

/* --- the timer thread ------------------------------------------------ */

/* What the run looks like at ${now}, the rate from the samples so far. */
static void
snap_take(struct progress *pg, int64_t now, struct progress_snap *s)
{
	struct runctl *c = pg->o.ctl;
	struct run_waits w;

	memset(s, 0, sizeof(*s));
	s->fetch = pg->o.fetch;
	s->upload = pg->o.upload;
	s->hours_failed = runctl_counter(c, RUN_HOURS_FAILED);
	s->hours_done = runctl_counter(c, RUN_HOURS_DATA) +
	    runctl_counter(c, RUN_HOURS_EMPTY) + s->hours_failed;
	s->hours_total = runctl_total_hours(c);
	s->bytes = runctl_counter(c, RUN_BYTES_RECEIVED);
	s->rate = progress_rate_get(&pg->rate, PROGRESS_RATE_SPAN_MS,
	    PROGRESS_RATE_MIN_MS);
	s->uploads_failed = runctl_counter(c, RUN_UPLOAD_FAILED);
	s->uploads_done = runctl_counter(c, RUN_UPLOADS) + s->uploads_failed;
	s->uploads_queued = runctl_counter(c, RUN_UPLOADS_QUEUED);
	s->in_flight = runctl_gauge(c, RUN_FETCH_INFLIGHT);
	s->fetch_limit = runctl_gauge(c, RUN_FETCH_LIMIT);
	s->fetch_ceiling = runctl_gauge(c, RUN_FETCH_CEILING);
	s->upload_limit = runctl_gauge(c, RUN_UPLOAD_LIMIT);
	s->upload_ceiling = runctl_gauge(c, RUN_UPLOAD_CEILING);
	s->elapsed_s = (now - pg->t0_ms) / 1000;
	s->eta_s = s->fetch ? progress_eta_s(now - pg->t0_ms, s->hours_done,
	    s->hours_total) : -1;
	runctl_waits(c, now, &w);
	progress_wait_text(&w, s->wait, sizeof(s->wait));
}

/* Take a sample of the bytes downloaded; keep the peak rate. */
static void
sample(struct progress *pg, int64_t now)
{
	double r;

	progress_rate_add(&pg->rate, now, runctl_counter(pg->o.ctl,
	    RUN_BYTES_RECEIVED));
	r = progress_rate_get(&pg->rate, PROGRESS_RATE_SPAN_MS,
	    PROGRESS_RATE_MIN_MS);
	if (r > pg->peak)
		pg->peak = r;
}

/* Redraw the live line if it changed. */
static void
draw(struct progress *pg, int64_t now)
{
	struct progress_snap s;
	char line[LINE_MAX_BYTES];
	int cols = log_term_width(pg->o.lg);

	snap_take(pg, now, &s);
	/* One column short of the edge: a line that reaches the last column
	 * wraps on some terminals. */
	progress_line(&s, "  ", cols > 1 ? cols - 1 : 79, line, sizeof(line));
	if (strcmp(line, pg->last) == 0)
		return;
	memcpy(pg->last, line, sizeof(line));
	log_progress(pg->o.lg, line);
}

/* Log one progress record. */
static void
record(struct progress *pg, int64_t now)
{
	struct progress_snap s;
	struct log_field f[16];
	char line[LINE_MAX_BYTES];
	size_t n;

	snap_take(pg, now, &s);
	progress_line(&s, ", ", 0, line, sizeof(line));
	n = progress_fields(&s, f, sizeof(f) / sizeof(f[0]));
	log_fields(pg->o.lg, LOG_INFO, f, n, "progress: %s", line);
}

static void *
progress_main(void *arg)
{
	struct progress *pg = arg;
	int64_t every = (int64_t)pg->o.interval_s * 1000, next = pg->t0_ms +
	    every, now;

	while (cancel_sleep(pg->stop, PROGRESS_TICK_MS) == 0 &&
	    !runctl_cancelled(pg->o.ctl)) {
		now = cancel_clock_ms();
		sample(pg, now);
		if (pg->o.live) {
			draw(pg, now);
		} else if (every > 0 && now >= next) {
			record(pg, now);
			next = now - next >= every ? now + every : next + every;
		}
	}
	return (NULL);
}

struct progress *
progress_start(const struct progress_opts *o)
{
	struct progress *pg;
	int rc;

	if ((pg = calloc(1, sizeof(*pg))) == NULL ||
	    (pg->stop = cancel_new()) == NULL) {
		log_warn(o->lg, "no progress: out of memory");
		goto fail;
	}
	pg->o = *o;
	pg->t0_ms = cancel_clock_ms();
	pg->peak = -1;
	progress_rate_add(&pg->rate, pg->t0_ms, runctl_counter(o->ctl,
	    RUN_BYTES_RECEIVED));
	if ((rc = pthread_create(&pg->th, NULL, progress_main, pg)) != 0) {
		log_warn(o->lg, "no progress: pthread_create: %s", ERRSTR(rc));
		goto fail;
	}
	return (pg);
fail:
	if (pg != NULL)
		cancel_free(pg->stop);
	free(pg);
	return (NULL);
}

double
progress_stop(struct progress *pg)
{
	int64_t now, ms;
	double peak;

	if (pg == NULL)
		return (0);
	(void)cancel_trigger(pg->stop, 1);
	pthread_join(pg->th, NULL);
	if (pg->o.live)
		log_progress(pg->o.lg, NULL);
	/* The last stretch counts too; a run too short for a rate over
	 * PROGRESS_RATE_MIN_MS gets its average. */
	now = cancel_clock_ms();
	sample(pg, now);
	peak = pg->peak;
	if (peak < 0) {
		ms = now - pg->t0_ms;
		peak = ms > 0 ? (double)runctl_counter(pg->o.ctl,
		    RUN_BYTES_RECEIVED) * 1000.0 / (double)ms : 0;
	}
	cancel_free(pg->stop);
	free(pg);
	return (peak);
}
