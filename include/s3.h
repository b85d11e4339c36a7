#ifndef AMP2S3_S3_H
#define AMP2S3_S3_H
/*
 * s3: a small Amazon S3 client on libcurl's built-in SigV4
 * (CURLOPT_AWS_SIGV4), for libcurl >= 7.88: ListObjectsV2 with full
 * pagination (XML parsed with expat), PutObject with Content-MD5, and
 * multipart upload above a threshold (aborted on failure).
 *
 * The client prepares what curl 7.88 does not: x-amz-content-sha256 on
 * every request, the query string sorted and AWS-encoded, the key
 * percent-encoded.  Retries (500, 503 SlowDown, resets, timeouts, stalls)
 * happen inside each call with exponential backoff and jitter; errors
 * that no retry can fix (403, 301 wrong region, NoSuchBucket) are
 * returned at once as S3_FATAL with one clear line that names the bucket
 * and region, what was refused (enum s3_refusal) and, through the
 * caller's hint function, what to check; never the credentials.
 *
 * Server-side encryption and the storage class, when configured, are
 * sent (and signed) on the requests that create an object, PutObject and
 * CreateMultipartUpload, never on UploadPart (S3 refuses them there).
 *
 * Credentials come from a creds handle (creds.h), asked for the current
 * set at every attempt, so a set refreshed while a run goes on is used
 * from the next request on.  A request refused for its session token
 * (ExpiredToken, InvalidToken, TokenRefreshRequired) reports that set as
 * refused (creds_invalidate()) and, if the source can refresh, is sent
 * again at once with the new set, once per request: many requests
 * refused together cause one refresh.  A source that cannot refresh
 * (static keys), or a new set refused again, is S3_FATAL.  No valid set
 * at all (every refresh failed) fails the attempt like a transport error:
 * backoff, then S3_FAIL.
 *
 * The module is four files sharing src/s3_internal.h: s3.c (the client
 * and the public calls), s3_request.c (one request with its retries),
 * s3_xml.c (the answers' XML) and s3_multipart.c (multipart uploads).
 *
 * Thread-safety: a struct s3 is immutable after s3_init() (but for a
 * locked pool of idle handles, and the slowdown hook, which
 * s3_on_slowdown() sets while no call runs); any number of threads may call
 * s3_list/s3_put_file/s3_delete on it concurrently (each call borrows an
 * easy handle of its own from the pool; the connection it keeps open is
 * reused by the next call, and the DNS cache is shared).
 *
 * The caller runs curl_global_init() before s3_init() and
 * curl_global_cleanup() after s3_free(), and frees the creds handle only
 * after s3_free().
 */
#include <stddef.h>
#include <stdint.h>

struct cancel;
struct creds;
struct logger;

/* What a fatal answer refused: the caller's hint function turns it into
 * the settings to check (the client does not know their names). */
enum s3_refusal {
	S3_REFUSED_NONE = 0,
	S3_REFUSED_SECRET,   /* SignatureDoesNotMatch: the secret key */
	S3_REFUSED_KEY_ID,   /* InvalidAccessKeyId */
	S3_REFUSED_TOKEN,    /* ExpiredToken, InvalidToken, ... */
	S3_REFUSED_CLOCK,    /* RequestTimeTooSkewed */
	S3_REFUSED_BUCKET,   /* NoSuchBucket */
	S3_REFUSED_REGION,   /* 301, AuthorizationHeaderMalformed: region */
	S3_REFUSED_LIST,     /* AccessDenied, 403 on a listing: the policy */
	S3_REFUSED_READ,     /* AccessDenied, 403 on HEAD/GET of an object */
	S3_REFUSED_WRITE,    /* AccessDenied, 403 on a write: the policy, a
	                        bucket policy requiring encryption */
	S3_REFUSED_ENDPOINT, /* TLS verification, unusable URL */
	S3_REFUSED_OTHER     /* 401 and the rest */
};

/*
 * s3_hint_fn(ctx, why, region, buf, len): write into ${buf} what to check
 * for the refusal ${why}; ${ctx} is the caller's s3_config.hint_ctx,
 * ${region} the region S3 named for the bucket ("" if none).
 */
typedef void s3_hint_fn(void *ctx, enum s3_refusal why, const char *region,
    char *buf, size_t len);

struct s3_config {
	const char *bucket;        /* required */
	const char *region;        /* required, e.g. "eu-west-2" */
	const char *endpoint;      /* NULL: https://s3.<region>.amazonaws.com */
	struct creds *creds;       /* required; borrowed, must outlive the
	                              client */
	int path_style;            /* 1 path-style, 0 virtual-host, -1 auto
	                              (path-style for an IP or localhost) */
	const char *ca_bundle;     /* NULL: system CAs */
	int max_keys;              /* ListObjectsV2 page size; 0: server default */
	uint64_t multipart_threshold; /* bytes; files above go multipart */
	uint64_t part_size;        /* bytes, >= 5 MiB except in tests */
	int max_attempts;          /* tries per request, >= 1 */
	long connect_timeout_ms;
	long stall_timeout_s;      /* stall.h: the window ... */
	uint64_t min_speed;        /* ... and the bytes/s it must average */
	struct cancel *cancel;     /* may be NULL; wakes transfers, sleeps */
	s3_hint_fn *hint;          /* may be NULL: no hint */
	void *hint_ctx;            /* handed to ${hint} */
	const char *sse;           /* NULL, "AES256" or "aws:kms" */
	const char *sse_kms_key_id; /* "aws:kms" only; NULL: the bucket's
	                              default key */
	int sse_bucket_key;        /* "aws:kms" only: an S3 Bucket Key */
	const char *storage_class; /* NULL: the bucket's default; else one
	                              that s3_storage_class_valid() accepts */
};

enum s3_status {
	S3_OK = 0,
	S3_FAIL,      /* this request failed after its retries */
	S3_FATAL,     /* credentials, region, bucket: stop everything */
	S3_CANCELLED, /* *cancel became non-zero */
	S3_IO         /* the local file could not be read */
};

struct s3_error {
	enum s3_status status;
	enum s3_refusal refusal; /* S3_FATAL: what was refused */
	long http_status;  /* last HTTP status, 0 if none */
	char code[64];     /* S3 error code from the XML body, e.g. "SlowDown" */
	char msg[512];     /* one line for the user, no secrets */
	int retries;       /* retries made */
};

struct s3;

/* s3_init(cfg, lg): a client, or NULL with a reason in ${err} (also for
 * an SSE setting or a storage class S3 would refuse).  Strings of ${cfg}
 * are copied. */
struct s3 *s3_init(const struct s3_config *cfg, struct logger *lg,
    struct s3_error *err);

/* An object as a listing or a HEAD sees it. */
#define S3_ETAG_MAX 128
struct s3_object {
	uint64_t size;
	char etag[S3_ETAG_MAX];   /* without its quotes, printable; "" if none */
};

/*
 * Called once per key of a listing; ${key} is the full key, ${obj} its
 * size and ETag (valid during the call).  Return 0 to go on, non-zero to
 * stop the listing (s3_list then returns S3_OK).
 */
typedef int s3_list_cb(void *ctx, const char *key,
    const struct s3_object *obj);

/* s3_list(s3, prefix, cb, ctx, err): every key under ${prefix}, all
 * pages.  A page that lists a key outside ${prefix}, or that hands back a
 * continuation token the listing already followed (a loop), fails the
 * whole listing (S3_FAIL); ${cb} has then seen only the keys of the
 * pages before. */
enum s3_status s3_list(struct s3 *s3, const char *prefix, s3_list_cb *cb,
    void *ctx, struct s3_error *err);

/*
 * s3_parse_list_xml(xml, len, prev_token, cb, ctx, next_token, truncated,
 * err): parse the ${len} bytes at ${xml} as one ListObjectsV2 answer page
 * (HTTP 200) exactly as s3_list() parses each page it receives: the same
 * streaming parser, fed in pieces of at most 16 KiB, and the same checks.
 * For tests and fuzzing.  ${prev_token} is the continuation token that
 * asked for this page (NULL for the first).  Returns
 *    0  a valid page: ${cb} was called for every key, in order;
 *       *${truncated} is 1 if another page follows, and then *${next_token}
 *       is its token (malloc'd, non-empty, not ${prev_token}; the caller
 *       frees it), else *${next_token} is NULL;
 *    1  the same, but ${cb} returned non-zero and was not called again;
 *   -1  no valid page (malformed XML, no ListBucketResult root, a key over
 *       1024 bytes, a bad Size, truncated without a new token, larger than
 *       16 MiB, an <Error> body, out of memory): ${cb} was not called,
 *       *${next_token} is NULL, err->msg says why in one line and, for an
 *       <Error> body, err->code holds its Code (printable).
 * ${err} may be NULL.  Keys are never longer than 1024 bytes.
 */
int s3_parse_list_xml(const char *xml, size_t len, const char *prev_token,
    s3_list_cb *cb, void *ctx, char **next_token, int *truncated,
    struct s3_error *err);

/*
 * s3_put_file(s3, key, fd, content_type, err): upload the regular file
 * open at ${fd} (the caller's; read with pread, never closed here) as
 * ${key}, single PUT with Content-MD5 up to the threshold, multipart
 * above it.  Either way the object carries the file's SHA-256 in its
 * metadata (S3_META_SHA256), so that s3_same() can prove a multipart
 * object's content without reading it.  Returns S3_OK only once S3
 * confirmed the object.
 */
#define S3_META_SHA256 "x-amz-meta-amp2s3-sha256"
enum s3_status s3_put_file(struct s3 *s3, const char *key, int fd,
    const char *content_type, struct s3_error *err);

/*
 * s3_same(s3, key, fd, size, known, same, err): whether the object ${key}
 * holds exactly the ${size} bytes of the open file ${fd}.  ${known}: the
 * object as a listing saw it (NULL: not listed; a HEAD finds out).  The
 * cheapest proof wins: the sizes; the ETag, when it is the MD5 of a
 * single PUT (32 hex digits) and equals the file's; the SHA-256 in the
 * object's metadata (S3_META_SHA256, one HEAD); else the object is read
 * (GET) and hashed.  Returns S3_OK with *${same} 1 (proven the same) or 0
 * (proven different, or absent); any other status means it could not be
 * proven either way (e.g. S3_FATAL with refusal S3_REFUSED_READ: the
 * credentials may not read objects), ${err} says why.
 */
enum s3_status s3_same(struct s3 *s3, const char *key, int fd,
    uint64_t size, const struct s3_object *known, int *same,
    struct s3_error *err);

/*
 * s3_head(s3, key, obj, sha256, err): the object's size and ETag, and its
 * S3_META_SHA256 metadata into ${sha256} (65 bytes; "" if none).  S3_OK
 * with obj->size set, or S3_FAIL with err->http_status 404 if there is no
 * such object.
 */
enum s3_status s3_head(struct s3 *s3, const char *key,
    struct s3_object *obj, char sha256[65], struct s3_error *err);

/*
 * s3_slowdown_fn(arg): S3 asked to slow down: it answered a request with
 * 503 (SlowDown), 429, or a SlowDown error in a 200.  Called in the
 * thread making the call, once per such answer, before the client's own
 * backoff and retry; it must not call into the client.
 */
typedef void s3_slowdown_fn(void *arg);

/*
 * s3_on_slowdown(s3, fn, arg): call fn(${arg}) on each slow-down answer
 * from now on; ${fn} NULL: no more.  Call it while no other call on ${s3}
 * runs (before starting the threads that use it, after joining them).
 */
void s3_on_slowdown(struct s3 *s3, s3_slowdown_fn *fn, void *arg);

/* s3_delete(s3, key, err): delete one object (tests, cleanup). */
enum s3_status s3_delete(struct s3 *s3, const char *key,
    struct s3_error *err);

/* s3_storage_class_valid(name): non-zero if ${name} is one of S3's
 * storage classes (STANDARD, STANDARD_IA, INTELLIGENT_TIERING,
 * GLACIER_IR, ...); S3_STORAGE_CLASSES lists them for messages. */
int s3_storage_class_valid(const char *name);
#define S3_STORAGE_CLASSES "STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, " \
	"ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, DEEP_ARCHIVE, OUTPOSTS, " \
	"GLACIER_IR, SNOW, EXPRESS_ONEZONE"

/* s3_free(s3): NULL is a no-op. */
void s3_free(struct s3 *s3);

#endif
