#ifndef AMP2S3_STORE_H
#define AMP2S3_STORE_H
/*
 * store: where complete hours end up, behind one interface with two
 * backends: S3 (store_open_s3) and a folder (store_open_dir, --dev).
 *
 * An hour's object is named by the key template (keytmpl.h), by default
 * <prefix>YYYY-MM-DD_HH.jsonl, with ".gz" appended in gzip mode
 * (store_set_layout).  Listing parses keys back through the same
 * template, strictly: only keys that are exactly some hour's key count,
 * so a .jsonl object is not a .jsonl.gz hour nor the other way round (a
 * prefix holding both is left alone; each mode sees only its own).  An
 * empty object is an empty hour in both modes (a 0-byte .jsonl.gz object
 * means "no events", it is not an empty gzip member).  Both backends make
 * an object appear whole or not at all: S3 by its own semantics, the
 * folder by writing a temporary name next to the object and renaming.
 *
 * Objects are uploaded with Content-Type application/x-ndjson (.jsonl) or
 * application/gzip (.jsonl.gz), never with a Content-Encoding: the object
 * is the gzip file itself, its bytes and ETag are what a client gets, and
 * Athena, Glue and Spark recognise the compression by the .gz name.
 *
 * Thread-safety: after open (and store_set_layout), store_list/store_put
 * may be called from any number of threads at once.  store_list runs its
 * S3 listings in threads of its own, joined before it returns.
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"
#include "s3.h"

struct store;

enum store_status {
	STORE_OK = 0,
	STORE_FAIL,      /* this object failed; others may succeed */
	STORE_FATAL,     /* credentials/bucket/region: stop everything */
	STORE_CANCELLED
};

/* store_open_dir(root, prefix, file_mode, create, err, errlen): a folder
 * store writing ${root}/<key> (default ${root}/${prefix}YYYY-MM-DD_HH.jsonl);
 * ${root} is created at once if ${create} (else a missing one is an empty
 * store), the directories a key needs at its first put, all of
 * localdir_dir_mode(${file_mode}); an object copied (not linked) gets
 * ${file_mode} (0: 0600), less the umask; a listing walks only as deep as
 * the template has '/'. */
struct store *store_open_dir(const char *root, const char *prefix,
    unsigned file_mode, int create, char *err, size_t errlen);

/* store_open_s3(cfg, prefix, lg, err, errlen): an S3 store. */
struct store *store_open_s3(const struct s3_config *cfg, const char *prefix,
    struct logger *lg, char *err, size_t errlen);

/*
 * store_set_layout(st, tmpl, gzip, err, errlen): name objects by the key
 * template ${tmpl} (NULL: the default; {prefix} is the prefix given at
 * open), with ".gz" appended if ${gzip}, and upload them with the content
 * type of that format.  Call before any store_list/store_put.  Returns 0,
 * or -1 with the reason in ${err} (the previous layout stays).
 */
int store_set_layout(struct store *st, const char *tmpl, int gzip, char *err,
    size_t errlen);

/* An hour's object as a listing sees it: its size, and for S3 its ETag
 * ("" in a folder store). */
struct store_object {
	uint64_t size;
	char etag[S3_ETAG_MAX];
};

/* Called once per hour present in the store, with its object (valid
 * during the call).  store_list may call it from several threads, never
 * two at once. */
typedef void store_hour_cb(void *ctx, amp_hour hour,
    const struct store_object *obj);

/* Hours first..last, both included. */
struct store_span {
	amp_hour first, last;
};

/*
 * store_list(st, spans, n, cb, ctx, err, errlen): report every hour
 * present in the store that lies in one of the ${n} spans (any order,
 * overlaps allowed; only keys named exactly like an hour file count).
 * Hours outside the spans may be reported too: ignore what you do not
 * need.  No span, no request.
 *
 * S3 lists, instead of every key under the template's prefix, each
 * month's narrowest common key prefix (keytmpl_span_prefix: a cron's 25
 * hours are one or two prefixes of at most a few hundred keys, whatever
 * the bucket's history; a year is 12 prefixes of at most 744 keys), up to
 * STORE_LIST_THREADS listings at once, and prefixes inside another are
 * dropped.  So the listing of a long range costs about one round trip per
 * STORE_LIST_THREADS months instead of one per 1,000 keys in a row.
 * Spans over more than STORE_MAX_LISTINGS months (ten years) list the
 * template's whole prefix, page after page, as one listing, so that the
 * number of requests is bounded by what the bucket holds rather than by
 * the length of the range (1970..9999 would be 96,000 months).  A folder
 * store walks its whole prefix.
 */
#define STORE_LIST_THREADS 8
#define STORE_MAX_LISTINGS 120
enum store_status store_list(struct store *st, const struct store_span *spans,
    size_t n, store_hour_cb *cb, void *ctx, char *err, size_t errlen);

/* store_put(st, hour, fd, err, errlen): store the whole regular file
 * open at ${fd} (read with pread from its first byte; the caller keeps
 * and closes it) as ${hour}; STORE_OK only once the object is complete
 * in the store.  Nothing is opened by name, so a name swapped for a
 * symlink meanwhile is never followed. */
enum store_status store_put(struct store *st, amp_hour hour, int fd,
    char *err, size_t errlen);

/*
 * store_same(st, hour, fd, size, known, same, err, errlen): whether the
 * store holds exactly the ${size} bytes of the open file ${fd} as
 * ${hour}: *${same} 1 (proven), 0 (proven different, or absent).
 * ${known}: the object as store_list() saw it (NULL: not listed).  S3:
 * s3_same() (sizes, ETag, metadata, else a read of the object); a folder
 * store compares the files byte for byte.  STORE_OK, or a failure with
 * ${err} when it could not be proven either way (STORE_FATAL if the
 * credentials may not read objects).
 */
enum store_status store_same(struct store *st, amp_hour hour, int fd,
    uint64_t size, const struct store_object *known, int *same, char *err,
    size_t errlen);

/*
 * store_on_slowdown(st, fn, arg): an S3 store calls fn(${arg}) each time
 * S3 asks it to slow down (s3_on_slowdown()); ${fn} NULL: no more.  A
 * folder store is never throttled: a no-op.  Call it while no
 * store_list/store_put runs.
 */
void store_on_slowdown(struct store *st, s3_slowdown_fn *fn, void *arg);

/* store_describe(st): "s3://bucket/prefix" or "dir:path/prefix", for logs. */
const char *store_describe(const struct store *st);

/* store_free(st): NULL is a no-op. */
void store_free(struct store *st);

#endif
