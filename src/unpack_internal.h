#ifndef AMP2S3_UNPACK_INTERNAL_H
#define AMP2S3_UNPACK_INTERNAL_H
/*
 * unpack_internal: what the files of the unpack module share (see
 * unpack.h for the contract).  Not for other modules.
 *
 * Two readers feed one writer.
 *
 * The writer (unpack_member.c: hour_open / m_begin, m_feed, m_end /
 * hour_close): for each hour of the window an atomicfile handle is
 * created and the hour's members are pushed into it chunk by chunk:
 * inflate (gzip, several concatenated gzip members allowed, each must
 * reach Z_STREAM_END) -> the output buffer, where jsonl checks the new
 * bytes in place -> afile_write() when the buffer is full.  Two fixed
 * 256 KiB buffers per call; nothing grows with the size of a member or of
 * the zip.  atomicfile starts the writeback every few MiB, so the fsync
 * that ends the hour waits for little, and drops the pages once fsynced
 * unless opts->keep_cache.  Only when every hour is written are the
 * handles committed together (unpack.c: finish); any failure aborts every
 * handle (rollback).
 *
 * Reader 1, libzip (unpack_zip.c): opens the whole zip (ZIP_CHECKCONS:
 * central directory checked against the local headers), lists every entry
 * with zip_stat_index and parses its raw name with member_parse; a name
 * that does not parse, an hour outside the window or a duplicate (hour,
 * part) fails the whole window before any byte is inflated.  Entries
 * named exactly "<digits>/" (directories) are skipped.  Entries are sorted
 * by (hour, part) and read with zip_fread (libzip checks the CRC).
 *
 * Reader 2, streaming (unpack_stream.c): libarchive's streaming zip
 * reader takes the answer from the caller's read callback while it
 * downloads, so the members are inflated and written as their bytes
 * arrive.  It trusts nothing it cannot check later: it accepts members
 * only in strictly increasing (hour, part) order, keeps each member's
 * name, size and CRC-32 (computed here), and once the answer is complete
 * opens the same bytes (the caller's copy on disk) with libzip and
 * requires its central directory to list exactly those members with
 * those sizes and CRCs.  Only then are the hours committed.  Anything
 * else — an order it cannot stream, a name it would reject, a libarchive
 * error, a mismatch, a bad member — drops what it wrote and hands the
 * finished file to reader 1, whose verdict is final.  So both readers
 * commit the same bytes or the same error; the streaming one is only
 * faster.
 *
 * Limits (unpack_opts): inflated bytes per hour; line length; members
 * per answer (reader 1 counts the entries the zip's end records claim
 * before libzip reads its central directory, so no reader's memory grows
 * beyond the bound); and inflation counted across both layers: a
 * member's inflated bytes, and its gzip bytes too (a zip-level bomb of
 * empty deflate blocks), against ratio * its compressed bytes in the
 * zip.  Reader 1 knows those from the central directory before the
 * first byte is inflated.  The streaming reader only sees the zip bytes
 * as they arrive: it holds the member to ratio * the bytes libarchive
 * has taken from the zip for it so far (struct mem's zip_in, never less
 * than what produced the data inflated), a running bound that can only
 * trip early, never late; when it trips, the streaming reader stops
 * writing and hands the answer to reader 1, whose verdict is final; and
 * before a commit it checks each member's inflated total against the
 * central directory's compressed size, exactly as reader 1 would.  So
 * the streaming reader never commits what reader 1 would refuse.

 * Formats (unpack.h): JSONL writes the inflated bytes.  GZIP runs the same
 * inflate + jsonl pass but only to check: the output buffer is discarded
 * when full, and each chunk (the member's own gzip bytes) is written to
 * the file instead; a member that inflated to nothing is cut off again
 * (afile_truncate to where it began), a missing last newline becomes an
 * extra gzip member of "\n".  GZIP_RAW skips inflate: chunks go straight
 * to the file; the first bytes (gzip magic) and the last four (ISIZE) are
 * kept, and a member whose ISIZE is 0 is cut off and redone the GZIP way
 * (reader 1; the streaming reader hands such an answer to reader 1).
 *
 * Errors name the member by zip index (streaming: position in the answer)
 * and by its name, escaped (errbuf_escape).  No state outside the call:
 * one z_stream, one jsonl handle and one pair of buffers per call.
 */
#include <stddef.h>
#include <stdint.h>

#include <zip.h>
#include <zlib.h>

#include "hour.h"
#include "unpack.h"

struct afile;
struct jsonl;

#define UNPACK_IN_SZ ((size_t)256 * 1024)
#define UNPACK_OUT_SZ ((size_t)256 * 1024)
#define UNPACK_NAME_SHOWN 96   /* bytes of a member name shown in errors */

/* A member of the answer. */
struct entry {
	amp_hour hour;
	uint64_t part;
	uint64_t index;         /* zip index, or position in the stream */
	const char *name;       /* raw name (libzip's, or owned: stream) */
	uint64_t size;          /* gzip bytes */
	uint64_t comp_size;     /* bytes in the zip; 0: not known (stream) */
	uint32_t crc;           /* CRC-32 of the gzip bytes */
	int streamed;           /* read while downloading: zip sizes unknown */
	uint64_t out;           /* streamed: bytes it inflated to */
};

/* The member being written. */
struct mem {
	const struct entry *e;
	int raw;                /* GZIP_RAW: copy, do not inflate */
	uint64_t cap;           /* inflated bytes allowed (0: none) */
	int cap_running;        /* cap = ratio * zip_in, zip_in growing */
	uint64_t zip_in;        /* streamed: the member's bytes taken from the
	                           zip so far, at least what made ${fed} */
	uint64_t fed;           /* gzip bytes pushed */
	uint64_t mout;          /* bytes inflated */
	uint64_t start;         /* file offset where the member began */
	int started, ended;
	int redo;               /* GZIP_RAW member that may hold nothing */
	unsigned char head[3], tail[4];
	uint32_t crc;
};

/* One call: the window, its readers' state and the writer's. */
struct unpack {
	const char *dir;
	amp_hour first;
	int nhours;
	enum unpack_format fmt;
	int gz;                 /* fmt is GZIP or GZIP_RAW */
	struct unpack_opts opt;
	struct cancel *cancel;
	int defer;              /* leave the commit to unpack_commit() */

	zip_t *za;
	struct entry *ents;     /* libzip: the zip's members, sorted */
	size_t nents;

	struct afile **files;   /* nhours handles; hours [0, nfiles) begun */
	int nfiles;
	struct afile *cur;      /* the hour being written, or NULL */

	unsigned char *in;
	unsigned char *out;
	size_t used;            /* bytes in out not yet written */
	z_stream zs;
	int zs_ready;
	struct jsonl *jl;

	uint64_t hour_bytes;    /* JSONL bytes of the hour (GZIP_RAW: gzip) */
	uint64_t lines0;        /* jsonl lines when the hour began */

	struct unpack_stats st;
	char *err;
	size_t errlen;
};

/* unpack.c: a call's set-up, errors, commit and end. */
enum unpack_status unpack_init(struct unpack *u, const char *data_dir,
    amp_hour first, int nhours, enum unpack_format fmt,
    const struct unpack_opts *opts, struct cancel *cancel, char *err,
    size_t errlen);
enum unpack_status unpack_fini(struct unpack *u, enum unpack_status st,
    struct unpack_stats *stats);
enum unpack_status unpack_finish(struct unpack *u,
    struct unpack_pending **pending);
enum unpack_status unpack_failf(struct unpack *u, enum unpack_status st,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
enum unpack_status unpack_check_cancel(struct unpack *u);
int unpack_is_dir_entry(const char *name);

/* unpack_label(e, buf, len): "member #<index> \"<name, escaped>\"" for
 * messages, the name cut after UNPACK_NAME_SHOWN bytes. */
#define LABEL_MAX (UNPACK_NAME_SHOWN * 4 + 64)
const char *unpack_label(const struct entry *e, char *buf, size_t len);
#define LABEL(e, buf) unpack_label((e), (buf), sizeof(buf))

/* unpack_member.c: the writer. */
enum unpack_status unpack_ratio_check(struct unpack *u,
    const struct entry *e, uint64_t *cap);
/* unpack_over_ratio(u, n, comp): 1 if ${n} bytes are more than the ratio
 * allows for ${comp} compressed bytes in the zip (0 counts as 1). */
int unpack_over_ratio(const struct unpack *u, uint64_t n, uint64_t comp);
enum unpack_status unpack_hour_open(struct unpack *u, int k);
enum unpack_status unpack_hour_close(struct unpack *u);
enum unpack_status unpack_member_begin(struct unpack *u, struct mem *m,
    const struct entry *e, int raw);
enum unpack_status unpack_member_feed(struct unpack *u, struct mem *m,
    const void *p, size_t n);
enum unpack_status unpack_member_end(struct unpack *u, struct mem *m);
enum unpack_status unpack_member_undo(struct unpack *u, struct mem *m);

/* unpack_zip.c: reader 1. */
enum unpack_status unpack_zip_open(struct unpack *u, const char *path);
enum unpack_status unpack_zip_list(struct unpack *u);
enum unpack_status unpack_zip_run(const char *zip_path,
    const char *data_dir, amp_hour first, int nhours,
    enum unpack_format fmt, const struct unpack_opts *opts,
    struct cancel *cancel, struct unpack_stats *stats, char *err,
    size_t errlen, struct unpack_pending **pending);

#endif
