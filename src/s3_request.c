/*
 * s3_request: one S3 request with its retries — the transfer contexts,
 * URL and headers, the transfer itself, and the verdict on its answer
 * (see s3_internal.h's DESIGN).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cancel.h"
#include "creds.h"
#include "errbuf.h"
#include "log.h"
#include "retry.h"
#include "s3_internal.h"
#include "secret.h"
#include "version.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 20000
#define IDLE_MAX 64

enum verdict { V_OK, V_RETRY, V_FAIL, V_FATAL, V_CANCEL, V_IO };

void
s3_err_init(struct s3_error *e)
{
	memset(e, 0, sizeof(*e));
	e->status = S3_FAIL;
}

void
s3_set_msg(struct s3_error *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
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
char *
s3_encode_dup(const char *in, int keep_slash)
{
	size_t cap = strlen(in) * 3 + 1;
	char *out = malloc(cap);

	if (out != NULL && s3_uri_encode(in, out, cap, keep_slash) < 0) {
		free(out);
		out = NULL;
	}
	return (out);
}

/* The SHA-256 ${sha} as hex and the MD5 ${md5} as base64. */
static void
digests_out(const unsigned char sha[32], const unsigned char md5[16],
    char sha_hex[65], char md5_b64[25])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		sha_hex[2 * i] = hex[sha[i] >> 4];
		sha_hex[2 * i + 1] = hex[sha[i] & 15];
	}
	sha_hex[64] = '\0';
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, 16);
}

/*
 * s3_hash_range(fd, off, len, sha_hex, md5_b64): SHA-256 (hex) and MD5
 * (base64) of ${len} bytes at ${off}, one pass.  0, or -1 with errno.
 */
int
s3_hash_range(int fd, uint64_t off, uint64_t len, char sha_hex[65],
    char md5_b64[25])
{
	EVP_MD_CTX *sha = NULL, *md5 = NULL;
	unsigned char *buf = NULL, dsha[32], dmd5[16];
	unsigned int n;
	size_t bufsz = 256 * 1024;
	uint64_t done = 0;
	ssize_t r;
	int rc = -1;

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
	digests_out(dsha, dmd5, sha_hex, md5_b64);
	rc = 0;
out:
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(md5);
	free(buf);
	return (rc);
}

/* The same for a memory buffer. */
int
s3_hash_mem(const char *p, size_t len, char sha_hex[65], char md5_b64[25])
{
	unsigned char dsha[32], dmd5[16];
	unsigned int n;

	if (EVP_Digest(p, len, dsha, &n, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(p, len, dmd5, &n, EVP_md5(), NULL) != 1)
		return (-1);
	digests_out(dsha, dmd5, sha_hex, md5_b64);
	return (0);
}

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
	stall_add(&r->stall, n, cancel_clock_ms());
	if (r->sink != NULL && r->hstatus >= 200 && r->hstatus < 300)
		return (r->sink->feed(r->sink->ctx, p, n) == 0 ? n : 0);
	s3_xml_feed(&r->x, p, n);
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

	stall_add(&r->stall, n, cancel_clock_ms());
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response */
		const char *sp = memchr(p, ' ', n);

		r->etag[0] = '\0';
		r->bucket_region[0] = '\0';
		r->meta[0] = '\0';
		r->content_length = 0;
		r->retry_after_ms = -1;
		r->hstatus = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
	} else if (header_value(p, n, "ETag", r->etag, sizeof(r->etag))) {
		;
	} else if (header_value(p, n, S3_META_SHA256, v, sizeof(v))) {
		/* Only a well-formed digest counts. */
		if (strlen(v) == 64 && strspn(v, "0123456789abcdef") == 64)
			memcpy(r->meta, v, 65);
	} else if (header_value(p, n, "Content-Length", v, sizeof(v))) {
		r->content_length = strtoull(v, NULL, 10);
	} else if (header_value(p, n, "x-amz-bucket-region", v, sizeof(v))) {
		errbuf_escape(v, strlen(v), r->bucket_region,
		    sizeof(r->bucket_region));
	} else if (header_value(p, n, "Retry-After", v, sizeof(v))) {
		r->retry_after_ms = retry_parse_after(v, (int64_t)time(NULL));
	}
	return (n);
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

	if (key != NULL && (ek = s3_encode_dup(key, 1)) == NULL)
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

/* headers_free(h): free a header list, wiping each line first (one may
 * hold the session token). */
static void
headers_free(struct curl_slist *h)
{
	for (struct curl_slist *t = h; t != NULL; t = t->next)
		secret_wipe(t->data, strlen(t->data));
	curl_slist_free_all(h);
}

/* Add "${name}: ${value}" to *${h}; -1 if it does not fit or no memory. */
static int
header_add(struct curl_slist **h, const char *name, const char *value,
    char *line, size_t linelen)
{
	struct curl_slist *t;

	if ((size_t)snprintf(line, linelen, "%s: %s", name, value) >= linelen ||
	    (t = curl_slist_append(*h, line)) == NULL)
		return (-1);
	*h = t;
	return (0);
}

/*
 * make_headers(s3, r, url, v): the request's headers, signed with ${v}
 * (SigV4, s3_sign()): host, the payload's hash, the date, the body's
 * type and MD5, ${v}'s session token, the file's SHA-256 as metadata,
 * and for a request that creates an object the encryption and
 * storage-class settings.  NULL if out of
 * memory or a value does not fit a line.
 */
static struct curl_slist *
make_headers(const struct s3 *s3, const struct req *r, const char *url,
    const struct creds_value *v)
{
	struct curl_slist *h = NULL;
	struct s3_header hd[13];
	char line[CREDS_TOKEN_MAX + 64]; /* the longest value is the token */
	char date[20], auth[1024];
	const char *path = url + strlen(s3->origin), *host;
	const char *sha = r->sha256 != NULL ? r->sha256 : EMPTY_SHA256;
	int obj = r->creates_object;
	struct tm tm;
	time_t now = time(NULL);
	size_t n = 0, i;
	const struct s3_header all[] = {
		{ "x-amz-content-sha256", sha },
		{ "x-amz-date", date },
		{ "content-type", r->content_type },
		{ "content-md5", r->md5_b64 },
		{ "x-amz-security-token", v->token },
		{ "x-amz-server-side-encryption", obj ? s3->sse : NULL },
		{ "x-amz-server-side-encryption-aws-kms-key-id",
		    obj ? s3->sse_kms_key_id : NULL },
		{ "x-amz-server-side-encryption-bucket-key-enabled",
		    obj && s3->sse_bucket_key ? "true" : NULL },
		{ "x-amz-storage-class", obj ? s3->storage_class : NULL },
		{ S3_META_SHA256, r->meta_sha256 },
	};

	host = strstr(s3->origin, "://");
	host = host != NULL ? host + 3 : s3->origin;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
	hd[n].name = "host";
	hd[n++].value = host;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i].value != NULL && all[i].value[0] != '\0')
			hd[n++] = all[i];
	if (s3_sign(s3->region, r->method, path, strcspn(path, "?"),
	    r->query, hd, n, sha, date, v->access_key, v->secret_key, auth,
	    sizeof(auth)) != 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (header_add(&h, hd[i].name, hd[i].value, line,
		    sizeof(line)) != 0)
			goto fail;
	if (header_add(&h, "authorization", auth, line, sizeof(line)) != 0)
		goto fail;
	secret_wipe(line, sizeof(line));
	return (h);
fail:
	secret_wipe(line, sizeof(line));
	headers_free(h);
	return (NULL);
}

static void
wake_multi(void *arg)
{
	(void)curl_multi_wakeup(arg);
}

/* The easy handle's options for ${r} on ${url} with the (signed)
 * headers ${hdrs}. */
static void
setup(struct s3 *s3, CURL *e, struct req *r, const char *url,
    struct curl_slist *hdrs)
{
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, s3->sh);
	curl_easy_setopt(e, CURLOPT_USERAGENT, version_user_agent());
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
	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "PUT") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/*
 * Drive the transfer on ${c} until it ends, is cancelled (*${was_cancelled}
 * set) or stalls.  Returns its CURLcode.
 */
static CURLcode
drive(struct s3 *s3, struct conn *c, struct req *r, int *was_cancelled)
{
	curl_off_t up = 0, last_up = 0;
	CURLcode res = CURLE_OK;
	int running = 1, poll_ms;

	poll_ms = s3->stall_timeout_s * 1000 / STALL_SLOTS < 1000 ?
	    (int)(s3->stall_timeout_s * 1000 / STALL_SLOTS) : 1000;
	if (poll_ms < 20)
		poll_ms = 20;
	for (;;) {
		if (curl_multi_perform(c->m, &running) != CURLM_OK)
			return (CURLE_SEND_ERROR);
		if (!running)
			return (CURLE_OK);
		if (!r->no_cancel && cancel_requested(s3->cancel)) {
			*was_cancelled = 1;
			return (CURLE_ABORTED_BY_CALLBACK);
		}
		if (curl_easy_getinfo(c->e, CURLINFO_SIZE_UPLOAD_T, &up) ==
		    CURLE_OK && up > last_up) {
			stall_add(&r->stall, (uint64_t)(up - last_up),
			    cancel_clock_ms());
			last_up = up;
		}
		if (stall_check(&r->stall, cancel_clock_ms())) {
			snprintf(r->curl_err, sizeof(r->curl_err), "less than %"
			    PRIu64 " bytes/s over the last %ld s",
			    s3->min_speed, s3->stall_timeout_s);
			return (CURLE_OPERATION_TIMEDOUT);
		}
		if (curl_multi_poll(c->m, NULL, 0, poll_ms, NULL) != CURLM_OK)
			return (CURLE_RECV_ERROR);
	}
	return (res);
}

/* One transfer on ${c}.  Sets *was_cancelled when the run's cancel flag
 * stopped it. */
static CURLcode
transfer(struct s3 *s3, struct conn *c, struct req *r, const char *url,
    struct curl_slist *hdrs, int *was_cancelled)
{
	struct cancel_hook hook;
	CURLMsg *msg;
	CURLcode res;
	int left;

	setup(s3, c->e, r, url, hdrs);
	stall_init(&r->stall, (int64_t)s3->stall_timeout_s * 1000,
	    s3->min_speed, cancel_clock_ms());
	if (curl_multi_add_handle(c->m, c->e) != CURLM_OK)
		return (CURLE_OUT_OF_MEMORY);
	if (!r->no_cancel)
		cancel_hook_add(s3->cancel, &hook, wake_multi, c->m);
	res = drive(s3, c, r, was_cancelled);
	if (!r->no_cancel)
		cancel_hook_remove(s3->cancel, &hook);
	if (res == CURLE_OK) {
		while ((msg = curl_multi_info_read(c->m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->e)
				res = msg->data.result;
	}
	curl_multi_remove_handle(c->m, c->e);
	curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &r->status);
	return (res);
}

static int
code_is(const struct req *r, const char *code)
{
	return (strcmp(r->x.code, code) == 0);
}

/* S3 refused the request's session token (a refreshable refusal). */
static int
token_refused(const struct req *r, CURLcode cc)
{
	return (cc == CURLE_OK && (code_is(r, "ExpiredToken") ||
	    code_is(r, "InvalidToken") || code_is(r, "TokenRefreshRequired")));
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

/* Whether the answer asks the client to slow down (S3's 503 SlowDown;
 * 429 from S3-compatible stores). */
static int
slow_down(const struct req *r, CURLcode cc)
{
	return (cc == CURLE_OK && (r->status == 503 || r->status == 429 ||
	    code_is(r, "SlowDown")));
}

/* What a fatal answer (${cc} its transfer result) refused. */
static enum s3_refusal
refusal_of(const struct req *r, CURLcode cc)
{
	if (cc != CURLE_OK)
		return (S3_REFUSED_ENDPOINT);
	if (code_is(r, "SignatureDoesNotMatch"))
		return (S3_REFUSED_SECRET);
	if (code_is(r, "InvalidAccessKeyId"))
		return (S3_REFUSED_KEY_ID);
	if (token_refused(r, cc))
		return (S3_REFUSED_TOKEN);
	if (code_is(r, "RequestTimeTooSkewed"))
		return (S3_REFUSED_CLOCK);
	if (code_is(r, "NoSuchBucket"))
		return (S3_REFUSED_BUCKET);
	if (r->status == 301 || code_is(r, "PermanentRedirect") ||
	    code_is(r, "AuthorizationHeaderMalformed"))
		return (S3_REFUSED_REGION);
	if (code_is(r, "AccessDenied") || r->status == 403) {
		if (strcmp(r->method, "HEAD") == 0 ||
		    (strcmp(r->method, "GET") == 0 && r->key != NULL))
			return (S3_REFUSED_READ);
		return (strcmp(r->method, "GET") == 0 ? S3_REFUSED_LIST :
		    S3_REFUSED_WRITE);
	}
	return (S3_REFUSED_OTHER);
}

/* Fill ${e} for a fatal answer: what was refused, and the hint. */
static void
describe_fatal(const struct s3 *s3, const struct req *r, CURLcode cc,
    struct s3_error *e)
{
	const char *region = r->bucket_region[0] != '\0' ? r->bucket_region :
	    r->x.region;
	char hint[400] = "";

	e->status = S3_FATAL;
	e->refusal = refusal_of(r, cc);
	if (s3->hint != NULL)
		s3->hint(s3->hint_ctx, e->refusal, region, hint, sizeof(hint));
	if (cc != CURLE_OK)
		s3_set_msg(e, "s3: bucket '%s' (region %s): %s%s%s", s3->bucket,
		    s3->region, r->curl_err[0] != '\0' ? r->curl_err :
		    curl_easy_strerror(cc), hint[0] ? " — " : "", hint);
	else if (r->x.code[0] != '\0')
		s3_set_msg(e, "s3: bucket '%s' (region %s): %s%s%s", s3->bucket,
		    s3->region, r->x.code, hint[0] ? " — " : "", hint);
	else
		s3_set_msg(e, "s3: bucket '%s' (region %s): HTTP %ld%s%s",
		    s3->bucket, s3->region, r->status, hint[0] ? " — " : "",
		    hint);
}

/* Fill ${e} for a request that ended with ${v}. */
static void
describe(const struct s3 *s3, const struct req *r, CURLcode cc,
    enum verdict v, struct s3_error *e)
{
	char what[KEY_MAX * 4 + 64], key[KEY_MAX * 4 + 4];
	const char *ce;

	errbuf_escape(r->key != NULL ? r->key : "", r->key != NULL ?
	    strlen(r->key) : 0, key, sizeof(key));
	if (r->key != NULL)
		snprintf(what, sizeof(what), "%s '%s'", r->method, key);
	else
		snprintf(what, sizeof(what), "list '%s'", s3->bucket);
	e->http_status = r->status;
	snprintf(e->code, sizeof(e->code), "%s", r->x.code);
	ce = r->curl_err[0] != '\0' ? r->curl_err : curl_easy_strerror(cc);

	switch (v) {
	case V_FATAL:
		describe_fatal(s3, r, cc, e);
		break;
	case V_CANCEL:
		e->status = S3_CANCELLED;
		s3_set_msg(e, "s3: %s: cancelled", what);
		break;
	case V_IO:
		e->status = S3_IO;
		s3_set_msg(e, "s3: %s: cannot read the local file: %s", what,
		    ERRSTR(r->body->err));
		break;
	default:
		e->status = S3_FAIL;
		if (cc != CURLE_OK && r->body_over)
			s3_set_msg(e, "s3: %s: answer larger than %" PRIu64
			    " bytes", what, r->body_max);
		else if (cc != CURLE_OK)
			s3_set_msg(e, "s3: %s: %s (after %d retries)", what, ce,
			    e->retries);
		else
			s3_set_msg(e, "s3: %s: HTTP %ld%s%s%s%s (after %d "
			    "retries)", what, r->status,
			    r->x.code[0] ? " " : "", r->x.code,
			    r->x.message[0] ? ": " : "", r->x.message,
			    e->retries);
		break;
	}
}

/*
 * One attempt of ${r} on ${c}: the current credentials (their generation
 * in *${gen}, 0 if none could be had), the headers, the transfer and its
 * verdict (${cc}: the transfer's result).
 */
static enum verdict
attempt(struct s3 *s3, struct conn *c, struct req *r, const char *url,
    uint64_t *gen, CURLcode *cc)
{
	struct creds_value v;
	struct curl_slist *hdrs = NULL;
	int was_cancelled = 0;
	enum verdict verdict;

	*gen = 0;
	*cc = CURLE_OK;
	r->status = 0;
	r->etag[0] = '\0';
	r->bucket_region[0] = '\0';
	r->retry_after_ms = -1;
	r->body_bytes = 0;
	r->body_over = 0;
	r->curl_err[0] = '\0';
	r->meta[0] = '\0';
	r->content_length = 0;
	r->hstatus = 0;
	if (r->sink != NULL)
		r->sink->reset(r->sink->ctx);
	if (s3_xml_reset(&r->x) != 0) {
		*cc = CURLE_OUT_OF_MEMORY;
		return (V_FAIL);
	}
	if (!r->no_cancel && cancel_requested(s3->cancel))
		return (V_CANCEL);
	if (creds_get(s3->creds, &v) != 0) {
		/* Every refresh failed and the last set is past its margin:
		 * a failed attempt, like an unreachable endpoint. */
		*cc = CURLE_LOGIN_DENIED;
		snprintf(r->curl_err, sizeof(r->curl_err), "no valid AWS "
		    "credentials (refreshing them failed)");
		return (V_RETRY);
	}
	*gen = v.generation;
	if ((hdrs = make_headers(s3, r, url, &v)) == NULL) {
		*cc = CURLE_OUT_OF_MEMORY;
		verdict = V_FAIL;
		goto out;
	}
	*cc = transfer(s3, c, r, url, hdrs, &was_cancelled);
	if (*cc == CURLE_OK)
		s3_xml_finish(&r->x);
	verdict = was_cancelled ? V_CANCEL : classify(r, *cc);
out:
	headers_free(hdrs);
	creds_value_wipe(&v);
	return (verdict);
}

/* Log a retry of ${r} (${cc}) in ${delay} ms. */
static void
log_retry(struct s3 *s3, const struct req *r, CURLcode cc, const char *what,
    int attempt, int attempts, int64_t delay)
{
	char why[CURL_ERROR_SIZE + 64];

	if (cc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", r->curl_err[0] != '\0' ?
		    r->curl_err : curl_easy_strerror(cc));
	else
		snprintf(why, sizeof(why), "HTTP %ld%s%s", r->status,
		    r->x.code[0] != '\0' ? " " : "", r->x.code);
	log_warn(s3->lg, "s3: %s '%s': %s; retry %d of %d in %" PRId64 " ms",
	    r->method, what, why, attempt, attempts - 1, delay);
}

/*
 * s3_request(s3, r, err): see s3_internal.h.
 */
enum s3_status
s3_request(struct s3 *s3, struct req *r, struct s3_error *err)
{
	struct conn *c = NULL;
	char *url = NULL;
	enum verdict v = V_FAIL;
	CURLcode cc = CURLE_OK;
	int n, attempts, renewed = 0;
	uint64_t gen;
	int64_t delay;
	uint32_t rnd;
	char what[KEY_MAX * 4 + 4];
	const char *w = r->key != NULL ? r->key : s3->bucket;

	errbuf_escape(w, strlen(w), what, sizeof(what));
	attempts = r->attempts > 0 ? r->attempts : s3->max_attempts;
	rnd = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)r ^
	    atomic_fetch_add(&s3->seq, 0x9e3779b9u);
	if ((url = make_url(s3, r->key, r->query)) == NULL ||
	    (c = conn_get(s3)) == NULL) {
		err->status = S3_FAIL;
		s3_set_msg(err, "s3: out of memory");
		goto out;
	}
	for (n = 1;; n++) {
		v = attempt(s3, c, r, url, &gen, &cc);
		if (v != V_CANCEL && slow_down(r, cc) && s3->slowdown != NULL)
			s3->slowdown(s3->slowdown_arg);
		if (v == V_FATAL && token_refused(r, cc) && !renewed &&
		    creds_invalidate(s3->creds, gen) == 0) {
			/* A new set is on its way: send it again at once, once
			 * per request, not counted as an attempt. */
			renewed = 1;
			log_warn(s3->lg, "s3: %s '%s': %s; temporary credentials "
			    "refused, retrying with fresh ones", r->method,
			    what, r->x.code);
			err->retries++;
			n--;
			continue;
		}
		if (v != V_RETRY || n >= attempts)
			break;
		delay = retry_delay_ms(n, r->retry_after_ms, BACKOFF_BASE_MS,
		    BACKOFF_CAP_MS, retry_jitter(&rnd));
		log_retry(s3, r, cc, what, n, attempts, delay);
		err->retries++;
		if (cancel_sleep(r->no_cancel ? NULL : s3->cancel, delay)) {
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
	free(url);
	return (err->status);
}

void
s3_conns_free(struct s3 *s3)
{
	struct conn *c;

	while ((c = s3->idle) != NULL) {
		s3->idle = c->next;
		conn_free(c);
	}
}
