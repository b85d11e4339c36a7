/*
 * unpack_zip: reader 1 — a complete zip read with libzip, whose verdict
 * on an answer is final (see unpack_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomicfile.h"
#include "member.h"
#include "unpack_internal.h"

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

/* The entry of zip index ${i} (stat ${sb}) into *${e}: checked name,
 * hour inside the window, sizes known.  UNPACK_OK or the failure. */
static enum unpack_status
read_entry(struct unpack *u, zip_uint64_t i, const zip_stat_t *sb,
    struct entry *e)
{
	char label[LABEL_MAX];
	struct member_name mn;

	*e = (struct entry){ .index = i, .name = sb->name };
	if (member_parse(sb->name, strlen(sb->name), &mn) != 0)
		return (unpack_failf(u, UNPACK_BADNAME, "%s: unexpected name",
		    LABEL(e, label)));
	if (mn.hour < u->first || mn.hour - u->first >= u->nhours)
		return (unpack_failf(u, UNPACK_BADNAME,
		    "%s: hour outside the requested window", LABEL(e, label)));
	if ((sb->valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_CRC)) !=
	    (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_CRC))
		return (unpack_failf(u, UNPACK_CORRUPT, "%s: sizes unknown",
		    LABEL(e, label)));
	e->hour = mn.hour;
	e->part = mn.part;
	e->size = sb->size;
	e->comp_size = sb->comp_size;
	e->crc = sb->crc;
	return (UNPACK_OK);
}

static enum unpack_status
too_many(struct unpack *u, uint64_t n)
{
	return (unpack_failf(u, UNPACK_TOO_BIG, "zip: %llu members, more than "
	    "%llu", (unsigned long long)n,
	    (unsigned long long)u->opt.max_members));
}

/* List, check and sort the data members of the open zip (u->za). */
enum unpack_status
unpack_zip_list(struct unpack *u)
{
	char label[LABEL_MAX];
	enum unpack_status st;
	zip_int64_t n;
	zip_stat_t sb;

	if ((n = zip_get_num_entries(u->za, 0)) < 0)
		return (unpack_failf(u, UNPACK_NOT_ZIP,
		    "zip: no central directory"));
	if (u->opt.max_members != 0 && (uint64_t)n > u->opt.max_members)
		return (too_many(u, (uint64_t)n));
	if (n > 0 && (u->ents = calloc((size_t)n, sizeof(*u->ents))) == NULL)
		return (unpack_failf(u, UNPACK_IO, "zip: out of memory"));
	for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
		zip_stat_init(&sb);
		if (zip_stat_index(u->za, i, ZIP_FL_ENC_RAW, &sb) != 0 ||
		    (sb.valid & ZIP_STAT_NAME) == 0)
			return (unpack_failf(u, UNPACK_NOT_ZIP,
			    "zip: entry #%llu: %s", (unsigned long long)i,
			    zip_strerror(u->za)));
		if (unpack_is_dir_entry(sb.name))
			continue;
		if ((st = read_entry(u, i, &sb, &u->ents[u->nents])) !=
		    UNPACK_OK)
			return (st);
		u->nents++;
	}
	if (u->nents > 1)
		qsort(u->ents, u->nents, sizeof(*u->ents), entry_cmp);
	for (size_t i = 1; i < u->nents; i++) {
		if (entry_cmp(&u->ents[i - 1], &u->ents[i]) == 0)
			return (unpack_failf(u, UNPACK_BADNAME,
			    "%s: duplicate part", LABEL(&u->ents[i], label)));
	}
	return (UNPACK_OK);
}

/* Stream member ${e} into the current hour's file. */
static enum unpack_status
do_member(struct unpack *u, const struct entry *e, int raw)
{
	char label[LABEL_MAX];
	enum unpack_status st;
	struct mem m;
	zip_file_t *zf;
	zip_int64_t n;

	if ((st = unpack_member_begin(u, &m, e, raw)) != UNPACK_OK)
		return (st);
	if ((zf = zip_fopen_index(u->za, e->index, 0)) == NULL)
		return (unpack_failf(u, UNPACK_CORRUPT, "%s: zip: %s",
		    LABEL(e, label), zip_strerror(u->za)));
	for (;;) {
		if ((n = zip_fread(zf, u->in, UNPACK_IN_SZ)) < 0) {
			st = unpack_failf(u, UNPACK_CORRUPT, "%s: zip: %s",
			    LABEL(e, label), zip_file_strerror(zf));
			break;
		}
		if (n == 0) {
			st = unpack_member_end(u, &m);
			break;
		}
		if ((st = unpack_member_feed(u, &m, u->in, (size_t)n)) !=
		    UNPACK_OK)
			break;
	}
	/* zip_fclose reports nothing zip_fread did not already report. */
	(void)zip_fclose(zf);
	if (st == UNPACK_OK && m.redo) {
		if ((st = unpack_member_undo(u, &m)) != UNPACK_OK)
			return (st);
		return (do_member(u, e, 0));
	}
	return (st);
}

/* Write hour ${k} (its members start at u->ents[*next]). */
static enum unpack_status
do_hour(struct unpack *u, int k, size_t *next)
{
	enum unpack_status st;
	amp_hour h = u->first + k;

	if ((st = unpack_hour_open(u, k)) != UNPACK_OK)
		return (st);
	while (*next < u->nents && u->ents[*next].hour == h) {
		if ((st = do_member(u, &u->ents[*next],
		    u->fmt == UNPACK_FMT_GZIP_RAW)) != UNPACK_OK)
			return (st);
		(*next)++;
	}
	return (unpack_hour_close(u));
}

/* Unpack the open zip u->za (after unpack_init). */
static enum unpack_status
zip_all(struct unpack *u, struct unpack_pending **pending)
{
	enum unpack_status st;
	size_t next = 0;

	if ((st = unpack_zip_list(u)) != UNPACK_OK)
		return (st);
	for (int k = 0; k < u->nhours; k++) {
		if ((st = unpack_check_cancel(u)) != UNPACK_OK ||
		    (st = do_hour(u, k, &next)) != UNPACK_OK)
			return (st);
	}
	if ((st = unpack_check_cancel(u)) != UNPACK_OK)
		return (st);
	return (unpack_finish(u, pending));
}

/* Map a failed zip open (libzip's ${zerr}). */
static enum unpack_status
open_fail(struct unpack *u, zip_error_t *zerr)
{
	if (zip_error_code_zip(zerr) == ZIP_ER_EXISTS)
		/* libzip refuses a central directory naming one member twice:
		 * a malformed answer, not a truncated one; asking again will
		 * not change it. */
		return (unpack_failf(u, UNPACK_BADNAME, "duplicate member name "
		    "in the zip: %s", zip_error_strerror(zerr)));
	return (unpack_failf(u, UNPACK_NOT_ZIP, "not a zip: %s",
	    zip_error_strerror(zerr)));
}

#define EOCD_LEN 22             /* end of central directory record */
#define Z64_LOCATOR_LEN 20      /* zip64 end of central directory locator */
#define Z64_EOCD_LEN 56         /* zip64 end of central directory record */
#define EOCD_SEARCH (EOCD_LEN + 0xffff + Z64_LOCATOR_LEN)

/* The ${n}-byte little-endian number at ${p}. */
static uint64_t
le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return (v);
}

/* ${n} bytes at ${off} of the open source ${src} into ${buf}.  0 or -1. */
static int
src_pread(zip_source_t *src, uint64_t off, unsigned char *buf, size_t n)
{
	zip_int64_t r;
	size_t got = 0;

	if (zip_source_seek(src, (zip_int64_t)off, SEEK_SET) != 0)
		return (-1);
	while (got < n) {
		if ((r = zip_source_read(src, buf + got, n - got)) <= 0)
			return (-1);
		got += (size_t)r;
	}
	return (0);
}

/*
 * The number of entries the end records of the zip in ${src} (${size}
 * bytes) claim: those of the last end of central directory record whose
 * comment ends the file, or of the zip64 record its locator points to.
 * 0 if there is none to read (libzip then says what is wrong).  Read
 * before libzip loads the central directory, which costs memory for
 * every entry it claims.
 */
static uint64_t
claimed_entries(zip_source_t *src, uint64_t size)
{
	size_t len = size < EOCD_SEARCH ? (size_t)size : EOCD_SEARCH, i;
	unsigned char *t, z64[Z64_EOCD_LEN];
	uint64_t n = 0;

	if (len < EOCD_LEN || (t = malloc(len)) == NULL)
		return (0);
	if (zip_source_open(src) != 0) {
		free(t);
		return (0);
	}
	if (src_pread(src, size - len, t, len) != 0)
		goto out;
	for (i = len - EOCD_LEN + 1; i-- > 0;)
		if (memcmp(t + i, "PK\5\6", 4) == 0 &&
		    i + EOCD_LEN + le(t + i + 20, 2) == len)
			break;
	if (i == (size_t)-1)
		goto out;
	n = le(t + i + 10, 2);
	if (i >= Z64_LOCATOR_LEN && memcmp(t + i - Z64_LOCATOR_LEN,
	    "PK\6\7", 4) == 0 && src_pread(src, le(t + i - Z64_LOCATOR_LEN +
	    8, 8), z64, sizeof(z64)) == 0 && memcmp(z64, "PK\6\6", 4) == 0)
		n = le(z64 + 32, 8);
out:
	(void)zip_source_close(src);
	free(t);
	return (n);
}

/*
 * Open ${src} as a zip into u->za (consumes ${src}).  UNPACK_OK; else
 * the failure (libzip's in ${zerr}, or too many members).
 */
static enum unpack_status
open_source(struct unpack *u, zip_source_t *src, zip_error_t *zerr)
{
	zip_stat_t sb;
	uint64_t n;

	/* An empty body is no answer, even if libzip opens it as empty. */
	zip_stat_init(&sb);
	if (zip_source_stat(src, &sb) != 0 ||
	    ((sb.valid & ZIP_STAT_SIZE) && sb.size == 0)) {
		zip_error_set(zerr, ZIP_ER_NOZIP, 0);
		zip_source_free(src);
		return (open_fail(u, zerr));
	}
	if (u->opt.max_members != 0 && (sb.valid & ZIP_STAT_SIZE) &&
	    (n = claimed_entries(src, sb.size)) > u->opt.max_members) {
		zip_source_free(src);
		return (too_many(u, n));
	}
	if ((u->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS,
	    zerr)) == NULL) {
		zip_source_free(src);
		return (open_fail(u, zerr));
	}
	return (UNPACK_OK);
}

/* Open the zip file at ${path} into u->za; UNPACK_OK or the failure. */
enum unpack_status
unpack_zip_open(struct unpack *u, const char *path)
{
	zip_error_t zerr;
	zip_source_t *src;
	enum unpack_status st;

	zip_error_init(&zerr);
	if ((src = zip_source_file_create(path, 0, -1, &zerr)) == NULL)
		st = open_fail(u, &zerr);
	else
		st = open_source(u, src, &zerr);
	zip_error_fini(&zerr);
	return (st);
}

enum unpack_status
unpack_zip_run(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_opts *opts,
    struct cancel *cancel, struct unpack_stats *stats, char *err,
    size_t errlen, struct unpack_pending **pending)
{
	struct unpack u;
	enum unpack_status st;

	if ((st = unpack_init(&u, data_dir, first, nhours, fmt, opts, cancel,
	    err, errlen)) == UNPACK_OK && (st = unpack_zip_open(&u,
	    zip_path)) == UNPACK_OK) {
		u.defer = pending != NULL;
		st = zip_all(&u, pending);
	}
	return (unpack_fini(&u, st, stats));
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

	if ((st = unpack_init(&u, data_dir, first, nhours, fmt, opts, NULL,
	    err, errlen)) != UNPACK_OK)
		return (unpack_fini(&u, st, stats));
	zip_error_init(&zerr);
	if (zlen == 0) {
		zip_error_set(&zerr, ZIP_ER_NOZIP, 0);
		st = open_fail(&u, &zerr);
	} else if ((src = zip_source_buffer_create(zip, zlen, 0, &zerr)) ==
	    NULL) {
		st = open_fail(&u, &zerr);
	} else if ((st = open_source(&u, src, &zerr)) == UNPACK_OK) {
		st = zip_all(&u, NULL);
	}
	zip_error_fini(&zerr);
	return (unpack_fini(&u, st, stats));
}

enum unpack_status
unpack_zip(const char *zip_path, const char *data_dir, amp_hour first,
    int nhours, const struct unpack_opts *opts, struct cancel *cancel,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_run(zip_path, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, opts, cancel, stats, err, errlen, NULL));
}

enum unpack_status
unpack_zip_buffer(const void *zip, size_t zlen, const char *data_dir,
    amp_hour first, int nhours, const struct unpack_opts *opts,
    struct unpack_stats *stats, char *err, size_t errlen)
{
	return (unpack_zip_buffer_fmt(zip, zlen, data_dir, first, nhours,
	    UNPACK_FMT_JSONL, opts, stats, err, errlen));
}
