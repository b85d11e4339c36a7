#ifndef AMP2S3_STORE_H
#define AMP2S3_STORE_H
/*
 * store: where complete hours end up, behind one interface with two
 * backends: S3 (store_open_s3) and a folder (store_open_dir, --dev).
 *
 * An hour's object is named <prefix>YYYY-MM-DD_HH.jsonl.  Both backends
 * make an object appear whole or not at all: S3 by its own semantics, the
 * folder by writing a temporary name and renaming.
 *
 * Thread-safety: after open, store_list/store_put may be called from any
 * number of threads at once.
 */
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

/* store_open_dir(root, prefix, err, errlen): a folder store writing
 * ${root}/${prefix}YYYY-MM-DD_HH.jsonl; directories are created. */
struct store *store_open_dir(const char *root, const char *prefix, char *err,
    size_t errlen);

/* store_open_s3(cfg, prefix, lg, err, errlen): an S3 store. */
struct store *store_open_s3(const struct s3_config *cfg, const char *prefix,
    struct logger *lg, char *err, size_t errlen);

/* Called once per hour present in the store, with the object's size. */
typedef void store_hour_cb(void *ctx, amp_hour hour, uint64_t size);

/* store_list(st, cb, ctx, err, errlen): report every hour present (only
 * keys named exactly like an hour file count). */
enum store_status store_list(struct store *st, store_hour_cb *cb, void *ctx,
    char *err, size_t errlen);

/* store_put(st, hour, path, err, errlen): store the file at ${path} as
 * ${hour}; STORE_OK only once the object is complete in the store. */
enum store_status store_put(struct store *st, amp_hour hour,
    const char *path, char *err, size_t errlen);

/* store_describe(st): "s3://bucket/prefix" or "dir:path/prefix", for logs. */
const char *store_describe(const struct store *st);

/* store_free(st): NULL is a no-op. */
void store_free(struct store *st);

#endif
