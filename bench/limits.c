/*
 * limits: this machine's limits on the benchmarks' data, per core.
 *
 *   limits [--events N] [--parts K] [--seed S] [--gzip-level L]
 *          [--runs R] [--threads T] [--json]
 *   limits [data knobs] [--runs R] --probe
 *
 * Builds N events of the benchmark generator (gen.c: the bytes the bench
 * server serves for an hour of N events at --seed, --gzip-level) as K
 * gzip members in memory, then times, single-threaded, the median of R
 * runs of:
 *
 *   inflate          zlib inflate of every member into a 256 KiB buffer,
 *                    output discarded (MB/s of JSONL produced)
 *   inflate+yajl     the same in one pass, each complete line handed to a
 *                    fresh yajl handle (yajl_parse + yajl_complete_parse,
 *                    no callbacks, UTF-8 validation on): one JSON value
 *                    per line, validated as amp2s3 does
 *   inflate+yajl-stream  the same, one yajl handle per member with
 *                    yajl_allow_multiple_values, lines only counted
 *                    (a cheaper validation, for comparison)
 *
 * MB = 10^6 bytes of uncompressed JSONL.  With --threads T every test runs
 * in T threads at once, each on its own copy of the data, and the figure
 * is the aggregate and per-thread rate (what T cores give together).
 *
 * --probe: generate the data once, then for every line read on standard
 * input run R passes of inflate+yajl in one thread and print one line
 * {"mb_s": <median rate>} (flushed); end at end of input.  bench.py's cpu
 * target probes between amp2s3 runs, so that each run is set against the
 * machine's rate of that moment, not of minutes before.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>
#include <zlib.h>

#include "gen.h"

struct blob {
	uint8_t *gz;
	size_t len;
	uint64_t raw;
};

struct data {
	struct blob *parts;
	uint32_t nparts;
	uint64_t raw;
	uint64_t gzlen;
	uint64_t lines;
};

enum test { T_INFLATE, T_YAJL_LINE, T_YAJL_STREAM, T_N };
static const char *const TEST_NAME[T_N] = { "inflate", "inflate+yajl",
	"inflate+yajl-stream" };

#define OUTBUF (256 * 1024)

static void
fail(const char *what)
{
	fprintf(stderr, "limits: %s\n", what);
	exit(1);
}

/* Validate one line as amp2s3 does: exactly one JSON value. */
static void
check_line(const unsigned char *p, size_t n)
{
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	if (h == NULL)
		fail("yajl_alloc");
	if (yajl_parse(h, p, n) != yajl_status_ok ||
	    yajl_complete_parse(h) != yajl_status_ok)
		fail("a generated line is not valid JSON");
	yajl_free(h);
}

/* One pass over every member; returns the lines seen (0 for inflate). */
static uint64_t
run_once(const struct data *d, enum test t)
{
	unsigned char *out = malloc(OUTBUF);
	unsigned char *line = NULL;
	size_t lcap = 0, llen = 0;
	uint64_t lines = 0, bytes = 0;
	z_stream z;

	if (out == NULL)
		fail("out of memory");
	for (uint32_t k = 0; k < d->nparts; k++) {
		const struct blob *b = &d->parts[k];
		yajl_handle yh = NULL;
		memset(&z, 0, sizeof z);
		if (inflateInit2(&z, 15 + 16) != Z_OK)
			fail("inflateInit2");
		if (t == T_YAJL_STREAM) {
			yh = yajl_alloc(NULL, NULL, NULL);
			yajl_config(yh, yajl_allow_multiple_values, 1);
		}
		z.next_in = b->gz;
		z.avail_in = (uInt)b->len;
		for (;;) {
			z.next_out = out;
			z.avail_out = OUTBUF;
			int zr = inflate(&z, Z_NO_FLUSH);
			if (zr != Z_OK && zr != Z_STREAM_END)
				fail("inflate error");
			size_t n = OUTBUF - z.avail_out;
			bytes += n;
			if (t == T_YAJL_LINE) {
				const unsigned char *p = out, *e = out + n;
				while (p < e) {
					const unsigned char *nl = memchr(p, '\n',
					    (size_t)(e - p));
					if (nl == NULL) {
						size_t r = (size_t)(e - p);
						if (llen + r > lcap) {
							lcap = (llen + r) * 2;
							line = realloc(line, lcap);
							if (line == NULL)
								fail("oom");
						}
						memcpy(line + llen, p, r);
						llen += r;
						break;
					}
					if (llen) {
						size_t r = (size_t)(nl - p);
						if (llen + r > lcap) {
							lcap = (llen + r) * 2;
							line = realloc(line, lcap);
							if (line == NULL)
								fail("oom");
						}
						memcpy(line + llen, p, r);
						check_line(line, llen + r);
						llen = 0;
					} else {
						check_line(p, (size_t)(nl - p));
					}
					lines++;
					p = nl + 1;
				}
			} else if (t == T_YAJL_STREAM) {
				const unsigned char *p = out, *e = out + n;
				while ((p = memchr(p, '\n', (size_t)(e - p)))) {
					lines++;
					p++;
				}
				if (yajl_parse(yh, out, n) != yajl_status_ok)
					fail("yajl stream error");
			}
			if (zr == Z_STREAM_END)
				break;
		}
		if (yh) {
			if (yajl_complete_parse(yh) != yajl_status_ok)
				fail("yajl stream end");
			yajl_free(yh);
		}
		inflateEnd(&z);
	}
	if (bytes != d->raw)
		fail("inflated length mismatch");
	free(out);
	free(line);
	return lines;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct job {
	const struct data *d;
	enum test t;
	int runs;
	double *secs;
	pthread_barrier_t *bar;
};

static void *
job_main(void *arg)
{
	struct job *j = arg;
	for (int r = 0; r < j->runs; r++) {
		pthread_barrier_wait(j->bar);
		double t0 = gen_now();
		uint64_t lines = run_once(j->d, j->t);
		j->secs[r] = gen_now() - t0;
		if (j->t != T_INFLATE && lines != j->d->lines)
			fail("line count mismatch");
	}
	return NULL;
}

static void
build(struct data *d, const struct gen_params *gp)
{
	int64_t hour;
	gen_parse_hour("20240101T00", &hour);
	d->nparts = gp->parts;
	d->parts = calloc(gp->parts, sizeof *d->parts);
	if (d->parts == NULL)
		fail("out of memory");
	for (uint32_t k = 0; k < gp->parts; k++) {
		struct blob *b = &d->parts[k];
		if (gen_part_gz(gp, hour, k, &b->gz, &b->len, &b->raw) != 0)
			fail("generating data failed");
		d->raw += b->raw;
		d->gzlen += b->len;
	}
	d->lines = gp->events_per_hour;
}

static void
data_free(struct data *d)
{
	for (uint32_t k = 0; k < d->nparts; k++)
		free(d->parts[k].gz);
	free(d->parts);
}

/* --probe: R passes of inflate+yajl (job_main, in this thread) per line
 * of standard input. */
static int
probe_loop(const struct gen_params *gp, int runs)
{
	struct data d = { 0 };
	pthread_barrier_t bar;
	struct job j = { &d, T_YAJL_LINE, runs, NULL, &bar };
	int c, rc = 0;

	if ((j.secs = calloc((size_t)runs, sizeof(double))) == NULL)
		fail("out of memory");
	pthread_barrier_init(&bar, NULL, 1);
	build(&d, gp);
	while (rc == 0 && (c = getchar()) != EOF) {
		if (c != '\n')
			continue;
		job_main(&j);
		qsort(j.secs, (size_t)runs, sizeof(double), cmp_double);
		printf("{\"mb_s\":%.1f}\n", (double)d.raw / j.secs[runs / 2] /
		    1e6);
		rc = fflush(stdout) != 0;
	}
	pthread_barrier_destroy(&bar);
	data_free(&d);
	free(j.secs);
	return (rc);
}

int
main(int argc, char **argv)
{
	struct gen_params gp = { 1, 187520, 200000, 4, 6 };
	int runs = 5, threads = 1, json = 0, probe = 0;
	struct data *d;

	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		if (strcmp(f, "--json") == 0) {
			json = 1;
			continue;
		}
		if (strcmp(f, "--probe") == 0) {
			probe = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "usage: limits [--events N] [--parts K] "
			    "[--seed S] [--gzip-level L] [--runs R] "
			    "[--threads T] [--json | --probe]\n");
			return 2;
		}
		const char *v = argv[++i];
		if (strcmp(f, "--events") == 0)
			gp.events_per_hour = strtoull(v, NULL, 10);
		else if (strcmp(f, "--parts") == 0)
			gp.parts = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(f, "--seed") == 0)
			gp.seed = strtoull(v, NULL, 10);
		else if (strcmp(f, "--gzip-level") == 0)
			gp.level = atoi(v);
		else if (strcmp(f, "--runs") == 0)
			runs = atoi(v);
		else if (strcmp(f, "--threads") == 0)
			threads = atoi(v);
		else {
			fprintf(stderr, "limits: unknown option %s\n", f);
			return 2;
		}
	}
	if (runs < 1 || threads < 1 || threads > 64 || gp.parts < 1 ||
	    gp.level < 1 || gp.level > 9 || gp.events_per_hour < 1 ||
	    (probe && (threads != 1 || json))) {
		fprintf(stderr, "limits: bad arguments\n");
		return 2;
	}
	if (probe)
		return (probe_loop(&gp, runs));
	/* One private copy of the data per thread (no shared cache lines). */
	d = calloc((size_t)threads, sizeof *d);
	if (d == NULL)
		fail("out of memory");
	double tg = gen_now();
	for (int i = 0; i < threads; i++)
		build(&d[i], &gp);
	tg = gen_now() - tg;
	if (!json)
		printf("data: %" PRIu64 " events in %u members, %.1f MB JSONL, "
		    "%.1f MB gzip (ratio %.2f, level %d), %d thread(s), "
		    "median of %d runs (generated in %.1f s)\n",
		    gp.events_per_hour, gp.parts, (double)d->raw / 1e6,
		    (double)d->gzlen / 1e6, (double)d->raw / (double)d->gzlen,
		    gp.level, threads, runs, tg);
	if (json)
		printf("{\"events\":%" PRIu64 ",\"jsonl_bytes\":%" PRIu64
		    ",\"gzip_bytes\":%" PRIu64 ",\"threads\":%d,\"runs\":%d",
		    gp.events_per_hour, d->raw, d->gzlen, threads, runs);
	for (int t = 0; t < T_N; t++) {
		pthread_t th[64];
		struct job jobs[64];
		pthread_barrier_t bar;
		double med[64], agg = 0, per = 0;
		pthread_barrier_init(&bar, NULL, (unsigned)threads);
		for (int i = 0; i < threads; i++) {
			jobs[i].d = &d[i];
			jobs[i].t = (enum test)t;
			jobs[i].runs = runs;
			jobs[i].bar = &bar;
			jobs[i].secs = calloc((size_t)runs, sizeof(double));
			if (jobs[i].secs == NULL)
				fail("out of memory");
			if (pthread_create(&th[i], NULL, job_main, &jobs[i]) != 0)
				fail("pthread_create");
		}
		for (int i = 0; i < threads; i++) {
			pthread_join(th[i], NULL);
			qsort(jobs[i].secs, (size_t)runs, sizeof(double),
			    cmp_double);
			med[i] = jobs[i].secs[runs / 2];
			agg += (double)d[i].raw / med[i] / 1e6;
			free(jobs[i].secs);
		}
		pthread_barrier_destroy(&bar);
		per = agg / threads;
		if (json)
			printf(",\"%s_mb_s_per_core\":%.1f,\"%s_mb_s_total\":%.1f",
			    TEST_NAME[t], per, TEST_NAME[t], agg);
		else
			printf("%-20s %8.1f MB/s/core  (%d thread%s: %.1f MB/s "
			    "total)\n", TEST_NAME[t], per, threads,
			    threads > 1 ? "s" : "", agg);
	}
	if (json)
		printf("}\n");
	for (int i = 0; i < threads; i++)
		data_free(&d[i]);
	free(d);
	return 0;
}
