#ifndef AMP2S3_UNPACK_H
#define AMP2S3_UNPACK_H
/*
 * unpack: turn one Export API answer (a zip of gzipped JSONL members) into
 * one complete file per hour, all or nothing.
 *
 * The answer is never held in memory: it is read as it arrives
 * (unpack_stream) or from a file on disk (unpack_zip*), and members are
 * inflated in fixed-size chunks, so memory does not grow with the answer.
 * For the window [first, first + nhours) the result is either every
 * hour's file `<data_dir>/YYYY-MM-DD_HH.jsonl` in place (parts
 * concatenated in part order, an hour with no member an empty file) or no
 * file at all: the hours are atomicfile handles, committed together only
 * after every member of the window was read and verified: zip CRCs, gzip
 * CRCs and lengths, one JSON value per line (yajl).  A member name is
 * parsed (member.h), never used as a path.
 *
 * Output formats (enum unpack_format; unpack_zip() is UNPACK_FMT_JSONL):
 *
 *   JSONL     `YYYY-MM-DD_HH.jsonl`: every member inflated and checked as
 *             above; the JSONL written.  A member whose last line lacks
 *             its newline gets one.
 *   GZIP      `YYYY-MM-DD_HH.jsonl.gz` (--gzip): every member inflated and
 *             checked exactly as for JSONL, but the file receives the
 *             members' own gzip bytes, concatenated in part order — no
 *             re-compression.  A file of several gzip members is valid
 *             gzip and decompresses to the concatenation, i.e. to the
 *             bytes JSONL would have written: a member whose last line
 *             lacks its newline is followed by a 21-byte gzip member of
 *             "\n", and the bytes of a member holding no data at all are
 *             dropped, so an hour with no event is an empty (0-byte) file,
 *             never a gzip of nothing.
 *   GZIP_RAW  the same file (--gzip --no-validate), the gzip bytes copied
 *             without inflating: the zip layer is still read through
 *             libzip (zip CRC checked), names and window still parsed
 *             strictly, each member must start like a gzip member
 *             (1f 8b 08) and be at least 18 bytes, and the hour cap
 *             (max_hour_bytes) applies to the gzip bytes.  The gzip CRCs,
 *             the JSON and the newlines are not checked: a member whose
 *             last line lacks its newline runs into the next part's first
 *             line (Amplitude's members end with one).  Only a member
 *             whose gzip trailer says it holds 0 bytes (mod 2^32) is
 *             inflated and checked as in GZIP, so that empty members are
 *             still dropped.  Events are not counted (stats.events
 *             counts only the members that were inflated).
 *
 * Two readers (unpack_internal.h has the details): unpack_zip*() read a
 * complete zip with libzip (unpack_zip.c); unpack_stream() reads the
 * answer while it downloads (libarchive's streaming zip reader,
 * unpack_stream.c), then checks what it wrote against the complete zip's
 * central directory (libzip) before committing, and hands any answer it
 * cannot stream or verify to the libzip reader.  Both commit the same
 * files or fail with the same status.
 *
 * Thread-safety: independent calls may run concurrently in different
 * threads on different windows.  Each call uses its own z_stream, yajl
 * handle and buffers.
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"

struct cancel;

enum unpack_status {
	UNPACK_OK = 0,
	UNPACK_NOT_ZIP,  /* not a zip / truncated: worth retrying the request */
	UNPACK_CORRUPT,  /* CRC, gzip or JSON error in a member: worth a retry */
	UNPACK_BADNAME,  /* unparsable name, hour outside window, duplicate
	                    part, pre-2014-11-12 daily member: not retryable */
	UNPACK_TOO_BIG,  /* a member inflates beyond the limits, or the zip
	                    holds too many members: not retryable */
	UNPACK_IO,       /* writing the data directory failed */
	UNPACK_CANCELLED, /* *cancel became non-zero */
	UNPACK_SOURCE    /* unpack_stream: the source failed (the caller
	                    knows why) */
};

struct unpack_opts {
	uint64_t max_hour_bytes; /* inflated bytes per hour; 0 = no cap */
	uint64_t max_ratio;      /* a member's inflated (and gzip) bytes per
	                            byte it takes in the zip; 0 = none */
	size_t max_line;         /* longest JSON line accepted; 0 = none */
	uint64_t max_members;    /* entries in one zip; 0 = none */
	/* 0: drop each hour's pages from the page cache once its fsync
	 * succeeded (the data directory is a spool: a file is read again at
	 * most once, by an upload that may come much later); 1: keep them
	 * (an upload reads them next). */
	int keep_cache;
	unsigned file_mode;      /* hour files; 0 = 0600 (less the umask) */
};

enum unpack_format {
	UNPACK_FMT_JSONL = 0, /* .jsonl, inflated and validated */
	UNPACK_FMT_GZIP,      /* .jsonl.gz, validated, gzip bytes as served */
	UNPACK_FMT_GZIP_RAW   /* .jsonl.gz, gzip bytes copied, not inflated */
};

struct unpack_stats {
	uint64_t bytes_in;    /* compressed (gzip) bytes read from members */
	uint64_t bytes_out;   /* bytes written to hour files (JSONL or gzip) */
	uint64_t events;      /* lines written */
	uint32_t members;
	uint32_t hours_data;  /* hours with at least one event */
	uint32_t hours_empty; /* hours written empty */
	uint32_t streamed;    /* answers committed by unpack_stream itself
	                         (not read again by libzip) */
};

/*
 * unpack_zip(zip_path, data_dir, first, nhours, opts, cancel, stats, err,
 * errlen): unpack the zip at ${zip_path} into ${data_dir} for the window
 * [${first}, ${first} + ${nhours}).  ${opts} may be NULL (no caps,
 * pages dropped); ${cancel} may be NULL, else it is polled between
 * chunks.  On success returns UNPACK_OK and adds to *${stats} (may be
 * NULL).  On failure, returns the status, leaves no temporary and no hour
 * file of the window behind that was not there before, and puts a
 * one-line reason naming the member in ${err}.
 */
enum unpack_status unpack_zip(const char *zip_path, const char *data_dir,
    amp_hour first, int nhours, const struct unpack_opts *opts,
    struct cancel *cancel, struct unpack_stats *stats, char *err,
    size_t errlen);

/* unpack_zip_buffer(...): the same on an in-memory zip (tests, fuzzing). */
enum unpack_status unpack_zip_buffer(const void *zip, size_t zlen,
    const char *data_dir, amp_hour first, int nhours,
    const struct unpack_opts *opts, struct unpack_stats *stats,
    char *err, size_t errlen);

/*
 * unpack_zip_buffer_fmt(..., fmt, ...): the same, writing hour files of
 * the format ${fmt} (JSONL: exactly unpack_zip_buffer).
 */
enum unpack_status unpack_zip_buffer_fmt(const void *zip, size_t zlen,
    const char *data_dir, amp_hour first, int nhours,
    enum unpack_format fmt, const struct unpack_opts *opts,
    struct unpack_stats *stats, char *err, size_t errlen);

/*
 * The answer for unpack_stream, as it arrives: read(ctx, buf, len) blocks
 * until it can return 1..${len} new bytes, returns 0 at the end of a
 * complete answer, or -1 if the transfer failed.
 */
struct unpack_source {
	long (*read)(void *ctx, void *buf, size_t len);
	void *ctx;
};

/*
 * unpack_stream(src, zip_path, data_dir, first, nhours, fmt, opts,
 * cancel, stats, err, errlen): unpack_zip() in the format ${fmt} for an
 * answer still arriving through ${src}, whose bytes the caller also
 * stores, in order, in the file ${zip_path}: the file must be complete
 * once ${src} has returned 0.  The source is read to its end unless the
 * call fails first (I/O, cancel; the caller then stops the transfer).
 * Returns what the libzip reader would return for the complete file, or
 * UNPACK_SOURCE
 * (nothing written) if ${src} returned -1, or UNPACK_CANCELLED.
 * stats->streamed counts the answer if it was not read a second time.
 * ${pending}: NULL (commit before returning), or see below.
 */
struct unpack_pending;
enum unpack_status unpack_stream(const struct unpack_source *src,
    const char *zip_path, const char *data_dir, amp_hour first, int nhours,
    enum unpack_format fmt, const struct unpack_opts *opts,
    struct cancel *cancel, struct unpack_stats *stats, char *err,
    size_t errlen, struct unpack_pending **pending);

/*
 * Deferred commit.  Given ${pending} (not NULL), a successful
 * unpack_stream() stops short of the commit: every hour of the window is
 * written and verified under its temporary name (an atomicfile handle),
 * none is renamed, the last is not fsynced yet, and *${pending} holds the
 * handles (else it is set to NULL).  Exactly one of these must follow,
 * from any thread:
 *
 * unpack_commit(pp, err, errlen): afile_commit_all() of the window's
 * hours (the last one's fsync, the renames, the directory fsync) — the
 * same all-or-nothing commit an undeferred call makes.  UNPACK_OK, or
 * UNPACK_IO with no hour file of the window left (and a one-line reason
 * in ${err}).  Frees ${pp}.
 *
 * unpack_discard(pp): remove the temporaries, free ${pp} (NULL: no-op).
 */
enum unpack_status unpack_commit(struct unpack_pending *pp, char *err,
    size_t errlen);
void unpack_discard(struct unpack_pending *pp);

/* unpack_status_name(s): "ok", "not-zip", ... */
const char *unpack_status_name(enum unpack_status s);

#endif
