/*
 * export_server: a fast stand-in for Amplitude's Export API, for benchmarks.
 *
 *   export_server --hours-start YYYYMMDDTHH --hours N [data knobs]
 *                 [--ttfb-ms MS] [--bandwidth-bytes-per-s B]
 *                 [--max-concurrent N] [--cap-schedule T:N,T:N...]
 *                 [--cap-retry-after S|none] [--fault-rate P]
 *                 [--port-file PATH] [--port N] [--stats-file PATH]
 *                 [--info-file PATH] [--cache-dir DIR] [--gen-threads T]
 *   export_server --hours-start H --hours N [data knobs] --dump-hour H
 *   data knobs: --events-per-hour N --parts-per-hour K --seed S
 *               --project ID --gzip-level L
 *
 * DESIGN
 * ------
 * Data.  Every hour of [hours-start, hours-start + hours) holds K gzip
 * members built once at start by gen.c (in --gen-threads threads), or read
 * from --cache-dir (files named by every parameter that shapes the bytes,
 * written through a temporary + rename, mapped read-only).  An hour is
 * generated in a streaming way, so a 1 GB hour needs only its compressed
 * size in memory.  Each member's CRC-32 is computed once.
 *
 * Answers.  GET /api/2/export?start=&end= (inclusive hours): a zip of
 * *stored* entries named "<project>/<project>_<YYYY-MM-DD>_<H>#<part>.json.gz"
 * whose bytes are the pre-built gzip members (a zip of .gz files, as the
 * real API).  Only the small zip headers are built per request; the member
 * bytes are sent straight from memory.  Any credentials are accepted.
 * A range without data: 404 "Raw data files were not found.".  A zip that
 * would pass 4 GiB or 65,535 entries: 400 (the real API's size limit text).
 * Malformed parameters: 400.
 *
 * Knobs, per export request, in this order: beyond the concurrency cap
 * (requests in flight that were not refused) the answer is an immediate
 * 429 with Retry-After: --cap-retry-after (default 1; "none": no header);
 * then the request waits --ttfb-ms before the first byte; then with
 * probability --fault-rate (a seeded function of the request number) it
 * is a 500; else the body is paced to --bandwidth-bytes-per-s for that
 * connection (sleep until start + sent/rate before each chunk).
 *
 * The cap is --max-concurrent (0: none), or, with --cap-schedule
 * "0:4,3:2,6:5", 4 from the first counted export request on, 2 from 3 s
 * after it, 5 from 6 s after it (the last phase whose start has passed;
 * before the first phase, --max-concurrent; a cap of 0 is none).  The
 * clock starts at the first export request after start or after
 * /_stats?reset=1, so each benchmark run sees the whole schedule.  The
 * stats count each phase (by request arrival): requests, 200s, 429s,
 * bytes served, peak accepted in flight.
 *
 * Side doors, for the driver (neither counted nor throttled):
 *   GET /_stats[?reset=1]   counters as JSON (reset=1: then zero them)
 *   GET /_info              the data set (hours, members, bytes) as JSON
 *   header "X-Bench-Unthrottled: 1" on an export request: no 429, no
 *   first-byte delay, no fault, no pacing, not counted (capacity probes).
 *
 * Threads.  The main thread accepts; one detached thread per connection
 * serves keep-alive requests one after the other.  A signal thread waits
 * for SIGTERM/SIGINT, writes --stats-file and exits.  Counters live in one
 * struct under one mutex (held only to update or snapshot them, never
 * across I/O).  The data set is immutable after start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "gen.h"

#define MAX_PHASES 16

struct member {
	int64_t hour;
	uint32_t part;
	const uint8_t *data;
	uint64_t len;
	uint64_t rawlen;
	uint32_t crc;
	char name[96];
	uint16_t namelen;
	uint16_t dostime, dosdate;
};

struct opts {
	struct gen_params gp;
	int64_t start;
	int64_t nhours;
	long ttfb_ms;
	double bandwidth;       /* bytes/s per connection; 0 = unlimited */
	long max_concurrent;    /* 0 = unlimited */
	struct phase_opt {
		double t;       /* seconds after the first request */
		long cap;       /* 0 = unlimited */
	} sched[MAX_PHASES];
	int nsched;
	const char *cap_schedule;   /* as given, for /_info */
	char retry_after[32];       /* "" = no Retry-After header */
	double fault_rate;
	const char *port_file;
	int port;
	const char *stats_file;
	const char *info_file;
	const char *cache_dir;
	const char *dump_hour;
	int gen_threads;
};

struct phase_stats {
	uint64_t requests, s200, s429, bytes_served;
	long max_inflight;
};

struct stats {
	uint64_t requests;      /* export requests counted (429s included) */
	uint64_t s200, s404, s429, s500, s400, other;
	uint64_t bytes_served;  /* body bytes of 200 answers actually sent */
	uint64_t aborted;       /* answers the client did not take whole */
	long inflight, max_inflight;
	uint64_t windows;       /* distinct (start, end) pairs requested */
	double first_req, last_done; /* monotonic seconds, 0 = none */
	double serve_seconds;   /* sum over 200 answers of first..last byte */
	uint64_t conns;
	int capped;             /* a cap refusal happened */
	long max_inflight_after_429; /* peak in flight from then on */
	struct phase_stats ph[MAX_PHASES];
};

static struct opts O;
static struct member *M;       /* every member, ordered by hour, part */
static size_t NM;
static size_t *HOUR_FIRST;     /* index in M of each hour's first member */
static pthread_mutex_t SMU = PTHREAD_MUTEX_INITIALIZER;
static struct stats S;
static uint64_t REQNO;          /* every counted export request, for faults */
static uint64_t *WSET;          /* open-addressing set of window keys */
static size_t WCAP;

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("export_server: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void
say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("export_server: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* ---- data set ---------------------------------------------------------- */

static void
cache_path(char *buf, size_t n, int64_t hour, uint32_t part)
{
	char h[12];
	gen_format_hour(hour, h);
	snprintf(buf, n, "%s/v1-s%" PRIu64 "-p%" PRIu64 "-e%" PRIu64 "-k%u-L%d-"
	    "%s-%u.json.gz", O.cache_dir, O.gp.seed, O.gp.project,
	    O.gp.events_per_hour, O.gp.parts, O.gp.level, h, part);
}

static int
cache_load(struct member *m)
{
	char path[1024];
	struct stat st;
	void *p;
	int fd;
	cache_path(path, sizeof path, m->hour, m->part);
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	if (fstat(fd, &st) != 0 || st.st_size < 18) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	m->data = p;
	m->len = (uint64_t)st.st_size;
	/* ISIZE: the uncompressed length mod 2^32 (parts are < 4 GiB). */
	const uint8_t *t = m->data + m->len - 4;
	m->rawlen = (uint64_t)t[0] | (uint64_t)t[1] << 8 |
	    (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
	return 0;
}

static void
cache_store(const struct member *m)
{
	char path[1024], tmp[1100];
	FILE *f;
	cache_path(path, sizeof path, m->hour, m->part);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "wb")) == NULL)
		return;
	if (fwrite(m->data, 1, m->len, f) != m->len || fclose(f) != 0) {
		unlink(tmp);
		return;
	}
	if (rename(tmp, path) != 0)
		unlink(tmp);
}

static pthread_mutex_t GMU = PTHREAD_MUTEX_INITIALIZER;
static size_t GNEXT;

static void *
gen_worker(void *arg)
{
	(void)arg;
	for (;;) {
		size_t i;
		pthread_mutex_lock(&GMU);
		i = GNEXT++;
		pthread_mutex_unlock(&GMU);
		if (i >= NM)
			return NULL;
		struct member *m = &M[i];
		if (O.cache_dir == NULL || cache_load(m) != 0) {
			uint8_t *buf;
			size_t len;
			uint64_t raw;
			if (gen_part_gz(&O.gp, m->hour, m->part, &buf, &len,
			    &raw) != 0)
				die("out of memory generating data");
			m->data = buf;
			m->len = len;
			m->rawlen = raw;
			if (O.cache_dir)
				cache_store(m);
		}
		/* crc32() takes a uInt length: feed it in pieces. */
		uLong crc = crc32(0L, Z_NULL, 0);
		for (uint64_t off = 0; off < m->len; off += 1u << 30) {
			uint64_t n = m->len - off;
			if (n > 1u << 30)
				n = 1u << 30;
			crc = crc32(crc, m->data + off, (uInt)n);
		}
		m->crc = (uint32_t)crc;
	}
}

static void
build_dataset(void)
{
	pthread_t th[64];
	int nt = O.gen_threads;
	double t0 = gen_now();
	uint64_t tot = 0, raw = 0;

	NM = (size_t)O.nhours * O.gp.parts;
	if ((M = calloc(NM ? NM : 1, sizeof *M)) == NULL ||
	    (HOUR_FIRST = calloc((size_t)O.nhours + 1, sizeof *HOUR_FIRST)) ==
	    NULL)
		die("out of memory");
	for (int64_t h = 0; h < O.nhours; h++) {
		HOUR_FIRST[h] = (size_t)h * O.gp.parts;
		for (uint32_t k = 0; k < O.gp.parts; k++) {
			struct member *m = &M[(size_t)h * O.gp.parts + k];
			time_t tt = (time_t)(O.start + h * 3600);
			struct tm tm;
			m->hour = O.start + h * 3600;
			m->part = k;
			gmtime_r(&tt, &tm);
			/* Part numbers start at 1, as in real exports. */
			m->namelen = (uint16_t)snprintf(m->name, sizeof m->name,
			    "%" PRIu64 "/%" PRIu64 "_%04d-%02d-%02d_%d#%u.json.gz",
			    O.gp.project, O.gp.project, tm.tm_year + 1900,
			    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, k + 1);
			m->dostime = (uint16_t)(tm.tm_hour << 11);
			m->dosdate = (uint16_t)(((tm.tm_year - 80) << 9) |
			    ((tm.tm_mon + 1) << 5) | tm.tm_mday);
		}
	}
	HOUR_FIRST[O.nhours] = NM;
	if (O.cache_dir)
		mkdir(O.cache_dir, 0777);
	if (nt < 1)
		nt = 1;
	if (nt > 64)
		nt = 64;
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, gen_worker, NULL) != 0)
			die("pthread_create failed");
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < NM; i++) {
		tot += M[i].len;
		raw += M[i].rawlen;
	}
	say("data set ready: %" PRId64 " hours, %zu members, %.1f MB gzip, "
	    "%.1f MB JSONL, in %.1f s", O.nhours, NM, (double)tot / 1e6,
	    (double)raw / 1e6, gen_now() - t0);
}

static void
write_atomic(const char *path, const char *text)
{
	char tmp[1100];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

static void
info_json(char *buf, size_t n)
{
	uint64_t tot = 0, raw = 0;
	char h0[12];
	for (size_t i = 0; i < NM; i++) {
		tot += M[i].len;
		raw += M[i].rawlen;
	}
	gen_format_hour(O.start, h0);
	snprintf(buf, n, "{\"hours_start\":\"%s\",\"hours\":%" PRId64 ","
	    "\"events_per_hour\":%" PRIu64 ",\"parts_per_hour\":%u,"
	    "\"seed\":%" PRIu64 ",\"project\":%" PRIu64 ",\"gzip_level\":%d,"
	    "\"members\":%zu,\"gzip_bytes\":%" PRIu64 ",\"jsonl_bytes\":%"
	    PRIu64 ",\"events\":%" PRIu64 ",\"ttfb_ms\":%ld,"
	    "\"bandwidth_bytes_per_s\":%.0f,\"max_concurrent\":%ld,"
	    "\"cap_schedule\":\"%s\",\"cap_retry_after\":\"%s\","
	    "\"fault_rate\":%g}\n", h0, O.nhours, O.gp.events_per_hour,
	    O.gp.parts, O.gp.seed, O.gp.project, O.gp.level, NM, tot, raw,
	    O.gp.events_per_hour * (uint64_t)O.nhours, O.ttfb_ms, O.bandwidth,
	    O.max_concurrent, O.cap_schedule ? O.cap_schedule : "",
	    O.retry_after, O.fault_rate);
}

/* ---- stats ------------------------------------------------------------- */

/* The cap at monotonic ${now} (0: none); ${phase}: its schedule index,
 * -1 before the first phase or without a schedule. */
static long
cap_at_locked(double now, int *phase)
{
	long cap = O.max_concurrent;
	double el = S.first_req > 0 ? now - S.first_req : 0.0;
	*phase = -1;
	for (int i = 0; i < O.nsched; i++)
		if (O.sched[i].t <= el) {
			cap = O.sched[i].cap;
			*phase = i;
		}
	return cap;
}

#define STATS_MAX 4096

static void
stats_json_locked(char *buf, size_t n)
{
	struct rusage ru;
	int ph;
	size_t k;
	getrusage(RUSAGE_SELF, &ru);
	snprintf(buf, n, "{\"requests\":%" PRIu64 ",\"windows\":%" PRIu64 ","
	    "\"status_200\":%" PRIu64 ",\"status_404\":%" PRIu64 ","
	    "\"status_429\":%" PRIu64 ",\"status_500\":%" PRIu64 ","
	    "\"status_400\":%" PRIu64 ",\"status_other\":%" PRIu64 ","
	    "\"bytes_served\":%" PRIu64 ",\"aborted\":%" PRIu64 ","
	    "\"inflight\":%ld,\"max_concurrency\":%ld,\"active_seconds\":%.6f,"
	    "\"serve_seconds\":%.6f,\"connections\":%" PRIu64 ","
	    "\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f",
	    S.requests, S.windows, S.s200, S.s404, S.s429, S.s500, S.s400,
	    S.other, S.bytes_served, S.aborted, S.inflight, S.max_inflight,
	    S.first_req > 0 && S.last_done > S.first_req ?
	    S.last_done - S.first_req : 0.0, S.serve_seconds, S.conns,
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	k = strlen(buf);
	snprintf(buf + k, n - k, ",\"cap\":%ld,\"capped\":%s,"
	    "\"max_concurrency_after_first_429\":%ld,\"phases\":[",
	    cap_at_locked(gen_now(), &ph), S.capped ? "true" : "false",
	    S.max_inflight_after_429);
	for (int i = 0; i < O.nsched; i++) {
		const struct phase_stats *p = &S.ph[i];
		k = strlen(buf);
		snprintf(buf + k, n - k, "%s{\"from_s\":%g,\"cap\":%ld,"
		    "\"requests\":%" PRIu64 ",\"status_200\":%" PRIu64 ","
		    "\"status_429\":%" PRIu64 ",\"bytes_served\":%" PRIu64
		    ",\"max_concurrency\":%ld}", i ? "," : "", O.sched[i].t,
		    O.sched[i].cap, p->requests, p->s200, p->s429,
		    p->bytes_served, p->max_inflight);
	}
	k = strlen(buf);
	snprintf(buf + k, n - k, "]}\n");
}

static void
stats_reset_locked(void)
{
	long inflight = S.inflight;
	memset(&S, 0, sizeof S);
	S.inflight = inflight;
	S.max_inflight = inflight;
	if (WSET)
		memset(WSET, 0, WCAP * sizeof *WSET);
}

static void
stats_flush_locked(void)
{
	char buf[STATS_MAX];
	if (O.stats_file == NULL)
		return;
	stats_json_locked(buf, sizeof buf);
	write_atomic(O.stats_file, buf);
}

static void
window_add_locked(int64_t a, int64_t b)
{
	uint64_t key = mix64((uint64_t)a * 31 + (uint64_t)b) | 1;
	size_t used = (size_t)S.windows;
	if (WCAP == 0 || used * 2 >= WCAP) {
		size_t ncap = WCAP ? WCAP * 2 : 1024;
		uint64_t *n = calloc(ncap, sizeof *n);
		if (n == NULL)
			return;
		for (size_t i = 0; i < WCAP; i++)
			if (WSET[i]) {
				size_t j = (size_t)(WSET[i] % ncap);
				while (n[j])
					j = (j + 1) % ncap;
				n[j] = WSET[i];
			}
		free(WSET);
		WSET = n;
		WCAP = ncap;
	}
	size_t j = (size_t)(key % WCAP);
	while (WSET[j]) {
		if (WSET[j] == key)
			return;
		j = (j + 1) % WCAP;
	}
	WSET[j] = key;
	S.windows++;
}

/* ---- connection -------------------------------------------------------- */

struct conn {
	int fd;
	char buf[16384];
	size_t have;
	double pace_t0;     /* per-connection token bucket */
	double pace_sent;
};

static int
send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
sleep_until(double t)
{
	for (;;) {
		double d = t - gen_now();
		if (d <= 0)
			return;
		struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) *
		    1e9) };
		if (nanosleep(&ts, NULL) == 0)
			return;
	}
}

/* Body bytes, paced by the connection's bucket when ${pace}. */
static int
send_body(struct conn *c, const uint8_t *p, uint64_t n, int pace,
    uint64_t *sent)
{
	size_t chunk = 1u << 20;
	if (pace) {
		chunk = (size_t)(O.bandwidth / 200);
		if (chunk < 4096)
			chunk = 4096;
		if (chunk > 1u << 20)
			chunk = 1u << 20;
	}
	while (n) {
		size_t k = n < chunk ? (size_t)n : chunk;
		if (pace)
			sleep_until(c->pace_t0 + c->pace_sent / O.bandwidth);
		if (send_all(c->fd, p, k) != 0)
			return -1;
		p += k;
		n -= k;
		*sent += k;
		c->pace_sent += (double)k;
	}
	return 0;
}

static int
send_simple(struct conn *c, int code, const char *reason,
    const char *extra_headers, const char *ctype, const char *body)
{
	char hdr[512];
	size_t bl = strlen(body);
	int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s"
	    "\r\nContent-Length: %zu\r\n%s\r\n", code, reason, ctype, bl,
	    extra_headers ? extra_headers : "");
	if (send_all(c->fd, hdr, (size_t)n) != 0)
		return -1;
	return send_all(c->fd, body, bl);
}

static void
put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

static int
query_hour(const char *q, const char *key, int64_t *t)
{
	size_t kl = strlen(key);
	const char *p = q;
	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			char v[16];
			const char *s = p + kl + 1;
			size_t n = strcspn(s, "&");
			if (n >= sizeof v)
				return -1;
			memcpy(v, s, n);
			v[n] = 0;
			return gen_parse_hour(v, t);
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return -1;
}

static void
count_status(int code)
{
	switch (code) {
	case 200: S.s200++; break;
	case 404: S.s404++; break;
	case 429: S.s429++; break;
	case 500: S.s500++; break;
	case 400: S.s400++; break;
	default: S.other++; break;
	}
}

static const char TOO_LARGE[] = "The file size of the exported data is too "
    "large. Shorten the time ranges and try again. The limit size is 4GB.";

/* One export request.  Returns -1 when the connection must close. */
static int
serve_export(struct conn *c, const char *query, int unthrottled)
{
	int64_t a, b;
	int code = 0, rc = 0;
	uint64_t sent = 0, total = 0;
	double t_first = 0, t_last = 0;
	uint64_t reqno = 0;
	int phase = -1;
	int valid = query_hour(query, "start", &a) == 0 &&
	    query_hour(query, "end", &b) == 0 && b >= a;

	if (!unthrottled) {
		pthread_mutex_lock(&SMU);
		double now = gen_now();
		if (S.first_req == 0)
			S.first_req = now;
		S.requests++;
		if (valid)
			window_add_locked(a, b);
		reqno = ++REQNO;
		long cap = cap_at_locked(now, &phase);
		if (phase >= 0)
			S.ph[phase].requests++;
		if (cap > 0 && S.inflight >= cap) {
			char ra[64] = "";
			S.s429++;
			if (phase >= 0)
				S.ph[phase].s429++;
			if (!S.capped) {
				S.capped = 1;
				S.max_inflight_after_429 = S.inflight;
			}
			S.last_done = now;
			stats_flush_locked();
			pthread_mutex_unlock(&SMU);
			if (O.retry_after[0])
				snprintf(ra, sizeof ra, "Retry-After: %s\r\n",
				    O.retry_after);
			return send_simple(c, 429, "Too Many Requests",
			    ra[0] ? ra : NULL, "text/plain",
			    "Too many requests");
		}
		S.inflight++;
		if (S.inflight > S.max_inflight)
			S.max_inflight = S.inflight;
		if (S.capped && S.inflight > S.max_inflight_after_429)
			S.max_inflight_after_429 = S.inflight;
		if (phase >= 0 && S.inflight > S.ph[phase].max_inflight)
			S.ph[phase].max_inflight = S.inflight;
		pthread_mutex_unlock(&SMU);
	}

	if (!valid) {
		code = 400;
		rc = send_simple(c, 400, "Bad Request", NULL, "text/plain",
		    "start and end must be YYYYMMDDTHH, end >= start");
		goto done;
	}
	if (!unthrottled) {
		if (O.ttfb_ms > 0)
			sleep_until(gen_now() + (double)O.ttfb_ms / 1000.0);
		if (O.fault_rate > 0) {
			uint64_t r = mix64(O.gp.seed ^ 0xfa17 ^ mix64(reqno));
			if ((double)(r >> 11) / 9007199254740992.0 <
			    O.fault_rate) {
				code = 500;
				rc = send_simple(c, 500, "Internal Server Error",
				    NULL, "text/plain", "Internal Server Error");
				goto done;
			}
		}
	}
	{
		int64_t end = O.start + O.nhours * 3600;
		int64_t lo = a < O.start ? O.start : a;
		int64_t hi = b + 3600 > end ? end : b + 3600; /* exclusive */
		if (hi <= lo) {
			code = 404;
			rc = send_simple(c, 404, "Not Found", NULL, "text/plain",
			    "Raw data files were not found.");
			goto done;
		}
		size_t first = HOUR_FIRST[(lo - O.start) / 3600];
		size_t last = HOUR_FIRST[(hi - O.start) / 3600];
		size_t nmem = last - first;
		uint64_t off = 0, cdsize = 0;
		for (size_t i = first; i < last; i++) {
			off += 30 + M[i].namelen + M[i].len;
			cdsize += 46 + M[i].namelen;
		}
		if (nmem == 0) {
			code = 404;
			rc = send_simple(c, 404, "Not Found", NULL, "text/plain",
			    "Raw data files were not found.");
			goto done;
		}
		if (off + cdsize + 22 > 0xffffffffULL || nmem > 0xffff) {
			code = 400;
			rc = send_simple(c, 400, "Bad Request", NULL,
			    "text/plain", TOO_LARGE);
			goto done;
		}
		total = off + cdsize + 22;
		uint8_t *cd = malloc((size_t)cdsize + 22);
		if (cd == NULL) {
			code = 500;
			rc = -1;
			goto done;
		}
		char hdr[256];
		int hn = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\n"
		    "Content-Type: application/zip\r\nContent-Length: %" PRIu64
		    "\r\n\r\n", total);
		code = 200;
		int pace = !unthrottled && O.bandwidth > 0;
		if (pace && c->pace_t0 == 0) {
			c->pace_t0 = gen_now();
			c->pace_sent = 0;
		} else if (pace) {
			/* An idle connection earns no burst: restart the
			 * bucket if it is behind now. */
			double due = c->pace_t0 + c->pace_sent / O.bandwidth;
			if (due < gen_now()) {
				c->pace_t0 = gen_now();
				c->pace_sent = 0;
			}
		}
		t_first = gen_now();
		if (send_all(c->fd, hdr, (size_t)hn) != 0) {
			free(cd);
			rc = -1;
			goto done;
		}
		uint8_t *q = cd;
		uint64_t loc = 0;
		for (size_t i = first; i < last && rc == 0; i++) {
			const struct member *m = &M[i];
			uint8_t lh[30 + sizeof m->name];
			put32(lh, 0x04034b50);
			put16(lh + 4, 10);
			put16(lh + 6, 0);
			put16(lh + 8, 0);          /* stored */
			put16(lh + 10, m->dostime);
			put16(lh + 12, m->dosdate);
			put32(lh + 14, m->crc);
			put32(lh + 18, (uint32_t)m->len);
			put32(lh + 22, (uint32_t)m->len);
			put16(lh + 26, m->namelen);
			put16(lh + 28, 0);
			memcpy(lh + 30, m->name, m->namelen);
			put32(q, 0x02014b50);
			put16(q + 4, 0x031e);      /* made by unix, 3.0 */
			put16(q + 6, 10);
			put16(q + 8, 0);
			put16(q + 10, 0);
			put16(q + 12, m->dostime);
			put16(q + 14, m->dosdate);
			put32(q + 16, m->crc);
			put32(q + 20, (uint32_t)m->len);
			put32(q + 24, (uint32_t)m->len);
			put16(q + 28, m->namelen);
			put16(q + 30, 0);
			put16(q + 32, 0);
			put16(q + 34, 0);
			put16(q + 36, 0);
			put32(q + 38, 0100644u << 16);
			put32(q + 42, (uint32_t)loc);
			memcpy(q + 46, m->name, m->namelen);
			q += 46 + m->namelen;
			loc += 30 + m->namelen + m->len;
			if (send_body(c, lh, 30u + m->namelen, pace, &sent) != 0 ||
			    send_body(c, m->data, m->len, pace, &sent) != 0)
				rc = -1;
		}
		if (rc == 0) {
			put32(q, 0x06054b50);
			put16(q + 4, 0);
			put16(q + 6, 0);
			put16(q + 8, (uint32_t)nmem);
			put16(q + 10, (uint32_t)nmem);
			put32(q + 12, (uint32_t)cdsize);
			put32(q + 16, (uint32_t)off);
			put16(q + 20, 0);
			if (send_body(c, cd, (size_t)cdsize + 22, pace, &sent) != 0)
				rc = -1;
		}
		free(cd);
		t_last = gen_now();
	}
done:
	if (!unthrottled) {
		pthread_mutex_lock(&SMU);
		S.inflight--;
		count_status(code ? code : 500);
		if (code == 200) {
			S.bytes_served += sent;
			S.serve_seconds += t_last - t_first;
			if (sent < total)
				S.aborted++;
			if (phase >= 0) {
				S.ph[phase].s200++;
				S.ph[phase].bytes_served += sent;
			}
		}
		S.last_done = gen_now();
		stats_flush_locked();
		pthread_mutex_unlock(&SMU);
	}
	return rc;
}

static int
serve_request(struct conn *c, char *req, int *keep)
{
	char *line_end = strstr(req, "\r\n");
	char method[16], target[2048], version[16];
	int unthrottled = 0;
	*keep = 1;
	if (line_end == NULL)
		return -1;
	*line_end = 0;
	if (sscanf(req, "%15s %2047s %15s", method, target, version) != 3)
		return -1;
	if (strcmp(version, "HTTP/1.0") == 0)
		*keep = 0;
	for (char *h = line_end + 2; *h; ) {
		char *e = strstr(h, "\r\n");
		if (e == NULL)
			break;
		*e = 0;
		if (strncasecmp(h, "connection:", 11) == 0) {
			const char *v = h + 11;
			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				*keep = 0;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				*keep = 1;
		} else if (strncasecmp(h, "x-bench-unthrottled:", 20) == 0) {
			unthrottled = 1;
		}
		h = e + 2;
	}
	if (strcmp(method, "GET") != 0)
		return send_simple(c, 405, "Method Not Allowed", NULL,
		    "text/plain", "GET only");
	char *query = strchr(target, '?');
	if (query)
		*query++ = 0;
	else
		query = (char *)"";
	if (strcmp(target, "/api/2/export") == 0)
		return serve_export(c, query, unthrottled);
	if (strcmp(target, "/_stats") == 0) {
		char buf[STATS_MAX];
		pthread_mutex_lock(&SMU);
		stats_json_locked(buf, sizeof buf);
		if (strstr(query, "reset=1")) {
			stats_reset_locked();
			stats_flush_locked();
		}
		pthread_mutex_unlock(&SMU);
		return send_simple(c, 200, "OK", NULL, "application/json", buf);
	}
	if (strcmp(target, "/_info") == 0) {
		char buf[1024];
		info_json(buf, sizeof buf);
		return send_simple(c, 200, "OK", NULL, "application/json", buf);
	}
	return send_simple(c, 404, "Not Found", NULL, "text/plain",
	    "Not Found");
}

static void *
conn_main(void *arg)
{
	struct conn *c = arg;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (;;) {
		char *end;
		while ((end = memmem(c->buf, c->have, "\r\n\r\n", 4)) == NULL) {
			ssize_t r;
			if (c->have >= sizeof c->buf - 1)
				goto out; /* header too large */
			r = recv(c->fd, c->buf + c->have,
			    sizeof c->buf - 1 - c->have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			c->have += (size_t)r;
		}
		size_t reqlen = (size_t)(end - c->buf) + 4;
		char req[sizeof c->buf];
		int keep;
		memcpy(req, c->buf, reqlen);
		req[reqlen - 2] = 0; /* keep the last header's "\r\n" */
		memmove(c->buf, c->buf + reqlen, c->have - reqlen);
		c->have -= reqlen;
		if (serve_request(c, req, &keep) != 0 || !keep)
			break;
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

static void *
signal_main(void *arg)
{
	sigset_t *set = arg;
	int sig;
	sigwait(set, &sig);
	pthread_mutex_lock(&SMU);
	stats_flush_locked();
	pthread_mutex_unlock(&SMU);
	_exit(0);
}

/* ---- main -------------------------------------------------------------- */

static void
usage(void)
{
	fputs("usage: export_server --hours-start YYYYMMDDTHH --hours N\n"
	    "  [--events-per-hour N] [--parts-per-hour K] [--seed S]"
	    " [--project ID] [--gzip-level L]\n"
	    "  [--ttfb-ms MS] [--bandwidth-bytes-per-s B] [--max-concurrent N]"
	    " [--fault-rate P]\n"
	    "  [--cap-schedule T:N[,T:N...]] [--cap-retry-after S|none]\n"
	    "  [--port N] [--port-file PATH] [--stats-file PATH]"
	    " [--info-file PATH]\n"
	    "  [--cache-dir DIR] [--gen-threads T] [--dump-hour YYYYMMDDTHH]\n",
	    stderr);
	exit(2);
}

static uint64_t
num(const char *flag, const char *v)
{
	char *e;
	errno = 0;
	unsigned long long x = strtoull(v, &e, 10);
	if (errno || *e || e == v || v[0] == '-')
		die("%s: not a number: %s", flag, v);
	return (uint64_t)x;
}

/* "0:4,3.5:2,6:5" -> O.sched (times ascending, caps >= 0). */
static void
parse_schedule(const char *v)
{
	const char *p = v;
	O.cap_schedule = v;
	O.nsched = 0;
	while (*p) {
		char *e;
		double t;
		long cap;
		if (O.nsched == MAX_PHASES)
			die("--cap-schedule: at most %d phases", MAX_PHASES);
		errno = 0;
		t = strtod(p, &e);
		if (errno || e == p || *e != ':' || t < 0 ||
		    (O.nsched > 0 && t <= O.sched[O.nsched - 1].t))
			die("--cap-schedule: want T:N,T:N... with T ascending "
			    "seconds: %s", v);
		p = e + 1;
		cap = strtol(p, &e, 10);
		if (errno || e == p || cap < 0 || (*e != ',' && *e != 0))
			die("--cap-schedule: bad cap in %s", v);
		O.sched[O.nsched].t = t;
		O.sched[O.nsched].cap = cap;
		O.nsched++;
		p = *e == ',' ? e + 1 : e;
	}
	if (O.nsched == 0)
		die("--cap-schedule: empty");
}

static void
dump_hour(void)
{
	int64_t h;
	char line[GEN_EVENT_MAX];
	if (gen_parse_hour(O.dump_hour, &h) != 0)
		die("--dump-hour: bad hour %s", O.dump_hour);
	if (h < O.start || h >= O.start + O.nhours * 3600)
		exit(0); /* no data: empty */
	for (uint32_t k = 0; k < O.gp.parts; k++) {
		uint64_t i, end;
		gen_part_range(&O.gp, k, &i, &end);
		for (; i < end; i++) {
			size_t n = gen_event(&O.gp, h, i, line);
			if (fwrite(line, 1, n, stdout) != n)
				exit(1);
		}
	}
	exit(fflush(stdout) == 0 ? 0 : 1);
}

int
main(int argc, char **argv)
{
	const char *hs = NULL;
	int lfd, one = 1;
	struct sockaddr_in sa;
	socklen_t sl = sizeof sa;
	sigset_t set;
	pthread_t sth;
	pthread_attr_t attr;

	O.gp.seed = 1;
	O.gp.project = 187520;
	O.gp.events_per_hour = 1000;
	O.gp.parts = 1;
	O.gp.level = 6;
	O.nhours = 24;
	O.gen_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	strcpy(O.retry_after, "1");
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0)
			usage();
		if (v == NULL)
			usage();
		i++;
		if (strcmp(f, "--hours-start") == 0)
			hs = v;
		else if (strcmp(f, "--hours") == 0)
			O.nhours = (int64_t)num(f, v);
		else if (strcmp(f, "--events-per-hour") == 0)
			O.gp.events_per_hour = num(f, v);
		else if (strcmp(f, "--parts-per-hour") == 0)
			O.gp.parts = (uint32_t)num(f, v);
		else if (strcmp(f, "--seed") == 0)
			O.gp.seed = num(f, v);
		else if (strcmp(f, "--project") == 0)
			O.gp.project = num(f, v);
		else if (strcmp(f, "--gzip-level") == 0)
			O.gp.level = (int)num(f, v);
		else if (strcmp(f, "--ttfb-ms") == 0)
			O.ttfb_ms = (long)num(f, v);
		else if (strcmp(f, "--bandwidth-bytes-per-s") == 0)
			O.bandwidth = (double)num(f, v);
		else if (strcmp(f, "--max-concurrent") == 0)
			O.max_concurrent = (long)num(f, v);
		else if (strcmp(f, "--cap-schedule") == 0)
			parse_schedule(v);
		else if (strcmp(f, "--cap-retry-after") == 0) {
			if (strcmp(v, "none") == 0)
				O.retry_after[0] = 0;
			else
				snprintf(O.retry_after, sizeof O.retry_after,
				    "%" PRIu64, num(f, v));
		}
		else if (strcmp(f, "--fault-rate") == 0)
			O.fault_rate = atof(v);
		else if (strcmp(f, "--port") == 0)
			O.port = (int)num(f, v);
		else if (strcmp(f, "--port-file") == 0)
			O.port_file = v;
		else if (strcmp(f, "--stats-file") == 0)
			O.stats_file = v;
		else if (strcmp(f, "--info-file") == 0)
			O.info_file = v;
		else if (strcmp(f, "--cache-dir") == 0)
			O.cache_dir = v;
		else if (strcmp(f, "--gen-threads") == 0)
			O.gen_threads = (int)num(f, v);
		else if (strcmp(f, "--dump-hour") == 0)
			O.dump_hour = v;
		else
			usage();
	}
	if (hs == NULL)
		hs = "20240101T00";
	if (gen_parse_hour(hs, &O.start) != 0)
		die("--hours-start: bad hour %s", hs);
	if (O.gp.parts < 1 || O.gp.parts > 1000)
		die("--parts-per-hour must be 1..1000");
	if (O.gp.level < 1 || O.gp.level > 9)
		die("--gzip-level must be 1..9");
	if (O.nhours < 0 || O.nhours > 24 * 366 * 5)
		die("--hours out of range");
	if (O.fault_rate < 0 || O.fault_rate > 1)
		die("--fault-rate must be 0..1");
	if (O.dump_hour)
		dump_hour();

	/* Signals: handled by one thread; every other thread blocks them. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&sth, NULL, signal_main, &set) != 0)
		die("pthread_create failed");

	build_dataset();
	if (O.info_file) {
		char buf[1024];
		info_json(buf, sizeof buf);
		write_atomic(O.info_file, buf);
	}

	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)O.port);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("bind 127.0.0.1:%d: %s", O.port, strerror(errno));
	if (listen(lfd, 256) != 0)
		die("listen: %s", strerror(errno));
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	pthread_mutex_lock(&SMU);
	stats_flush_locked();
	pthread_mutex_unlock(&SMU);
	if (O.port_file) {
		char buf[32];
		snprintf(buf, sizeof buf, "%d\n", ntohs(sa.sin_port));
		write_atomic(O.port_file, buf);
	}
	say("listening on 127.0.0.1:%d", ntohs(sa.sin_port));

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE) {
				if (errno == EMFILE || errno == ENFILE)
					usleep(10000);
				continue;
			}
			die("accept: %s", strerror(errno));
		}
		struct conn *c = calloc(1, sizeof *c);
		pthread_t th;
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		pthread_mutex_lock(&SMU);
		S.conns++;
		pthread_mutex_unlock(&SMU);
		if (pthread_create(&th, &attr, conn_main, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
