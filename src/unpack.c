/*
 * unpack: Export API zip -> one file per hour, all or nothing (see
 * unpack.h; unpack_internal.h has the design).
 *
 * This file holds what every call shares: its set-up and end, its error
 * messages, and the commit of the window's hours (now, or deferred to
 * unpack_commit()).  The writer is unpack_member.c, the readers
 * unpack_zip.c and unpack_stream.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomicfile.h"
#include "cancel.h"
#include "errbuf.h"
#include "jsonl.h"
#include "unpack_internal.h"

/* The window's hours, written and verified, not yet committed. */
struct unpack_pending {
	struct afile **files;   /* one per hour of the window */
	int n;
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

enum unpack_status
unpack_failf(struct unpack *u, enum unpack_status st, const char *fmt, ...)
{
	va_list ap;

	if (u->err != NULL && u->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(u->err, u->errlen, fmt, ap);
		va_end(ap);
	}
	return (st);
}

const char *
unpack_label(const struct entry *e, char *buf, size_t len)
{
	char name[UNPACK_NAME_SHOWN * 4 + 4];
	size_t n = e->name != NULL ? strlen(e->name) : 0;

	if (n > UNPACK_NAME_SHOWN) {
		/* Cut after UNPACK_NAME_SHOWN bytes of the name. */
		errbuf_escape(e->name, UNPACK_NAME_SHOWN, name,
		    sizeof(name) - 3);
		strcat(name, "...");
	} else {
		errbuf_escape(e->name != NULL ? e->name : "", n, name,
		    sizeof(name));
	}
	snprintf(buf, len, "member #%llu \"%s\"", (unsigned long long)e->index,
	    name);
	return (buf);
}

/* UNPACK_CANCELLED once the run is cancelled, else UNPACK_OK. */
enum unpack_status
unpack_check_cancel(struct unpack *u)
{
	if (cancel_requested(u->cancel))
		return (unpack_failf(u, UNPACK_CANCELLED, "cancelled"));
	return (UNPACK_OK);
}

/* A name "<digits>/": a directory entry, ignored. */
int
unpack_is_dir_entry(const char *name)
{
	size_t n = strlen(name);

	if (n < 2 || name[n - 1] != '/')
		return (0);
	for (size_t i = 0; i < n - 1; i++)
		if (name[i] < '0' || name[i] > '9')
			return (0);
	return (1);
}

enum unpack_status
unpack_init(struct unpack *u, const char *data_dir, amp_hour first,
    int nhours, enum unpack_format fmt, const struct unpack_opts *opts,
    struct cancel *cancel, char *err, size_t errlen)
{
	*u = (struct unpack){ .dir = data_dir, .first = first,
	    .nhours = nhours, .fmt = fmt, .gz = fmt != UNPACK_FMT_JSONL,
	    .cancel = cancel, .err = err, .errlen = errlen };
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (opts != NULL)
		u->opt = *opts;
	if (nhours < 1 || first < HOUR_MIN || first > HOUR_MAX - nhours + 1 ||
	    (fmt != UNPACK_FMT_JSONL && fmt != UNPACK_FMT_GZIP &&
	    fmt != UNPACK_FMT_GZIP_RAW))
		return (unpack_failf(u, UNPACK_IO, "invalid window or format"));
	if ((u->files = calloc((size_t)nhours, sizeof(*u->files))) == NULL ||
	    (u->in = malloc(UNPACK_IN_SZ)) == NULL ||
	    (u->out = malloc(UNPACK_OUT_SZ)) == NULL ||
	    (u->jl = jsonl_new(u->opt.max_line)) == NULL)
		return (unpack_failf(u, UNPACK_IO, "out of memory"));
	if (inflateInit2(&u->zs, 15 + 16) != Z_OK)
		return (unpack_failf(u, UNPACK_IO, "inflateInit2 failed"));
	u->zs_ready = 1;
	return (UNPACK_OK);
}

/* Remove what a failed call wrote: every hour's temporary. */
static void
rollback(struct unpack *u)
{
	for (int k = 0; k < u->nfiles; k++) {
		afile_abort(u->files[k]);
		u->files[k] = NULL;
	}
	u->nfiles = 0;
	u->cur = NULL;
	memset(&u->st, 0, sizeof(u->st));
}

enum unpack_status
unpack_finish(struct unpack *u, struct unpack_pending **pending)
{
	struct unpack_pending *pp;
	int rc;

	if (pending == NULL) {
		rc = afile_commit_all(u->files, (size_t)u->nfiles, u->err,
		    u->errlen);
		/* The handles are gone, committed or rolled back. */
		memset(u->files, 0, (size_t)u->nhours * sizeof(*u->files));
		u->nfiles = 0;
		return (rc == 0 ? UNPACK_OK : UNPACK_IO);
	}
	if ((pp = calloc(1, sizeof(*pp))) == NULL)
		return (unpack_failf(u, UNPACK_IO, "out of memory"));
	pp->files = u->files;
	pp->n = u->nfiles;
	u->files = NULL; /* owned by pp now */
	u->nfiles = 0;
	*pending = pp;
	return (UNPACK_OK);
}

enum unpack_status
unpack_fini(struct unpack *u, enum unpack_status st,
    struct unpack_stats *stats)
{
	if (st != UNPACK_OK && u->files != NULL)
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
	free(u->files);
	free(u->ents);
	if (u->za != NULL)
		zip_discard(u->za);
	return (st);
}

enum unpack_status
unpack_commit(struct unpack_pending *pp, char *err, size_t errlen)
{
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	rc = afile_commit_all(pp->files, (size_t)pp->n, err, errlen);
	free(pp->files);
	free(pp);
	return (rc == 0 ? UNPACK_OK : UNPACK_IO);
}

void
unpack_discard(struct unpack_pending *pp)
{
	if (pp == NULL)
		return;
	for (int k = 0; k < pp->n; k++)
		afile_abort(pp->files[k]);
	free(pp->files);
	free(pp);
}
