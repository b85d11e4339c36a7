#ifndef AMP2S3_JSONL_H
#define AMP2S3_JSONL_H
/*
 * jsonl: streaming validator for newline-delimited JSON.
 *
 * Bytes are fed in chunks of any size; a line may span chunks.  Every line
 * must hold exactly one JSON value (yajl, strings checked as UTF-8), no
 * line may be empty, and no line may be longer than the limit.  The
 * validator only reads the bytes; it never copies or keeps them, so memory
 * stays bounded by the longest token that spans two chunks (at most the
 * line limit) plus the nesting depth.
 *
 * Thread-safety: a handle belongs to one thread at a time; independent
 * handles may be used concurrently.
 */
#include <stddef.h>
#include <stdint.h>

struct jsonl;

enum jsonl_status {
	JSONL_OK = 0,
	JSONL_BAD,   /* a line is not exactly one JSON value */
	JSONL_EMPTY, /* an empty line */
	JSONL_LONG,  /* a line is longer than the limit */
	JSONL_NOMEM  /* out of memory */
};

/*
 * jsonl_new(max_line): a validator accepting lines of at most ${max_line}
 * bytes, newline excluded (0: no limit).  Returns NULL on ENOMEM.
 */
struct jsonl *jsonl_new(size_t max_line);

/*
 * jsonl_feed(j, buf, len): validate the next ${len} bytes of the stream.
 * Returns JSONL_OK or the first error; after an error the handle only
 * accepts jsonl_reset or jsonl_free.
 */
enum jsonl_status jsonl_feed(struct jsonl *j, const void *buf, size_t len);

/*
 * jsonl_finish(j, need_nl): end the stream.  A last line without its
 * newline is completed and validated, and *${need_nl} is set to 1 (else
 * 0) so the caller can append the newline.  On JSONL_OK the handle is
 * ready for the next stream; the line count is kept.
 */
enum jsonl_status jsonl_finish(struct jsonl *j, int *need_nl);

/* jsonl_reset(j): forget any partial line (after an error, or to abort). */
void jsonl_reset(struct jsonl *j);

/* jsonl_lines(j): the number of complete lines validated so far. */
uint64_t jsonl_lines(const struct jsonl *j);

/*
 * jsonl_error(j): a one-line description of the last error ("line 3:
 * parse error: ..."), printable ASCII only; "" if none.  Valid until the
 * next call on ${j}.
 */
const char *jsonl_error(const struct jsonl *j);

/* jsonl_free(j): free ${j}; NULL is a no-op. */
void jsonl_free(struct jsonl *j);

#endif
