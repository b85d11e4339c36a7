/*
 * unpack_stream: reader 2 — the answer unpacked while it downloads, by
 * libarchive's streaming zip reader, then checked against the complete
 * zip's central directory before the commit (see unpack_internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "cancel.h"
#include "member.h"
#include "unpack_internal.h"

#define STREAM_BUF ((size_t)256 * 1024)

struct stream {
	struct unpack *u;
	const struct unpack_source *src;
	unsigned char *buf;
	int failed;             /* the source reported a failure */
	int eof;                /* the source reported its end */
	struct entry *ents;     /* members as streamed, in order */
	size_t nents, cap;
	uint64_t headers;       /* entries seen, directories included */
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
		if (s->cur >= 0 && (st = unpack_hour_close(s->u)) != UNPACK_OK)
			return (st);
		if ((st = unpack_hour_open(s->u, s->cur + 1)) != UNPACK_OK)
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
			*st = unpack_failf(u, UNPACK_IO, "out of memory");
			return (NULL);
		}
		s->ents = ne;
		s->cap = nc;
	}
	e = &s->ents[s->nents];
	*e = (struct entry){ .hour = mn.hour, .part = mn.part,
	    .index = s->nents, .streamed = 1 };
	if ((e->name = strdup(name)) == NULL) {
		*st = unpack_failf(u, UNPACK_IO, "out of memory");
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
 * The member's bytes libarchive has taken from the zip, at least: what
 * it consumed since the member's data began (${pos0}), plus, for a
 * member it does not inflate (stored), the block ${n} it just handed out
 * and consumes only on the next call.  So never less than what produced
 * the bytes handed out (see unpack_internal.h, "Limits").
 */
static uint64_t
s_zip_in(struct archive *a, la_int64_t pos0, int deflated, size_t n)
{
	la_int64_t pos = archive_filter_bytes(a, 0);
	uint64_t in = pos > pos0 ? (uint64_t)(pos - pos0) : 0;

	return (deflated ? in : in + n);
}

/* 1 if libarchive inflates the current member (its format name says
 * "deflation"); anything else is counted as stored, a looser bound. */
static int
s_deflated(struct archive *a)
{
	const char *f = archive_format_name(a);

	return (f != NULL && strstr(f, "deflat") != NULL);
}

/*
 * Stream the current member ${e} (its header just read) into its hour's
 * file.  UNPACK_OK with *${again} 0: written (its size, CRC and inflated
 * bytes in ${e}); *${again} 1: reader 1 must decide; else a failure of
 * our own.
 */
static enum unpack_status
s_member(struct stream *s, struct archive *a, struct entry *e, int *again)
{
	struct unpack *u = s->u;
	la_int64_t pos0 = archive_filter_bytes(a, 0), off;
	int deflated = s_deflated(a), r;
	enum unpack_status st;
	const void *p;
	struct mem m;
	size_t n;

	*again = 1;
	if ((st = unpack_member_begin(u, &m, e, u->fmt ==
	    UNPACK_FMT_GZIP_RAW)) != UNPACK_OK)
		return (ours(st));
	for (;;) {
		r = archive_read_data_block(a, &p, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK || (uint64_t)off != m.fed)
			return (UNPACK_OK);
		m.zip_in = s_zip_in(a, pos0, deflated, n);
		if ((st = unpack_member_feed(u, &m, p, n)) != UNPACK_OK)
			return (ours(st));
	}
	if ((st = unpack_member_end(u, &m)) != UNPACK_OK)
		return (ours(st));
	if (m.redo)
		return (UNPACK_OK);
	e->size = m.fed;
	e->crc = m.crc;
	e->out = m.mout;
	*again = 0;
	return (UNPACK_OK);
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
	const char *name;
	int r;

	*again = 1;
	for (;;) {
		if ((r = archive_read_next_header(a, &ae)) == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return (UNPACK_OK);
		/* More entries than allowed: reader 1 refuses it. */
		if (u->opt.max_members != 0 &&
		    ++s->headers > u->opt.max_members)
			return (UNPACK_OK);
		if ((name = archive_entry_pathname(ae)) == NULL)
			return (UNPACK_OK);
		if (unpack_is_dir_entry(name)) {
			if (archive_read_data_skip(a) != ARCHIVE_OK)
				return (UNPACK_OK);
			continue;
		}
		if ((e = s_admit(s, name, &st)) == NULL)
			return (st);
		if ((st = s_goto_hour(s, (int)(e->hour - u->first))) !=
		    UNPACK_OK)
			return (st);
		if ((st = s_member(s, a, e, again)) != UNPACK_OK || *again)
			return (st);
		*again = 1;
	}
	if ((st = s_goto_hour(s, u->nhours - 1)) != UNPACK_OK ||
	    (st = unpack_hour_close(u)) != UNPACK_OK)
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
	if (unpack_zip_open(u, zip_path) != UNPACK_OK ||
	    unpack_zip_list(u) != UNPACK_OK || u->nents != s->nents)
		goto out;
	for (size_t i = 0; i < s->nents; i++) {
		const struct entry *z = &u->ents[i], *t = &s->ents[i];
		uint64_t cap;

		/* The ratio as reader 1 holds it: the gzip bytes and the
		 * bytes they inflated to, against the zip's size. */
		if (z->hour != t->hour || z->part != t->part ||
		    strcmp(z->name, t->name) != 0 || z->size != t->size ||
		    z->crc != t->crc ||
		    unpack_ratio_check(u, z, &cap) != UNPACK_OK ||
		    unpack_over_ratio(u, t->out, z->comp_size))
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
    const struct unpack_opts *opts, struct cancel *cancel,
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
	if ((st = unpack_init(&u, data_dir, first, nhours, fmt, opts, cancel,
	    err, errlen)) != UNPACK_OK)
		return (unpack_fini(&u, st, stats));
	u.defer = pending != NULL;
	if ((s.buf = malloc(STREAM_BUF)) == NULL ||
	    (a = archive_read_new()) == NULL) {
		st = unpack_failf(&u, UNPACK_IO, "out of memory");
		goto out;
	}
	(void)archive_read_support_format_zip_streamable(a);
	/* The CRCs are checked against the central directory instead. */
	(void)archive_read_set_format_option(a, "zip", "ignorecrc32", "1");
	if (archive_read_open(a, &s, NULL, s_read, NULL) == ARCHIVE_OK &&
	    (st = s_members(&s, a, &again)) != UNPACK_OK)
		goto out;
	if (s_drain(&s) != 0) {
		if ((st = unpack_check_cancel(&u)) == UNPACK_OK)
			st = unpack_failf(&u, UNPACK_SOURCE, "the transfer "
			    "failed");
		goto out;
	}
	if (again || !s_same(&s, zip_path)) {
		/* Reader 1 decides, from the complete file; what streamed
		 * goes (unpack_fini rolls back whatever is not UNPACK_OK). */
		archive_read_free(a);
		s_free(&s);
		(void)unpack_fini(&u, UNPACK_IO, NULL);
		return (unpack_zip_run(zip_path, data_dir, first, nhours, fmt,
		    opts, cancel, stats, err, errlen, pending));
	}
	if ((st = unpack_check_cancel(&u)) != UNPACK_OK)
		goto out;
	if ((st = unpack_finish(&u, pending)) == UNPACK_OK)
		u.st.streamed = 1;
out:
	if (a != NULL)
		archive_read_free(a);
	s_free(&s);
	return (unpack_fini(&u, st, stats));
}
