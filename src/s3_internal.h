#ifndef AMP2S3_S3_INTERNAL_H
#define AMP2S3_S3_INTERNAL_H
/*
 * s3_internal: what the files of the S3 client share (see s3.h).  Not for
 * other modules.
 *
 * DESIGN
 * - Signing (s3_sign.c).  AWS Signature Version 4 over exactly what is
 *   sent: the method, the path and the query as written, and every header
 *   the client sets (host included), sorted by name.  So the client writes
 *   what AWS canonicalises: keys percent-encoded (s3_uri_encode, '/'
 *   kept), query parameters sorted by name with AWS-encoded values and an
 *   "=" even when empty ("uploads="), x-amz-content-sha256 on every
 *   request (the empty string's hash when there is no body), and
 *   CURLOPT_PATH_AS_IS so that curl never rewrites "./" or "../" inside a
 *   key.  The headers curl adds itself (Accept, User-Agent,
 *   Content-Length, Expect) are not signed, as AWS allows.  Not curl's
 *   CURLOPT_AWS_SIGV4: curl 7.88 sorts the signed headers by whole
 *   "name:value" line, so x-amz-server-side-encryption-aws-kms-key-id
 *   comes before x-amz-server-side-encryption and S3 refuses the
 *   signature (fixed in curl 8.10).
 * - Addressing (s3.c).  Virtual-host (https://BUCKET.host/KEY) unless the
 *   endpoint is an IP literal or localhost, or the bucket has a dot over
 *   https (the certificate's wildcard would not match): path-style
 *   (https://host/BUCKET/KEY).  cfg->path_style 0/1 forces either.
 * - Handles (s3_request.c).  A struct s3 keeps a free list of idle
 *   transfer contexts, each an easy handle driven by its own multi handle.
 *   A call takes one, uses it alone and gives it back; the connection it
 *   left open serves the next call.  This reuses connections without
 *   sharing one connection cache between threads, which curl 7.88 does not
 *   support (CURL_LOCK_DATA_CONNECT).  The DNS cache is shared through a
 *   CURLSH guarded by one mutex.
 * - Cancel and stalls.  A transfer registers a hook on the cancel flag
 *   that wakes its multi handle (curl_multi_wakeup), and waits in
 *   curl_multi_poll() slices no longer than a stall slot; after each it
 *   checks the flag and the stall rule (stall.h, the same as the Export
 *   API's).  Backoff waits in cancel_sleep().  Aborting a multipart upload
 *   ignores cancel: it is the cleanup.
 * - Retries, inside each call (s3_request.c): transport errors (reset,
 *   timeout, stall, refused, truncated), 408, 429, 500, 502, 503, 504 and
 *   the S3 codes that mean "try again" (SlowDown, InternalError,
 *   RequestTimeout, BadDigest), with retry_delay_ms() backoff and jitter
 *   (Retry-After wins).  Every attempt re-reads the body from its start
 *   (the read callback works with pread() from a per-attempt position).
 *   Each answer that asks to slow down (503, 429, SlowDown) is also told
 *   to the caller's slowdown hook before the backoff, so a pool can
 *   lower its own concurrency while the client retries.
 *   Fatal at once, S3_FATAL: 401, 403, 301/PermanentRedirect and
 *   AuthorizationHeaderMalformed (region), NoSuchBucket, TLS
 *   verification failure; a refused session token too, unless the
 *   credentials can be refreshed (see below).  The message names the bucket, the region
 *   and what was refused (enum s3_refusal; the caller's hint function
 *   adds the settings to check), never a key, a secret or a token.
 * - Bodies.  Uploads stream from the file, never held in memory; SHA-256
 *   (signature) and MD5 (Content-MD5) are computed in one pass over the
 *   file or part first.  Responses are parsed as they arrive by expat
 *   (s3_xml.c), element-path aware ("ListBucketResult/Contents/Key"), with
 *   a bound on the body (16 MiB per listing page) and on every field.  A
 *   page's keys are handed to the caller only once the page arrived whole,
 *   so a retried page never reports a key twice.
 * - Credentials (s3_request.c).  Every attempt takes the current set
 *   from the creds handle (creds_get(), which refreshes it when due, in
 *   one thread), signs with it (s3_sign), sends its token as
 *   x-amz-security-token, and wipes its copy (and the header list holding
 *   the token) after the transfer.  ExpiredToken,
 *   InvalidToken or TokenRefreshRequired: creds_invalidate() with the
 *   set's generation; 0 means a new set is coming, so the request is
 *   sent again at once (no backoff, not counted as an attempt), once per
 *   request; -1 (the source never refreshes) or a second refusal is
 *   fatal.  creds_get() failing (every refresh failed past the set's
 *   margin) is a failed attempt like a transport error.
 * - Encryption and storage class: x-amz-server-side-encryption (and its
 *   KMS key id and bucket-key flag) and x-amz-storage-class go on the
 *   requests marked creates_object only (PutObject, CreateMultipart-
 *   Upload); S3 takes the object's settings from those and refuses them
 *   on UploadPart.  Like every x-amz-* header they are signed.
 * - Multipart (s3_multipart.c), above cfg->multipart_threshold: POST
 *   ?uploads= (UploadId), PUT ?partNumber=N&uploadId=U per part (own
 *   SHA-256 and Content-MD5, ETag kept from the response header), POST
 *   ?uploadId=U with the part list.  A 200 whose body is an <Error> (S3
 *   does this for Complete) is retried like the same code with its own
 *   status, else a failure.  The part size grows if the file would need
 *   over 10000 parts.  On any failure or cancel, DELETE ?uploadId=U
 *   aborts the upload so that no orphan parts stay billed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <expat.h>

#include "s3.h"
#include "stall.h"

#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LIST_BODY_MAX ((uint64_t)16 << 20) /* one ListObjectsV2 page */
#define SMALL_BODY_MAX ((uint64_t)1 << 20)  /* any other answer */
#define FIELD_MAX 4096                      /* one XML text field */
#define KEY_MAX 1024                        /* S3's own limit, bytes */
#define XPATH_MAX 256
#define ETAG_MAX S3_ETAG_MAX

/* An idle transfer context: an easy handle and its own multi handle. */
struct conn {
	CURL *e;
	CURLM *m;
	struct conn *next;
};

struct s3 {
	char *bucket, *region;
	struct creds *creds;     /* borrowed */
	char *ca_bundle;
	char *origin;      /* "scheme://host[:port]", bucket.host for vhost */
	char *base;        /* endpoint path ("" or "/x") + "/bucket" if path */
	int path_style;
	int max_keys, max_attempts;
	uint64_t threshold, part_size;
	long connect_timeout_ms, stall_timeout_s;
	uint64_t min_speed;
	struct cancel *cancel;
	s3_hint_fn *hint;
	void *hint_ctx;
	char *sse, *sse_kms_key_id, *storage_class; /* NULL: not sent */
	int sse_bucket_key;
	struct logger *lg;
	s3_slowdown_fn *slowdown; /* s3_on_slowdown(), or NULL */
	void *slowdown_arg;

	CURLSH *sh;
	pthread_mutex_t dns_mu;  /* the CURLSH's DNS cache */
	int sh_ok;
	pthread_mutex_t pool_mu; /* idle, nidle */
	int pool_ok;
	struct conn *idle;
	int nidle;
	atomic_uint seq;         /* jitter seeds */
};

/* A key, its size and ETag, from a listing page. */
struct list_ent {
	char *key;
	struct s3_object obj;
};

/* A response body being parsed (s3_xml.c). */
struct xml {
	XML_Parser p;
	uint64_t fed;
	int failed;               /* malformed, or a needed field too long */
	char path[XPATH_MAX];     /* "A/B/C" of the open elements */
	size_t pathlen;
	int skip;                 /* open elements beyond path's capacity */
	char text[FIELD_MAX + 1];
	size_t textlen;
	int text_over;

	int is_error;             /* root <Error> */
	int list_seen;            /* root <ListBucketResult> */
	char code[64];            /* printable (errbuf_escape) */
	char message[512];        /* printable */
	char region[64];          /* <Error><Region>, printable */

	struct list_ent *ents;    /* ListBucketResult/Contents */
	size_t n, cap;
	char cur_key[FIELD_MAX + 1];
	int have_key;
	struct s3_object cur;
	int truncated;
	char token[FIELD_MAX + 1];

	char upload_id[FIELD_MAX + 1];
	int complete_seen;        /* root <CompleteMultipartUploadResult> */
};

/* A request body: ${len} bytes of a file at ${off}, or of ${mem}. */
struct src {
	int fd;
	uint64_t off, len, pos;
	const char *mem;
	int err;                   /* errno of a failed read */
};

/* Where a GET's body goes instead of the XML parser (s3_object.c). */
struct sink {
	void (*reset)(void *ctx);          /* a new attempt begins */
	int (*feed)(void *ctx, const void *p, size_t n); /* 0, or -1: stop */
	void *ctx;
};

/* One request (s3_request.c). */
struct req {
	/* In. */
	const char *method;        /* "GET", "PUT", "POST", "DELETE" */
	const char *key;           /* NULL: the bucket */
	const char *query;         /* sorted and encoded, or NULL */
	const char *content_type;  /* NULL: none */
	const char *sha256;        /* NULL: the empty body's */
	const char *md5_b64;       /* NULL: no Content-MD5 */
	struct src *body;          /* NULL: no body */
	const char *meta_sha256;   /* NULL: no S3_META_SHA256 header */
	struct sink *sink;         /* NULL: a 2xx body is XML */
	uint64_t body_max;         /* bound on the answer's body */
	int no_cancel;             /* runs even once cancelled (abort) */
	int creates_object;        /* PutObject, CreateMultipartUpload: the
	                              SSE and storage-class headers */
	int attempts;              /* 0: cfg->max_attempts */

	/* Out, per attempt. */
	long status;
	struct xml x;
	char etag[ETAG_MAX];
	char bucket_region[64];    /* x-amz-bucket-region, printable */
	char meta[65];             /* S3_META_SHA256 of the answer, or "" */
	uint64_t content_length;   /* of the answer (HEAD) */
	long hstatus;              /* the status line's code, as it came */
	int64_t retry_after_ms;
	uint64_t body_bytes;
	int body_over;
	char curl_err[CURL_ERROR_SIZE];
	struct stall stall;        /* bytes moved, for the stall rule */
};

/* One request header: ${name} lowercase, both borrowed. */
struct s3_header {
	const char *name;
	const char *value;
};

/*
 * s3_sign.c: s3_sign(region, method, path, pathlen, query, h, n, payload,
 * amz_date, access_key, secret_key, auth, authlen): the SigV4
 * Authorization value for a request whose headers are the ${n} of ${h}
 * (sorted in place; host and x-amz-date among them), its path the
 * ${pathlen} bytes at ${path}, ${query} canonical (NULL: none), ${payload}
 * the body's SHA-256 in hex, ${amz_date} "YYYYMMDDTHHMMSSZ".  0, or -1
 * (out of memory, or ${auth} too small).
 */
int s3_sign(const char *region, const char *method, const char *path,
    size_t pathlen, const char *query, struct s3_header *h, size_t n,
    const char *payload, const char *amz_date, const char *access_key,
    const char *secret_key, char *auth, size_t authlen);

/* s3_request.c */
void s3_err_init(struct s3_error *e);
void s3_set_msg(struct s3_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int s3_uri_encode(const char *in, char *out, size_t outlen, int keep_slash);
char *s3_encode_dup(const char *in, int keep_slash);
int s3_hash_range(int fd, uint64_t off, uint64_t len, char sha_hex[65],
    char md5_b64[25]);
int s3_hash_mem(const char *p, size_t len, char sha_hex[65],
    char md5_b64[25]);
/* s3_request(s3, r, err): perform ${r} with retries.  On S3_OK the
 * answer's parsed body is in r->x and its ETag in r->etag.  The caller
 * frees r->x with s3_xml_clear(). */
enum s3_status s3_request(struct s3 *s3, struct req *r,
    struct s3_error *err);
void s3_conns_free(struct s3 *s3);

/* s3_xml.c */
int s3_xml_reset(struct xml *x);
void s3_xml_clear(struct xml *x);
void s3_xml_feed(struct xml *x, const char *p, size_t len);
void s3_xml_finish(struct xml *x);
int s3_list_page_check(const struct xml *x, const char *prev,
    const char **why);
int s3_list_page_emit(const struct xml *x, s3_list_cb *cb, void *ctx);

/* s3_object.c */
void s3_strip_etag(const char *in, char *out, size_t outlen);

/* s3_multipart.c */
enum s3_status s3_put_multipart(struct s3 *s3, const char *key, int fd,
    uint64_t size, const char *ctype, const char *sha256,
    struct s3_error *err);

#endif
