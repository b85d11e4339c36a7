/*
 * unpack: Export API zip -> one JSONL file per hour, all or nothing.
 *
 * Two readers feed one writer.
 *
 * The writer (hour_open / m_begin, m_feed, m_end / hour_close / commit):
 * for each hour of the window a temporary file
 * ".tmp-YYYY-MM-DD_HH.jsonl.<pid>.<n>" is created (O_EXCL, retried with
 * another <n> on EEXIST) and the hour's members are pushed into it chunk
 * by chunk: inflate (gzip, several concatenated gzip members allowed,
 * each must reach Z_STREAM_END) -> the output buffer, where jsonl checks
 * the new bytes in place -> write(2) when the buffer is full.  Two fixed
 * 256 KiB buffers per call; nothing grows with the size of a member or of
 * the zip.  While a file grows, its pages are handed to the kernel for
 * writeback every few MiB (sync_file_range), so the fsync that ends the
 * hour waits for little; once that fsync succeeded, the file's pages are
 * dropped from the page cache unless opts->keep_cache (a fetch that
 * writes hundreds of GB leaves the host's cache alone, and the writer
 * reuses the pages it just freed instead of taking ever new ones).  Only
 * when every hour is written are the temporaries renamed into place,
 * then the directory is fsynced once.
 * Any failure unlinks every temporary (and, if a rename or the directory
 * fsync failed, every hour file already renamed).
 *
 * Reader 1, libzip (unpack_zip*): opens the whole zip (ZIP_CHECKCONS:
 * central directory checked against the local headers), lists every entry
 * with zip_stat_index and parses its raw name with member_parse; a name
 * that does not parse, an hour outside the window or a duplicate (hour,
 * part) fails the whole window before any byte is inflated.  Entries
 * named exactly "<digits>/" (directories) are skipped.  Entries are sorted
 * by (hour, part) and read with zip_fread (libzip checks the CRC).
 *
 * Reader 2, streaming (unpack_stream): libarchive's streaming zip reader
 * takes the answer from the caller's read callback while it downloads,
 * so the members are inflated and written as their bytes arrive.  It
 * trusts nothing it cannot check later: it accepts members only in
 * strictly increasing (hour, part) order, keeps each member's name, size
 * and CRC-32 (computed here), and once the answer is complete opens the
 * same bytes (the caller's copy on disk) with libzip and requires its
 * central directory to list exactly those members with those sizes and
 * CRCs.  Only then are the hours committed.  Anything else — an order it
 * cannot stream, a name it would reject, a libarchive error, a mismatch,
 * a bad member — drops what it wrote and hands the finished file to
 * reader 1, whose verdict is final.  So both readers commit the same
 * bytes or the same error; the streaming one is only faster.
 *
 * Limits (unpack_opts): inflated bytes per hour; inflated bytes per
 * member against ratio * the member's compressed size in the zip (the
 * gzip bytes themselves are held to the same ratio, so a zip-level bomb of
 * empty deflate blocks is refused too; while streaming, where the zip
 * sizes are not known yet, against ratio * the gzip bytes read so far,
 * and the zip sizes are checked before commit); line length.
 *
 * Formats (unpack.h): JSONL writes the inflated bytes.  GZIP runs the same
 * inflate + jsonl pass but only to check: the output buffer is discarded
 * when full, and each chunk (the member's own gzip bytes) is written to
 * the file instead; a member that inflated to nothing is cut off again
 * (ftruncate to where it began), a missing last newline becomes an extra
 * gzip member of "\n".  GZIP_RAW skips inflate: chunks go straight to the
 * file; the first bytes (gzip magic) and the last four (ISIZE) are kept,
 * and a member whose ISIZE is 0 is cut off and redone the GZIP way
 * (reader 1; the streaming reader hands such an answer to reader 1).
 *
 * Errors name the member by zip index (streaming: position in the answer)
 * and by its name with every byte outside printable ASCII escaped.  No
 * state outside the call: one z_stream, one jsonl handle and one pair of
 * buffers per call.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sync_file_range */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <zip.h>
#include <zlib.h>

#include "jsonl.h"
#include "localdir.h"
#include "unpack.h"

#define UNPACK_IN_SZ ((size_t)256 * 1024)
#define UNPACK_OUT_SZ ((size_t)256 * 1024)
#define UNPACK_NAME_SHOWN 96   /* bytes of a member name shown in errors */
#define UNPACK_TMP_TRIES 64    /* O_EXCL attempts per temporary file */
#define UNPACK_WB_STEP ((uint64_t)8 << 20) /* writeback hint every 8 MiB */
#define GZIP_MIN 18            /* header 10 + empty deflate 0..+ trailer 8 */

/* A gzip member holding "\n" (zlib, mtime 0): appended in GZIP format
 * where a member's last line lacks its newline. */
static const unsigned char NL_GZ[] = {
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
	0xe3, 0x02, 0x00, 0x93, 0x06, 0xd7, 0x32, 0x01, 0x00, 0x00, 0x00
};

struct entry {
	amp_hour hour;
	uint64_t part;
	uint64_t index;         /* zip index, or position in the stream */
	const char *name;       /* raw name (libzip's, or owned: stream) */
	uint64_t size;          /* gzip bytes */
	uint64_t comp_size;     /* bytes in the zip; 0: not known (stream) */
	uint32_t crc;           /* CRC-32 of the gzip bytes */
	int streamed;           /* read while downloading: zip sizes unknown */
};

/* The member being written. */
struct mem {
	const struct entry *e;
	int raw;                /* GZIP_RAW: copy, do not inflate */
	uint64_t cap;           /* inflated bytes allowed (0: none) */
	int cap_running;        /* cap = ratio * fed, fed growing */
	uint64_t fed;           /* gzip bytes pushed */
	uint64_t mout;          /* bytes inflated */
	uint64_t start;         /* file offset where the member began */
	int started, ended;
	int redo;               /* GZIP_RAW member that may hold nothing */
	unsigned char head[3], tail[4];
	uint32_t crc;
};

struct unpack {
	const char *dir;
	amp_hour first;
	int nhours;
	enum unpack_format fmt;
	int gz;                 /* fmt is GZIP or GZIP_RAW */
	struct unpack_opts opt;
	const atomic_int *cancel;
	int defer;              /* leave fsync + rename to unpack_commit() */

	zip_t *za;
	struct entry *ents;     /* libzip: the zip's members, sorted */
	size_t nents;

	char *paths;            /* nhours temporary paths, pathcap bytes each */
	size_t pathcap;
	int ntmp;               /* temporaries created: hours [0, ntmp) */
	int nrenamed;           /* hours [0, nrenamed) renamed into place */
	uint64_t seq;           /* source of the <n> in temporary names */

	unsigned char *in;
	unsigned char *out;
	size_t used;            /* bytes in out not yet written */
	z_stream zs;
	int zs_ready;
	struct jsonl *jl;

	int fd;                 /* temporary file of the current hour */
	const char *fdpath;
	uint64_t hour_bytes;    /* JSONL bytes of the hour (GZIP_RAW: gzip) */
	uint64_t file_bytes;    /* bytes written to the hour's file */
	uint64_t wb_bytes;      /* bytes handed to writeback */
	uint64_t lines0;        /* jsonl lines when the hour began */

	struct unpack_stats st;
	char *err;
	size_t errlen;
};

const char *
unpack_status_name(enum unpack_status s)
{
	switch (s) {
	case UNPACK_OK:
		return ("ok");
	case UNPACK_NOT_ZIP:
		return ("not-zip");
	case UNPACK_CORRUPT:
		return ("corrupt");
	case UNPACK_BADNAME:
		return ("bad-name");
	case UNPACK_TOO_BIG:
		return ("too-big");
	case UNPACK_IO:
		return ("io");
	case UNPACK_CANCELLED:
		return ("cancelled");
	case UNPACK_SOURCE:
		return ("source");
	}
	return ("unknown");
}

/* The error text of ${e} (thread-safe). */
static const char *
errstr(int e, char *buf, size_t len)
{
#ifdef _GNU_SOURCE
	return (strerror_r(e, buf, len)); /* GNU's: buf or a static string */
#else
	if (strerror_r(e, buf, len) != 0)
		snprintf(buf, len, "error %d", e);
	return (buf);
#endif
}

/* u->err = the formatted message (if there is a buffer); returns ${st}. */
static enum unpack_status
failf(struct unpack *u, enum unpack_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum unpack_status
failf(struct unpack *u, enum unpack_status st, const char *fmt, ...)
{
	va_list ap;

	if (u->err != NULL && u->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(u->err, u->errlen, fmt, ap);
		va_end(ap);
	}
	return (st);
}

/*
 * Write "member #<index> \"<name>\"" into ${buf}: the raw ${name} with '"',
 * '\\' and every byte outside printable ASCII as \xNN, cut after
 * UNPACK_NAME_SHOWN bytes.
 */
static const char *
label_of(uint64_t index, const char *name, char *buf, size_t len)
{
	size_t n, i;
	int k;

	k = snprintf(buf, len, "member #%llu \"", (unsigned long long)index);
	if (k < 0 || (size_t)k >= len)
		return (buf);
	n = (size_t)k;
	for (i = 0; name != NULL && name[i] != '\0'; i++) {
		unsigned char c = (unsigned char)name[i];

		if (i == UNPACK_NAME_SHOWN) {
			if (n + 3 < len)
				memcpy(buf + n, "...", 3), n += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (n + 1 >= len)
				break;
			buf[n++] = (char)c;
		} else {
			if (n + 4 >= len)
				break;
			snprintf(buf + n, 5, "\\x%02x", c);
			n += 4;
		}
	}
	if (n + 1 < len)
		buf[n++] = '"';
	buf[n < len ? n : len - 1] = '\0';
	return (buf);
}

#define LABEL_MAX (UNPACK_NAME_SHOWN * 4 + 64)
#define LABEL(e, buf) label_of((e)->index, (e)->name, (buf), sizeof(buf))

static int
cancelled(const struct unpack *u)
{
	return (u->cancel != NULL && atomic_load(u->cancel) != 0);
}

/* A name "<digits>/": a directory entry, ignored. */
static int
is_dir_entry(const char *name)
{
	size_t n = strlen(name);

	if (n < 2 || name[n - 1] != '/')
		return (0);
	for (size_t i = 0; i < n - 1; i++)
		if (name[i] < '0' || name[i] > '9')
			return (0);
	return (1);
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->hour != y->hour)
		return (x->hour < y->hour ? -1 : 1);
	if (x->part != y->part)
		return (x->part < y->part ? -1 : 1);
	return (0);
}

/* ${a} * ${b}, saturating. */
static uint64_t
mul_sat(uint64_t a, uint64_t b)
{
	return (b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b);
}

/* The ratio cap of ${e} (0: none), given its sizes in the zip. */
static enum unpack_status
ratio_check(struct unpack *u, const struct entry *e, uint64_t *cap)
{
	char label[LABEL_MAX];

	*cap = 0;
	if (u->opt.max_ratio == 0)
		return (UNPACK_OK);
	*cap = mul_sat(e->comp_size > 0 ? e->comp_size : 1, u->opt.max_ratio);
	if (e->size > *cap)
		return (failf(u, UNPACK_TOO_BIG,
		    "%s: inflates beyond %llu times its size", LABEL(e, label),
		    (unsigned long long)u->opt.max_ratio));
	return (UNPACK_OK);
}

/* List, check and sort the data members of the open zip (u->za). */
static enum unpack_status
list_members(struct unpack *u)
{
	char label[LABEL_MAX];
	zip_int64_t n;
	zip_stat_t sb;
	struct member_name mn;
	struct entry e;

	if ((n = zip_get_num_entries(u->za, 0)) < 0)
		return (failf(u, UNPACK_NOT_ZIP, "zip: no central directory"));
	if (n > 0 && (u->ents = calloc((size_t)n, sizeof(*u->ents))) == NULL)
		return (failf(u, UNPACK_IO, "zip: out of memory"));
	for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
		zip_stat_init(&sb);
		if (zip_stat_index(u->za, i, ZIP_FL_ENC_RAW, &sb) != 0 ||
		    (sb.valid & ZIP_STAT_NAME) == 0)
			return (failf(u, UNPACK_NOT_ZIP, "zip: entry #%llu: %s",
			    (unsigned long long)i, zip_strerror(u->za)));
		if (is_dir_entry(sb.name))
			continue;
		e = (struct entry){ .index = i, .name = sb.name };
		if (member_parse(sb.name, strlen(sb.name), &mn) != 0)
			return (failf(u, UNPACK_BADNAME, "%s: unexpected name",
			    LABEL(&e, label)));
		if (mn.hour < u->first || mn.hour - u->first >= u->nhours)
			return (failf(u, UNPACK_BADNAME,
			    "%s: hour outside the requested window",
			    LABEL(&e, label)));
		if ((sb.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
		    ZIP_STAT_CRC)) != (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
		    ZIP_STAT_CRC))
			return (failf(u, UNPACK_CORRUPT, "%s: sizes unknown",
			    LABEL(&e, label)));
		e.hour = mn.hour;
		e.part = mn.part;
		e.size = sb.size;
		e.comp_size = sb.comp_size;
		e.crc = sb.crc;
		u->ents[u->nents++] = e;
	}
	if (u->nents > 1)
		qsort(u->ents, u->nents, sizeof(*u->ents), entry_cmp);
	for (size_t i = 1; i < u->nents; i++) {
		if (entry_cmp(&u->ents[i - 1], &u->ents[i]) == 0)
			return (failf(u, UNPACK_BADNAME, "%s: duplicate part",
			    LABEL(&u->ents[i], label)));
	}
	return (UNPACK_OK);
}

/* Temporary path of hour ${k} of the window. */
static char *
tmp_path(struct unpack *u, int k)
{
	return (u->paths + (size_t)k * u->pathcap);
}

/* The final path of hour ${k} into ${buf} (u->pathcap bytes). */
static void
final_path(const struct unpack *u, int k, char *buf)
{
	char hs[HOUR_FILE_LEN];

	hour_format_file(u->first + k, hs);
	snprintf(buf, u->pathcap, "%s/%s%s", u->dir, hs,
	    localdir_suffix(u->gz));
}

/* Create the temporary file of hour ${k}: u->fd, counted in u->ntmp. */
static enum unpack_status
open_tmp(struct unpack *u, int k)
{
	char hs[HOUR_FILE_LEN], eb[128];
	char *p = tmp_path(u, k);
	int e = 0;

	hour_format_file(u->first + k, hs);
	for (int t = 0; t < UNPACK_TMP_TRIES; t++) {
		u->seq = u->seq * 6364136223846793005ULL +
		    1442695040888963407ULL;
		snprintf(p, u->pathcap, "%s/.tmp-%s%s.%ld.%016llx",
		    u->dir, hs, localdir_suffix(u->gz), (long)getpid(),
		    (unsigned long long)(u->seq >> 1));
		u->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0644);
		if (u->fd >= 0) {
			u->fdpath = p;
			u->ntmp = k + 1;
			return (UNPACK_OK);
		}
		if ((e = errno) != EEXIST && e != EINTR)
			break;
	}
	return (failf(u, UNPACK_IO, "cannot create %s: %s", p,
	    errstr(e, eb, sizeof(eb))));
}

/* Write the ${n} bytes at ${p} to the current hour's file. */
static enum unpack_status
write_raw(struct unpack *u, const void *p, size_t n)
{
	char eb[128];
	size_t off = 0;
	ssize_t w;

	while (off < n) {
		w = write(u->fd, (const unsigned char *)p + off, n - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return (failf(u, UNPACK_IO, "cannot write %s: %s",
			    u->fdpath, errstr(errno, eb, sizeof(eb))));
		}
		off += (size_t)w;
	}
	u->file_bytes += n;
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
	/* Start writeback now so that the hour's fsync finds little left;
	 * only a hint: the fsync in hour_close is what makes it durable. */
	if (u->file_bytes - u->wb_bytes >= UNPACK_WB_STEP) {
		(void)sync_file_range(u->fd, (off_t)u->wb_bytes,
		    (off_t)(u->file_bytes - u->wb_bytes),
		    SYNC_FILE_RANGE_WRITE);
		u->wb_bytes = u->file_bytes;
	}
#endif
	return (UNPACK_OK);
}

/* ${fd} was just fsynced: unless ${keep}, drop its (now clean) pages from
 * the page cache.  Only advice: nothing depends on it. */
static void
synced(int fd, int keep)
{
#ifdef POSIX_FADV_DONTNEED
	if (!keep)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#else
	(void)fd;
	(void)keep;
#endif
}

/* Cut the current hour's file back to its first ${off} bytes. */
static enum unpack_status
cut_back(struct unpack *u, uint64_t off)
{
	char eb[128];

	if (ftruncate(u->fd, (off_t)off) != 0 ||
	    lseek(u->fd, (off_t)off, SEEK_SET) < 0)
		return (failf(u, UNPACK_IO, "cannot truncate %s: %s",
		    u->fdpath, errstr(errno, eb, sizeof(eb))));
	u->file_bytes = off;
	if (u->wb_bytes > off)
		u->wb_bytes = off;
	return (UNPACK_OK);
}

/*
 * Write out every pending byte of the output buffer (JSONL); in the gzip
 * formats the inflated bytes were only for checking: drop them.
 */
static enum unpack_status
flush_out(struct unpack *u)
{
	enum unpack_status st = UNPACK_OK;

	if (!u->gz)
		st = write_raw(u, u->out, u->used);
	u->used = 0;
	return (st);
}

/* Map a jsonl failure on member ${e}. */
static enum unpack_status
jsonl_fail(struct unpack *u, const struct entry *e, enum jsonl_status js)
{
	char label[LABEL_MAX];
	enum unpack_status st;

	st = js == JSONL_LONG ? UNPACK_TOO_BIG :
	    js == JSONL_NOMEM ? UNPACK_IO : UNPACK_CORRUPT;
	return (failf(u, st, "%s: %s", LABEL(e, label), jsonl_error(u->jl)));
}

static enum unpack_status
hour_cap_fail(struct unpack *u, const struct entry *e)
{
	char label[LABEL_MAX];

	return (failf(u, UNPACK_TOO_BIG, "%s: hour exceeds %llu bytes",
	    LABEL(e, label), (unsigned long long)u->opt.max_hour_bytes));
}

/* Account for the ${n} bytes just inflated at the end of u->out. */
static enum unpack_status
take(struct unpack *u, struct mem *m, size_t n)
{
	char label[LABEL_MAX];
	enum jsonl_status js;
	uint64_t cap = m->cap_running ? mul_sat(m->fed, u->opt.max_ratio) :
	    m->cap;

	m->mout += n;
	u->hour_bytes += n;
	if (cap != 0 && m->mout > cap)
		return (failf(u, UNPACK_TOO_BIG,
		    "%s: inflates beyond %llu times its size",
		    LABEL(m->e, label), (unsigned long long)u->opt.max_ratio));
	if (u->opt.max_hour_bytes != 0 &&
	    u->hour_bytes > u->opt.max_hour_bytes)
		return (hour_cap_fail(u, m->e));
	if ((js = jsonl_feed(u->jl, u->out + u->used, n)) != JSONL_OK)
		return (jsonl_fail(u, m->e, js));
	u->used += n;
	return (UNPACK_OK);
}

/*
 * Begin member ${e} in the current hour's file: copied (${raw}) or
 * inflated and checked.  Its ratio cap comes from its zip sizes when
 * known, else it grows with the gzip bytes pushed (streaming).
 */
static enum unpack_status
m_begin(struct unpack *u, struct mem *m, const struct entry *e, int raw)
{
	char label[LABEL_MAX];
	enum unpack_status st;

	*m = (struct mem){ .e = e, .raw = raw, .start = u->file_bytes };
	if (!e->streamed || u->opt.max_ratio == 0) {
		if ((st = ratio_check(u, e, &m->cap)) != UNPACK_OK)
			return (st);
	} else {
		m->cap_running = 1;
	}
	if (!raw && inflateReset(&u->zs) != Z_OK)
		return (failf(u, UNPACK_CORRUPT, "%s: gzip: inflateReset",
		    LABEL(e, label)));
	return (UNPACK_OK);
}

/* Push the next ${n} gzip bytes of the member. */
static enum unpack_status
m_feed(struct unpack *u, struct mem *m, const void *p, size_t n)
{
	char label[LABEL_MAX];
	const unsigned char *b = p;
	enum unpack_status st;
	int r;

	if (cancelled(u))
		return (failf(u, UNPACK_CANCELLED, "cancelled"));
	if (n == 0)
		return (UNPACK_OK);
	m->crc = (uint32_t)crc32(m->crc, b, (uInt)n);
	m->fed += n;
	u->st.bytes_in += n;
	if (m->raw) {
		for (size_t i = 0; m->fed - n + i < sizeof(m->head) && i < n;
		    i++)
			m->head[m->fed - n + i] = b[i];
		if (n >= sizeof(m->tail)) {
			memcpy(m->tail, b + n - sizeof(m->tail),
			    sizeof(m->tail));
		} else {
			memmove(m->tail, m->tail + n, sizeof(m->tail) - n);
			memcpy(m->tail + sizeof(m->tail) - n, b, n);
		}
		u->hour_bytes += n;
		if (u->opt.max_hour_bytes != 0 &&
		    u->hour_bytes > u->opt.max_hour_bytes)
			return (hour_cap_fail(u, m->e));
		return (write_raw(u, b, n));
	}
	if (u->gz && (st = write_raw(u, b, n)) != UNPACK_OK)
		return (st);
	u->zs.next_in = (Bytef *)(uintptr_t)b;
	u->zs.avail_in = (uInt)n;
	while (u->zs.avail_in > 0) {
		size_t room;

		if (m->ended) {
			/* Another gzip member follows. */
			if (inflateReset(&u->zs) != Z_OK)
				goto gzfail;
			m->ended = 0;
		}
		m->started = 1;
		if (u->used == UNPACK_OUT_SZ && (st = flush_out(u)) !=
		    UNPACK_OK)
			return (st);
		room = UNPACK_OUT_SZ - u->used;
		u->zs.next_out = u->out + u->used;
		u->zs.avail_out = (uInt)room;
		r = inflate(&u->zs, Z_NO_FLUSH);
		if (room > u->zs.avail_out && (st = take(u, m,
		    room - u->zs.avail_out)) != UNPACK_OK)
			return (st);
		if (r == Z_STREAM_END)
			m->ended = 1;
		else if (r != Z_OK)
			goto gzfail;
	}
	return (UNPACK_OK);
gzfail:
	return (failf(u, UNPACK_CORRUPT, "%s: gzip: %s", LABEL(m->e, label),
	    u->zs.msg != NULL ? u->zs.msg : "inflate failed"));
}

/* End the member: final checks; m->redo set for a raw member to redo. */
static enum unpack_status
m_end(struct unpack *u, struct mem *m)
{
	char label[LABEL_MAX];
	enum unpack_status st;
	enum jsonl_status js;
	int need_nl;

	if (m->raw) {
		if (m->fed < GZIP_MIN || m->head[0] != 0x1f ||
		    m->head[1] != 0x8b || m->head[2] != 0x08)
			return (failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
			    LABEL(m->e, label), m->fed == 0 ? "empty" :
			    "not a gzip member"));
		if ((m->tail[0] | m->tail[1] | m->tail[2] | m->tail[3]) == 0) {
			/* Possibly no data: to be checked the GZIP way. */
			m->redo = 1;
			return (UNPACK_OK);
		}
		u->st.members++;
		return (UNPACK_OK);
	}
	if (!m->started || !m->ended)
		return (failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
		    LABEL(m->e, label), m->started ? "truncated" : "empty"));
	if ((js = jsonl_finish(u->jl, &need_nl)) != JSONL_OK)
		return (jsonl_fail(u, m->e, js));
	if (u->gz && m->mout == 0 && (st = cut_back(u, m->start)) !=
	    UNPACK_OK)
		return (st);
	if (need_nl) {
		if (u->used == UNPACK_OUT_SZ && (st = flush_out(u)) !=
		    UNPACK_OK)
			return (st);
		if (u->gz) {
			if ((st = write_raw(u, NL_GZ, sizeof(NL_GZ))) !=
			    UNPACK_OK)
				return (st);
		} else {
			u->out[u->used++] = '\n';
		}
		u->hour_bytes++;
		if (u->opt.max_hour_bytes != 0 &&
		    u->hour_bytes > u->opt.max_hour_bytes)
			return (hour_cap_fail(u, m->e));
	}
	u->st.members++;
	return (UNPACK_OK);
}

/* Undo a raw member that m_end() marked for redoing. */
static enum unpack_status
m_undo(struct unpack *u, struct mem *m)
{
	u->st.bytes_in -= m->fed;
	u->hour_bytes -= m->fed;
	return (cut_back(u, m->start));
}

/* Begin hour ${k}: its temporary file is the current file. */
static enum unpack_status
hour_open(struct unpack *u, int k)
{
	enum unpack_status st;

	if ((st = open_tmp(u, k)) != UNPACK_OK)
		return (st);
	u->hour_bytes = 0;
	u->file_bytes = 0;
	u->wb_bytes = 0;
	u->used = 0;
	u->lines0 = jsonl_lines(u->jl);
	return (UNPACK_OK);
}

/* End the current hour: flush, fsync, close, count. */
static enum unpack_status
hour_close(struct unpack *u)
{
	char eb[128];
	enum unpack_status st;
	int fd;

	if ((st = flush_out(u)) != UNPACK_OK)
		goto fail;
	if (u->defer && u->ntmp == u->nhours) {
		/* The window's last hour: its fsync comes with the commit
		 * (unpack_commit); start the writeback of its tail now.  The
		 * hours before it were synced as they closed, spread over the
		 * download, so the commit does not wait for them all at once. */
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
		if (u->file_bytes > u->wb_bytes)
			(void)sync_file_range(u->fd, (off_t)u->wb_bytes, 0,
			    SYNC_FILE_RANGE_WRITE);
#endif
	} else if (fsync(u->fd) != 0) {
		st = failf(u, UNPACK_IO, "cannot fsync %s: %s", u->fdpath,
		    errstr(errno, eb, sizeof(eb)));
		goto fail;
	} else {
		synced(u->fd, u->opt.keep_cache);
	}
	fd = u->fd;
	u->fd = -1;
	if (close(fd) != 0)
		return (failf(u, UNPACK_IO, "cannot close %s: %s", u->fdpath,
		    errstr(errno, eb, sizeof(eb))));
	u->st.bytes_out += u->file_bytes;
	u->st.events += jsonl_lines(u->jl) - u->lines0;
	if (u->file_bytes > 0)
		u->st.hours_data++;
	else
		u->st.hours_empty++;
	return (UNPACK_OK);
fail:
	(void)close(u->fd);
	u->fd = -1;
	return (st);
}

/* libzip: stream member ${e} into the current hour's file. */
static enum unpack_status
do_member(struct unpack *u, const struct entry *e, int raw)
{
	char label[LABEL_MAX];
	enum unpack_status st;
	struct mem m;
	zip_file_t *zf;
	zip_int64_t n;

	if ((st = m_begin(u, &m, e, raw)) != UNPACK_OK)
		return (st);
	if ((zf = zip_fopen_index(u->za, e->index, 0)) == NULL)
		return (failf(u, UNPACK_CORRUPT, "%s: zip: %s",
		    LABEL(e, label), zip_strerror(u->za)));
	for (;;) {
		if ((n = zip_fread(zf, u->in, UNPACK_IN_SZ)) < 0) {
			st = failf(u, UNPACK_CORRUPT, "%s: zip: %s",
			    LABEL(e, label), zip_file_strerror(zf));
			break;
		}
		if (n == 0) {
			st = m_end(u, &m);
			break;
		}
		if ((st = m_feed(u, &m, u->in, (size_t)n)) != UNPACK_OK)
			break;
	}
	/* zip_fclose reports nothing zip_fread did not already report. */
	(void)zip_fclose(zf);
	if (st == UNPACK_OK && m.redo) {
		if ((st = m_undo(u, &m)) != UNPACK_OK)
			return (st);
		return (do_member(u, e, 0));
	}
	return (st);
}

/* libzip: write hour ${k} (its members start at u->ents[*next]). */
static enum unpack_status
do_hour(struct unpack *u, int k, size_t *next)
{
	enum unpack_status st;
	amp_hour h = u->first + k;

	if ((st = hour_open(u, k)) != UNPACK_OK)
		return (st);
	while (*next < u->nents && u->ents[*next].hour == h) {
		if ((st = do_member(u, &u->ents[*next],
		    u->fmt == UNPACK_FMT_GZIP_RAW)) != UNPACK_OK) {
			(void)close(u->fd);
			u->fd = -1;
			return (st);
		}
		(*next)++;
	}
	return (hour_close(u));
}

/* fsync the data directory (after the renames). */
static enum unpack_status
sync_dir(struct unpack *u)
{
	char eb[128];
	int fd;

	if ((fd = open(u->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return (failf(u, UNPACK_IO, "cannot open %s: %s", u->dir,
		    errstr(errno, eb, sizeof(eb))));
	if (fsync(fd) != 0) {
		int e = errno;

		(void)close(fd);
		return (failf(u, UNPACK_IO, "cannot fsync %s: %s", u->dir,
		    errstr(e, eb, sizeof(eb))));
	}
	(void)close(fd);
	return (UNPACK_OK);
}

/* Rename every temporary into place, then sync the directory. */
static enum unpack_status
commit(struct unpack *u)
{
	char eb[128];
	char *dst;
	enum unpack_status st;

	if ((dst = malloc(u->pathcap)) == NULL)
		return (failf(u, UNPACK_IO, "out of memory"));
	for (int k = 0; k < u->nhours; k++) {
		final_path(u, k, dst);
		if (rename(tmp_path(u, k), dst) != 0) {
			st = failf(u, UNPACK_IO, "cannot rename %s to %s: %s",
			    tmp_path(u, k), dst, errstr(errno, eb,
			    sizeof(eb)));
			free(dst);
			return (st);
		}
		u->nrenamed = k + 1;
	}
	free(dst);
	return (sync_dir(u));
}

/* The hours of a window written, not yet synced nor renamed. */
struct unpack_pending {
	char *dir;
	amp_hour first;
	int nhours;
	int gz;
	int keep_cache;
	char *paths;            /* nhours temporary paths, pathcap bytes each */
	size_t pathcap;
};

/*
 * The window is written: commit it now, or (deferred) hand its
 * temporaries over in *${pending}.
 */
static enum unpack_status
finish(struct unpack *u, struct unpack_pending **pending)
{
	struct unpack_pending *pp;

	if (pending == NULL)
		return (commit(u));
	if ((pp = calloc(1, sizeof(*pp))) == NULL ||
	    (pp->dir = strdup(u->dir)) == NULL) {
		free(pp);
		return (failf(u, UNPACK_IO, "out of memory"));
	}
	pp->first = u->first;
	pp->nhours = u->nhours;
	pp->gz = u->gz;
	pp->keep_cache = u->opt.keep_cache;
	pp->paths = u->paths;
	pp->pathcap = u->pathcap;
	u->paths = NULL; /* owned by pp now */
	*pending = pp;
	return (UNPACK_OK);
}

/* Remove what a failed attempt left: temporaries, hours renamed already. */
static void
rollback(struct unpack *u)
{
	char *dst = malloc(u->pathcap);

	if (u->fd >= 0) {
		(void)close(u->fd);
		u->fd = -1;
	}
	for (int k = 0; k < u->ntmp; k++) {
		if (k < u->nrenamed) {
			if (dst != NULL) {
				final_path(u, k, dst);
				(void)unlink(dst);
			}
		} else {
			(void)unlink(tmp_path(u, k));
		}
	}
	free(dst);
	u->ntmp = u->nrenamed = 0;
	memset(&u->st, 0, sizeof(u->st));
}

/* Set up ${u} for a call; UNPACK_OK or the failure (u_fini either way). */
static enum unpack_status
u_init(struct unpack *u, const char *data_dir, amp_hour first, int nhours,
    enum unpack_format fmt, const struct unpack_opts *opts,
    const atomic_int *cancel, char *err, size_t errlen)
{
	struct timespec ts;

	*u = (struct unpack){ .dir = data_dir, .first = first,
	    .nhours = nhours, .fmt = fmt, .gz = fmt != UNPACK_FMT_JSONL,
	    .cancel = cancel, .fd = -1, .err = err, .errlen = errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (opts != NULL)
		u->opt = *opts;
	if (nhours < 1 || first < HOUR_MIN || first > HOUR_MAX - nhours + 1 ||
	    (fmt != UNPACK_FMT_JSONL && fmt != UNPACK_FMT_GZIP &&
	    fmt != UNPACK_FMT_GZIP_RAW))
		return (failf(u, UNPACK_IO, "invalid window or format"));
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	u->seq = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
	    (uint64_t)(uintptr_t)u;
	u->pathcap = strlen(data_dir) + 80;
	if ((u->paths = calloc((size_t)nhours, u->pathcap)) == NULL ||
	    (u->in = malloc(UNPACK_IN_SZ)) == NULL ||
	    (u->out = malloc(UNPACK_OUT_SZ)) == NULL ||
	    (u->jl = jsonl_new(u->opt.max_line)) == NULL)
		return (failf(u, UNPACK_IO, "out of memory"));
	if (inflateInit2(&u->zs, 15 + 16) != Z_OK)
		return (failf(u, UNPACK_IO, "inflateInit2 failed"));
	u->zs_ready = 1;
	return (UNPACK_OK);
}

/* End the call: roll back unless ${st} is UNPACK_OK, free everything. */
static enum unpack_status
u_fini(struct unpack *u, enum unpack_status st, struct unpack_stats *stats)
{
	if (st != UNPACK_OK && u->paths != NULL)
		rollback(u);
	if (st == UNPACK_OK && stats != NULL) {
		stats->bytes_in += u->st.bytes_in;
		stats->bytes_out += u->st.bytes_out;
		stats->events += u->st.events;
		stats->members += u->st.members;
		stats->hours_data += u->st.hours_data;
		stats->hours_empty += u->st.hours_empty;
		stats->streamed += u->st.streamed;
	}
	if (u->zs_ready)
		(void)inflateEnd(&u->zs);
	jsonl_free(u->jl);
	free(u->out);
	free(u->in);
	free(u->paths);
	free(u->ents);
	if (u->za != NULL)
		zip_discard(u->za);
	return (st);
}

/* Map a failed zip open (libzip's ${zerr}). */
static enum unpack_status
open_fail(struct unpack *u, zip_error_t *zerr)
{
	if (zip_error_code_zip(zerr) == ZIP_ER_EXISTS)
		/* libzip refuses a central directory naming one member twice:
		 * a malformed answer, not a truncated one; asking again will
		 * not change it. */
		return (failf(u, UNPACK_BADNAME, "duplicate member name in "
		    "the zip: %s", zip_error_strerror(zerr)));
	return (failf(u, UNPACK_NOT_ZIP, "not a zip: %s",
	    zip_error_strerror(zerr)));
}

/* libzip: unpack the open zip u->za (after u_init). */
static enum unpack_status
zip_all(struct unpack *u, struct unpack_pending **pending)
{
	enum unpack_status st;
	size_t next = 0;

	if ((st = list_members(u)) != UNPACK_OK)
		return (st);
	for (int k = 0; k < u->nhours; k++) {
		if (cancelled(u))
			return (failf(u, UNPACK_CANCELLED, "cancelled"));
		if ((st = do_hour(u, k, &next)) != UNPACK_OK)
			return (st);
	}
	if (cancelled(u))
		return (failf(u, UNPACK_CANCELLED, "cancelled"));
	return (finish(u, pending));
}

/* Open ${src} as a zip (consumes ${src}); NULL and ${zerr} on failure. */
static zip_t *
open_source(zip_source_t *src, zip_error_t *zerr)
{
	zip_stat_t sb;
	zip_t *za;

	/* An empty body is no answer, even if libzip opens it as empty. */
	zip_stat_init(&sb);
	if (zip_source_stat(src, &sb) != 0 ||
	    ((sb.valid & ZIP_STAT_SIZE) && sb.size == 0)) {
		zip_error_set(zerr, ZIP_ER_NOZIP, 0);
		zip_source_free(src);
		return (NULL);
	}
	if ((za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS,
	    zerr)) == NULL)
		zip_source_free(src);
	return (za);
}

/* Open the zip file at ${path} into u->za; UNPACK_OK or the failure. */
static enum unpack_status
open_path(struct unpack *u, const char *path)
{
	zip_error_t zerr;
	zip_source_t *src;
	enum unpack_status st = UNPACK_OK;

	zip_error_init(&zerr);
	if ((src = zip_source_file_create(path, 0, -1, &zerr)) == NULL ||
	    (u->za = open_source(src, &zerr)) == NULL)
		st = open_fail(u, &zerr);
	zip_error_fini(&zerr);
	return (st);
}

/* unpack_zip_fmt(), its commit deferred if ${pending} is not NULL. */
static enum unpack_status
zip_path_run(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_opts *opts,
    const atomic_int *cancel, struct unpack_stats *stats, char *err,
    size_t errlen, struct unpack_pending **pending)
{
	struct unpack u;
	enum unpack_status st;

	if ((st = u_init(&u, data_dir, first, nhours, fmt, opts, cancel,
	    err, errlen)) == UNPACK_OK && (st = open_path(&u, zip_path)) ==
	    UNPACK_OK) {
		u.defer = pending != NULL;
		st = zip_all(&u, pending);
	}
	return (u_fini(&u, st, stats));
}

enum unpack_status
unpack_zip_fmt(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_opts *opts,
    const atomic_int *cancel, struct unpack_stats *stats, char *err,
    size_t errlen)
{
	return (zip_path_run(zip_path, data_dir, first, nhours, fmt, opts,
	    cancel, stats, err, errlen, NULL));
}

enum unpack_status
unpack_zip_buffer_fmt(const void *zip, size_t zlen, const char *data_dir,
    amp_hour first, int nhours, enum unpack_format fmt,
    const struct unpack_opts *opts, struct unpack_stats *stats,
    char *err, size_t errlen)
{
	struct unpack u;
	zip_error_t zerr;
	zip_source_t *src = NULL;
	enum unpack_status st;

	if ((st = u_init(&u, data_dir, first, nhours, fmt, opts, NULL, err,
	    errlen)) != UNPACK_OK)
		return (u_fini(&u, st, stats));
	zip_error_init(&zerr);
	if (zlen == 0)
		zip_error_set(&zerr, ZIP_ER_NOZIP, 0);
	else if ((src = zip_source_buffer_create(zip, zlen, 0, &zerr)) != NULL)
		u.za = open_source(src, &zerr);
	st = u.za == NULL ? open_fail(&u, &zerr) : zip_all(&u, NULL);
	zip_error_fini(&zerr);
	return (u_fini(&u, st, stats));
}

enum unpack_status
unpack_zip(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, const struct unpack_opts *opts, const atomic_int *cancel,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_fmt(zip_path, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, opts, cancel, stats, err, errlen));
}

enum unpack_status
unpack_zip_buffer(const void *zip, size_t zlen, const char *data_dir,
    amp_hour first, int nhours, const struct unpack_opts *opts,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_buffer_fmt(zip, zlen, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, opts, stats, err, errlen));
}

/* ---- streaming reader ---- */

#define STREAM_BUF ((size_t)256 * 1024)

struct stream {
	struct unpack *u;
	const struct unpack_source *src;
	unsigned char *buf;
	int failed;             /* the source reported a failure */
	int eof;                /* the source reported its end */
	struct entry *ents;     /* members as streamed, in order */
	size_t nents, cap;
	int cur;                /* hour whose file is open; -1 none */
};

static la_ssize_t
s_read(struct archive *a, void *arg, const void **out)
{
	struct stream *s = arg;
	long n;

	*out = s->buf;
	if (s->eof)
		return (0);
	if ((n = s->src->read(s->src->ctx, s->buf, STREAM_BUF)) < 0) {
		s->failed = 1;
		archive_set_error(a, EIO, "the answer's transfer failed");
		return (-1);
	}
	if (n == 0)
		s->eof = 1;
	return ((la_ssize_t)n);
}

/* Read the source to its end (the download completes).  0 or -1. */
static int
s_drain(struct stream *s)
{
	long n;

	while (!s->eof && !s->failed) {
		if ((n = s->src->read(s->src->ctx, s->buf, STREAM_BUF)) < 0)
			s->failed = 1;
		else if (n == 0)
			s->eof = 1;
	}
	return (s->failed ? -1 : 0);
}

/* Move the open hour forward to hour ${k} (files between: empty). */
static enum unpack_status
s_goto_hour(struct stream *s, int k)
{
	enum unpack_status st;

	while (s->cur < k) {
		if (s->cur >= 0 && (st = hour_close(s->u)) != UNPACK_OK)
			return (st);
		if ((st = hour_open(s->u, s->cur + 1)) != UNPACK_OK)
			return (st);
		s->cur++;
	}
	return (UNPACK_OK);
}

/*
 * Append the member called ${name} to s->ents if it may be streamed: a
 * name that parses, inside the window, after the previous member.  NULL
 * when it may not (reader 1 decides), *${st} set on a real failure.
 */
static struct entry *
s_admit(struct stream *s, const char *name, enum unpack_status *st)
{
	struct unpack *u = s->u;
	struct member_name mn;
	struct entry *e;

	*st = UNPACK_OK;
	if (member_parse(name, strlen(name), &mn) != 0 ||
	    mn.hour < u->first || mn.hour - u->first >= u->nhours)
		return (NULL);
	if (s->nents > 0) {
		struct entry *prev = &s->ents[s->nents - 1];
		if (mn.hour < prev->hour || (mn.hour == prev->hour &&
		    mn.part <= prev->part))
			return (NULL);
	}
	if (s->nents == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct entry *ne = realloc(s->ents, nc * sizeof(*ne));
		if (ne == NULL) {
			*st = failf(u, UNPACK_IO, "out of memory");
			return (NULL);
		}
		s->ents = ne;
		s->cap = nc;
	}
	e = &s->ents[s->nents];
	*e = (struct entry){ .hour = mn.hour, .part = mn.part,
	    .index = s->nents, .streamed = 1 };
	if ((e->name = strdup(name)) == NULL) {
		*st = failf(u, UNPACK_IO, "out of memory");
		return (NULL);
	}
	s->nents++;
	return (e);
}

/* A failure of ours (I/O, cancel) stands; a verdict on the answer is
 * reader 1's to give (UNPACK_OK, with the caller's *again still 1). */
static enum unpack_status
ours(enum unpack_status st)
{
	return (st == UNPACK_IO || st == UNPACK_CANCELLED ? st : UNPACK_OK);
}

/*
 * Stream every member from libarchive into the hour files.  UNPACK_OK
 * with *${again} = 0: all written (not yet verified); *${again} = 1:
 * this answer must go to reader 1; else a failure of our own (I/O,
 * cancel, the source).
 */
static enum unpack_status
s_members(struct stream *s, struct archive *a, int *again)
{
	struct unpack *u = s->u;
	struct archive_entry *ae;
	enum unpack_status st;
	struct entry *e;
	struct mem m;
	const void *p;
	size_t n;
	la_int64_t off;
	const char *name;
	int r;

	*again = 1;
	for (;;) {
		if ((r = archive_read_next_header(a, &ae)) == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return (UNPACK_OK);
		if ((name = archive_entry_pathname(ae)) == NULL)
			return (UNPACK_OK);
		if (is_dir_entry(name)) {
			if (archive_read_data_skip(a) != ARCHIVE_OK)
				return (UNPACK_OK);
			continue;
		}
		if ((e = s_admit(s, name, &st)) == NULL)
			return (st);
		if ((st = s_goto_hour(s, (int)(e->hour - u->first))) !=
		    UNPACK_OK)
			return (st);
		if ((st = m_begin(u, &m, e, u->fmt == UNPACK_FMT_GZIP_RAW)) !=
		    UNPACK_OK)
			return (ours(st));
		for (;;) {
			r = archive_read_data_block(a, &p, &n, &off);
			if (r == ARCHIVE_EOF)
				break;
			if (r != ARCHIVE_OK || (uint64_t)off != m.fed)
				return (UNPACK_OK);
			if ((st = m_feed(u, &m, p, n)) != UNPACK_OK)
				return (ours(st));
		}
		if ((st = m_end(u, &m)) != UNPACK_OK)
			return (ours(st));
		if (m.redo)
			return (UNPACK_OK);
		e->size = m.fed;
		e->crc = m.crc;
	}
	if ((st = s_goto_hour(s, u->nhours - 1)) != UNPACK_OK ||
	    (st = hour_close(u)) != UNPACK_OK)
		return (st);
	s->cur = u->nhours;
	*again = 0;
	return (UNPACK_OK);
}

/*
 * 1 if the zip on disk, complete now, lists exactly the members streamed,
 * with the same sizes and CRCs, and reader 1 could open each; else 0.
 */
static int
s_same(struct stream *s, const char *zip_path)
{
	struct unpack *u = s->u;
	char *err = u->err;
	zip_file_t *zf;
	int same = 0;

	/* Reader 1 owns the error messages: keep ours out of them. */
	u->err = NULL;
	if (open_path(u, zip_path) != UNPACK_OK ||
	    list_members(u) != UNPACK_OK || u->nents != s->nents)
		goto out;
	for (size_t i = 0; i < s->nents; i++) {
		const struct entry *z = &u->ents[i], *t = &s->ents[i];
		uint64_t cap;

		if (z->hour != t->hour || z->part != t->part ||
		    strcmp(z->name, t->name) != 0 || z->size != t->size ||
		    z->crc != t->crc || ratio_check(u, z, &cap) != UNPACK_OK)
			goto out;
		/* Reader 1 must be able to open it too (encryption, method,
		 * local header): the same checks, without reading data. */
		if ((zf = zip_fopen_index(u->za, z->index, 0)) == NULL)
			goto out;
		(void)zip_fclose(zf);
	}
	same = 1;
out:
	u->err = err;
	return (same);
}

static void
s_free(struct stream *s)
{
	for (size_t i = 0; i < s->nents; i++)
		free((char *)(uintptr_t)s->ents[i].name);
	free(s->ents);
	free(s->buf);
}

enum unpack_status
unpack_stream(const struct unpack_source *src, const char *zip_path,
    const char *data_dir, amp_hour first, int nhours, enum unpack_format fmt,
    const struct unpack_opts *opts, const atomic_int *cancel,
    struct unpack_stats *stats, char *err, size_t errlen,
    struct unpack_pending **pending)
{
	struct unpack u;
	struct stream s = { .u = &u, .src = src, .cur = -1 };
	struct archive *a = NULL;
	enum unpack_status st;
	int again = 1;

	if (pending != NULL)
		*pending = NULL;
	if ((st = u_init(&u, data_dir, first, nhours, fmt, opts, cancel,
	    err, errlen)) != UNPACK_OK)
		return (u_fini(&u, st, stats));
	u.defer = pending != NULL;
	if ((s.buf = malloc(STREAM_BUF)) == NULL ||
	    (a = archive_read_new()) == NULL) {
		st = failf(&u, UNPACK_IO, "out of memory");
		goto out;
	}
	(void)archive_read_support_format_zip_streamable(a);
	/* The CRCs are checked against the central directory instead. */
	(void)archive_read_set_format_option(a, "zip", "ignorecrc32", "1");
	if (archive_read_open(a, &s, NULL, s_read, NULL) == ARCHIVE_OK &&
	    (st = s_members(&s, a, &again)) != UNPACK_OK)
		goto out;
	if (s_drain(&s) != 0) {
		st = cancelled(&u) ? failf(&u, UNPACK_CANCELLED, "cancelled") :
		    failf(&u, UNPACK_SOURCE, "the transfer failed");
		goto out;
	}
	if (again || !s_same(&s, zip_path)) {
		/* Reader 1 decides, from the complete file; what streamed
		 * goes (u_fini rolls back whatever is not UNPACK_OK). */
		archive_read_free(a);
		s_free(&s);
		(void)u_fini(&u, UNPACK_IO, NULL);
		return (zip_path_run(zip_path, data_dir, first, nhours, fmt,
		    opts, cancel, stats, err, errlen, pending));
	}
	if (cancelled(&u)) {
		st = failf(&u, UNPACK_CANCELLED, "cancelled");
		goto out;
	}
	if ((st = finish(&u, pending)) == UNPACK_OK)
		u.st.streamed = 1;
out:
	if (a != NULL)
		archive_read_free(a);
	s_free(&s);
	return (u_fini(&u, st, stats));
}

/* A struct unpack over ${pp}'s temporaries (for commit and rollback). */
static void
pending_view(struct unpack *u, struct unpack_pending *pp, char *err,
    size_t errlen)
{
	*u = (struct unpack){ .dir = pp->dir, .first = pp->first,
	    .nhours = pp->nhours, .gz = pp->gz, .paths = pp->paths,
	    .pathcap = pp->pathcap, .ntmp = pp->nhours, .fd = -1, .err = err,
	    .errlen = errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

static void
pending_free(struct unpack_pending *pp)
{
	free(pp->paths);
	free(pp->dir);
	free(pp);
}

enum unpack_status
unpack_commit(struct unpack_pending *pp, char *err, size_t errlen)
{
	char eb[128], *last;
	struct unpack u;
	enum unpack_status st = UNPACK_OK;
	int fd;

	pending_view(&u, pp, err, errlen);
	/* Only the last hour is not synced yet (hour_close). */
	last = tmp_path(&u, u.nhours - 1);
	if ((fd = open(last, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) != 0)
		st = failf(&u, UNPACK_IO, "cannot fsync %s: %s", last,
		    errstr(errno, eb, sizeof(eb)));
	else
		synced(fd, pp->keep_cache);
	if (fd >= 0)
		(void)close(fd);
	if (st == UNPACK_OK)
		st = commit(&u);
	if (st != UNPACK_OK)
		rollback(&u);
	pending_free(pp);
	return (st);
}

void
unpack_discard(struct unpack_pending *pp)
{
	struct unpack u;

	if (pp == NULL)
		return;
	pending_view(&u, pp, NULL, 0);
	rollback(&u);
	pending_free(pp);
}
