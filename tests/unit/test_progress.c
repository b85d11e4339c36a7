/*
 * Unit tests: the pure parts of the progress module — the rate over a
 * sliding window, the ETA, the wait's words, the line and fitting it to a
 * width, and the JSON members.
 */
#include <stdint.h>
#include <string.h>

#include "hour.h"
#include "progress.h"
#include "unit.h"

static amp_hour
H(int y, int m, int d, int h)
{
	amp_hour r = -1;
	(void)hour_from_ymdh(y, m, d, h, &r);
	return (r);
}

static int
near(double a, double b)
{
	return (a > b - 0.001 && a < b + 0.001);
}

static void
test_rate_needs_samples_spanning_the_minimum(void)
{
	struct progress_rate r;

	memset(&r, 0, sizeof(r));
	CHECK(progress_rate_get(&r, 5000, 1000) < 0);
	progress_rate_add(&r, 1000, 0);
	CHECK(progress_rate_get(&r, 5000, 1000) < 0);
	progress_rate_add(&r, 1500, 500);
	CHECK(progress_rate_get(&r, 5000, 1000) < 0);   /* 0.5 s only */
	CHECK(near(progress_rate_get(&r, 5000, 500), 1000));
	progress_rate_add(&r, 2000, 1000);
	CHECK(near(progress_rate_get(&r, 5000, 1000), 1000));
	/* Two samples at the same time say nothing. */
	memset(&r, 0, sizeof(r));
	progress_rate_add(&r, 7, 10);
	progress_rate_add(&r, 7, 20);
	CHECK(progress_rate_get(&r, 5000, 0) < 0);
}

static void
test_rate_is_over_the_last_span_only(void)
{
	struct progress_rate r;
	int64_t t;

	memset(&r, 0, sizeof(r));
	/* 10 s at 1 MB/s, sampled every 250 ms: more samples than slots. */
	for (t = 0; t <= 10000; t += 250)
		progress_rate_add(&r, t, (uint64_t)t * 1000);
	CHECK_EQ_INT(r.n, PROGRESS_RATE_SLOTS);
	CHECK(near(progress_rate_get(&r, 5000, 1000), 1e6));
	/* Then nothing for 3 s: of the last 5 s, 2 moved 2 MB. */
	for (; t <= 13000; t += 250)
		progress_rate_add(&r, t, 10000000);
	CHECK(near(progress_rate_get(&r, 5000, 1000), 2e6 / 5.0));
	/* After 5 s of nothing the rate is 0, not the average. */
	for (; t <= 15000; t += 250)
		progress_rate_add(&r, t, 10000000);
	CHECK(near(progress_rate_get(&r, 5000, 1000), 0));
}

static void
test_rate_with_uneven_samples(void)
{
	struct progress_rate r;

	memset(&r, 0, sizeof(r));
	progress_rate_add(&r, 0, 0);
	progress_rate_add(&r, 4000, 4000);
	progress_rate_add(&r, 6000, 10000);
	/* The oldest sample within 5 s of 6000 is 4000: (10000-4000)/2 s. */
	CHECK(near(progress_rate_get(&r, 5000, 1000), 3000));
	/* A wider span reaches back to 0. */
	CHECK(near(progress_rate_get(&r, 6000, 1000), 10000.0 / 6.0));
}

static void
test_eta(void)
{
	CHECK_EQ_INT(progress_eta_s(10000, 0, 4), -1);    /* nothing done */
	CHECK_EQ_INT(progress_eta_s(10000, 4, 4), -1);    /* all done */
	CHECK_EQ_INT(progress_eta_s(10000, 5, 4), -1);
	CHECK_EQ_INT(progress_eta_s(0, 1, 4), -1);        /* no time yet */
	CHECK_EQ_INT(progress_eta_s(10000, 1, 4), 30);
	CHECK_EQ_INT(progress_eta_s(60000, 24, 8760), 21840);
	CHECK_EQ_INT(progress_eta_s(1000, 3, 4), 1);      /* 333 ms: up */
	CHECK_EQ_INT(progress_eta_s(3000, 3, 4), 1);      /* exactly 1 s */
}

static void
test_wait_text(void)
{
	struct run_waits w;
	char buf[160];

	memset(&w, 0, sizeof(w));
	progress_wait_text(&w, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "");

	w.pause_ms = 11001;
	w.pause_code = 429;
	progress_wait_text(&w, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "429: pausing 12 s");

	memset(&w, 0, sizeof(w));
	w.retrying = 1;
	w.first = H(2025, 11, 1, 0);
	w.nhours = 24;
	w.retry_ms = 8000;
	strcpy(w.why, "503");
	progress_wait_text(&w, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "retrying 20251101T00..T23 in 8 s (503)");

	w.nhours = 1;
	w.retry_ms = 1;
	strcpy(w.why, "timeout");
	progress_wait_text(&w, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "retrying 20251101T00 in 1 s (timeout)");

	w.first = H(2025, 11, 1, 12);
	w.nhours = 24;
	w.retrying = 3;
	w.pause_ms = 500;
	w.pause_code = 429;
	progress_wait_text(&w, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "429: pausing 1 s; retrying 20251101T12..20251102T11 "
	    "in 1 s (timeout) +2 more");

	/* Cut to the buffer, always terminated. */
	progress_wait_text(&w, buf, 10);
	CHECK_EQ_STR(buf, "429: paus");
	progress_wait_text(&w, buf, 20);
	CHECK_EQ_STR(buf, "429: pausing 1 s; r");
}

/* A snapshot with every field shown. */
static struct progress_snap
full(void)
{
	struct progress_snap s;

	memset(&s, 0, sizeof(s));
	s.fetch = s.upload = 1;
	s.hours_done = 30;
	s.hours_total = 72;
	s.bytes = 412500000;
	s.rate = 18.4e6;
	s.uploads_done = 24;
	s.uploads_queued = 30;
	s.in_flight = 4;
	s.fetch_limit = 3;
	s.fetch_ceiling = 4;
	s.upload_limit = 6;
	s.upload_ceiling = 8;
	s.elapsed_s = 50;
	s.eta_s = 65;
	strcpy(s.wait, "429: pausing 12 s");
	return (s);
}

static void
test_line_shows_every_field(void)
{
	struct progress_snap s = full();
	char buf[400];
	size_t n;

	n = progress_line(&s, "  ", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  18.4 MB/s  4 in flight  "
	    "concurrency 3 of 4  uploads 24/30  upload concurrency 6 of 8  "
	    "ETA 1m05s  429: pausing 12 s");
	CHECK_EQ_INT(n, strlen(buf));
	progress_line(&s, ", ", 0, buf, sizeof(buf));
	CHECK(strncmp(buf, "hours 30/72, 412.5 MB, 18.4 MB/s, ", 34) == 0);

	/* What is not known or not set is left out. */
	s.rate = -1;
	s.eta_s = -1;
	s.fetch_ceiling = s.upload_ceiling = 0;
	s.wait[0] = '\0';
	s.hours_failed = 2;
	s.uploads_failed = 1;
	progress_line(&s, "  ", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72 (2 failed)  412.5 MB  4 in flight  "
	    "uploads 24/30 (1 failed)");

	/* A fetch alone has no uploads; a sync alone no hours. */
	s = full();
	s.upload = 0;
	progress_line(&s, "  ", 0, buf, sizeof(buf));
	CHECK(strstr(buf, "uploads") == NULL);
	CHECK(strncmp(buf, "hours 30/72", 11) == 0);
	s = full();
	s.fetch = 0;
	s.eta_s = -1;
	s.wait[0] = '\0';
	progress_line(&s, "  ", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "uploads 24/30  upload concurrency 6 of 8");
}

static void
test_units_and_durations(void)
{
	struct progress_snap s;
	char buf[400];

	memset(&s, 0, sizeof(s));
	s.fetch = 1;
	s.hours_total = 8;
	s.rate = 0;
	s.eta_s = 59;
	progress_line(&s, "|", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 0/8|0 kB|0 kB/s|0 in flight|ETA 59 s");
	s.bytes = 183400;
	s.rate = 999.0e6;
	s.eta_s = 3 * 3600 + 7 * 60 + 9;
	progress_line(&s, "|", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 0/8|183 kB|999.0 MB/s|0 in flight|ETA 3h07m");
	s.bytes = 1234000000;
	s.rate = 2.5e9;
	s.eta_s = 2 * 86400 + 3 * 3600 + 59;
	progress_line(&s, "|", 0, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 0/8|1.23 GB|2.50 GB/s|0 in flight|ETA 2d03h");
}

static void
test_line_fits_the_width_least_important_first(void)
{
	struct progress_snap s = full();
	char buf[400];

	/* Upload concurrency goes first, then concurrency, in flight ... */
	progress_line(&s, "  ", 100, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  18.4 MB/s  4 in flight  "
	    "uploads 24/30  ETA 1m05s  429: pausing 12 s");
	progress_line(&s, "  ", 80, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  18.4 MB/s  uploads 24/30  "
	    "ETA 1m05s  429: pausing 12 s");
	progress_line(&s, "  ", 62, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  18.4 MB/s  ETA 1m05s  "
	    "429: pausing 12 s");
	progress_line(&s, "  ", 61, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  18.4 MB/s  "
	    "429: pausing 12 s");
	progress_line(&s, "  ", 45, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  412.5 MB  429: pausing 12 s");
	/* The hours and the wait stay longest; then the line is cut. */
	progress_line(&s, "  ", 30, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72  429: pausing 12 s");
	progress_line(&s, "  ", 20, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30/72");
	progress_line(&s, "  ", 8, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "hours 30");

	/* Whatever the width, never wider; and never longer than the
	 * buffer. */
	for (int w = 1; w < 200; w++) {
		size_t n = progress_line(&s, "  ", w, buf, sizeof(buf));
		CHECK(n <= (size_t)w);
		CHECK_EQ_INT(n, strlen(buf));
	}
	CHECK_EQ_INT(progress_line(&s, "  ", 0, buf, 12), 11);
	CHECK_EQ_STR(buf, "hours 30/72");
}

static const struct log_field *
member(const struct log_field *f, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].key, key) == 0)
			return (&f[i]);
	return (NULL);
}

static void
test_fields(void)
{
	struct progress_snap s = full();
	struct log_field f[16];
	const struct log_field *m;
	size_t n;

	n = progress_fields(&s, f, 16);
	CHECK_EQ_INT(n, 16);
	CHECK((m = member(f, n, "hours_done")) != NULL && m->i == 30);
	CHECK((m = member(f, n, "hours_total")) != NULL && m->i == 72);
	CHECK((m = member(f, n, "bytes_downloaded")) != NULL &&
	    m->i == 412500000);
	CHECK((m = member(f, n, "rate_bytes_per_s")) != NULL &&
	    m->type == LOG_FIELD_INT && m->i == 18400000);
	CHECK((m = member(f, n, "uploads_queued")) != NULL && m->i == 30);
	CHECK((m = member(f, n, "fetch_ceiling")) != NULL && m->i == 4);
	CHECK((m = member(f, n, "eta_s")) != NULL && m->i == 65);
	CHECK((m = member(f, n, "wait")) != NULL &&
	    m->type == LOG_FIELD_STR && strcmp(m->s, s.wait) == 0);

	/* A fetch alone, nothing known yet: nulls, no upload members. */
	memset(&s, 0, sizeof(s));
	s.fetch = 1;
	s.rate = -1;
	s.eta_s = -1;
	n = progress_fields(&s, f, 16);
	CHECK(member(f, n, "uploads_done") == NULL);
	CHECK(member(f, n, "fetch_limit") == NULL);
	CHECK((m = member(f, n, "rate_bytes_per_s")) != NULL &&
	    m->type == LOG_FIELD_NULL);
	CHECK((m = member(f, n, "eta_s")) != NULL &&
	    m->type == LOG_FIELD_NULL);
	CHECK((m = member(f, n, "wait")) != NULL &&
	    m->type == LOG_FIELD_NULL);
	CHECK((m = member(f, n, "in_flight")) != NULL && m->i == 0);
	/* Never more than asked for. */
	CHECK_EQ_INT(progress_fields(&s, f, 3), 3);
}

UNIT_MAIN("progress", TEST(test_rate_needs_samples_spanning_the_minimum),
    TEST(test_rate_is_over_the_last_span_only),
    TEST(test_rate_with_uneven_samples), TEST(test_eta),
    TEST(test_wait_text), TEST(test_line_shows_every_field),
    TEST(test_units_and_durations),
    TEST(test_line_fits_the_width_least_important_first), TEST(test_fields))
