/*
 * unpack_zip: reader 1 — a complete zip read with libzip, whose verdict
 * on an answer is final (see unpack_internal.h).
 */
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
enum unpack_status
unpack_zip_open(struct unpack *u, const char *path)
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
	if (zlen == 0)
		zip_error_set(&zerr, ZIP_ER_NOZIP, 0);
	else if ((src = zip_source_buffer_create(zip, zlen, 0, &zerr)) != NULL)
		u.za = open_source(src, &zerr);
	st = u.za == NULL ? open_fail(&u, &zerr) : zip_all(&u, NULL);
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
