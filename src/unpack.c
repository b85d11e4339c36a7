/*
 * unpack: Export API zip -> one JSONL file per hour, all or nothing.
 *
 * How it works:
 *   1. libzip opens the zip (ZIP_CHECKCONS: central directory checked
 *      against the local headers).  Every entry is listed with
 *      zip_stat_index and its raw name parsed by member_parse; a name that
 *      does not parse, an hour outside the window or a duplicate (hour,
 *      part) fails the whole window before any byte is inflated.  Entries
 *      named exactly "<digits>/" (directories) are skipped.
 *   2. Entries are sorted by (hour, part).  For each hour of the window a
 *      temporary file ".tmp-YYYY-MM-DD_HH.jsonl.<pid>.<n>" is created
 *      (O_EXCL, retried with another <n> on EEXIST) and the hour's members
 *      are streamed into it: zip_fread (libzip inflates the zip layer and
 *      checks the CRC at the end) -> inflate (gzip, several concatenated
 *      gzip members allowed, each must reach Z_STREAM_END) -> the output
 *      buffer, where jsonl checks the new bytes in place -> write(2) when
 *      the buffer is full.  Two fixed 256 KiB buffers per call; nothing
 *      grows with the size of a member or of the zip.
 *   3. Each temporary file is fsynced and closed when its hour ends.  Only
 *      when every hour is written are they renamed into place, then the
 *      directory is fsynced once.  Any failure unlinks every temporary
 *      (and, if a rename or the directory fsync failed, every hour file
 *      already renamed).
 *
 * Limits (unpack_limits): inflated bytes per hour; inflated bytes per
 * member against ratio * the member's compressed size in the zip (the
 * gzip bytes themselves are held to the same ratio, so a zip-level bomb of
 * empty deflate blocks is refused too); line length.
 *
 * Formats (unpack.h): JSONL writes the inflated bytes (step 2 above).
 * GZIP runs the same inflate + jsonl pass but only to check: the output
 * buffer is discarded when full, and each chunk zip_fread returned (the
 * member's own gzip bytes) is written to the file instead; a member that
 * inflated to nothing is cut off again (ftruncate to where it began), a
 * missing last newline becomes an extra gzip member of "\n".  GZIP_RAW
 * skips inflate: zip_fread chunks go straight to the file; the first
 * bytes (gzip magic) and the last four (ISIZE) are kept, and a member
 * whose ISIZE is 0 is cut off and redone the GZIP way.
 *
 * Errors name the member by zip index and by its name with every byte
 * outside printable ASCII escaped.  No state outside the call: one
 * z_stream, one jsonl handle and one pair of buffers per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>
#include <zlib.h>

#include "jsonl.h"
#include "localdir.h"
#include "unpack.h"

#define UNPACK_IN_SZ ((size_t)256 * 1024)
#define UNPACK_OUT_SZ ((size_t)256 * 1024)
#define UNPACK_NAME_SHOWN 96   /* bytes of a member name shown in errors */
#define UNPACK_TMP_TRIES 64    /* O_EXCL attempts per temporary file */
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
	zip_uint64_t index;
	zip_uint64_t size;      /* gzip bytes */
	zip_uint64_t comp_size; /* bytes in the zip */
};

struct unpack {
	zip_t *za;
	const char *dir;
	amp_hour first;
	int nhours;
	enum unpack_format fmt;
	int gz;                 /* fmt is GZIP or GZIP_RAW */
	struct unpack_limits lim;
	const atomic_int *cancel;

	struct entry *ents;
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
	}
	return ("unknown");
}

/* The error text of ${e} (thread-safe). */
static const char *
errstr(int e, char *buf, size_t len)
{
	if (strerror_r(e, buf, len) != 0)
		snprintf(buf, len, "error %d", e);
	return (buf);
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
 * Write "#<index> \"<name>\"" into ${buf}: the raw name of entry ${index}
 * with '"', '\\' and every byte outside printable ASCII as \xNN, cut
 * after UNPACK_NAME_SHOWN bytes.
 */
static const char *
member_label(zip_t *za, zip_uint64_t index, char *buf, size_t len)
{
	const char *name = zip_get_name(za, index, ZIP_FL_ENC_RAW);
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

/* List, check and sort the data members of the zip. */
static enum unpack_status
list_members(struct unpack *u)
{
	char label[UNPACK_NAME_SHOWN * 4 + 64];
	zip_int64_t n;
	zip_stat_t sb;
	struct member_name mn;

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
		if (member_parse(sb.name, strlen(sb.name), &mn) != 0)
			return (failf(u, UNPACK_BADNAME, "%s: unexpected name",
			    member_label(u->za, i, label, sizeof(label))));
		if (mn.hour < u->first || mn.hour - u->first >= u->nhours)
			return (failf(u, UNPACK_BADNAME,
			    "%s: hour outside the requested window",
			    member_label(u->za, i, label, sizeof(label))));
		if ((sb.valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE)) !=
		    (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE))
			return (failf(u, UNPACK_CORRUPT, "%s: sizes unknown",
			    member_label(u->za, i, label, sizeof(label))));
		u->ents[u->nents++] = (struct entry){ .hour = mn.hour,
		    .part = mn.part, .index = i, .size = sb.size,
		    .comp_size = sb.comp_size };
	}
	if (u->nents > 1)
		qsort(u->ents, u->nents, sizeof(*u->ents), entry_cmp);
	for (size_t i = 1; i < u->nents; i++) {
		if (entry_cmp(&u->ents[i - 1], &u->ents[i]) == 0)
			return (failf(u, UNPACK_BADNAME, "%s: duplicate part",
			    member_label(u->za, u->ents[i].index, label,
			    sizeof(label))));
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
	return (UNPACK_OK);
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
	char label[UNPACK_NAME_SHOWN * 4 + 64];
	enum unpack_status st;

	st = js == JSONL_LONG ? UNPACK_TOO_BIG :
	    js == JSONL_NOMEM ? UNPACK_IO : UNPACK_CORRUPT;
	return (failf(u, st, "%s: %s",
	    member_label(u->za, e->index, label, sizeof(label)),
	    jsonl_error(u->jl)));
}

/* Account for the ${n} bytes just inflated at the end of u->out. */
static enum unpack_status
take(struct unpack *u, const struct entry *e, size_t n, uint64_t *mout,
    uint64_t cap)
{
	char label[UNPACK_NAME_SHOWN * 4 + 64];
	enum jsonl_status js;

	*mout += n;
	u->hour_bytes += n;
	if (cap != 0 && *mout > cap)
		return (failf(u, UNPACK_TOO_BIG,
		    "%s: inflates beyond %llu times its size",
		    member_label(u->za, e->index, label, sizeof(label)),
		    (unsigned long long)u->lim.max_ratio));
	if (u->lim.max_hour_bytes != 0 &&
	    u->hour_bytes > u->lim.max_hour_bytes)
		return (failf(u, UNPACK_TOO_BIG,
		    "%s: hour exceeds %llu bytes",
		    member_label(u->za, e->index, label, sizeof(label)),
		    (unsigned long long)u->lim.max_hour_bytes));
	if ((js = jsonl_feed(u->jl, u->out + u->used, n)) != JSONL_OK)
		return (jsonl_fail(u, e, js));
	u->used += n;
	return (UNPACK_OK);
}

/*
 * Check member ${e} against the ratio cap (its cap in *${cap}, 0 when
 * none) and open it.  UNPACK_OK with *${zf} open, or the failure.
 */
static enum unpack_status
member_open(struct unpack *u, const struct entry *e, uint64_t *cap,
    char *label, size_t llen, zip_file_t **zf)
{
	*cap = 0;
	if (u->lim.max_ratio != 0) {
		zip_uint64_t c = e->comp_size > 0 ? e->comp_size : 1;

		*cap = c > UINT64_MAX / u->lim.max_ratio ? UINT64_MAX :
		    c * u->lim.max_ratio;
		if (e->size > *cap)
			return (failf(u, UNPACK_TOO_BIG,
			    "%s: inflates beyond %llu times its size",
			    member_label(u->za, e->index, label, llen),
			    (unsigned long long)u->lim.max_ratio));
	}
	if ((*zf = zip_fopen_index(u->za, e->index, 0)) == NULL)
		return (failf(u, UNPACK_CORRUPT, "%s: zip: %s",
		    member_label(u->za, e->index, label, llen),
		    zip_strerror(u->za)));
	return (UNPACK_OK);
}

/* The next chunk of member ${e} into u->in (*${n} bytes, 0 at its end),
 * unless cancelled or the read fails (libzip checks the CRC at the end). */
static enum unpack_status
read_chunk(struct unpack *u, zip_file_t *zf, const struct entry *e,
    char *label, size_t llen, zip_int64_t *n)
{
	if (cancelled(u))
		return (failf(u, UNPACK_CANCELLED, "cancelled"));
	if ((*n = zip_fread(zf, u->in, UNPACK_IN_SZ)) < 0)
		return (failf(u, UNPACK_CORRUPT, "%s: zip: %s",
		    member_label(u->za, e->index, label, llen),
		    zip_file_strerror(zf)));
	return (UNPACK_OK);
}

/* Stream member ${e} into the current hour's file. */
static enum unpack_status
do_member(struct unpack *u, const struct entry *e)
{
	char label[UNPACK_NAME_SHOWN * 4 + 64];
	enum unpack_status st = UNPACK_OK;
	enum jsonl_status js;
	zip_file_t *zf;
	zip_int64_t n;
	uint64_t mout = 0, cap = 0, start = u->file_bytes;
	int started = 0, ended = 0, need_nl, r;

	if ((st = member_open(u, e, &cap, label, sizeof(label), &zf)) !=
	    UNPACK_OK)
		return (st);
	if (inflateReset(&u->zs) != Z_OK)
		goto gzfail;
	for (;;) {
		if ((st = read_chunk(u, zf, e, label, sizeof(label), &n)) !=
		    UNPACK_OK)
			goto done;
		if (n == 0)
			break;
		u->st.bytes_in += (uint64_t)n;
		if (u->gz && (st = write_raw(u, u->in, (size_t)n)) !=
		    UNPACK_OK)
			goto done;
		u->zs.next_in = u->in;
		u->zs.avail_in = (uInt)n;
		while (u->zs.avail_in > 0) {
			size_t room;

			if (ended) {
				/* Another gzip member follows. */
				if (inflateReset(&u->zs) != Z_OK)
					goto gzfail;
				ended = 0;
			}
			started = 1;
			if (u->used == UNPACK_OUT_SZ &&
			    (st = flush_out(u)) != UNPACK_OK)
				goto done;
			room = UNPACK_OUT_SZ - u->used;
			u->zs.next_out = u->out + u->used;
			u->zs.avail_out = (uInt)room;
			r = inflate(&u->zs, Z_NO_FLUSH);
			if (room > u->zs.avail_out && (st = take(u, e,
			    room - u->zs.avail_out, &mout, cap)) != UNPACK_OK)
				goto done;
			if (r == Z_STREAM_END)
				ended = 1;
			else if (r != Z_OK)
				goto gzfail;
		}
	}
	if (!started || !ended) {
		st = failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
		    member_label(u->za, e->index, label, sizeof(label)),
		    started ? "truncated" : "empty");
		goto done;
	}
	if ((js = jsonl_finish(u->jl, &need_nl)) != JSONL_OK) {
		st = jsonl_fail(u, e, js);
		goto done;
	}
	if (u->gz && mout == 0 && (st = cut_back(u, start)) != UNPACK_OK)
		goto done;
	if (need_nl) {
		if (u->used == UNPACK_OUT_SZ && (st = flush_out(u)) != UNPACK_OK)
			goto done;
		if (u->gz) {
			if ((st = write_raw(u, NL_GZ, sizeof(NL_GZ))) !=
			    UNPACK_OK)
				goto done;
		} else {
			u->out[u->used++] = '\n';
		}
		u->hour_bytes++;
		if (u->lim.max_hour_bytes != 0 &&
		    u->hour_bytes > u->lim.max_hour_bytes) {
			st = failf(u, UNPACK_TOO_BIG,
			    "%s: hour exceeds %llu bytes",
			    member_label(u->za, e->index, label,
			    sizeof(label)),
			    (unsigned long long)u->lim.max_hour_bytes);
			goto done;
		}
	}
	u->st.members++;
done:
	/* zip_fclose reports nothing zip_fread did not already report. */
	(void)zip_fclose(zf);
	return (st);
gzfail:
	st = failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
	    member_label(u->za, e->index, label, sizeof(label)),
	    u->zs.msg != NULL ? u->zs.msg : "inflate failed");
	goto done;
}

/*
 * GZIP_RAW: copy member ${e}'s gzip bytes into the current hour's file
 * without inflating them.  A member whose (last) gzip trailer gives 0 as
 * its length may hold nothing: it is cut off and redone by do_member().
 */
static enum unpack_status
do_member_raw(struct unpack *u, const struct entry *e)
{
	char label[UNPACK_NAME_SHOWN * 4 + 64];
	enum unpack_status st = UNPACK_OK;
	unsigned char head[3] = { 0 }, tail[4] = { 0 };
	uint64_t start = u->file_bytes, total = 0, cap;
	zip_file_t *zf;
	zip_int64_t n;

	if ((st = member_open(u, e, &cap, label, sizeof(label), &zf)) !=
	    UNPACK_OK)
		return (st);
	for (;;) {
		if ((st = read_chunk(u, zf, e, label, sizeof(label), &n)) !=
		    UNPACK_OK)
			goto done;
		if (n == 0)
			break;
		for (size_t i = 0; total + i < sizeof(head) &&
		    i < (size_t)n; i++)
			head[total + i] = u->in[i];
		if ((size_t)n >= sizeof(tail)) {
			memcpy(tail, u->in + (size_t)n - sizeof(tail),
			    sizeof(tail));
		} else {
			size_t k = (size_t)n;

			memmove(tail, tail + k, sizeof(tail) - k);
			memcpy(tail + sizeof(tail) - k, u->in, k);
		}
		total += (uint64_t)n;
		u->st.bytes_in += (uint64_t)n;
		u->hour_bytes += (uint64_t)n;
		if (u->lim.max_hour_bytes != 0 &&
		    u->hour_bytes > u->lim.max_hour_bytes) {
			st = failf(u, UNPACK_TOO_BIG,
			    "%s: hour exceeds %llu bytes",
			    member_label(u->za, e->index, label,
			    sizeof(label)),
			    (unsigned long long)u->lim.max_hour_bytes);
			goto done;
		}
		if ((st = write_raw(u, u->in, (size_t)n)) != UNPACK_OK)
			goto done;
	}
	if (total < GZIP_MIN || head[0] != 0x1f || head[1] != 0x8b ||
	    head[2] != 0x08) {
		st = failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
		    member_label(u->za, e->index, label, sizeof(label)),
		    total == 0 ? "empty" : "not a gzip member");
		goto done;
	}
	if ((tail[0] | tail[1] | tail[2] | tail[3]) == 0) {
		/* Possibly no data: check it the GZIP way. */
		(void)zip_fclose(zf);
		u->st.bytes_in -= total;
		u->hour_bytes -= total;
		if ((st = cut_back(u, start)) != UNPACK_OK)
			return (st);
		return (do_member(u, e));
	}
	u->st.members++;
done:
	(void)zip_fclose(zf);
	return (st);
}

/* Write hour ${k} (its members start at u->ents[*next]) to a temporary. */
static enum unpack_status
do_hour(struct unpack *u, int k, size_t *next)
{
	char eb[128];
	enum unpack_status st;
	amp_hour h = u->first + k;
	uint64_t lines0 = jsonl_lines(u->jl);
	int fd;

	if ((st = open_tmp(u, k)) != UNPACK_OK)
		return (st);
	u->hour_bytes = 0;
	u->file_bytes = 0;
	u->used = 0;
	while (*next < u->nents && u->ents[*next].hour == h) {
		const struct entry *e = &u->ents[*next];

		if ((st = u->fmt == UNPACK_FMT_GZIP_RAW ? do_member_raw(u, e) :
		    do_member(u, e)) != UNPACK_OK)
			goto fail;
		(*next)++;
	}
	if ((st = flush_out(u)) != UNPACK_OK)
		goto fail;
	if (fsync(u->fd) != 0) {
		st = failf(u, UNPACK_IO, "cannot fsync %s: %s", u->fdpath,
		    errstr(errno, eb, sizeof(eb)));
		goto fail;
	}
	fd = u->fd;
	u->fd = -1;
	if (close(fd) != 0)
		return (failf(u, UNPACK_IO, "cannot close %s: %s", u->fdpath,
		    errstr(errno, eb, sizeof(eb))));
	u->st.bytes_out += u->file_bytes;
	u->st.events += jsonl_lines(u->jl) - lines0;
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

/* Remove what a failed call left: temporaries, hours renamed already. */
static void
rollback(struct unpack *u)
{
	char *dst = malloc(u->pathcap);

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
}

/*
 * Unpack the archive ${za} (NULL: opening failed with ${zerr}); always
 * disposes of ${za}.
 */
static enum unpack_status
run(zip_t *za, zip_error_t *zerr, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_limits *limits,
    const atomic_int *cancel, struct unpack_stats *stats, char *err,
    size_t errlen)
{
	struct unpack u = { .za = za, .dir = data_dir, .first = first,
	    .nhours = nhours, .fmt = fmt, .gz = fmt != UNPACK_FMT_JSONL,
	    .cancel = cancel, .fd = -1, .err = err, .errlen = errlen };
	struct timespec ts;
	enum unpack_status st = UNPACK_OK;
	size_t next = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (za == NULL && zip_error_code_zip(zerr) == ZIP_ER_EXISTS) {
		/* libzip refuses a central directory naming one member twice:
		 * a malformed answer, not a truncated one; asking again will
		 * not change it. */
		st = failf(&u, UNPACK_BADNAME, "duplicate member name in the "
		    "zip: %s", zip_error_strerror(zerr));
		goto out;
	}
	if (za == NULL) {
		st = failf(&u, UNPACK_NOT_ZIP, "not a zip: %s",
		    zip_error_strerror(zerr));
		goto out;
	}
	if (limits != NULL)
		u.lim = *limits;
	if (nhours < 1 || first < HOUR_MIN || first > HOUR_MAX - nhours + 1 ||
	    (fmt != UNPACK_FMT_JSONL && fmt != UNPACK_FMT_GZIP &&
	    fmt != UNPACK_FMT_GZIP_RAW)) {
		st = failf(&u, UNPACK_IO, "invalid window or format");
		goto out;
	}
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	u.seq = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
	    (uint64_t)(uintptr_t)&u;
	u.pathcap = strlen(data_dir) + 80;
	if ((u.paths = calloc((size_t)nhours, u.pathcap)) == NULL ||
	    (u.in = malloc(UNPACK_IN_SZ)) == NULL ||
	    (u.out = malloc(UNPACK_OUT_SZ)) == NULL ||
	    (u.jl = jsonl_new(u.lim.max_line)) == NULL) {
		st = failf(&u, UNPACK_IO, "out of memory");
		goto out;
	}
	if (inflateInit2(&u.zs, 15 + 16) != Z_OK) {
		st = failf(&u, UNPACK_IO, "inflateInit2 failed");
		goto out;
	}
	u.zs_ready = 1;
	if ((st = list_members(&u)) != UNPACK_OK)
		goto out;
	for (int k = 0; k < nhours; k++) {
		if (cancelled(&u)) {
			st = failf(&u, UNPACK_CANCELLED, "cancelled");
			goto out;
		}
		if ((st = do_hour(&u, k, &next)) != UNPACK_OK)
			goto out;
	}
	if (cancelled(&u)) {
		st = failf(&u, UNPACK_CANCELLED, "cancelled");
		goto out;
	}
	if ((st = commit(&u)) != UNPACK_OK)
		goto out;
	if (stats != NULL) {
		stats->bytes_in += u.st.bytes_in;
		stats->bytes_out += u.st.bytes_out;
		stats->events += u.st.events;
		stats->members += u.st.members;
		stats->hours_data += u.st.hours_data;
		stats->hours_empty += u.st.hours_empty;
	}
out:
	if (st != UNPACK_OK && u.paths != NULL)
		rollback(&u);
	if (u.zs_ready)
		(void)inflateEnd(&u.zs);
	jsonl_free(u.jl);
	free(u.out);
	free(u.in);
	free(u.paths);
	free(u.ents);
	if (za != NULL)
		zip_discard(za);
	return (st);
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

enum unpack_status
unpack_zip_fmt(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_limits *limits,
    const atomic_int *cancel, struct unpack_stats *stats, char *err,
    size_t errlen)
{
	zip_error_t zerr;
	zip_source_t *src;
	zip_t *za = NULL;
	enum unpack_status st;

	zip_error_init(&zerr);
	if ((src = zip_source_file_create(zip_path, 0, -1, &zerr)) != NULL)
		za = open_source(src, &zerr);
	st = run(za, &zerr, data_dir, first, nhours, fmt, limits, cancel,
	    stats, err, errlen);
	zip_error_fini(&zerr);
	return (st);
}

enum unpack_status
unpack_zip_buffer_fmt(const void *zip, size_t zlen, const char *data_dir,
    amp_hour first, int nhours, enum unpack_format fmt,
    const struct unpack_limits *limits, struct unpack_stats *stats,
    char *err, size_t errlen)
{
	zip_error_t zerr;
	zip_source_t *src = NULL;
	zip_t *za = NULL;
	enum unpack_status st;

	zip_error_init(&zerr);
	if (zlen == 0)
		zip_error_set(&zerr, ZIP_ER_NOZIP, 0);
	else if ((src = zip_source_buffer_create(zip, zlen, 0, &zerr)) != NULL)
		za = open_source(src, &zerr);
	st = run(za, &zerr, data_dir, first, nhours, fmt, limits, NULL, stats,
	    err, errlen);
	zip_error_fini(&zerr);
	return (st);
}

enum unpack_status
unpack_zip(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, const struct unpack_limits *limits, const atomic_int *cancel,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_fmt(zip_path, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, limits, cancel, stats, err, errlen));
}

enum unpack_status
unpack_zip_buffer(const void *zip, size_t zlen, const char *data_dir,
    amp_hour first, int nhours, const struct unpack_limits *limits,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_buffer_fmt(zip, zlen, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, limits, stats, err, errlen));
}
