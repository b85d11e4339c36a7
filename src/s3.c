/*
 * s3: a small Amazon S3 client on libcurl's built-in SigV4 — the client
 * (endpoint, addressing, shared handles) and the public calls (see s3.h;
 * the DESIGN comment is in s3_internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"
#include "s3_internal.h"
#include "strvec.h"

#define DEFAULT_PART_SIZE ((uint64_t)16 << 20)

static char *
xstrdup(const char *s)
{
	return (s != NULL ? strdup(s) : NULL);
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
	if ((ebucket = s3_encode_dup(cfg->bucket, 0)) == NULL)
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

int
s3_storage_class_valid(const char *name)
{
	static const char *const classes[] = { "STANDARD",
	    "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
	    "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS",
	    "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE" };

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (name != NULL && strcmp(name, classes[i]) == 0)
			return (1);
	return (0);
}

/* A value that can go into a header line: printable ASCII, no blank
 * at either end, at most ${max} bytes. */
static int
header_safe(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max || v[0] == ' ' || v[n - 1] == ' ')
		return (0);
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return (0);
	return (1);
}

/* The SSE and storage-class settings: NULL if S3 would take them, else
 * why not. */
static const char *
check_object_settings(const struct s3_config *cfg)
{
	int kms = cfg->sse != NULL && strcmp(cfg->sse, "aws:kms") == 0;

	if (cfg->sse != NULL && !kms && strcmp(cfg->sse, "AES256") != 0)
		return ("server-side encryption must be AES256 or aws:kms");
	if ((cfg->sse_kms_key_id != NULL || cfg->sse_bucket_key) && !kms)
		return ("a KMS key id or a bucket key needs aws:kms encryption");
	if (cfg->sse_kms_key_id != NULL &&
	    !header_safe(cfg->sse_kms_key_id, 2048))
		return ("the KMS key id must be printable ASCII");
	if (cfg->storage_class != NULL &&
	    !s3_storage_class_valid(cfg->storage_class))
		return ("not one of S3's storage classes (" S3_STORAGE_CLASSES
		    ")");
	return (NULL);
}

struct s3 *
s3_init(const struct s3_config *cfg, struct logger *lg, struct s3_error *err)
{
	struct s3 *s3 = NULL;
	const char *why = NULL;
	struct s3_error dummy;

	if (err == NULL)
		err = &dummy;
	s3_err_init(err);
	if (cfg->bucket == NULL || cfg->bucket[0] == '\0')
		why = "no bucket given";
	else if (cfg->region == NULL || cfg->region[0] == '\0' ||
	    strlen(cfg->region) > 40 || strpbrk(cfg->region, ": /") != NULL)
		why = "no valid region given";
	else if (cfg->creds == NULL)
		why = "no credentials given";
	else if (strlen(cfg->bucket) > 255)
		why = "bucket name too long";
	else
		why = check_object_settings(cfg);
	if (why != NULL)
		goto fail;

	why = "out of memory";
	if ((s3 = calloc(1, sizeof(*s3))) == NULL)
		goto fail;
	if ((s3->bucket = xstrdup(cfg->bucket)) == NULL ||
	    (s3->region = xstrdup(cfg->region)) == NULL ||
	    (cfg->ca_bundle != NULL &&
	    (s3->ca_bundle = xstrdup(cfg->ca_bundle)) == NULL) ||
	    (cfg->sse != NULL && (s3->sse = xstrdup(cfg->sse)) == NULL) ||
	    (cfg->sse_kms_key_id != NULL &&
	    (s3->sse_kms_key_id = xstrdup(cfg->sse_kms_key_id)) == NULL) ||
	    (cfg->storage_class != NULL &&
	    (s3->storage_class = xstrdup(cfg->storage_class)) == NULL))
		goto fail;
	s3->sse_bucket_key = cfg->sse_bucket_key;
	s3->max_keys = cfg->max_keys > 0 ? cfg->max_keys : 0;
	s3->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 1;
	s3->threshold = cfg->multipart_threshold;
	s3->part_size = cfg->part_size > 0 ? cfg->part_size :
	    DEFAULT_PART_SIZE;
	s3->connect_timeout_ms = cfg->connect_timeout_ms;
	s3->stall_timeout_s = cfg->stall_timeout_s;
	s3->min_speed = cfg->min_speed;
	s3->cancel = cfg->cancel;
	s3->hint = cfg->hint;
	s3->hint_ctx = cfg->hint_ctx;
	s3->creds = cfg->creds;
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
	s3_set_msg(err, "s3: %s", why);
	err->status = S3_FATAL;
	s3_free(s3);
	return (NULL);
}

void
s3_on_slowdown(struct s3 *s3, s3_slowdown_fn *fn, void *arg)
{
	s3->slowdown = fn;
	s3->slowdown_arg = fn != NULL ? arg : NULL;
}

void
s3_free(struct s3 *s3)
{
	if (s3 == NULL)
		return;
	s3_conns_free(s3);
	if (s3->sh != NULL)
		curl_share_cleanup(s3->sh);
	if (s3->sh_ok)
		pthread_mutex_destroy(&s3->dns_mu);
	if (s3->pool_ok)
		pthread_mutex_destroy(&s3->pool_mu);
	free(s3->bucket);
	free(s3->region);
	free(s3->ca_bundle);
	free(s3->sse);
	free(s3->sse_kms_key_id);
	free(s3->storage_class);
	free(s3->origin);
	free(s3->base);
	free(s3);
}

/* 1 if every key of the page ${x} starts with ${prefix}. */
static int
page_in_prefix(const struct xml *x, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < x->n; i++)
		if (strncmp(x->ents[i].key, prefix, n) != 0)
			return (0);
	return (1);
}

/*
 * Beyond s3_list_page_check(): a page must list only keys under the
 * ${prefix} asked for, and its token, if any, must be new to the
 * listing (${seen}), else A -> B -> A would list for ever.  S3_OK, or
 * S3_FAIL with the message set.
 */
static enum s3_status
list_page_sane(struct s3 *s3, const struct xml *x, const char *prefix,
    struct strvec *seen, struct s3_error *err)
{
	if (!page_in_prefix(x, prefix)) {
		s3_set_msg(err, "s3: list '%s': the answer holds a key outside "
		    "the prefix asked for", s3->bucket);
		return (S3_FAIL);
	}
	if (!x->truncated)
		return (S3_OK);
	if (strvec_has(seen, x->token)) {
		s3_set_msg(err, "s3: list '%s': malformed ListObjectsV2 answer "
		    "(a continuation token came back: the listing loops)",
		    s3->bucket);
		return (S3_FAIL);
	}
	if (strvec_add(seen, x->token)) {
		s3_set_msg(err, "s3: out of memory");
		return (S3_FAIL);
	}
	return (S3_OK);
}

enum s3_status
s3_list(struct s3 *s3, const char *prefix, s3_list_cb *cb, void *ctx,
    struct s3_error *err)
{
	struct req r;
	struct strvec seen = STRVEC_INIT;
	char *eprefix = NULL, *etoken = NULL, *query = NULL, *prev = NULL;
	const char *why;
	size_t qlen;
	enum s3_status st;
	int stop = 0;

	s3_err_init(err);
	memset(&r, 0, sizeof(r));
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > KEY_MAX || (eprefix = s3_encode_dup(prefix, 0)) ==
	    NULL) {
		s3_set_msg(err, "s3: bad prefix");
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
			s3_set_msg(err, "s3: out of memory");
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
		if ((st = s3_request(s3, &r, err)) != S3_OK)
			goto out;
		if (s3_list_page_check(&r.x, prev, &why) != 0) {
			st = S3_FAIL;
			s3_set_msg(err, "s3: list '%s': malformed ListObjectsV2 "
			    "answer%s", s3->bucket, why);
			goto out;
		}
		if ((st = list_page_sane(s3, &r.x, prefix, &seen, err)) !=
		    S3_OK)
			goto out;
		stop = s3_list_page_emit(&r.x, cb, ctx);
		if (stop || !r.x.truncated)
			break;
		free(etoken);
		free(prev);
		prev = NULL;
		if ((etoken = s3_encode_dup(r.x.token, 0)) == NULL ||
		    (prev = strdup(r.x.token)) == NULL) {
			st = S3_FAIL;
			s3_set_msg(err, "s3: out of memory");
			goto out;
		}
	}
	st = S3_OK;
out:
	err->status = st;
	s3_xml_clear(&r.x);
	strvec_free(&seen);
	free(query);
	free(etoken);
	free(prev);
	free(eprefix);
	return (st);
}

enum s3_status
s3_delete(struct s3 *s3, const char *key, struct s3_error *err)
{
	struct req r;
	enum s3_status st;

	s3_err_init(err);
	memset(&r, 0, sizeof(r));
	r.method = "DELETE";
	r.key = key;
	r.body_max = SMALL_BODY_MAX;
	st = s3_request(s3, &r, err);
	s3_xml_clear(&r.x);
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

	if (s3_hash_range(fd, 0, size, sha, md5) != 0) {
		err->status = S3_IO;
		s3_set_msg(err, "s3: PUT '%s': cannot read the local file: %s",
		    key, ERRSTR(errno));
		return (S3_IO);
	}
	memset(&r, 0, sizeof(r));
	r.method = "PUT";
	r.key = key;
	r.creates_object = 1;
	r.content_type = ctype;
	r.sha256 = sha;
	r.md5_b64 = md5;
	r.meta_sha256 = sha; /* the whole file's: the same digest */
	r.body = &body;
	r.body_max = SMALL_BODY_MAX;
	st = s3_request(s3, &r, err);
	s3_xml_clear(&r.x);
	return (st);
}

/* Multipart: the whole file's SHA-256 first, for the metadata. */
static enum s3_status
put_parts(struct s3 *s3, const char *key, int fd, uint64_t size,
    const char *ctype, struct s3_error *err)
{
	char sha[65], md5[25];

	if (s3_hash_range(fd, 0, size, sha, md5) != 0) {
		err->status = S3_IO;
		s3_set_msg(err, "s3: PUT '%s': cannot read the local file: %s",
		    key, ERRSTR(errno));
		return (S3_IO);
	}
	return (s3_put_multipart(s3, key, fd, size, ctype, sha, err));
}

enum s3_status
s3_put_file(struct s3 *s3, const char *key, int fd, const char *content_type,
    struct s3_error *err)
{
	struct stat sb;
	enum s3_status st;

	s3_err_init(err);
	if (key == NULL || key[0] == '\0' || strlen(key) > KEY_MAX) {
		s3_set_msg(err, "s3: bad key (empty or over %d bytes)",
		    KEY_MAX);
		return (S3_FAIL);
	}
	if (fstat(fd, &sb) != 0) {
		err->status = S3_IO;
		s3_set_msg(err, "s3: PUT '%s': cannot read the local file: %s",
		    key, ERRSTR(errno));
		return (S3_IO);
	}
	if (!S_ISREG(sb.st_mode)) {
		err->status = S3_IO;
		s3_set_msg(err, "s3: PUT '%s': the local file is not a regular "
		    "file", key);
		return (S3_IO);
	}
	if ((uint64_t)sb.st_size > s3->threshold)
		st = put_parts(s3, key, fd, (uint64_t)sb.st_size,
		    content_type, err);
	else
		st = put_single(s3, key, fd, (uint64_t)sb.st_size,
		    content_type, err);
	return (st);
}
