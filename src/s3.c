/*
 * s3: a small Amazon S3 client on libcurl's built-in SigV4 (see s3.h).
 *
 * DESIGN
 * - Signing.  curl 7.88's CURLOPT_AWS_SIGV4 ("aws:amz:<region>:s3") signs
 *   the method, the path and the query exactly as written, and every
 *   header we add.  So this file writes what AWS canonicalises: keys
 *   percent-encoded (s3_uri_encode, '/' kept), query parameters sorted by
 *   name with AWS-encoded values and an "=" even when empty ("uploads="),
 *   x-amz-content-sha256 on every request (the empty string's hash when
 *   there is no body), CURLOPT_PATH_AS_IS so that curl never rewrites "./"
 *   or "../" inside a key, and no blanked header (curl 7.88 would sign an
 *   "Expect:" it never sends).  Every body goes through CURLOPT_UPLOAD with
 *   a known size and the method set by CURLOPT_CUSTOMREQUEST, so curl adds
 *   no header of its own that the signature would miss.
 * - Addressing.  Virtual-host (https://BUCKET.host/KEY) unless the
 *   endpoint is an IP literal or localhost, or the bucket has a dot over
 *   https (the certificate's wildcard would not match): path-style
 *   (https://host/BUCKET/KEY).  cfg->path_style 0/1 forces either.
 * - Handles.  A struct s3 keeps a free list of idle transfer contexts, each
 *   an easy handle driven by its own multi handle.  A call takes one, uses
 *   it alone and gives it back; the connection it left open serves the next
 *   call.  This reuses connections without sharing one connection cache
 *   between threads, which curl 7.88 does not support
 *   (CURL_LOCK_DATA_CONNECT).  The DNS cache is shared through a CURLSH
 *   guarded by one mutex.
 * - Cancel.  A transfer runs in curl_multi_poll() slices of 100 ms and
 *   checks cfg->cancel between slices; backoff sleeps are sliced the same
 *   way.  Aborting a multipart upload ignores cancel: it is the cleanup.
 * - Retries, inside each call: transport errors (reset, timeout, refused,
 *   truncated), 408, 429, 500, 502, 503, 504 and the S3 codes that mean
 *   "try again" (SlowDown, InternalError, RequestTimeout, BadDigest), with
 *   retry_delay_ms() backoff and jitter (Retry-After wins).  Every attempt
 *   re-reads the body from its start (the read callback works with pread()
 *   from a per-attempt position).  Fatal at once, S3_FATAL: 401, 403,
 *   301/PermanentRedirect and AuthorizationHeaderMalformed (region),
 *   NoSuchBucket, expired tokens, TLS verification failure.  The message
 *   names the bucket, the region and the setting to check, never a key,
 *   a secret or a token.
 * - Bodies.  Uploads stream from the file, never held in memory; SHA-256
 *   (signature) and MD5 (Content-MD5) are computed in one pass over the
 *   file or part first.  Responses are parsed as they arrive by expat,
 *   element-path aware ("ListBucketResult/Contents/Key"), with a bound on
 *   the body (16 MiB per listing page) and on every field.  A page's keys
 *   are handed to the caller only once the page arrived whole, so a retried
 *   page never reports a key twice.
 * - Multipart, above cfg->multipart_threshold: POST ?uploads= (UploadId),
 *   PUT ?partNumber=N&uploadId=U per part (own SHA-256 and Content-MD5,
 *   ETag kept from the response header), POST ?uploadId=U with the part
 *   list.  A 200 whose body is an <Error> (S3 does this for Complete) is
 *   retried like the same code with its own status, else a failure.  The
 *   part size grows if the file would need over 10000 parts.  On any
 *   failure or cancel, DELETE ?uploadId=U aborts the upload so that no
 *   orphan parts stay billed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <expat.h>
#include <openssl/evp.h>

#include "log.h"
#include "retry.h"
#include "s3.h"
#include "version.h"

#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LIST_BODY_MAX ((uint64_t)16 << 20) /* one ListObjectsV2 page */
#define SMALL_BODY_MAX ((uint64_t)1 << 20)  /* any other answer */
#define FIELD_MAX 4096                      /* one XML text field */
#define KEY_MAX 1024                        /* S3's own limit, bytes */
#define XPATH_MAX 256
#define ETAG_MAX 128
#define POLL_MS 100
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 20000
#define MAX_PARTS 10000
#define IDLE_MAX 64
#define ABORT_ATTEMPTS 3
#define DEFAULT_PART_SIZE ((uint64_t)16 << 20)

/* ------------------------------------------------------------------ */
/* The client                                                          */

struct conn {
	CURL *e;
	CURLM *m;
	struct conn *next;
};

struct s3 {
	char *bucket, *region, *access_key, *secret_key, *session_token;
	char *ca_bundle;
	char *origin;      /* "scheme://host[:port]", bucket.host for vhost */
	char *base;        /* endpoint path ("" or "/x") + "/bucket" if path */
	char sigv4[96];    /* "aws:amz:<region>:s3" */
	int path_style;
	int max_keys, max_attempts;
	uint64_t threshold, part_size;
	long connect_timeout_ms, low_speed_time_s;
	const atomic_int *cancel;
	struct logger *lg;

	CURLSH *sh;
	pthread_mutex_t dns_mu;  /* the CURLSH's DNS cache */
	int sh_ok;
	pthread_mutex_t pool_mu; /* idle, nidle */
	int pool_ok;
	struct conn *idle;
	int nidle;
	atomic_uint seq;         /* jitter seeds */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static char *
xstrdup(const char *s)
{
	return (s != NULL ? strdup(s) : NULL);
}

/* One line for the user: control characters become spaces. */
static void
copy_line(char *dst, size_t cap, const char *src)
{
	size_t i;

	if (cap == 0)
		return;
	for (i = 0; i + 1 < cap && src[i] != '\0'; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ?
		    ' ' : src[i];
	dst[i] = '\0';
}

/* set_msg(e, fmt, ...): the one-line message of ${e}, truncated to fit. */
static void set_msg(struct s3_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
set_msg(struct s3_error *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static int
cancelled(const struct s3 *s3)
{
	return (s3->cancel != NULL && atomic_load(s3->cancel) != 0);
}

static uint32_t
xorshift(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (*st = x != 0 ? x : 0x9e3779b9u);
}

/* Sleep ${ms}, in slices, returning 1 early if cancelled. */
static int
wait_ms(const struct s3 *s3, int64_t ms, int no_cancel)
{
	struct timespec ts;
	int64_t step;

	while (ms > 0) {
		if (!no_cancel && cancelled(s3))
			return (1);
		step = ms < POLL_MS ? ms : POLL_MS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(step * 1000000);
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return (!no_cancel && cancelled(s3));
}

int
s3_uri_encode(const char *in, char *out, size_t outlen, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	const unsigned char *p;

	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		int plain = (*p >= 'A' && *p <= 'Z') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/');
		if (o + (plain ? 1 : 3) >= outlen)
			return (-1);
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o >= outlen)
		return (-1);
	out[o] = '\0';
	return ((int)o);
}

/* Encode ${in} into a new string (NULL when out of memory). */
static char *
encode_dup(const char *in, int keep_slash)
{
	size_t cap = strlen(in) * 3 + 1;
	char *out = malloc(cap);

	if (out != NULL && s3_uri_encode(in, out, cap, keep_slash) < 0) {
		free(out);
		out = NULL;
	}
	return (out);
}

/* ------------------------------------------------------------------ */
/* Hashes                                                              */

/*
 * hash_range(fd, off, len, sha_hex, md5_b64): SHA-256 (hex) and MD5
 * (base64) of ${len} bytes at ${off}, one pass.  0, or -1 with errno.
 */
static int
hash_range(int fd, uint64_t off, uint64_t len, char sha_hex[65],
    char md5_b64[25])
{
	static const char hex[] = "0123456789abcdef";
	EVP_MD_CTX *sha = NULL, *md5 = NULL;
	unsigned char *buf = NULL, dsha[32], dmd5[16];
	unsigned int n;
	size_t bufsz = 256 * 1024;
	uint64_t done = 0;
	ssize_t r;
	int i, rc = -1;

	if ((buf = malloc(bufsz)) == NULL)
		goto out;
	if ((sha = EVP_MD_CTX_new()) == NULL ||
	    (md5 = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
		errno = ENOMEM;
		goto out;
	}
	while (done < len) {
		size_t want = len - done < bufsz ? (size_t)(len - done) : bufsz;
		r = pread(fd, buf, want, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0) {
			errno = EIO; /* the file shrank */
			goto out;
		}
		if (EVP_DigestUpdate(sha, buf, (size_t)r) != 1 ||
		    EVP_DigestUpdate(md5, buf, (size_t)r) != 1) {
			errno = EIO;
			goto out;
		}
		done += (uint64_t)r;
	}
	if (EVP_DigestFinal_ex(sha, dsha, &n) != 1 ||
	    EVP_DigestFinal_ex(md5, dmd5, &n) != 1) {
		errno = EIO;
		goto out;
	}
	for (i = 0; i < 32; i++) {
		sha_hex[2 * i] = hex[dsha[i] >> 4];
		sha_hex[2 * i + 1] = hex[dsha[i] & 15];
	}
	sha_hex[64] = '\0';
	EVP_EncodeBlock((unsigned char *)md5_b64, dmd5, 16);
	rc = 0;
out:
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(md5);
	free(buf);
	return (rc);
}

/* The same for a memory buffer. */
static int
hash_mem(const char *p, size_t len, char sha_hex[65], char md5_b64[25])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char dsha[32], dmd5[16];
	unsigned int n;
	int i;

	if (EVP_Digest(p, len, dsha, &n, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(p, len, dmd5, &n, EVP_md5(), NULL) != 1)
		return (-1);
	for (i = 0; i < 32; i++) {
		sha_hex[2 * i] = hex[dsha[i] >> 4];
		sha_hex[2 * i + 1] = hex[dsha[i] & 15];
	}
	sha_hex[64] = '\0';
	EVP_EncodeBlock((unsigned char *)md5_b64, dmd5, 16);
	return (0);
}

/* ------------------------------------------------------------------ */
/* Response XML: streaming, element-path aware                         */

struct list_ent {
	char *key;
	uint64_t size;
};

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
	char code[64];
	char message[512];
	char region[64];          /* <Error><Region> (wrong-region hints) */

	struct list_ent *ents;    /* ListBucketResult/Contents */
	size_t n, cap;
	char cur_key[FIELD_MAX + 1];
	int have_key;
	uint64_t cur_size;
	int truncated;
	char token[FIELD_MAX + 1];

	char upload_id[FIELD_MAX + 1];
	int complete_seen;        /* root <CompleteMultipartUploadResult> */
};

static const char *
local_name(const XML_Char *name)
{
	const char *p = strrchr(name, '|'); /* "namespace|local" */

	return (p != NULL ? p + 1 : name);
}

static void XMLCALL
xml_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xml *x = ud;
	const char *ln = local_name(name);
	size_t l = strlen(ln);

	(void)atts;
	if (x->skip > 0 || x->pathlen + l + 2 > sizeof(x->path)) {
		x->skip++;
		return;
	}
	if (x->pathlen > 0)
		x->path[x->pathlen++] = '/';
	memcpy(x->path + x->pathlen, ln, l + 1);
	x->pathlen += l;
	x->textlen = 0;
	x->text_over = 0;
	if (strcmp(x->path, "Error") == 0)
		x->is_error = 1;
	else if (strcmp(x->path, "ListBucketResult") == 0)
		x->list_seen = 1;
	else if (strcmp(x->path, "CompleteMultipartUploadResult") == 0)
		x->complete_seen = 1;
	else if (strcmp(x->path, "ListBucketResult/Contents") == 0) {
		x->have_key = 0;
		x->cur_size = 0;
	}
}

static void XMLCALL
xml_text(void *ud, const XML_Char *s, int len)
{
	struct xml *x = ud;
	size_t n = (size_t)len;

	if (x->skip > 0 || len <= 0)
		return;
	if (x->textlen + n > FIELD_MAX) {
		x->text_over = 1;
		n = FIELD_MAX - x->textlen;
	}
	memcpy(x->text + x->textlen, s, n);
	x->textlen += n;
}

static void
xml_fail(struct xml *x)
{
	x->failed = 1;
	XML_StopParser(x->p, XML_FALSE);
}

static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return (-1);
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return (-1);
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return (0);
}

/* An element closed: its path is x->path, its text x->text. */
static void
xml_field(struct xml *x)
{
	const char *p = x->path, *t = x->text;

	if (strcmp(p, "ListBucketResult/Contents/Key") == 0) {
		if (x->text_over || x->textlen > KEY_MAX) {
			xml_fail(x);
			return;
		}
		memcpy(x->cur_key, t, x->textlen + 1);
		x->have_key = 1;
	} else if (strcmp(p, "ListBucketResult/Contents/Size") == 0) {
		if (parse_u64(t, &x->cur_size) != 0)
			xml_fail(x);
	} else if (strcmp(p, "ListBucketResult/Contents") == 0) {
		if (!x->have_key) {
			xml_fail(x);
			return;
		}
		if (x->n == x->cap) {
			size_t nc = x->cap ? x->cap * 2 : 64;
			struct list_ent *ne = realloc(x->ents,
			    nc * sizeof(*ne));
			if (ne == NULL) {
				xml_fail(x);
				return;
			}
			x->ents = ne;
			x->cap = nc;
		}
		if ((x->ents[x->n].key = strdup(x->cur_key)) == NULL) {
			xml_fail(x);
			return;
		}
		x->ents[x->n++].size = x->cur_size;
	} else if (strcmp(p, "ListBucketResult/IsTruncated") == 0) {
		x->truncated = strcmp(t, "true") == 0;
	} else if (strcmp(p, "ListBucketResult/NextContinuationToken") == 0) {
		if (x->text_over) {
			xml_fail(x);
			return;
		}
		memcpy(x->token, t, x->textlen + 1);
	} else if (strcmp(p, "InitiateMultipartUploadResult/UploadId") == 0) {
		if (x->text_over) {
			xml_fail(x);
			return;
		}
		memcpy(x->upload_id, t, x->textlen + 1);
	} else if (strcmp(p, "Error/Code") == 0) {
		copy_line(x->code, sizeof(x->code), t);
	} else if (strcmp(p, "Error/Message") == 0) {
		copy_line(x->message, sizeof(x->message), t);
	} else if (strcmp(p, "Error/Region") == 0) {
		copy_line(x->region, sizeof(x->region), t);
	}
}

static void XMLCALL
xml_end(void *ud, const XML_Char *name)
{
	struct xml *x = ud;
	char *slash;

	(void)name;
	if (x->skip > 0) {
		x->skip--;
		return;
	}
	x->text[x->textlen] = '\0';
	xml_field(x);
	if ((slash = strrchr(x->path, '/')) != NULL) {
		*slash = '\0';
		x->pathlen = (size_t)(slash - x->path);
	} else {
		x->path[0] = '\0';
		x->pathlen = 0;
	}
	x->textlen = 0;
	x->text_over = 0;
}

static void
xml_clear(struct xml *x)
{
	size_t i;

	if (x->p != NULL)
		XML_ParserFree(x->p);
	for (i = 0; i < x->n; i++)
		free(x->ents[i].key);
	free(x->ents);
	memset(x, 0, sizeof(*x));
}

/* Ready ${x} for a new response body.  0 or -1 (out of memory). */
static int
xml_reset(struct xml *x)
{
	xml_clear(x);
	if ((x->p = XML_ParserCreateNS(NULL, '|')) == NULL)
		return (-1);
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, xml_start, xml_end);
	XML_SetCharacterDataHandler(x->p, xml_text);
	return (0);
}

static void
xml_feed(struct xml *x, const char *p, size_t len)
{
	if (x->failed || len == 0)
		return;
	x->fed += len;
	if (XML_Parse(x->p, p, (int)len, XML_FALSE) != XML_STATUS_OK)
		x->failed = 1;
}

static void
xml_finish(struct xml *x)
{
	if (x->failed || x->fed == 0)
		return;
	if (XML_Parse(x->p, "", 0, XML_TRUE) != XML_STATUS_OK)
		x->failed = 1;
}

/*
 * list_page_check(x, prev, why): the checks a parsed ListObjectsV2 page
 * must pass before any of its keys is reported (${prev}: the token that
 * asked for it, or NULL).  Returns 0, or -1 with *${why} set to a suffix
 * for "malformed ListObjectsV2 answer".  A well-formed body whose root is
 * not ListBucketResult (an HTML error page, an empty body) is no listing:
 * taking it for an empty one would make every stored hour look missing.
 */
static int
list_page_check(const struct xml *x, const char *prev, const char **why)
{
	*why = "";
	if (x->failed)
		return (-1);
	if (!x->list_seen) {
		*why = " (no ListBucketResult)";
		return (-1);
	}
	if (x->truncated && (x->token[0] == '\0' ||
	    (prev != NULL && strcmp(prev, x->token) == 0))) {
		*why = " (truncated without a new continuation token)";
		return (-1);
	}
	return (0);
}

/* list_page_emit(x, cb, ctx): report the page's keys in order; returns 1
 * if ${cb} stopped the listing, else 0. */
static int
list_page_emit(const struct xml *x, s3_list_cb *cb, void *ctx)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (cb(ctx, x->ents[i].key, x->ents[i].size) != 0)
			return (1);
	return (0);
}

/* ------------------------------------------------------------------ */
/* One HTTP request, with retries                                      */

/* A request body: ${len} bytes of a file at ${off}, or of ${mem}. */
struct src {
	int fd;
	uint64_t off, len, pos;
	const char *mem;
	int err;                   /* errno of a failed read */
};

struct req {
	/* In. */
	const char *method;        /* "GET", "PUT", "POST", "DELETE" */
	const char *key;           /* NULL: the bucket */
	const char *query;         /* sorted and encoded, or NULL */
	const char *content_type;  /* NULL: none */
	const char *sha256;        /* NULL: the empty body's */
	const char *md5_b64;       /* NULL: no Content-MD5 */
	struct src *body;          /* NULL: no body */
	uint64_t body_max;         /* bound on the answer's body */
	int no_cancel;             /* runs even once cancelled (abort) */
	int attempts;              /* 0: cfg->max_attempts */

	/* Out, per attempt. */
	long status;
	struct xml x;
	char etag[ETAG_MAX];
	char bucket_region[64];    /* x-amz-bucket-region */
	int64_t retry_after_ms;
	uint64_t body_bytes;
	int body_over;
	char curl_err[CURL_ERROR_SIZE];
};

enum verdict { V_OK, V_RETRY, V_FAIL, V_FATAL, V_CANCEL, V_IO };

static size_t
on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct src *s = ud;
	uint64_t left = s->len - s->pos;
	size_t want = size * nmemb;
	ssize_t r;

	if ((uint64_t)want > left)
		want = (size_t)left;
	if (want == 0)
		return (0);
	if (s->mem != NULL) {
		memcpy(buf, s->mem + s->pos, want);
		s->pos += want;
		return (want);
	}
	do
		r = pread(s->fd, buf, want, (off_t)(s->off + s->pos));
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		s->err = r < 0 ? errno : EIO; /* EIO: the file shrank */
		return (CURL_READFUNC_ABORT);
	}
	s->pos += (uint64_t)r;
	return ((size_t)r);
}

static int
on_seek(void *ud, curl_off_t off, int origin)
{
	struct src *s = ud;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > s->len)
		return (CURL_SEEKFUNC_CANTSEEK);
	s->pos = (uint64_t)off;
	return (CURL_SEEKFUNC_OK);
}

static size_t
on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;

	r->body_bytes += n;
	if (r->body_bytes > r->body_max) {
		r->body_over = 1;
		return (0);
	}
	xml_feed(&r->x, p, n);
	return (n);
}

/* If the header line ${p} is "${name}: value", copy value to ${out}. */
static int
header_value(const char *p, size_t len, const char *name, char *out,
    size_t outlen)
{
	size_t nl = strlen(name), i, j;

	if (len <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
		return (0);
	for (i = nl + 1; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	for (j = len; j > i && (p[j - 1] == '\r' || p[j - 1] == '\n' ||
	    p[j - 1] == ' ' || p[j - 1] == '\t'); j--)
		;
	if (j - i >= outlen)
		j = i + outlen - 1;
	memcpy(out, p + i, j - i);
	out[j - i] = '\0';
	return (1);
}

static size_t
on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	char v[128];

	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response */
		r->etag[0] = '\0';
		r->bucket_region[0] = '\0';
		r->retry_after_ms = -1;
	} else if (header_value(p, n, "ETag", r->etag, sizeof(r->etag))) {
		;
	} else if (header_value(p, n, "x-amz-bucket-region",
	    r->bucket_region, sizeof(r->bucket_region))) {
		copy_line(r->bucket_region, sizeof(r->bucket_region),
		    r->bucket_region);
	} else if (header_value(p, n, "Retry-After", v, sizeof(v))) {
		r->retry_after_ms = retry_parse_after(v, (int64_t)time(NULL));
	}
	return (n);
}

static void
share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
	struct s3 *s3 = ud;

	(void)h;
	(void)d;
	(void)a;
	pthread_mutex_lock(&s3->dns_mu);
}

static void
share_unlock(CURL *h, curl_lock_data d, void *ud)
{
	struct s3 *s3 = ud;

	(void)h;
	(void)d;
	pthread_mutex_unlock(&s3->dns_mu);
}

static void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->m != NULL)
		curl_multi_cleanup(c->m);
	if (c->e != NULL)
		curl_easy_cleanup(c->e);
	free(c);
}

/* conn_get(s3): an idle transfer context or a new one; NULL if no memory. */
static struct conn *
conn_get(struct s3 *s3)
{
	struct conn *c;

	pthread_mutex_lock(&s3->pool_mu);
	if ((c = s3->idle) != NULL) {
		s3->idle = c->next;
		s3->nidle--;
	}
	pthread_mutex_unlock(&s3->pool_mu);
	if (c != NULL)
		return (c);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	if ((c->e = curl_easy_init()) == NULL ||
	    (c->m = curl_multi_init()) == NULL) {
		conn_free(c);
		return (NULL);
	}
	return (c);
}

/* conn_put(s3, c): keep ${c} (and its open connection) for the next call. */
static void
conn_put(struct s3 *s3, struct conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&s3->pool_mu);
	if (s3->nidle < IDLE_MAX) {
		c->next = s3->idle;
		s3->idle = c;
		s3->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&s3->pool_mu);
	conn_free(c);
}

static char *
make_url(const struct s3 *s3, const char *key, const char *query)
{
	char *ek = NULL, *url = NULL;
	size_t len;

	if (key != NULL && (ek = encode_dup(key, 1)) == NULL)
		return (NULL);
	len = strlen(s3->origin) + strlen(s3->base) + (ek ? strlen(ek) : 0) +
	    (query ? strlen(query) : 0) + 4;
	if ((url = malloc(len)) != NULL) {
		/* Path-style bucket root: "/bucket"; vhost: "/". */
		snprintf(url, len, "%s%s%s%s%s%s", s3->origin, s3->base,
		    ek != NULL || !s3->path_style ? "/" : "", ek ? ek : "",
		    query ? "?" : "", query ? query : "");
	}
	free(ek);
	return (url);
}

static struct curl_slist *
make_headers(const struct s3 *s3, const struct req *r)
{
	struct curl_slist *h = NULL, *t;
	char line[FIELD_MAX + 64];
	const char *v[4][2] = {
		{ "x-amz-content-sha256",
		    r->sha256 != NULL ? r->sha256 : EMPTY_SHA256 },
		{ "Content-Type", r->content_type },
		{ "Content-MD5", r->md5_b64 },
		{ "x-amz-security-token", s3->session_token },
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (v[i][1] == NULL || v[i][1][0] == '\0')
			continue;
		if ((size_t)snprintf(line, sizeof(line), "%s: %s", v[i][0],
		    v[i][1]) >= sizeof(line))
			goto fail;
		if ((t = curl_slist_append(h, line)) == NULL)
			goto fail;
		h = t;
	}
	explicit_bzero(line, sizeof(line));
	return (h);
fail:
	explicit_bzero(line, sizeof(line));
	curl_slist_free_all(h);
	return (NULL);
}

/* One attempt on ${c}.  Sets *was_cancelled when cfg->cancel stopped it. */
static CURLcode
transfer(struct s3 *s3, struct conn *c, struct req *r, const char *url,
    struct curl_slist *hdrs, int *was_cancelled)
{
	CURL *e = c->e;
	CURLMsg *msg;
	CURLcode res = CURLE_OK;
	int running = 1, left;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, s3->sh);
	curl_easy_setopt(e, CURLOPT_USERAGENT, version_user_agent());
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s3->sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, s3->access_key);
	curl_easy_setopt(e, CURLOPT_PASSWORD, s3->secret_key);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (s3->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    s3->connect_timeout_ms);
	if (s3->low_speed_time_s > 0) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
		    s3->low_speed_time_s);
	}
	if (s3->ca_bundle != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, s3->ca_bundle);
	if (r->body != NULL) {
		r->body->pos = 0; /* rewind for this attempt */
		r->body->err = 0;
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, r->body);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, r->body);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)r->body->len);
	}
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "PUT") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);

	if (curl_multi_add_handle(c->m, e) != CURLM_OK)
		return (CURLE_OUT_OF_MEMORY);
	for (;;) {
		if (curl_multi_perform(c->m, &running) != CURLM_OK) {
			res = CURLE_SEND_ERROR;
			break;
		}
		if (!running)
			break;
		if (!r->no_cancel && cancelled(s3)) {
			*was_cancelled = 1;
			res = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(c->m, NULL, 0, POLL_MS, NULL) !=
		    CURLM_OK) {
			res = CURLE_RECV_ERROR;
			break;
		}
	}
	if (!running) {
		while ((msg = curl_multi_info_read(c->m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
				res = msg->data.result;
	}
	curl_multi_remove_handle(c->m, e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	return (res);
}

static int
code_is(const struct req *r, const char *code)
{
	return (strcmp(r->x.code, code) == 0);
}

static enum verdict
classify(const struct req *r, CURLcode cc)
{
	long s = r->status;

	if (r->body != NULL && r->body->err != 0)
		return (V_IO);
	switch (cc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_AGAIN:
		return (V_RETRY);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return (V_FATAL);
	default:
		return (V_FAIL);
	}
	if (s >= 200 && s < 300) {
		if (!r->x.is_error)
			return (V_OK);
		/* A 200 carrying an <Error> (CompleteMultipartUpload). */
		return (code_is(r, "InternalError") || code_is(r, "SlowDown") ||
		    code_is(r, "ServiceUnavailable") ? V_RETRY : V_FAIL);
	}
	if (s == 301 || s == 401 || s == 403 ||
	    code_is(r, "PermanentRedirect") ||
	    code_is(r, "AuthorizationHeaderMalformed") ||
	    code_is(r, "NoSuchBucket") || code_is(r, "InvalidAccessKeyId") ||
	    code_is(r, "SignatureDoesNotMatch") ||
	    code_is(r, "ExpiredToken") || code_is(r, "InvalidToken") ||
	    code_is(r, "TokenRefreshRequired"))
		return (V_FATAL);
	if (s == 408 || s == 429 || s == 500 || s == 502 || s == 503 ||
	    s == 504 || code_is(r, "RequestTimeout") ||
	    code_is(r, "SlowDown") || code_is(r, "InternalError") ||
	    code_is(r, "BadDigest") ||
	    code_is(r, "XAmzContentSHA256Mismatch"))
		return (V_RETRY);
	return (V_FAIL);
}

/* The setting to check for a fatal answer. */
static void
fatal_hint(const struct req *r, char *out, size_t len)
{
	const char *c = r->x.code;

	if (strcmp(c, "SignatureDoesNotMatch") == 0)
		snprintf(out, len, "check AWS_PYTHON_USER_SECRET_KEY / "
		    "AWS_SECRET_ACCESS_KEY");
	else if (strcmp(c, "InvalidAccessKeyId") == 0)
		snprintf(out, len, "check AWS_PYTHON_USER_ACCESS_KEY / "
		    "AWS_ACCESS_KEY_ID");
	else if (strcmp(c, "ExpiredToken") == 0 ||
	    strcmp(c, "InvalidToken") == 0 ||
	    strcmp(c, "TokenRefreshRequired") == 0)
		snprintf(out, len, "check AWS_SESSION_TOKEN (temporary "
		    "credentials expire)");
	else if (strcmp(c, "RequestTimeTooSkewed") == 0)
		snprintf(out, len, "this machine's clock is off; synchronise "
		    "it (NTP)");
	else if (strcmp(c, "NoSuchBucket") == 0)
		snprintf(out, len, "no such bucket; check AWS_BUCKET_NAME");
	else if (r->status == 301 || strcmp(c, "PermanentRedirect") == 0) {
		if (r->bucket_region[0] != '\0')
			snprintf(out, len, "the bucket is in region %s; set "
			    "AWS_REGION=%s", r->bucket_region,
			    r->bucket_region);
		else
			snprintf(out, len, "the bucket is in another region; "
			    "check AWS_REGION");
	} else if (strcmp(c, "AuthorizationHeaderMalformed") == 0) {
		if (r->x.region[0] != '\0')
			snprintf(out, len, "the bucket expects region %s; set "
			    "AWS_REGION=%s", r->x.region, r->x.region);
		else
			snprintf(out, len, "check AWS_REGION");
	} else if (strcmp(c, "AccessDenied") == 0 || r->status == 403)
		snprintf(out, len, "the credentials may not %s this bucket "
		    "(s3:ListBucket, s3:PutObject, KMS key policy)",
		    strcmp(r->method, "GET") == 0 ? "list" : "write to");
	else
		snprintf(out, len, "check AWS_ACCESS_KEY_ID, "
		    "AWS_SECRET_ACCESS_KEY and AWS_REGION");
}

/* Fill ${e} for a request that ended with ${v}. */
static void
describe(const struct s3 *s3, const struct req *r, CURLcode cc,
    enum verdict v, struct s3_error *e)
{
	char what[KEY_MAX + 64], hint[200], key[KEY_MAX + 1];
	const char *ce;

	copy_line(key, sizeof(key), r->key != NULL ? r->key : "");
	if (r->key != NULL)
		snprintf(what, sizeof(what), "%s '%s'", r->method, key);
	else
		snprintf(what, sizeof(what), "list '%s'", s3->bucket);
	e->http_status = r->status;
	copy_line(e->code, sizeof(e->code), r->x.code);
	ce = r->curl_err[0] != '\0' ? r->curl_err : curl_easy_strerror(cc);

	switch (v) {
	case V_FATAL:
		e->status = S3_FATAL;
		if (cc != CURLE_OK) {
			set_msg(e, "s3: bucket '%s' (region %s): %s — check "
			    "the endpoint and the CA bundle", s3->bucket,
			    s3->region, ce);
			break;
		}
		fatal_hint(r, hint, sizeof(hint));
		if (r->x.code[0] != '\0')
			set_msg(e, "s3: bucket '%s' (region %s): %s — %s",
			    s3->bucket, s3->region, r->x.code, hint);
		else
			set_msg(e, "s3: bucket '%s' (region %s): HTTP %ld — %s",
			    s3->bucket, s3->region, r->status, hint);
		break;
	case V_CANCEL:
		e->status = S3_CANCELLED;
		set_msg(e, "s3: %s: cancelled", what);
		break;
	case V_IO:
		e->status = S3_IO;
		set_msg(e, "s3: %s: cannot read the local file: %s", what,
		    strerror(r->body->err));
		break;
	default:
		e->status = S3_FAIL;
		if (cc != CURLE_OK && r->body_over)
			set_msg(e, "s3: %s: answer larger than %" PRIu64
			    " bytes", what, r->body_max);
		else if (cc != CURLE_OK)
			set_msg(e, "s3: %s: %s (after %d retries)", what, ce,
			    e->retries);
		else
			set_msg(e, "s3: %s: HTTP %ld%s%s%s%s (after %d "
			    "retries)", what, r->status,
			    r->x.code[0] ? " " : "", r->x.code,
			    r->x.message[0] ? ": " : "", r->x.message,
			    e->retries);
		break;
	}
}

/*
 * request(s3, r, err): perform ${r} with retries.  On S3_OK the answer's
 * parsed body is in r->x and its ETag in r->etag.  The caller frees r->x
 * with xml_clear().
 */
static enum s3_status
request(struct s3 *s3, struct req *r, struct s3_error *err)
{
	struct conn *c = NULL;
	struct curl_slist *hdrs = NULL;
	char *url = NULL;
	enum verdict v = V_FAIL;
	CURLcode cc = CURLE_OK;
	int attempt, attempts, was_cancelled;
	int64_t delay;
	uint32_t rnd;
	char what[KEY_MAX + 1], why[CURL_ERROR_SIZE + 64];

	copy_line(what, sizeof(what), r->key != NULL ? r->key : s3->bucket);
	attempts = r->attempts > 0 ? r->attempts : s3->max_attempts;
	rnd = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)r ^
	    atomic_fetch_add(&s3->seq, 0x9e3779b9u);
	if ((url = make_url(s3, r->key, r->query)) == NULL ||
	    (hdrs = make_headers(s3, r)) == NULL ||
	    (c = conn_get(s3)) == NULL) {
		err->status = S3_FAIL;
		set_msg(err, "s3: out of memory");
		goto out;
	}
	for (attempt = 1;; attempt++) {
		was_cancelled = 0;
		r->status = 0;
		r->etag[0] = '\0';
		r->bucket_region[0] = '\0';
		r->retry_after_ms = -1;
		r->body_bytes = 0;
		r->body_over = 0;
		r->curl_err[0] = '\0';
		if (xml_reset(&r->x) != 0) {
			cc = CURLE_OUT_OF_MEMORY;
			v = V_FAIL;
			break;
		}
		if (!r->no_cancel && cancelled(s3)) {
			v = V_CANCEL;
			break;
		}
		cc = transfer(s3, c, r, url, hdrs, &was_cancelled);
		if (cc == CURLE_OK)
			xml_finish(&r->x);
		v = was_cancelled ? V_CANCEL : classify(r, cc);
		if (v != V_RETRY || attempt >= attempts)
			break;
		delay = retry_delay_ms(attempt, r->retry_after_ms,
		    BACKOFF_BASE_MS, BACKOFF_CAP_MS, xorshift(&rnd));
		if (cc != CURLE_OK)
			copy_line(why, sizeof(why), r->curl_err[0] != '\0' ?
			    r->curl_err : curl_easy_strerror(cc));
		else
			snprintf(why, sizeof(why), "HTTP %ld%s%s", r->status,
			    r->x.code[0] != '\0' ? " " : "", r->x.code);
		log_warn(s3->lg, "s3: %s '%s': %s; retry %d of %d in %" PRId64
		    " ms", r->method, what, why, attempt, attempts - 1, delay);
		err->retries++;
		if (wait_ms(s3, delay, r->no_cancel)) {
			v = V_CANCEL;
			break;
		}
	}
	if (v == V_OK) {
		err->status = S3_OK;
		err->http_status = r->status;
	} else {
		if (v == V_RETRY)
			v = V_FAIL; /* out of attempts */
		describe(s3, r, cc, v, err);
	}
out:
	conn_put(s3, c);
	curl_slist_free_all(hdrs);
	free(url);
	return (err->status);
}

static void
err_init(struct s3_error *e)
{
	memset(e, 0, sizeof(*e));
	e->status = S3_FAIL;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

static int
host_is_ip_or_localhost(const char *host, size_t len)
{
	size_t i;
	int digits = 0, dots = 0;

	if (len > 0 && host[0] == '[')
		return (1); /* IPv6 literal */
	if ((len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (len > 10 && strncasecmp(host + len - 10, ".localhost", 10) == 0))
		return (1);
	for (i = 0; i < len; i++) {
		if (host[i] == '.')
			dots++;
		else if (host[i] >= '0' && host[i] <= '9')
			digits++;
		else
			return (0);
	}
	return (dots == 3 && digits > 0);
}

/* Split the endpoint into origin and base path.  0 or -1 (${why} set). */
static int
set_endpoint(struct s3 *s3, const struct s3_config *cfg, const char **why)
{
	char def[128], *ebucket = NULL;
	const char *ep = cfg->endpoint, *scheme = "https", *hp, *slash, *h;
	size_t hplen, hlen, n;
	const char *colon;
	int rc = -1;

	if (ep == NULL || ep[0] == '\0') {
		snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com",
		    cfg->region);
		ep = def;
	}
	if (strncasecmp(ep, "https://", 8) == 0) {
		hp = ep + 8;
	} else if (strncasecmp(ep, "http://", 7) == 0) {
		scheme = "http";
		hp = ep + 7;
	} else if (strstr(ep, "://") != NULL) {
		*why = "the endpoint's scheme must be http or https";
		return (-1);
	} else {
		hp = ep;
	}
	slash = strchr(hp, '/');
	hplen = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
	if (hplen == 0 || memchr(hp, '@', hplen) != NULL ||
	    strpbrk(hp, "?#") != NULL) {
		*why = "the endpoint must be scheme://host[:port][/path], "
		    "without user, query or fragment";
		return (-1);
	}
	h = hp;
	hlen = hplen;
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', hlen);
		if (rb == NULL) {
			*why = "bad IPv6 literal in the endpoint";
			return (-1);
		}
		hlen = (size_t)(rb - h) + 1;
	} else if ((colon = memchr(h, ':', hlen)) != NULL) {
		hlen = (size_t)(colon - h);
	}
	if (cfg->path_style >= 0)
		s3->path_style = cfg->path_style != 0;
	else
		s3->path_style = host_is_ip_or_localhost(h, hlen) ||
		    (strcmp(scheme, "https") == 0 &&
		    strchr(cfg->bucket, '.') != NULL); /* TLS wildcard */
	if ((ebucket = encode_dup(cfg->bucket, 0)) == NULL)
		goto nomem;
	n = strlen(scheme) + 3 + hplen + strlen(ebucket) + 2;
	if ((s3->origin = malloc(n)) == NULL)
		goto nomem;
	if (s3->path_style)
		snprintf(s3->origin, n, "%s://%.*s", scheme, (int)hplen, hp);
	else
		snprintf(s3->origin, n, "%s://%s.%.*s", scheme, ebucket,
		    (int)hplen, hp);
	slash = slash != NULL ? slash : "";
	n = strlen(slash);
	while (n > 0 && slash[n - 1] == '/')
		n--;
	if ((s3->base = malloc(n + strlen(ebucket) + 2)) == NULL)
		goto nomem;
	if (s3->path_style)
		snprintf(s3->base, n + strlen(ebucket) + 2, "%.*s/%s", (int)n,
		    slash, ebucket);
	else
		snprintf(s3->base, n + 1, "%.*s", (int)n, slash);
	rc = 0;
	goto out;
nomem:
	*why = "out of memory";
out:
	free(ebucket);
	return (rc);
}

struct s3 *
s3_init(const struct s3_config *cfg, struct logger *lg, struct s3_error *err)
{
	struct s3 *s3 = NULL;
	const char *why = NULL;
	struct s3_error dummy;

	if (err == NULL)
		err = &dummy;
	err_init(err);
	if (cfg->bucket == NULL || cfg->bucket[0] == '\0')
		why = "no bucket given (AWS_BUCKET_NAME)";
	else if (cfg->region == NULL || cfg->region[0] == '\0' ||
	    strlen(cfg->region) > 40 || strpbrk(cfg->region, ": /") != NULL)
		why = "no valid region given (AWS_REGION)";
	else if (cfg->access_key == NULL || cfg->access_key[0] == '\0')
		why = "no access key given (AWS_PYTHON_USER_ACCESS_KEY / "
		    "AWS_ACCESS_KEY_ID)";
	else if (cfg->secret_key == NULL || cfg->secret_key[0] == '\0')
		why = "no secret key given (AWS_PYTHON_USER_SECRET_KEY / "
		    "AWS_SECRET_ACCESS_KEY)";
	else if (strlen(cfg->bucket) > 255)
		why = "bucket name too long";
	if (why != NULL)
		goto fail;

	why = "out of memory";
	if ((s3 = calloc(1, sizeof(*s3))) == NULL)
		goto fail;
	if ((s3->bucket = xstrdup(cfg->bucket)) == NULL ||
	    (s3->region = xstrdup(cfg->region)) == NULL ||
	    (s3->access_key = xstrdup(cfg->access_key)) == NULL ||
	    (s3->secret_key = xstrdup(cfg->secret_key)) == NULL ||
	    (cfg->session_token != NULL && cfg->session_token[0] != '\0' &&
	    (s3->session_token = xstrdup(cfg->session_token)) == NULL) ||
	    (cfg->ca_bundle != NULL &&
	    (s3->ca_bundle = xstrdup(cfg->ca_bundle)) == NULL))
		goto fail;
	snprintf(s3->sigv4, sizeof(s3->sigv4), "aws:amz:%s:s3", cfg->region);
	s3->max_keys = cfg->max_keys > 0 ? cfg->max_keys : 0;
	s3->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 1;
	s3->threshold = cfg->multipart_threshold;
	s3->part_size = cfg->part_size > 0 ? cfg->part_size :
	    DEFAULT_PART_SIZE;
	s3->connect_timeout_ms = cfg->connect_timeout_ms;
	s3->low_speed_time_s = cfg->low_speed_time_s;
	s3->cancel = cfg->cancel;
	s3->lg = lg;
	atomic_init(&s3->seq, 0);
	if (set_endpoint(s3, cfg, &why) != 0)
		goto fail;

	why = "cannot set up libcurl sharing";
	if (pthread_mutex_init(&s3->pool_mu, NULL) != 0)
		goto fail;
	s3->pool_ok = 1;
	if (pthread_mutex_init(&s3->dns_mu, NULL) != 0)
		goto fail;
	s3->sh_ok = 1;
	if ((s3->sh = curl_share_init()) == NULL ||
	    curl_share_setopt(s3->sh, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(s3->sh, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(s3->sh, CURLSHOPT_USERDATA, s3) ||
	    curl_share_setopt(s3->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS))
		goto fail;
	err->status = S3_OK;
	return (s3);
fail:
	set_msg(err, "s3: %s", why);
	err->status = S3_FATAL;
	s3_free(s3);
	return (NULL);
}

void
s3_free(struct s3 *s3)
{
	struct conn *c;

	if (s3 == NULL)
		return;
	while ((c = s3->idle) != NULL) {
		s3->idle = c->next;
		conn_free(c);
	}
	if (s3->sh != NULL)
		curl_share_cleanup(s3->sh);
	if (s3->sh_ok)
		pthread_mutex_destroy(&s3->dns_mu);
	if (s3->pool_ok)
		pthread_mutex_destroy(&s3->pool_mu);
	if (s3->secret_key != NULL)
		explicit_bzero(s3->secret_key, strlen(s3->secret_key));
	if (s3->session_token != NULL)
		explicit_bzero(s3->session_token, strlen(s3->session_token));
	free(s3->bucket);
	free(s3->region);
	free(s3->access_key);
	free(s3->secret_key);
	free(s3->session_token);
	free(s3->ca_bundle);
	free(s3->origin);
	free(s3->base);
	free(s3);
}

enum s3_status
s3_list(struct s3 *s3, const char *prefix, s3_list_cb *cb, void *ctx,
    struct s3_error *err)
{
	struct req r;
	char *eprefix = NULL, *etoken = NULL, *query = NULL, *prev = NULL;
	const char *why;
	size_t qlen;
	enum s3_status st;
	int stop = 0;

	err_init(err);
	memset(&r, 0, sizeof(r));
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > KEY_MAX || (eprefix = encode_dup(prefix, 0)) ==
	    NULL) {
		set_msg(err, "s3: bad prefix");
		return (S3_FAIL);
	}
	r.method = "GET";
	r.body_max = LIST_BODY_MAX;
	for (;;) {
		/* Parameters sorted by name: continuation-token, list-type,
		 * max-keys, prefix. */
		qlen = strlen(eprefix) + (etoken ? strlen(etoken) : 0) + 96;
		free(query);
		if ((query = malloc(qlen)) == NULL) {
			st = S3_FAIL;
			set_msg(err, "s3: out of memory");
			goto out;
		}
		snprintf(query, qlen, "%s%s%slist-type=2", etoken ?
		    "continuation-token=" : "", etoken ? etoken : "",
		    etoken ? "&" : "");
		if (s3->max_keys > 0)
			snprintf(query + strlen(query), qlen - strlen(query),
			    "&max-keys=%d", s3->max_keys);
		snprintf(query + strlen(query), qlen - strlen(query),
		    "&prefix=%s", eprefix);
		r.query = query;
		if ((st = request(s3, &r, err)) != S3_OK)
			goto out;
		if (list_page_check(&r.x, prev, &why) != 0) {
			st = S3_FAIL;
			set_msg(err, "s3: list '%s': malformed ListObjectsV2 "
			    "answer%s", s3->bucket, why);
			goto out;
		}
		stop = list_page_emit(&r.x, cb, ctx);
		if (stop || !r.x.truncated)
			break;
		free(etoken);
		free(prev);
		prev = NULL;
		if ((etoken = encode_dup(r.x.token, 0)) == NULL ||
		    (prev = strdup(r.x.token)) == NULL) {
			st = S3_FAIL;
			set_msg(err, "s3: out of memory");
			goto out;
		}
	}
	st = S3_OK;
out:
	err->status = st;
	xml_clear(&r.x);
	free(query);
	free(etoken);
	free(prev);
	free(eprefix);
	return (st);
}

int
s3_parse_list_xml(const char *xml, size_t len, const char *prev_token,
    s3_list_cb *cb, void *ctx, char **next_token, int *truncated,
    struct s3_error *err)
{
	struct xml x;
	struct s3_error dummy;
	const char *why;
	size_t off, n;
	int rc = -1;

	if (err == NULL)
		err = &dummy;
	err_init(err);
	*next_token = NULL;
	*truncated = 0;
	memset(&x, 0, sizeof(x));
	if (len > LIST_BODY_MAX) {
		set_msg(err, "s3: list: answer larger than %" PRIu64 " bytes",
		    LIST_BODY_MAX);
		return (-1);
	}
	if (xml_reset(&x) != 0) {
		set_msg(err, "s3: out of memory");
		goto out;
	}
	/* In pieces no larger than libcurl's (CURL_MAX_WRITE_SIZE). */
	for (off = 0; off < len; off += n) {
		n = len - off < 16384 ? len - off : 16384;
		xml_feed(&x, xml + off, n);
	}
	xml_finish(&x);
	if (x.is_error) {
		/* What classify() and describe() make of a 200 <Error>. */
		copy_line(err->code, sizeof(err->code), x.code);
		set_msg(err, "s3: list: %s%s%s", x.code, x.message[0] ?
		    ": " : "", x.message);
		goto out;
	}
	if (list_page_check(&x, prev_token, &why) != 0) {
		set_msg(err, "s3: list: malformed ListObjectsV2 answer%s",
		    why);
		goto out;
	}
	if (x.truncated && (*next_token = strdup(x.token)) == NULL) {
		set_msg(err, "s3: out of memory");
		goto out;
	}
	*truncated = x.truncated;
	rc = list_page_emit(&x, cb, ctx);
	err->status = S3_OK;
out:
	xml_clear(&x);
	return (rc);
}

enum s3_status
s3_delete(struct s3 *s3, const char *key, struct s3_error *err)
{
	struct req r;
	enum s3_status st;

	err_init(err);
	memset(&r, 0, sizeof(r));
	r.method = "DELETE";
	r.key = key;
	r.body_max = SMALL_BODY_MAX;
	st = request(s3, &r, err);
	xml_clear(&r.x);
	return (st);
}

/* Single PUT of the whole file. */
static enum s3_status
put_single(struct s3 *s3, const char *key, int fd, uint64_t size,
    const char *ctype, struct s3_error *err)
{
	struct req r;
	struct src body = { .fd = fd, .len = size };
	char sha[65], md5[25];
	enum s3_status st;

	if (hash_range(fd, 0, size, sha, md5) != 0) {
		err->status = S3_IO;
		set_msg(err, "s3: PUT '%s': cannot read the local file: %s",
		    key, strerror(errno));
		return (S3_IO);
	}
	memset(&r, 0, sizeof(r));
	r.method = "PUT";
	r.key = key;
	r.content_type = ctype;
	r.sha256 = sha;
	r.md5_b64 = md5;
	r.body = &body;
	r.body_max = SMALL_BODY_MAX;
	st = request(s3, &r, err);
	xml_clear(&r.x);
	return (st);
}

/* Abort ${upload_id} (encoded), ignoring cancel; logs if it fails. */
static void
mp_abort(struct s3 *s3, const char *key, const char *eid)
{
	struct req r;
	struct s3_error e;
	char q[FIELD_MAX * 3 + 16];

	err_init(&e);
	memset(&r, 0, sizeof(r));
	snprintf(q, sizeof(q), "uploadId=%s", eid);
	r.method = "DELETE";
	r.key = key;
	r.query = q;
	r.body_max = SMALL_BODY_MAX;
	r.no_cancel = 1;
	r.attempts = ABORT_ATTEMPTS;
	if (request(s3, &r, &e) != S3_OK)
		log_warn(s3->lg, "s3: could not abort the multipart upload of "
		    "'%s' (%s); its parts stay until a lifecycle rule "
		    "(AbortIncompleteMultipartUpload) removes them", key,
		    e.msg);
	else
		log_debug(s3->lg, "s3: aborted the multipart upload of '%s'",
		    key);
	xml_clear(&r.x);
}

/* Append to a growing string; -1 if out of memory. */
static int
sb_add(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	char *nb;

	if (*len + n + 1 > *cap) {
		size_t nc = (*cap ? *cap : 1024);
		while (nc < *len + n + 1)
			nc *= 2;
		if ((nb = realloc(*buf, nc)) == NULL)
			return (-1);
		*buf = nb;
		*cap = nc;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	return (0);
}

/* XML-escape ${in} (an ETag) into ${out}. */
static void
xml_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	const char *rep;

	for (; *in != '\0'; in++) {
		char one[2] = { *in, '\0' };
		switch (*in) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		default: rep = one; break;
		}
		if (o + strlen(rep) + 1 > outlen)
			break;
		memcpy(out + o, rep, strlen(rep));
		o += strlen(rep);
	}
	out[o] = '\0';
}

static enum s3_status
put_multipart(struct s3 *s3, const char *key, int fd, uint64_t size,
    const char *ctype, struct s3_error *err)
{
	struct req r;
	struct src body;
	char sha[65], md5[25], q[FIELD_MAX * 3 + 64], esc[ETAG_MAX * 6 + 1];
	char line[ETAG_MAX * 6 + 96];
	char (*etags)[ETAG_MAX] = NULL;
	char *eid = NULL, *xml = NULL;
	size_t xlen = 0, xcap = 0;
	uint64_t part = s3->part_size, nparts, i, off;
	enum s3_status st = S3_FAIL;
	int started = 0, retries = 0;

	if ((size + part - 1) / part > MAX_PARTS)
		part = (size + MAX_PARTS - 1) / MAX_PARTS; /* S3's part cap */
	nparts = (size + part - 1) / part;
	memset(&r, 0, sizeof(r));
	if ((etags = calloc((size_t)nparts, sizeof(*etags))) == NULL)
		goto nomem;

	/* Initiate; the object's Content-Type is given here. */
	r.method = "POST";
	r.key = key;
	r.query = "uploads=";
	r.content_type = ctype;
	r.body_max = SMALL_BODY_MAX;
	if ((st = request(s3, &r, err)) != S3_OK)
		goto out;
	if (r.x.failed || r.x.upload_id[0] == '\0') {
		st = S3_FAIL;
		set_msg(err, "s3: POST '%s' ?uploads: no UploadId in the "
		    "answer", key);
		goto out;
	}
	if ((eid = encode_dup(r.x.upload_id, 0)) == NULL)
		goto nomem;
	started = 1;
	log_debug(s3->lg, "s3: multipart upload of '%s': %" PRIu64 " parts "
	    "of %" PRIu64 " bytes", key, nparts, part);

	/* Parts. */
	for (i = 0; i < nparts; i++) {
		off = i * part;
		memset(&body, 0, sizeof(body));
		body.fd = fd;
		body.off = off;
		body.len = size - off < part ? size - off : part;
		if (hash_range(fd, body.off, body.len, sha, md5) != 0) {
			st = S3_IO;
			set_msg(err, "s3: PUT '%s': cannot read the local "
			    "file: %s", key, strerror(errno));
			goto out;
		}
		xml_clear(&r.x);
		memset(&r, 0, sizeof(r));
		snprintf(q, sizeof(q), "partNumber=%" PRIu64 "&uploadId=%s",
		    i + 1, eid);
		r.method = "PUT";
		r.key = key;
		r.query = q;
		r.sha256 = sha;
		r.md5_b64 = md5;
		r.body = &body;
		r.body_max = SMALL_BODY_MAX;
		retries = err->retries;
		err_init(err);
		err->retries = retries;
		if ((st = request(s3, &r, err)) != S3_OK)
			goto out;
		if (r.etag[0] == '\0') {
			st = S3_FAIL;
			set_msg(err, "s3: PUT '%s' part %" PRIu64 ": no ETag "
			    "in the answer", key, i + 1);
			goto out;
		}
		memcpy(etags[i], r.etag, ETAG_MAX);
	}

	/* Complete. */
	if (sb_add(&xml, &xlen, &xcap, "<CompleteMultipartUpload xmlns="
	    "\"http://s3.amazonaws.com/doc/2006-03-01/\">") != 0)
		goto nomem;
	for (i = 0; i < nparts; i++) {
		xml_escape(etags[i], esc, sizeof(esc));
		snprintf(line, sizeof(line), "<Part><PartNumber>%" PRIu64
		    "</PartNumber><ETag>%s</ETag></Part>", i + 1, esc);
		if (sb_add(&xml, &xlen, &xcap, line) != 0)
			goto nomem;
	}
	if (sb_add(&xml, &xlen, &xcap, "</CompleteMultipartUpload>") != 0 ||
	    hash_mem(xml, xlen, sha, md5) != 0)
		goto nomem;
	memset(&body, 0, sizeof(body));
	body.mem = xml;
	body.len = xlen;
	xml_clear(&r.x);
	memset(&r, 0, sizeof(r));
	snprintf(q, sizeof(q), "uploadId=%s", eid);
	r.method = "POST";
	r.key = key;
	r.query = q;
	r.content_type = "application/xml";
	r.sha256 = sha;
	r.md5_b64 = md5;
	r.body = &body;
	r.body_max = SMALL_BODY_MAX;
	retries = err->retries;
	err_init(err);
	err->retries = retries;
	if ((st = request(s3, &r, err)) != S3_OK)
		goto out;
	if (r.x.failed || !r.x.complete_seen) {
		st = S3_FAIL;
		set_msg(err, "s3: POST '%s' ?uploadId: no "
		    "CompleteMultipartUploadResult in the answer", key);
		goto out;
	}
	started = 0; /* complete: nothing to abort */
	goto out;
nomem:
	st = S3_FAIL;
	set_msg(err, "s3: out of memory");
out:
	if (started)
		mp_abort(s3, key, eid);
	err->status = st;
	xml_clear(&r.x);
	free(xml);
	free(eid);
	free(etags);
	return (st);
}

enum s3_status
s3_put_file(struct s3 *s3, const char *key, const char *path,
    const char *content_type, struct s3_error *err)
{
	struct stat sb;
	enum s3_status st;
	int fd;

	err_init(err);
	if (key == NULL || key[0] == '\0' || strlen(key) > KEY_MAX) {
		set_msg(err, "s3: bad key (empty or over %d bytes)",
		    KEY_MAX);
		return (S3_FAIL);
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) != 0) {
		err->status = S3_IO;
		set_msg(err, "s3: cannot read %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return (S3_IO);
	}
	if (!S_ISREG(sb.st_mode)) {
		err->status = S3_IO;
		set_msg(err, "s3: cannot upload %s: not a regular file",
		    path);
		close(fd);
		return (S3_IO);
	}
	if ((uint64_t)sb.st_size > s3->threshold)
		st = put_multipart(s3, key, fd, (uint64_t)sb.st_size,
		    content_type, err);
	else
		st = put_single(s3, key, fd, (uint64_t)sb.st_size,
		    content_type, err);
	close(fd);
	return (st);
}
