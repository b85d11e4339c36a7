/*
 * fuzz_unpack: the zip -> hour splitter (unpack_zip_buffer_fmt) on
 * in-memory input, in all three output formats.
 *
 * Input: an input starting with "PK" is taken as a zip as it is; any other
 * input describes one that the harness builds (so that the
 * fuzzer reaches the gzip, JSONL and hour logic behind the zip layer):
 * records separated by NUL bytes, each a selector byte and the member's
 * content, which is gzipped here.  Selector bits:
 *   0-1  hour of the window (3: the hour after it, outside the window)
 *   2-3  part number
 *   4    zip layer deflated (else stored)
 *   5    content cut into two concatenated gzip members
 *   6    gzip trailer damaged (ISIZE changed)
 *   7    hour spelled with two digits ("_05" rather than "_5")
 * A content that starts with the byte 0xFE, then a count byte K, is the
 * rest repeated 64 * (K + 1) times (at most REPEAT_MAX bytes for the
 * whole input): a gzip that compresses far (up to about 450:1 with the
 * harness's small zlib state), stored in the zip (a gzip bomb) or
 * deflated again by it (a nested bomb, each layer compressing well), so
 * that the inflation cap (300:1 here, so that both kinds reach it within
 * the hour cap), counted against the member's bytes in the zip, is met
 * on both sides of its bound.
 *
 * Every input is unpacked into DIR = ROOT/data, ROOT a per-process
 * directory created once under /dev/shm (else $TMPDIR or /tmp), for the
 * window 2024-01-01T00 .. T02, with small limits (300 KiB an hour, 300
 * times a member's bytes in the zip, 12 members), as JSONL, GZIP and
 * GZIP_RAW, each time by both readers (unpack_stream fed in chunks of
 * random sizes, its commit deferred to unpack_commit for inputs of odd
 * length, then unpack_zip_buffer_fmt).  Properties:
 *   - the two readers agree: same status, same message, same statistics,
 *     same hour files (the streaming one may only be faster);
 *   - every open/rename/unlink that unpack.c makes (link-time wrapped,
 *     -Wl,--wrap; relative paths included) names DIR or a file directly
 *     in DIR: a temporary ".tmp-<hour of the window>..." (the only names
 *     created, and the only files opened without creating, read-only, to
 *     fsync them) or an hour file of the window; nothing appears in ROOT;
 *   - after a success DIR holds exactly the window's hour files of the
 *     format, after a failure nothing (no hour file, no ".tmp-"); a
 *     failure comes with a one-line printable message;
 *   - JSONL and GZIP succeed or fail alike; on success the GZIP files
 *     gunzip to the JSONL files byte for byte, the statistics agree with
 *     the files (events = lines, hours with data + empty hours = 3);
 *   - if JSONL succeeds, GZIP_RAW succeeds or refuses an hour as too
 *     big (it caps gzip bytes), and its files gunzip to the JSONL files
 *     but for the newlines JSONL adds after a last line without one;
 *   - for a zip built here, a JSONL success means no member was outside
 *     the window, damaged or a duplicate part, there were at most 12,
 *     none inflated (nor its gzip bytes) beyond 300 times its bytes in
 *     the zip, and each hour file is its members' contents in part
 *     order, a missing last newline added.
 * DIR is emptied after each input and removed at exit (a crash or an
 * interrupt leaves it; the next run removes it: ROOT's name holds the
 * pid).  With
 * FUZZ_VERBOSE set in the environment each verdict is printed (to replay
 * a crash: FUZZ_VERBOSE=1 build/fuzz/fuzz_unpack crash-<sha1>).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "fuzz.h"
#include "hour.h"
#include "unpack.h"

#define NHOURS 3
#define MAX_RECORDS 16
#define MAX_MEMBERS 12
#define REPEAT_MAX ((size_t)512 << 10)
#define GUNZIP_MAX ((size_t)8 << 20)

static char root[PATH_MAX];   /* ROOT: the working directory */
static char dir[PATH_MAX];    /* DIR = ROOT/data */
static size_t dirlen;
static amp_hour first;
static int checking;          /* inside unpack_zip_buffer_fmt */
static unsigned long creates; /* files created by unpack.c, all inputs */
static int verbose;           /* $FUZZ_VERBOSE: print each verdict */

static const struct unpack_opts limits = {
	.max_hour_bytes = 300 * 1024, /* above the 256 KiB output buffer */
	.max_ratio = 300,             /* reached by bombs of both kinds */
	.max_line = 100000,
	.max_members = MAX_MEMBERS,   /* below MAX_RECORDS: reached */
};

/* ---- the file system calls of unpack.c ---------------------------- */

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);
int __real_unlink(const char *path);
int __wrap_unlink(const char *path);

enum kind { K_OTHER, K_DIR, K_TMP, K_HOUR };

/* An hour "YYYY-MM-DD_HH" of the window at ${s}. */
static int
window_hour(const char *s)
{
	amp_hour h;

	return (hour_parse_file(s, HOUR_FILE_LEN - 1, &h) == 0 &&
	    h >= first && h < first + NHOURS);
}

/* What ${path} is: DIR, a temporary or an hour file in it, or other. */
static enum kind
kind_of(const char *path)
{
	const char *name = path + dirlen + 1;

	if (strcmp(path, dir) == 0)
		return (K_DIR);
	if (strncmp(path, dir, dirlen) != 0 || path[dirlen] != '/' ||
	    strchr(name, '/') != NULL || strstr(name, "..") != NULL)
		return (K_OTHER);
	if (strncmp(name, ".tmp-", 5) == 0 && window_hour(name + 5) &&
	    strncmp(name + 5 + HOUR_FILE_LEN - 1, ".jsonl", 6) == 0)
		return (K_TMP);
	if (window_hour(name) &&
	    (strcmp(name + HOUR_FILE_LEN - 1, ".jsonl") == 0 ||
	    strcmp(name + HOUR_FILE_LEN - 1, ".jsonl.gz") == 0))
		return (K_HOUR);
	return (K_OTHER);
}

int
__wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	int mode = 0;

	if (flags & O_CREAT) {
		va_start(ap, flags);
		mode = va_arg(ap, int);
		va_end(ap);
	}
	if (checking) {
		if (flags & O_CREAT) {
			FUZZ_CHECK(kind_of(path) == K_TMP);
			FUZZ_CHECK(flags & O_EXCL);
			creates++;
		} else {
			/* The directory (to fsync it), or a temporary
			 * read-only (unpack_commit fsyncs it). */
			FUZZ_CHECK(kind_of(path) == K_DIR ||
			    (kind_of(path) == K_TMP &&
			    (flags & O_ACCMODE) == O_RDONLY));
		}
	}
	return (__real_open(path, flags, mode));
}

int
__wrap_rename(const char *from, const char *to)
{
	if (checking)
		FUZZ_CHECK(kind_of(from) == K_TMP && kind_of(to) == K_HOUR);
	return (__real_rename(from, to));
}

int
__wrap_unlink(const char *path)
{
	if (checking)
		FUZZ_CHECK(kind_of(path) == K_TMP || kind_of(path) == K_HOUR);
	return (__real_unlink(path));
}

/* ---- directories --------------------------------------------------- */

/* Remove every file in DIR. */
static void
empty_dir(void)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		(void)__real_unlink(p);
	}
	closedir(d);
}

static void
cleanup(void)
{
	char z[PATH_MAX + 8];

	empty_dir();
	(void)rmdir(dir);
	(void)rmdir(root);
	snprintf(z, sizeof(z), "%s.zip", root);
	(void)unlink(z);
}

/* The names in ${path} but "." and "..": their number; the first one in
 * ${one} (PATH_MAX bytes) if not NULL. */
static int
list_dir(const char *path, char *one)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	FUZZ_CHECK((d = opendir(path)) != NULL);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && one != NULL)
			snprintf(one, PATH_MAX, "%s", de->d_name);
	}
	closedir(d);
	return (n);
}

/*
 * Remove what earlier processes left in ${base}: the directories
 * "amp2s3-fuzz-unpack.<pid>.*" of processes that no longer exist (a crash
 * or an interrupt skips the atexit cleanup) and their ".zip" files.  Only
 * files directly in their "data" and the two directories themselves are
 * removed.
 */
static void
reap(const char *base)
{
	static const char pre[] = "amp2s3-fuzz-unpack.";
	char p[PATH_MAX], q[PATH_MAX];
	struct dirent *de, *fe;
	DIR *d, *f;
	long pid;
	char *end;

	if ((d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, pre, sizeof(pre) - 1) != 0)
			continue;
		pid = strtol(de->d_name + sizeof(pre) - 1, &end, 10);
		if (*end != '.' || pid <= 0 || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		if (strlen(de->d_name) > 4 && strcmp(de->d_name +
		    strlen(de->d_name) - 4, ".zip") == 0) {
			snprintf(p, sizeof(p), "%s/%s", base, de->d_name);
			(void)unlink(p); /* the zip given to unpack_stream */
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s/data", base, de->d_name);
		if ((f = opendir(p)) != NULL) {
			while ((fe = readdir(f)) != NULL) {
				if (fe->d_name[0] == '.' &&
				    strncmp(fe->d_name, ".tmp-", 5) != 0)
					continue;
				snprintf(q, sizeof(q), "%s/%s", p, fe->d_name);
				(void)unlink(q);
			}
			closedir(f);
		}
		(void)rmdir(p);
		snprintf(p, sizeof(p), "%s/%s", base, de->d_name);
		(void)rmdir(p);
	}
	closedir(d);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("TMPDIR");
	struct stat sb;

	(void)argc;
	(void)argv;
	if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	else if (base == NULL || base[0] == '\0')
		base = "/tmp";
	reap(base);
	snprintf(root, sizeof(root), "%s/amp2s3-fuzz-unpack.%ld.XXXXXX", base,
	    (long)getpid());
	FUZZ_CHECK(mkdtemp(root) != NULL);
	snprintf(dir, sizeof(dir), "%s/data", root);
	dirlen = strlen(dir);
	FUZZ_CHECK(mkdir(dir, 0700) == 0);
	FUZZ_CHECK(hour_from_ymdh(2024, 1, 1, 0, &first) == 0);
	atexit(cleanup);
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return (0);
}

/* ---- buffers, gzip, zips ------------------------------------------- */

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t nc = (b->cap ? b->cap * 2 : 1024) + n;
		unsigned char *q = realloc(b->p, nc);

		FUZZ_CHECK(q != NULL);
		b->p = q;
		b->cap = nc;
	}
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/*
 * Append the gzip (one member) of ${n} bytes at ${p} to ${out}.  A 512-byte
 * window and the smallest hash keep zlib's state small: its default ~270
 * KiB would cost an mmap and munmap per member under ASan.
 */
static void
gz_add(struct buf *out, const unsigned char *p, size_t n)
{
	unsigned char chunk[4096];
	z_stream zs;
	int r;

	memset(&zs, 0, sizeof(zs));
	FUZZ_CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 9 + 16, 1,
	    Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		r = deflate(&zs, Z_FINISH);
		FUZZ_CHECK(r == Z_OK || r == Z_STREAM_END);
		buf_add(out, chunk, sizeof(chunk) - zs.avail_out);
	} while (r != Z_STREAM_END);
	deflateEnd(&zs);
}

/* Inflate ${in} (concatenated gzip members) into ${out}; 0 or -1. */
static int
gunzip(const struct buf *in, struct buf *out)
{
	unsigned char chunk[16384];
	z_stream zs;
	int r = Z_OK;

	memset(&zs, 0, sizeof(zs));
	FUZZ_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK);
	zs.next_in = in->p;
	zs.avail_in = (uInt)in->n;
	while (zs.avail_in > 0) {
		if (r == Z_STREAM_END && inflateReset(&zs) != Z_OK)
			break;
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		r = inflate(&zs, Z_NO_FLUSH);
		buf_add(out, chunk, sizeof(chunk) - zs.avail_out);
		if ((r != Z_OK && r != Z_STREAM_END) || out->n > GUNZIP_MAX)
			break;
	}
	inflateEnd(&zs);
	return (zs.avail_in == 0 && r == Z_STREAM_END ? 0 : -1);
}

static void
put16(struct buf *b, unsigned v)
{
	unsigned char x[2] = { (unsigned char)v, (unsigned char)(v >> 8) };

	buf_add(b, x, 2);
}

static void
put32(struct buf *b, uint32_t v)
{
	put16(b, v & 0xffff);
	put16(b, v >> 16);
}

/* The raw deflate of ${n} bytes at ${p} (small state, as in gz_add). */
static void
deflate_raw(struct buf *out, const unsigned char *p, size_t n)
{
	unsigned char chunk[4096];
	z_stream zs;
	int r;

	memset(&zs, 0, sizeof(zs));
	FUZZ_CHECK(deflateInit2(&zs, 6, Z_DEFLATED, -9, 1,
	    Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		r = deflate(&zs, Z_FINISH);
		FUZZ_CHECK(r == Z_OK || r == Z_STREAM_END);
		buf_add(out, chunk, sizeof(chunk) - zs.avail_out);
	} while (r != Z_STREAM_END);
	deflateEnd(&zs);
}

/*
 * Build in ${z} the zip the records of ${data} describe (see the top):
 * local headers, then the central directory and its end record, written
 * here (libzip's writer would deflate with ~270 KiB of zlib state per
 * member, which under ASan costs more than the code under test).  The
 * same name twice makes a zip libzip refuses as inconsistent.
 */
/* The members build_zip() wrote, for the oracle in check_records(). */
struct rec {
	unsigned hour, part;
	const unsigned char *p; /* content */
	size_t n;
	size_t gz, comp;        /* its gzip bytes, its bytes in the zip */
	int damaged;
};
static struct rec recs[MAX_RECORDS];
static size_t nrecs;
static struct buf expanded[MAX_RECORDS]; /* repeated contents */

/*
 * The content of a record, ${p} (${n} bytes): as it is, or, if it starts
 * with 0xFE, K, its rest repeated 64 * (K + 1) times into expanded[${i}],
 * within what *${budget} has left.  Sets *${out} and returns the length.
 */
static size_t
record_content(size_t i, const unsigned char *p, size_t n,
    const unsigned char **out, size_t *budget)
{
	size_t times, unit;

	*out = p;
	if (n < 3 || p[0] != 0xFE)
		return (n);
	unit = n - 2;
	times = 64 * ((size_t)p[1] + 1);
	if (times > *budget / unit)
		times = *budget / unit;
	*budget -= times * unit;
	expanded[i].n = 0;
	for (size_t k = 0; k < times; k++)
		buf_add(&expanded[i], p + 2, unit);
	*out = expanded[i].p;
	return (times * unit);
}

static void
build_zip(const uint8_t *data, size_t size, struct buf *z)
{
	struct buf cd = { 0 };
	size_t off = 0, end, len, budget = REPEAT_MAX;
	uint32_t nrec = 0;

	while (off < size && nrec < MAX_RECORDS) {
		const unsigned char *p = data + off, *content;
		unsigned sel = p[0], method = (sel & 0x10) ? 8 : 0;
		struct buf g = { 0 }, c = { 0 };
		char name[96], date[11];
		uint32_t crc, at = (uint32_t)z->n;
		size_t nl;

		end = off;
		while (end < size && (end == off || data[end] != '\0'))
			end++;
		len = record_content(nrec, p + 1, end - off - 1, &content,
		    &budget);
		off = end + 1;
		hour_format_date(first, date);
		nl = (size_t)snprintf(name, sizeof(name), (sel & 0x80) ?
		    "%d/%d_%s_%02u#%u.json.gz" : "%d/%d_%s_%u#%u.json.gz",
		    187520, 187520, date, sel & 3u, (sel >> 2) & 3u);
		if ((sel & 0x20) && len > 1) {
			gz_add(&g, content, len / 2);
			gz_add(&g, content + len / 2, len - len / 2);
		} else {
			gz_add(&g, content, len);
		}
		if (sel & 0x40)
			g.p[g.n - 1] ^= 0x01; /* ISIZE's top byte */
		crc = (uint32_t)crc32(0, g.p, (uInt)g.n);
		if (method == 8)
			deflate_raw(&c, g.p, g.n);
		else
			buf_add(&c, g.p, g.n);

		put32(z, 0x04034b50);             /* local file header */
		put16(z, 20);
		put16(z, 0);                      /* flags */
		put16(z, method);
		put16(z, 0);                      /* 00:00:00 */
		put16(z, 0x21);                   /* 1980-01-01 */
		put32(z, crc);
		put32(z, (uint32_t)c.n);
		put32(z, (uint32_t)g.n);
		put16(z, (unsigned)nl);
		put16(z, 0);                      /* extra */
		buf_add(z, name, nl);
		buf_add(z, c.p, c.n);

		put32(&cd, 0x02014b50);           /* central directory entry */
		put16(&cd, 20);
		put16(&cd, 20);
		put16(&cd, 0);
		put16(&cd, method);
		put16(&cd, 0);
		put16(&cd, 0x21);
		put32(&cd, crc);
		put32(&cd, (uint32_t)c.n);
		put32(&cd, (uint32_t)g.n);
		put16(&cd, (unsigned)nl);
		put16(&cd, 0);                    /* extra */
		put16(&cd, 0);                    /* comment */
		put16(&cd, 0);                    /* disk */
		put16(&cd, 0);                    /* internal attributes */
		put32(&cd, 0);                    /* external attributes */
		put32(&cd, at);
		buf_add(&cd, name, nl);
		recs[nrec] = (struct rec){ .hour = sel & 3u,
		    .part = (sel >> 2) & 3u, .p = content, .n = len,
		    .gz = g.n, .comp = c.n, .damaged = (sel & 0x40) != 0 };
		buf_free(&g);
		buf_free(&c);
		nrec++;
	}
	nrecs = nrec;
	off = z->n;
	buf_add(z, cd.p, cd.n);
	put32(z, 0x06054b50);                     /* end of central directory */
	put16(z, 0);
	put16(z, 0);
	put16(z, nrec);
	put16(z, nrec);
	put32(z, (uint32_t)cd.n);
	put32(z, (uint32_t)off);
	put16(z, 0);                              /* comment */
	buf_free(&cd);
}

/* ---- one format ----------------------------------------------------- */

/* The file of hour ${k} in ${fmt} into ${b}. */
static void
read_hour(int k, enum unpack_format fmt, struct buf *b)
{
	char hs[HOUR_FILE_LEN], p[PATH_MAX], chunk[16384];
	ssize_t n;
	int fd;

	hour_format_file(first + k, hs);
	snprintf(p, sizeof(p), "%s/%s%s", dir, hs,
	    fmt == UNPACK_FMT_JSONL ? ".jsonl" : ".jsonl.gz");
	FUZZ_CHECK((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(b, chunk, (size_t)n);
	FUZZ_CHECK(n == 0);
	close(fd);
}

/* A source handing out ${z} in chunks of sizes drawn from ${rnd}. */
struct src {
	const struct buf *z;
	size_t off;
	uint32_t rnd;
};

static long
src_read(void *ctx, void *out, size_t len)
{
	struct src *s = ctx;
	size_t n;

	if (s->off == s->z->n)
		return (0);
	s->rnd = s->rnd * 1103515245u + 12345u;
	n = 1 + (s->rnd >> 8) % 4096;
	if (n > len)
		n = len;
	if (n > s->z->n - s->off)
		n = s->z->n - s->off;
	memcpy(out, s->z->p + s->off, n);
	s->off += n;
	return ((long)n);
}

/*
 * After one call that returned ${st} with ${err}: check DIR and ROOT; on
 * success leave the hour files' contents in ${files} (NHOURS buffers).
 * Empties DIR.
 */
static void
check_after(enum unpack_status st, const char *err, enum unpack_format fmt,
    struct buf *files, const struct unpack_stats *stats,
    unsigned long before, const char *who)
{
	char one[PATH_MAX];
	int k;

	if (verbose)
		fprintf(stderr, "fuzz_unpack: %s %s: %s%s%s\n", who,
		    fmt == UNPACK_FMT_JSONL ? "jsonl" : fmt == UNPACK_FMT_GZIP ?
		    "gzip" : "gzip-raw", unpack_status_name(st),
		    st != UNPACK_OK ? ": " : "", st != UNPACK_OK ? err : "");

	/* Nothing outside DIR. */
	FUZZ_CHECK(list_dir(root, one) == 1 && strcmp(one, "data") == 0);
	if (st != UNPACK_OK) {
		FUZZ_CHECK(err[0] != '\0' && fuzz_printable(err));
		if (list_dir(dir, one) != 0) {
			fprintf(stderr, "left behind after %s (%s): %s\n",
			    unpack_status_name(st), err, one);
			FUZZ_CHECK(!"a failed unpack left a file");
		}
		return;
	}
	FUZZ_CHECK(err[0] == '\0');
	FUZZ_CHECK(creates - before >= NHOURS); /* the wrapper is live */
	FUZZ_CHECK(list_dir(dir, NULL) == NHOURS);
	for (k = 0; k < NHOURS; k++)
		read_hour(k, fmt, &files[k]); /* each name is there */
	empty_dir();
	FUZZ_CHECK(stats->hours_data + stats->hours_empty == NHOURS);
}

/*
 * Unpack ${z} as ${fmt} with both readers: unpack_stream (the bytes
 * arriving in chunks of random sizes, the file ROOT.zip holding them)
 * and unpack_zip_buffer_fmt.  Each is checked by check_after; they must
 * agree on status, message, statistics and files.  On success leaves the
 * hour files' contents in ${files}.
 */
static enum unpack_status
unpack(const struct buf *z, enum unpack_format fmt, struct buf *files,
    struct unpack_stats *stats)
{
	char err[512], err2[512], zpath[PATH_MAX + 8];
	struct buf f2[NHOURS];
	struct unpack_stats s2;
	struct src src = { .z = z, .rnd = (uint32_t)z->n * 2654435761u };
	struct unpack_source us = { src_read, &src };
	struct unpack_pending *pp = NULL;
	enum unpack_status st, st2;
	unsigned long before;
	int fd, k;

	memset(f2, 0, sizeof(f2));
	snprintf(zpath, sizeof(zpath), "%s.zip", root);
	FUZZ_CHECK((fd = open(zpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) >= 0);
	FUZZ_CHECK(z->n == 0 || write(fd, z->p, z->n) == (ssize_t)z->n);
	close(fd);
	memset(&s2, 0, sizeof(s2));
	err2[0] = 'x';
	err2[1] = '\0';
	before = creates;
	checking = 1;
	st2 = unpack_stream(&us, zpath, dir, first, NHOURS, fmt, &limits,
	    NULL, &s2, err2, sizeof(err2), (z->n & 1) ? &pp : NULL);
	if (st2 == UNPACK_OK && (z->n & 1)) {
		FUZZ_CHECK(pp != NULL);
		FUZZ_CHECK(unpack_commit(pp, err2, sizeof(err2)) == UNPACK_OK);
	}
	checking = 0;
	FUZZ_CHECK(src.off == z->n); /* read to its end */
	check_after(st2, err2, fmt, f2, &s2, before, "stream");

	memset(stats, 0, sizeof(*stats));
	err[0] = 'x';
	err[1] = '\0';
	before = creates;
	checking = 1;
	st = unpack_zip_buffer_fmt(z->p, z->n, dir, first, NHOURS, fmt,
	    &limits, stats, err, sizeof(err));
	checking = 0;
	check_after(st, err, fmt, files, stats, before, "libzip");
	if (st == UNPACK_OK)
		FUZZ_CHECK(creates - before == NHOURS);

	/* The two readers agree. */
	FUZZ_CHECK(st2 == st);
	FUZZ_CHECK(strcmp(err2, err) == 0);
	FUZZ_CHECK(stats->streamed == 0);
	if (st == UNPACK_OK) {
		FUZZ_CHECK(s2.bytes_in == stats->bytes_in &&
		    s2.bytes_out == stats->bytes_out &&
		    s2.events == stats->events &&
		    s2.members == stats->members &&
		    s2.hours_data == stats->hours_data &&
		    s2.hours_empty == stats->hours_empty);
		for (k = 0; k < NHOURS; k++)
			FUZZ_CHECK(f2[k].n == files[k].n && (f2[k].n == 0 ||
			    memcmp(f2[k].p, files[k].p, f2[k].n) == 0));
	}
	for (k = 0; k < NHOURS; k++)
		buf_free(&f2[k]);
	return (st);
}

/*
 * A built zip was unpacked (JSONL) into ${files}: no member may have been
 * dropped or changed.  Each hour file must be its members' contents in
 * part order, each followed by a newline it lacked; and success implies
 * that no member was outside the window, damaged or a duplicate part.
 */
static void
check_records(const struct buf *files)
{
	struct buf want;
	size_t i, a;
	unsigned k, part;

	FUZZ_CHECK(nrecs <= MAX_MEMBERS);
	for (i = 0; i < nrecs; i++) {
		size_t cap = limits.max_ratio * (recs[i].comp > 0 ?
		    recs[i].comp : 1);

		FUZZ_CHECK(recs[i].hour < NHOURS && !recs[i].damaged);
		FUZZ_CHECK(recs[i].n <= cap && recs[i].gz <= cap);
		for (a = 0; a < i; a++)
			FUZZ_CHECK(recs[a].hour != recs[i].hour ||
			    recs[a].part != recs[i].part);
	}
	for (k = 0; k < NHOURS; k++) {
		memset(&want, 0, sizeof(want));
		for (part = 0; part < 4; part++)
			for (i = 0; i < nrecs; i++) {
				if (recs[i].hour != k || recs[i].part != part ||
				    recs[i].n == 0)
					continue;
				buf_add(&want, recs[i].p, recs[i].n);
				if (recs[i].p[recs[i].n - 1] != '\n')
					buf_add(&want, "\n", 1);
			}
		FUZZ_CHECK(want.n == files[k].n && (want.n == 0 ||
		    memcmp(want.p, files[k].p, want.n) == 0));
		buf_free(&want);
	}
}

/* Drop every '\n' of ${b} (in place). */
static void
strip_nl(struct buf *b)
{
	size_t i, o = 0;

	for (i = 0; i < b->n; i++)
		if (b->p[i] != '\n')
			b->p[o++] = b->p[i];
	b->n = o;
}

static int
same(const struct buf *a, const struct buf *b)
{
	return (a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf z = { 0 }, j[NHOURS], g[NHOURS], r[NHOURS], u = { 0 };
	struct unpack_stats sj, sg, sr;
	enum unpack_status stj, stg, str;
	uint64_t bytes = 0, lines = 0;
	int k, built;
	size_t i;

	memset(j, 0, sizeof(j));
	memset(g, 0, sizeof(g));
	memset(r, 0, sizeof(r));
	built = !(size >= 2 && data[0] == 'P' && data[1] == 'K');
	if (built) {
		build_zip(data, size, &z);
	} else {
		z.p = (unsigned char *)(uintptr_t)data;
		z.n = size;
	}

	stj = unpack(&z, UNPACK_FMT_JSONL, j, &sj);
	stg = unpack(&z, UNPACK_FMT_GZIP, g, &sg);
	str = unpack(&z, UNPACK_FMT_GZIP_RAW, r, &sr);

	FUZZ_CHECK(stj == stg);
	if (stj == UNPACK_OK) {
		for (k = 0; k < NHOURS; k++) {
			bytes += j[k].n;
			for (i = 0; i < j[k].n; i++)
				lines += j[k].p[i] == '\n';
			FUZZ_CHECK(j[k].n == 0 || j[k].p[j[k].n - 1] == '\n');
			/* GZIP: the same bytes once inflated. */
			FUZZ_CHECK(gunzip(&g[k], &u) == 0 || g[k].n == 0);
			FUZZ_CHECK(same(&u, &j[k]));
			buf_free(&u);
		}
		FUZZ_CHECK(sj.bytes_out == bytes && sj.events == lines);
		FUZZ_CHECK(sg.events == sj.events &&
		    sg.members == sj.members &&
		    sg.hours_data == sj.hours_data);
		FUZZ_CHECK(str == UNPACK_OK || str == UNPACK_TOO_BIG);
		if (built)
			check_records(j);
	}
	if (stj == UNPACK_OK && str == UNPACK_OK) {
		for (k = 0; k < NHOURS; k++) {
			FUZZ_CHECK(gunzip(&r[k], &u) == 0 || r[k].n == 0);
			strip_nl(&u);
			strip_nl(&j[k]);
			FUZZ_CHECK(same(&u, &j[k]));
			buf_free(&u);
		}
	}
	for (k = 0; k < NHOURS; k++) {
		buf_free(&j[k]);
		buf_free(&g[k]);
		buf_free(&r[k]);
	}
	if (built)
		buf_free(&z);
	for (k = 0; k < MAX_RECORDS; k++)
		buf_free(&expanded[k]);
	return (0);
}
