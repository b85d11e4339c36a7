/*
 * unpack_member: the writer — members inflated, checked and written into
 * the window's hour files (see unpack_internal.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "atomicfile.h"
#include "jsonl.h"
#include "localdir.h"
#include "unpack_internal.h"

#define GZIP_MIN 18            /* header 10 + empty deflate 0..+ trailer 8 */

/* A gzip member holding "\n" (zlib, mtime 0): appended in GZIP format
 * where a member's last line lacks its newline. */
static const unsigned char NL_GZ[] = {
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03,
	0xe3, 0x02, 0x00, 0x93, 0x06, 0xd7, 0x32, 0x01, 0x00, 0x00, 0x00
};

/* ${a} * ${b}, saturating. */
static uint64_t
mul_sat(uint64_t a, uint64_t b)
{
	return (b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b);
}

int
unpack_over_ratio(const struct unpack *u, uint64_t n, uint64_t comp)
{
	return (u->opt.max_ratio != 0 && n > mul_sat(comp > 0 ? comp : 1,
	    u->opt.max_ratio));
}

static enum unpack_status
ratio_fail(struct unpack *u, const struct entry *e)
{
	char label[LABEL_MAX];

	return (unpack_failf(u, UNPACK_TOO_BIG, "%s: inflates beyond %llu "
	    "times its size", LABEL(e, label),
	    (unsigned long long)u->opt.max_ratio));
}

enum unpack_status
unpack_ratio_check(struct unpack *u, const struct entry *e, uint64_t *cap)
{
	*cap = 0;
	if (u->opt.max_ratio == 0)
		return (UNPACK_OK);
	*cap = mul_sat(e->comp_size > 0 ? e->comp_size : 1, u->opt.max_ratio);
	if (e->size > *cap)
		return (ratio_fail(u, e));
	return (UNPACK_OK);
}

/* Write the ${n} bytes at ${p} to the current hour's file. */
static enum unpack_status
write_raw(struct unpack *u, const void *p, size_t n)
{
	if (afile_write(u->cur, p, n, u->err, u->errlen) != 0)
		return (UNPACK_IO);
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
	return (unpack_failf(u, st, "%s: %s", LABEL(e, label),
	    jsonl_error(u->jl)));
}

static enum unpack_status
hour_cap_fail(struct unpack *u, const struct entry *e)
{
	char label[LABEL_MAX];

	return (unpack_failf(u, UNPACK_TOO_BIG, "%s: hour exceeds %llu bytes",
	    LABEL(e, label), (unsigned long long)u->opt.max_hour_bytes));
}

/* Account for the ${n} bytes just inflated at the end of u->out. */
static enum unpack_status
take(struct unpack *u, struct mem *m, size_t n)
{
	enum jsonl_status js;

	m->mout += n;
	u->hour_bytes += n;
	if (m->cap_running ? unpack_over_ratio(u, m->mout, m->zip_in) :
	    m->cap != 0 && m->mout > m->cap)
		return (ratio_fail(u, m->e));
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
 * known, else it grows with m->zip_in, which the streaming reader keeps
 * up to date before each feed.
 */
enum unpack_status
unpack_member_begin(struct unpack *u, struct mem *m, const struct entry *e,
    int raw)
{
	char label[LABEL_MAX];
	enum unpack_status st;

	*m = (struct mem){ .e = e, .raw = raw, .start = afile_size(u->cur) };
	if (!e->streamed || u->opt.max_ratio == 0) {
		if ((st = unpack_ratio_check(u, e, &m->cap)) != UNPACK_OK)
			return (st);
	} else {
		m->cap_running = 1;
	}
	if (!raw && inflateReset(&u->zs) != Z_OK)
		return (unpack_failf(u, UNPACK_CORRUPT, "%s: gzip: inflateReset",
		    LABEL(e, label)));
	return (UNPACK_OK);
}

/* GZIP_RAW: keep the member's first bytes (magic) and last four (ISIZE),
 * then copy the ${n} bytes at ${b}. */
static enum unpack_status
feed_raw(struct unpack *u, struct mem *m, const unsigned char *b, size_t n)
{
	for (size_t i = 0; m->fed - n + i < sizeof(m->head) && i < n; i++)
		m->head[m->fed - n + i] = b[i];
	if (n >= sizeof(m->tail)) {
		memcpy(m->tail, b + n - sizeof(m->tail), sizeof(m->tail));
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

/* Push the next ${n} gzip bytes of the member. */
enum unpack_status
unpack_member_feed(struct unpack *u, struct mem *m, const void *p, size_t n)
{
	char label[LABEL_MAX];
	const unsigned char *b = p;
	enum unpack_status st;
	int r;

	if ((st = unpack_check_cancel(u)) != UNPACK_OK)
		return (st);
	if (n == 0)
		return (UNPACK_OK);
	m->crc = (uint32_t)crc32(m->crc, b, (uInt)n);
	m->fed += n;
	u->st.bytes_in += n;
	/* The gzip bytes are held to the ratio as reader 1 holds e->size. */
	if (m->cap_running && unpack_over_ratio(u, m->fed, m->zip_in))
		return (ratio_fail(u, m->e));
	if (m->raw)
		return (feed_raw(u, m, b, n));
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
	return (unpack_failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
	    LABEL(m->e, label), u->zs.msg != NULL ? u->zs.msg :
	    "inflate failed"));
}

/* GZIP_RAW: the member's end; m->redo set if it may hold nothing. */
static enum unpack_status
end_raw(struct unpack *u, struct mem *m)
{
	char label[LABEL_MAX];

	if (m->fed < GZIP_MIN || m->head[0] != 0x1f || m->head[1] != 0x8b ||
	    m->head[2] != 0x08)
		return (unpack_failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
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

/* End the member: final checks; m->redo set for a raw member to redo. */
enum unpack_status
unpack_member_end(struct unpack *u, struct mem *m)
{
	char label[LABEL_MAX];
	enum unpack_status st;
	enum jsonl_status js;
	int need_nl;

	if (m->raw)
		return (end_raw(u, m));
	if (!m->started || !m->ended)
		return (unpack_failf(u, UNPACK_CORRUPT, "%s: gzip: %s",
		    LABEL(m->e, label), m->started ? "truncated" : "empty"));
	if ((js = jsonl_finish(u->jl, &need_nl)) != JSONL_OK)
		return (jsonl_fail(u, m->e, js));
	if (u->gz && m->mout == 0 && afile_truncate(u->cur, m->start, u->err,
	    u->errlen) != 0)
		return (UNPACK_IO);
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

/* Undo a raw member that unpack_member_end() marked for redoing. */
enum unpack_status
unpack_member_undo(struct unpack *u, struct mem *m)
{
	u->st.bytes_in -= m->fed;
	u->hour_bytes -= m->fed;
	if (afile_truncate(u->cur, m->start, u->err, u->errlen) != 0)
		return (UNPACK_IO);
	return (UNPACK_OK);
}

/* Begin hour ${k} of the window: its file is the current file. */
enum unpack_status
unpack_hour_open(struct unpack *u, int k)
{
	char path[4096];

	if (localdir_path(u->dir, u->gz, u->first + k, path, sizeof(path)))
		return (unpack_failf(u, UNPACK_IO, "path too long in %s",
		    u->dir));
	if ((u->cur = afile_create(path, u->opt.file_mode != 0 ?
	    u->opt.file_mode : 0600, AFILE_WRITEBACK |
	    (u->opt.keep_cache ? 0 : AFILE_DROP_CACHE), u->err,
	    u->errlen)) == NULL)
		return (UNPACK_IO);
	u->files[k] = u->cur;
	u->nfiles = k + 1;
	u->hour_bytes = 0;
	u->used = 0;
	u->lines0 = jsonl_lines(u->jl);
	return (UNPACK_OK);
}

/*
 * End the current hour: flush, close (fsynced now, but for the window's
 * last hour of a deferred commit: its fsync comes with the commit, so the
 * hours before it are synced as they close, spread over the download, and
 * the commit does not wait for them all at once), count.
 */
enum unpack_status
unpack_hour_close(struct unpack *u)
{
	enum unpack_status st;
	struct afile *f = u->cur;
	int last = u->defer && u->nfiles == u->nhours;

	st = flush_out(u);
	u->cur = NULL;
	if (st != UNPACK_OK)
		return (st);
	if (afile_close(f, !last, u->err, u->errlen) != 0)
		return (UNPACK_IO);
	u->st.bytes_out += afile_size(f);
	u->st.events += jsonl_lines(u->jl) - u->lines0;
	if (afile_size(f) > 0)
		u->st.hours_data++;
	else
		u->st.hours_empty++;
	return (UNPACK_OK);
}
