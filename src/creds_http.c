/*
 * creds_http: the HTTP sources of the creds module: STS
 * AssumeRoleWithWebIdentity, the container credentials endpoint and
 * IMDSv2 (see creds_internal.h).
 *
 * DESIGN
 * - One libcurl easy handle per request, made and freed here: a refresh
 *   happens once in minutes or hours, so keeping connections buys
 *   nothing and a handle shared between refreshing threads would need a
 *   lock.  CURLOPT_NOSIGNAL, http/https only, no redirects, and no proxy
 *   for the link-local and loopback endpoints (IMDS, container).
 * - Cancel (cancel.h): the progress callback returns non-zero once the
 *   run is cancelled, which ends the transfer; retry pauses are
 *   cancel_sleep(), which a cancel wakes at once.
 * - Secrets: the answer is read into a buffer that is wiped when freed,
 *   the parsers wipe their own memory, and the request body that holds
 *   the web identity token is wiped too.  No message quotes an answer, a
 *   token or a header: they name the endpoint, the HTTP status and the
 *   service's error code only.
 * - Bounds: an answer above CREDS_BODY_MAX bytes is refused; a token file
 *   above it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cancel.h"
#include "creds_internal.h"
#include "errbuf.h"

#define STS_ATTEMPTS 3
#define CONTAINER_ATTEMPTS 3
#define BACKOFF_MS 200
#define IMDS_TTL "21600"

struct body {
	char *buf;   /* creds_wipe_malloc'd, CREDS_BODY_MAX + 1 */
	size_t len;
	int over;
};

static int
cancelled(struct cancel *c)
{
	return (cancel_requested(c));
}

static size_t
on_data(char *p, size_t size, size_t n, void *v)
{
	struct body *b = v;
	size_t len = size * n;

	if (len > CREDS_BODY_MAX - b->len) {
		b->over = 1;
		return (0);
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return (len);
}

static int
on_progress(void *v, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return (cancelled(v));
}

/* Sleep ${ms} (cancel.h's one sleep); 1 if cancelled. */
static int
pause_ms(struct cancel *cancel, long ms)
{
	return (cancel_sleep(cancel, ms) != 0);
}

/*
 * One request.  ${post}: body for POST (NULL: GET), or method "PUT" with
 * no body when ${put} is set.  Returns 0 with *status and ${b} filled
 * (any status), or -1 for a transport failure / cancel, message in err.
 */
static int
request(const struct creds_http *h, const char *what, const char *url,
    struct curl_slist *hdrs, const char *post, int put, int noproxy,
    long *status, struct body *b, char *err, size_t errlen)
{
	char ebuf[CURL_ERROR_SIZE];
	CURLcode cc;
	CURL *e;

	*status = 0;
	b->len = 0;
	b->over = 0;
	b->buf[0] = '\0';
	if ((e = curl_easy_init()) == NULL)
		return (errbuf_set(err, errlen, "%s: out of memory", what));
	ebuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, h->cancel);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "amp2s3");
	if (noproxy)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (h->ca_bundle != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_bundle);
	if (hdrs != NULL)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	if (post != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
	} else if (put) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(e);
	if (cc == CURLE_ABORTED_BY_CALLBACK || cancelled(h->cancel))
		return (errbuf_set(err, errlen, "%s: cancelled", what));
	if (b->over)
		return (errbuf_set(err, errlen, "%s: answer larger than %d "
		    "bytes", what, CREDS_BODY_MAX));
	if (cc != CURLE_OK)
		return (errbuf_set(err, errlen, "%s: %s", what,
		    ebuf[0] != '\0' ? ebuf : curl_easy_strerror(cc)));
	return (0);
}

static int
body_init(struct body *b, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	if ((b->buf = creds_wipe_malloc(CREDS_BODY_MAX + 1)) == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	b->buf[0] = '\0';
	return (0);
}

static void
body_free(struct body *b)
{
	creds_wipe_free(b->buf);
	b->buf = NULL;
}

/* A header value: printable ASCII or tab, no CR/LF. */
static int
header_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') ||
		    (unsigned char)*s == 0x7f)
			return (0);
	return (1);
}

/*
 * The content of ${path} (at most CREDS_BODY_MAX bytes), trailing CR/LF
 * removed, in a wiped-on-free buffer (creds_wipe_free).  NULL with a
 * message naming the file.
 */
static char *
read_token_file(const char *what, const char *path, char *err,
    size_t errlen)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		errbuf_set(err, errlen, "%s: cannot read the token file %s: "
		    "%s", what, path, ERRSTR(errno));
		return (NULL);
	}
	if ((buf = creds_wipe_malloc(CREDS_BODY_MAX + 1)) == NULL) {
		close(fd);
		errbuf_set(err, errlen, "%s: out of memory", what);
		return (NULL);
	}
	for (;;) {
		n = read(fd, buf + len, CREDS_BODY_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > CREDS_BODY_MAX)
			break;
	}
	close(fd);
	if (n < 0 || len > CREDS_BODY_MAX) {
		errbuf_set(err, errlen, "%s: the token file %s is %s", what,
		    path, n < 0 ? "unreadable" : "too large");
		creds_wipe_free(buf);
		return (NULL);
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		errbuf_set(err, errlen, "%s: the token file %s is empty or "
		    "holds a NUL byte", what, path);
		creds_wipe_free(buf);
		return (NULL);
	}
	return (buf);
}

/* ------------------------------------------------------------------ */
/* STS                                                                 */

/* "&name=" + escaped value appended to ${out} (capacity ${cap}). */
static int
form_add(CURL *e, char *out, size_t cap, const char *name, const char *val)
{
	char *esc;
	size_t have = strlen(out), need;
	int rc = -1;

	if ((esc = curl_easy_escape(e, val, 0)) == NULL)
		return (-1);
	need = strlen(name) + strlen(esc) + 2;
	if (have + need < cap) {
		snprintf(out + have, cap - have, "%s%s=%s", have ? "&" : "",
		    name, esc);
		rc = 0;
	}
	explicit_bzero(esc, strlen(esc));
	curl_free(esc);
	return (rc);
}

int
creds_sts_fetch(const struct creds_http *h, const char *endpoint,
    const char *role_arn, const char *session, const char *token_file,
    struct creds_value *out, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL, *nh;
	struct body b = { 0 };
	char *token = NULL, *form = NULL, code[64], why[256];
	size_t cap = 3 * CREDS_BODY_MAX + 1024;
	long status;
	int attempt, rc = -1, r;
	CURL *esc = NULL;

	memset(out, 0, sizeof(*out));
	if ((token = read_token_file("web identity", token_file, err,
	    errlen)) == NULL)
		goto out;
	if (body_init(&b, err, errlen) != 0)
		goto out;
	if ((esc = curl_easy_init()) == NULL ||
	    (form = creds_wipe_malloc(cap)) == NULL) {
		errbuf_set(err, errlen, "web identity: out of memory");
		goto out;
	}
	form[0] = '\0';
	if (form_add(esc, form, cap, "Action", "AssumeRoleWithWebIdentity") ||
	    form_add(esc, form, cap, "RoleArn", role_arn) ||
	    form_add(esc, form, cap, "RoleSessionName", session) ||
	    form_add(esc, form, cap, "Version", "2011-06-15") ||
	    form_add(esc, form, cap, "WebIdentityToken", token)) {
		errbuf_set(err, errlen, "web identity: out of memory");
		goto out;
	}
	if ((nh = curl_slist_append(hdrs, "Content-Type: "
	    "application/x-www-form-urlencoded; charset=utf-8")) == NULL)
		goto oom;
	hdrs = nh;
	if ((nh = curl_slist_append(hdrs, "Accept: text/xml")) == NULL)
		goto oom;
	hdrs = nh;
	for (attempt = 1; attempt <= STS_ATTEMPTS; attempt++) {
		if (attempt > 1 && pause_ms(h->cancel, BACKOFF_MS *
		    (1L << (attempt - 2)))) {
			errbuf_set(err, errlen, "web identity: cancelled");
			goto out;
		}
		if (request(h, "web identity: STS", endpoint, hdrs, form, 0, 0,
		    &status, &b, err, errlen) != 0) {
			if (cancelled(h->cancel))
				goto out;
			continue;
		}
		r = creds_parse_sts(b.buf, b.len, out, code, sizeof(code),
		    why, sizeof(why));
		if (status == 200 && r == 0) {
			rc = 0;
			goto out;
		}
		if (r == 1)
			errbuf_set(err, errlen, "web identity: STS answered "
			    "%ld %s", status, code);
		else if (status == 200)
			errbuf_set(err, errlen, "web identity: %s", why);
		else
			errbuf_set(err, errlen, "web identity: STS answered "
			    "HTTP %ld", status);
		if (!(status >= 500 || status == 429 || (r == 1 &&
		    (strcmp(code, "IDPCommunicationError") == 0 ||
		    strcmp(code, "Throttling") == 0))))
			goto out;
	}
	goto out;
oom:
	errbuf_set(err, errlen, "web identity: out of memory");
out:
	curl_slist_free_all(hdrs);
	if (esc != NULL)
		curl_easy_cleanup(esc);
	creds_wipe_free(form);
	creds_wipe_free(token);
	body_free(&b);
	if (rc != 0)
		creds_value_wipe(out);
	return (rc);
}

/* ------------------------------------------------------------------ */
/* Container                                                           */

int
creds_container_fetch(const struct creds_http *h, const char *url,
    const char *token, const char *token_file, struct creds_value *out,
    char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL, *nh;
	struct body b = { 0 };
	char *filetok = NULL, *line = NULL;
	const char *tok = token;
	long status;
	size_t n;
	int attempt, rc = -1;

	memset(out, 0, sizeof(*out));
	if (token_file != NULL) {
		if ((filetok = read_token_file("container", token_file, err,
		    errlen)) == NULL)
			goto out;
		tok = filetok;
	}
	if (tok != NULL) {
		if (!header_safe(tok)) {
			errbuf_set(err, errlen, "container: the authorization "
			    "token holds control characters");
			goto out;
		}
		n = strlen(tok) + sizeof("Authorization: ");
		if ((line = creds_wipe_malloc(n)) == NULL)
			goto oom;
		snprintf(line, n, "Authorization: %s", tok);
		if ((nh = curl_slist_append(hdrs, line)) == NULL)
			goto oom;
		hdrs = nh;
	}
	if ((nh = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
		goto oom;
	hdrs = nh;
	if (body_init(&b, err, errlen) != 0)
		goto out;
	for (attempt = 1; attempt <= CONTAINER_ATTEMPTS; attempt++) {
		if (attempt > 1 && pause_ms(h->cancel, BACKOFF_MS *
		    (1L << (attempt - 2)))) {
			errbuf_set(err, errlen, "container: cancelled");
			goto out;
		}
		if (request(h, "container", url, hdrs, NULL, 0, 1, &status, &b,
		    err, errlen) != 0) {
			if (cancelled(h->cancel))
				goto out;
			continue;
		}
		if (status == 200) {
			rc = creds_parse_json(CREDS_DOC_CONTAINER, b.buf, b.len,
			    out, err, errlen);
			goto out;
		}
		errbuf_set(err, errlen, "container: the endpoint answered "
		    "HTTP %ld%s", status, status == 401 || status == 403 ?
		    " (authorization token refused)" : "");
		if (status < 500 && status != 429)
			goto out;
	}
	goto out;
oom:
	errbuf_set(err, errlen, "container: out of memory");
out:
	/* curl_slist_append copied the header: wipe that copy too. */
	for (nh = hdrs; nh != NULL; nh = nh->next)
		explicit_bzero(nh->data, strlen(nh->data));
	curl_slist_free_all(hdrs);
	creds_wipe_free(line);
	creds_wipe_free(filetok);
	body_free(&b);
	if (rc != 0)
		creds_value_wipe(out);
	return (rc);
}

/* ------------------------------------------------------------------ */
/* IMDSv2                                                              */

int
creds_imds_fetch(const struct creds_http *h, const char *endpoint,
    char *role, size_t rolelen, struct creds_value *out, char *err,
    size_t errlen)
{
	struct curl_slist *hdrs = NULL, *nh;
	struct body b = { 0 };
	char url[1024], *hdr = NULL;
	size_t n, i, elen = strlen(endpoint);
	long status;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (rolelen > 0)
		role[0] = '\0';
	while (elen > 0 && endpoint[elen - 1] == '/')
		elen--;
	if (elen + 128 > sizeof(url) - 1) {
		errbuf_set(err, errlen, "instance metadata: endpoint too long");
		goto out;
	}
	if (body_init(&b, err, errlen) != 0)
		goto out;
	/* 1. A session token (IMDSv2): PUT, with its TTL. */
	snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)elen,
	    endpoint);
	if ((hdrs = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-"
	    "seconds: " IMDS_TTL)) == NULL ||
	    (nh = curl_slist_append(hdrs, "Content-Type:")) == NULL)
		goto oom;
	hdrs = nh;
	if (request(h, "instance metadata", url, hdrs, NULL, 1, 1, &status,
	    &b, err, errlen) != 0)
		goto out;
	if (status != 200 || b.len == 0 || !header_safe(b.buf)) {
		errbuf_set(err, errlen, "instance metadata: the IMDSv2 token "
		    "request answered HTTP %ld (IMDSv1 is not used)", status);
		goto out;
	}
	curl_slist_free_all(hdrs);
	hdrs = NULL;
	n = b.len + sizeof("X-aws-ec2-metadata-token: ");
	if ((hdr = creds_wipe_malloc(n)) == NULL)
		goto oom;
	snprintf(hdr, n, "X-aws-ec2-metadata-token: %s", b.buf);
	if ((hdrs = curl_slist_append(NULL, hdr)) == NULL)
		goto oom;
	/* 2. The role. */
	snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/"
	    "security-credentials/", (int)elen, endpoint);
	if (request(h, "instance metadata", url, hdrs, NULL, 0, 1, &status,
	    &b, err, errlen) != 0)
		goto out;
	if (status != 200) {
		errbuf_set(err, errlen, "instance metadata: no instance role "
		    "(HTTP %ld)", status);
		goto out;
	}
	for (n = 0; n < b.len && b.buf[n] != '\n' && b.buf[n] != '\r'; n++)
		;
	for (i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789+=,.@_-", b.buf[i]) == NULL)
			break;
	if (n == 0 || i < n || n >= rolelen || n > 128) {
		errbuf_set(err, errlen, "instance metadata: the role name is "
		    "empty or invalid");
		goto out;
	}
	memcpy(role, b.buf, n);
	role[n] = '\0';
	/* 3. Its credentials. */
	snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/"
	    "security-credentials/%s", (int)elen, endpoint, role);
	if (request(h, "instance metadata", url, hdrs, NULL, 0, 1, &status,
	    &b, err, errlen) != 0)
		goto out;
	if (status != 200) {
		errbuf_set(err, errlen, "instance metadata: the credentials of "
		    "role %s answered HTTP %ld", role, status);
		goto out;
	}
	rc = creds_parse_json(CREDS_DOC_IMDS, b.buf, b.len, out, err, errlen);
	goto out;
oom:
	errbuf_set(err, errlen, "instance metadata: out of memory");
out:
	for (nh = hdrs; nh != NULL; nh = nh->next)
		explicit_bzero(nh->data, strlen(nh->data));
	curl_slist_free_all(hdrs);
	creds_wipe_free(hdr);
	body_free(&b);
	if (rc != 0)
		creds_value_wipe(out);
	return (rc);
}
