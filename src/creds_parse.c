/*
 * creds_parse: the pure parts of the creds module (see creds_internal.h):
 * the JSON documents of IMDS, the container endpoint and
 * credential_process (yajl's event parser), STS's XML (expat), ISO 8601
 * times, shell-word splitting, the container URI rule and the refresh
 * margins.  No I/O and no state: everything here is unit-tested and
 * fuzzed on its own.
 *
 * The parsers see secrets, so they allocate through creds_wipe_*(),
 * which wipes every block before freeing it; the values land in the
 * caller's fixed buffers, never in a copy of ours.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <expat.h>
#include <yajl/yajl_parse.h>

#include "creds_internal.h"
#include "errbuf.h"

/* ------------------------------------------------------------------ */
/* Memory that is wiped before it is freed                             */

#define WIPE_HDR 16 /* keeps max_align_t alignment on the usual ABIs */

void *
creds_wipe_malloc(size_t n)
{
	unsigned char *p;

	if (n > SIZE_MAX - WIPE_HDR || (p = malloc(n + WIPE_HDR)) == NULL)
		return (NULL);
	memcpy(p, &n, sizeof(n));
	return (p + WIPE_HDR);
}

void
creds_wipe_free(void *q)
{
	unsigned char *p;
	size_t n;

	if (q == NULL)
		return;
	p = (unsigned char *)q - WIPE_HDR;
	memcpy(&n, p, sizeof(n));
	explicit_bzero(p, n + WIPE_HDR);
	free(p);
}

void *
creds_wipe_realloc(void *q, size_t n)
{
	unsigned char *p;
	size_t old;
	void *r;

	if (q == NULL)
		return (creds_wipe_malloc(n));
	p = (unsigned char *)q - WIPE_HDR;
	memcpy(&old, p, sizeof(old));
	if ((r = creds_wipe_malloc(n)) == NULL)
		return (NULL);
	memcpy(r, q, old < n ? old : n);
	creds_wipe_free(q);
	return (r);
}

/* Not inlined: GCC 12 takes &c->cur for its first member and warns. */
__attribute__((noinline)) void
creds_value_wipe(struct creds_value *v)
{
	explicit_bzero(v, sizeof(*v));
}

void
creds_strwipe(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void *
y_malloc(void *ctx, size_t n)
{
	(void)ctx;
	return (creds_wipe_malloc(n));
}

static void *
y_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	return (creds_wipe_realloc(p, n));
}

static void
y_free(void *ctx, void *p)
{
	(void)ctx;
	creds_wipe_free(p);
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */

/* 0x21..0x7e: no space, no control character, ASCII. */
static int
graphic(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return (0);
	return (1);
}

int
creds_check_value(const struct creds_value *v, char *err, size_t errlen)
{
	size_t n = strnlen(v->access_key, sizeof(v->access_key));

	if (n == 0 || n >= sizeof(v->access_key) || !graphic(v->access_key) ||
	    strpbrk(v->access_key, "/,=") != NULL)
		return (errbuf_set(err, errlen, "the access key id is empty "
		    "or holds characters an access key cannot have"));
	n = strnlen(v->secret_key, sizeof(v->secret_key));
	if (n == 0 || n >= sizeof(v->secret_key) || !graphic(v->secret_key))
		return (errbuf_set(err, errlen, "the secret access key is "
		    "empty or holds characters a secret key cannot have"));
	n = strnlen(v->token, sizeof(v->token));
	if (n >= sizeof(v->token) || !graphic(v->token))
		return (errbuf_set(err, errlen, "the session token holds "
		    "characters a token cannot have"));
	return (0);
}

/* ------------------------------------------------------------------ */
/* Times                                                               */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + (int64_t)doe - 719468);
}

/* ${n} digits at *${s} into *${v}; advances. */
static int
digits(const char **s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return (-1);
		*v = *v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	return (0);
}

int
creds_parse_time(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0, fdig = 0, oh = 0, om = 0, sign = 0;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int leap;
	int64_t t;

	if (s == NULL || digits(&s, 4, &y) || *s++ != '-' ||
	    digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d) ||
	    (*s != 'T' && *s != 't' && *s != ' ') || !*s++ ||
	    digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) ||
	    *s++ != ':' || digits(&s, 2, &sec))
		return (-1);
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return (-1);
		for (; isdigit((unsigned char)*s); s++, fdig++)
			if (fdig < 3)
				frac = frac * 10 + (*s - '0');
		for (; fdig < 3; fdig++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh))
			return (-1);
		if (*s == ':')
			s++;
		if (digits(&s, 2, &om) || oh > 23 || om > 59)
			return (-1);
	} else {
		return (-1);
	}
	if (*s != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 ||
	    mi > 59 || sec > 60)
		return (-1);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
		return (-1);
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	    h * 3600 + mi * 60 + (sec == 60 ? 59 : sec);
	t -= sign * (oh * 3600 + om * 60);
	if (t < 0)
		return (-1);
	*ms = t * 1000 + frac;
	return (0);
}

/* ------------------------------------------------------------------ */
/* Refresh margins                                                     */

int64_t
creds_margin_advisory_ms(int64_t lifetime_ms)
{
	if (lifetime_ms <= 0)
		return (0);
	return (lifetime_ms / 4 < 300000 ? lifetime_ms / 4 : 300000);
}

int64_t
creds_margin_mandatory_ms(int64_t lifetime_ms)
{
	if (lifetime_ms <= 0)
		return (0);
	return (lifetime_ms / 10 < 60000 ? lifetime_ms / 10 : 60000);
}

int64_t
creds_retry_after_ms(int64_t lifetime_ms)
{
	int64_t r = creds_margin_advisory_ms(lifetime_ms) / 4;

	if (r > 10000)
		r = 10000;
	return (r < 50 ? 50 : r);
}

/* ------------------------------------------------------------------ */
/* JSON documents (yajl events)                                        */

enum jfield { JF_NONE = -1, JF_ACCESS, JF_SECRET, JF_TOKEN, JF_EXPIRES,
	JF_CODE, JF_VERSION, JF_N };

struct jctx {
	enum creds_doc kind;
	struct creds_value *out;
	int depth;
	int field;
	int have[JF_N];
	char expires[64];
	char code[32];
	long version;
	const char *why;   /* a fixed reason when a callback stops */
};

static int
j_start_map(void *v)
{
	struct jctx *j = v;

	j->depth++;
	j->field = JF_NONE;
	return (1);
}

static int
j_end_map(void *v)
{
	((struct jctx *)v)->depth--;
	return (1);
}

static int
j_start_array(void *v)
{
	struct jctx *j = v;

	if (j->depth == 0) {
		j->why = "not a JSON object";
		return (0);
	}
	j->depth++;
	j->field = JF_NONE;
	return (1);
}

static int
j_end_array(void *v)
{
	((struct jctx *)v)->depth--;
	return (1);
}

static int
j_key(void *v, const unsigned char *k, size_t n)
{
	struct jctx *j = v;
	const char *tok = j->kind == CREDS_DOC_PROCESS ? "SessionToken" :
	    "Token";
	static const char *const names[] = { "AccessKeyId", "SecretAccessKey",
	    NULL, "Expiration", "Code", "Version" };
	int i;

	j->field = JF_NONE;
	if (j->depth != 1)
		return (1);
	for (i = 0; i < JF_N; i++) {
		const char *name = i == JF_TOKEN ? tok : names[i];

		if (strlen(name) == n && memcmp(name, k, n) == 0) {
			j->field = i;
			break;
		}
	}
	return (1);
}

/* A scalar that is not a string at depth 1 ends the field. */
static int
j_scalar(struct jctx *j)
{
	if (j->depth == 0) {
		j->why = "not a JSON object";
		return (0);
	}
	if (j->depth == 1 && j->field != JF_NONE && j->field != JF_VERSION) {
		j->why = "a credential field is not a string";
		return (0);
	}
	j->field = JF_NONE;
	return (1);
}

static int
j_null(void *v)
{
	struct jctx *j = v;

	/* "Token": null is how some endpoints say "no token". */
	if (j->depth == 1 && j->field == JF_TOKEN) {
		j->field = JF_NONE;
		return (1);
	}
	return (j_scalar(j));
}

static int
j_bool(void *v, int b)
{
	(void)b;
	return (j_scalar(v));
}

static int
j_number(void *v, const char *s, size_t n)
{
	struct jctx *j = v;

	if (j->depth == 1 && j->field == JF_VERSION) {
		j->version = (n == 1 && s[0] == '1') ? 1 : 0;
		j->have[JF_VERSION] = 1;
		j->field = JF_NONE;
		return (1);
	}
	return (j_scalar(j));
}

static int
j_string(void *v, const unsigned char *s, size_t n)
{
	struct jctx *j = v;
	char *dst = NULL;
	size_t cap = 0;

	if (j->depth == 0) {
		j->why = "not a JSON object";
		return (0);
	}
	if (j->depth != 1 || j->field == JF_NONE) {
		j->field = JF_NONE;
		return (1);
	}
	switch (j->field) {
	case JF_ACCESS:
		dst = j->out->access_key, cap = sizeof(j->out->access_key);
		break;
	case JF_SECRET:
		dst = j->out->secret_key, cap = sizeof(j->out->secret_key);
		break;
	case JF_TOKEN:
		dst = j->out->token, cap = sizeof(j->out->token);
		break;
	case JF_EXPIRES:
		dst = j->expires, cap = sizeof(j->expires);
		break;
	case JF_CODE:
		dst = j->code, cap = sizeof(j->code);
		break;
	default:
		j->why = "Version is not a number";
		return (0);
	}
	if (n >= cap || memchr(s, '\0', n) != NULL) {
		j->why = "a credential field is too long";
		return (0);
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	j->have[j->field] = 1;
	j->field = JF_NONE;
	return (1);
}

static const yajl_callbacks jcb = {
	j_null, j_bool, NULL, NULL, j_number, j_string, j_start_map, j_key,
	j_end_map, j_start_array, j_end_array
};

int
creds_parse_json(enum creds_doc kind, const char *buf, size_t len,
    struct creds_value *out, char *err, size_t errlen)
{
	yajl_alloc_funcs af = { y_malloc, y_realloc, y_free, NULL };
	struct jctx j;
	yajl_handle h;
	yajl_status st;
	const char *what = kind == CREDS_DOC_IMDS ? "instance metadata" :
	    kind == CREDS_DOC_CONTAINER ? "container endpoint" :
	    "credential_process";

	memset(out, 0, sizeof(*out));
	memset(&j, 0, sizeof(j));
	j.kind = kind;
	j.out = out;
	j.field = JF_NONE;
	if (len > CREDS_BODY_MAX) {
		errbuf_set(err, errlen, "%s: answer larger than %d bytes", what,
		    CREDS_BODY_MAX);
		goto err;
	}
	if ((h = yajl_alloc(&jcb, &af, &j)) == NULL) {
		errbuf_set(err, errlen, "%s: out of memory", what);
		goto err;
	}
	st = yajl_parse(h, (const unsigned char *)buf, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	if (st != yajl_status_ok) {
		errbuf_set(err, errlen, "%s: %s", what,
		    j.why != NULL ? j.why : "malformed JSON");
		goto err;
	}
	if (kind == CREDS_DOC_IMDS && j.have[JF_CODE] &&
	    strcmp(j.code, "Success") != 0) {
		size_t i;

		for (i = 0; j.code[i] != '\0'; i++)
			if (!isalnum((unsigned char)j.code[i]))
				j.code[i] = '?';
		errbuf_set(err, errlen, "%s: Code is %s, not Success", what,
		    j.code);
		goto err;
	}
	if (kind == CREDS_DOC_PROCESS && (!j.have[JF_VERSION] ||
	    j.version != 1)) {
		errbuf_set(err, errlen, "%s: output lacks \"Version\": 1", what);
		goto err;
	}
	if (!j.have[JF_ACCESS] || !j.have[JF_SECRET] ||
	    (kind != CREDS_DOC_PROCESS &&
	    (!j.have[JF_TOKEN] || !j.have[JF_EXPIRES]))) {
		errbuf_set(err, errlen, "%s: %s missing", what,
		    !j.have[JF_ACCESS] ? "AccessKeyId" :
		    !j.have[JF_SECRET] ? "SecretAccessKey" :
		    !j.have[JF_TOKEN] ? "Token" : "Expiration");
		goto err;
	}
	if (j.have[JF_EXPIRES] && creds_parse_time(j.expires,
	    &out->expires_ms) != 0) {
		errbuf_set(err, errlen, "%s: Expiration is not an ISO 8601 "
		    "time", what);
		goto err;
	}
	if (creds_check_value(out, err, errlen) != 0)
		goto err;
	explicit_bzero(&j, sizeof(j));
	return (0);
err:
	explicit_bzero(&j, sizeof(j));
	creds_value_wipe(out);
	return (-1);
}

/* ------------------------------------------------------------------ */
/* STS XML (expat)                                                     */

#define STS_OK "AssumeRoleWithWebIdentityResponse/" \
	"AssumeRoleWithWebIdentityResult/Credentials/"
#define STS_ERR "ErrorResponse/Error/Code"
#define XPATH_MAX 256

struct xctx {
	XML_Parser p;
	char path[XPATH_MAX];
	size_t plen;
	int overflow;      /* depth beyond XPATH_MAX: ignore until back */
	char *dst;         /* the field being read, or NULL */
	size_t cap, len;
	int *flag;
	struct creds_value *out;
	char expires[64];
	char code[64];
	int have_ak, have_sk, have_tok, have_exp, have_code;
	int bad;
	const char *why;
};

static void
x_stop(struct xctx *x, const char *why)
{
	if (!x->bad) {
		x->bad = 1;
		x->why = why;
	}
	XML_StopParser(x->p, XML_FALSE);
}

static void XMLCALL
x_start(void *v, const XML_Char *name, const XML_Char **attrs)
{
	struct xctx *x = v;
	size_t n = strlen(name);
	const char *leaf;

	(void)attrs;
	if (x->dst != NULL) {
		x_stop(x, "an element inside a credential field");
		return;
	}
	if (x->overflow || x->plen + n + 2 > sizeof(x->path)) {
		x->overflow++;
		return;
	}
	if (x->plen > 0)
		x->path[x->plen++] = '/';
	memcpy(x->path + x->plen, name, n + 1);
	x->plen += n;
	x->dst = NULL;
	if (strcmp(x->path, STS_ERR) == 0) {
		x->dst = x->code, x->cap = sizeof(x->code);
		x->flag = &x->have_code;
	} else if (strncmp(x->path, STS_OK, sizeof(STS_OK) - 1) == 0) {
		leaf = x->path + sizeof(STS_OK) - 1;
		if (strcmp(leaf, "AccessKeyId") == 0) {
			x->dst = x->out->access_key;
			x->cap = sizeof(x->out->access_key);
			x->flag = &x->have_ak;
		} else if (strcmp(leaf, "SecretAccessKey") == 0) {
			x->dst = x->out->secret_key;
			x->cap = sizeof(x->out->secret_key);
			x->flag = &x->have_sk;
		} else if (strcmp(leaf, "SessionToken") == 0) {
			x->dst = x->out->token;
			x->cap = sizeof(x->out->token);
			x->flag = &x->have_tok;
		} else if (strcmp(leaf, "Expiration") == 0) {
			x->dst = x->expires, x->cap = sizeof(x->expires);
			x->flag = &x->have_exp;
		}
	}
	if (x->dst != NULL) {
		if (*x->flag) {
			x_stop(x, "a credential field appears twice");
			return;
		}
		x->len = 0;
		x->dst[0] = '\0';
	}
}

static void XMLCALL
x_end(void *v, const XML_Char *name)
{
	struct xctx *x = v;

	(void)name;
	if (x->overflow) {
		x->overflow--;
		return;
	}
	if (x->dst != NULL) {
		*x->flag = 1;
		x->dst = NULL;
	}
	while (x->plen > 0 && x->path[x->plen - 1] != '/')
		x->plen--;
	if (x->plen > 0)
		x->plen--;
	x->path[x->plen] = '\0';
}

static void XMLCALL
x_text(void *v, const XML_Char *s, int n)
{
	struct xctx *x = v;

	if (x->dst == NULL || n <= 0)
		return;
	if (x->len + (size_t)n >= x->cap) {
		x_stop(x, "a credential field is too long");
		return;
	}
	memcpy(x->dst + x->len, s, (size_t)n);
	x->len += (size_t)n;
	x->dst[x->len] = '\0';
}

static void XMLCALL
x_doctype(void *v, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	x_stop(v, "a DOCTYPE in the answer");
}

/* Trim XML whitespace around a field, in place. */
static void
trim(char *s)
{
	size_t a = 0, n = strlen(s);

	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		n--;
	while (a < n && strchr(" \t\r\n", s[a]) != NULL)
		a++;
	memmove(s, s + a, n - a);
	explicit_bzero(s + (n - a), strlen(s + (n - a)));
}

int
creds_parse_sts(const char *buf, size_t len, struct creds_value *out,
    char *code, size_t codelen, char *err, size_t errlen)
{
	XML_Memory_Handling_Suite ms = { creds_wipe_malloc,
	    creds_wipe_realloc, creds_wipe_free };
	struct xctx x;
	enum XML_Status st;
	int rc = -1;
	size_t i;

	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	if (code != NULL && codelen > 0)
		code[0] = '\0';
	x.out = out;
	if (len > CREDS_BODY_MAX) {
		errbuf_set(err, errlen, "STS: answer larger than %d bytes",
		    CREDS_BODY_MAX);
		goto out;
	}
	if ((x.p = XML_ParserCreate_MM(NULL, &ms, NULL)) == NULL) {
		errbuf_set(err, errlen, "STS: out of memory");
		goto out;
	}
	XML_SetUserData(x.p, &x);
	XML_SetElementHandler(x.p, x_start, x_end);
	XML_SetCharacterDataHandler(x.p, x_text);
	XML_SetStartDoctypeDeclHandler(x.p, x_doctype);
	st = XML_Parse(x.p, buf, (int)len, XML_TRUE);
	XML_ParserFree(x.p);
	if (st != XML_STATUS_OK || x.bad) {
		errbuf_set(err, errlen, "STS: %s", x.why != NULL ? x.why :
		    "malformed XML answer");
		goto out;
	}
	if (x.have_code) {
		trim(x.code);
		for (i = 0; x.code[i] != '\0'; i++)
			if (!isalnum((unsigned char)x.code[i]) &&
			    x.code[i] != '.')
				x.code[i] = '?';
		if (code != NULL && codelen > 0)
			snprintf(code, codelen, "%s", x.code);
		errbuf_set(err, errlen, "STS error %s", x.code);
		rc = 1;
		goto out;
	}
	if (!x.have_ak || !x.have_sk || !x.have_tok || !x.have_exp) {
		errbuf_set(err, errlen, "STS: answer without %s",
		    !x.have_ak ? "AccessKeyId" : !x.have_sk ?
		    "SecretAccessKey" : !x.have_tok ? "SessionToken" :
		    "Expiration");
		goto out;
	}
	trim(out->access_key);
	trim(out->secret_key);
	trim(out->token);
	trim(x.expires);
	if (creds_parse_time(x.expires, &out->expires_ms) != 0) {
		errbuf_set(err, errlen, "STS: Expiration is not an ISO 8601 "
		    "time");
		goto out;
	}
	if (creds_check_value(out, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	explicit_bzero(&x, sizeof(x));
	if (rc != 0)
		creds_value_wipe(out);
	return (rc);
}

/* ------------------------------------------------------------------ */
/* Shell words                                                         */

void
creds_argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		creds_strwipe(argv[i]);
	free(argv);
}

int
creds_split_argv(const char *cmd, char ***argvp, char *err, size_t errlen)
{
	size_t n = strlen(cmd), nw = 0, cap = 4, wl = 0;
	char **argv = NULL, *word = NULL, **nv;
	const char *s = cmd;
	int inword = 0;
	char q = 0;

	*argvp = NULL;
	if ((argv = calloc(cap, sizeof(*argv))) == NULL ||
	    (word = malloc(n + 1)) == NULL)
		goto oom;
	for (;;) {
		char ch = *s;

		if (q == '\'') {
			if (ch == '\0')
				goto unterminated;
			s++;
			if (ch == '\'')
				q = 0;
			else
				word[wl++] = ch;
			continue;
		}
		if (q == '"') {
			if (ch == '\0')
				goto unterminated;
			s++;
			if (ch == '"') {
				q = 0;
			} else if (ch == '\\' && *s != '\0' &&
			    strchr("\"\\$`\n", *s) != NULL) {
				if (*s != '\n')
					word[wl++] = *s;
				s++;
			} else {
				word[wl++] = ch;
			}
			continue;
		}
		if (ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n') {
			if (inword) {
				if (nw + 2 > cap) {
					cap *= 2;
					if ((nv = realloc(argv, cap *
					    sizeof(*argv))) == NULL)
						goto oom;
					argv = nv;
				}
				if ((argv[nw] = malloc(wl + 1)) == NULL)
					goto oom;
				memcpy(argv[nw], word, wl);
				argv[nw++][wl] = '\0';
				argv[nw] = NULL;
				wl = 0;
				inword = 0;
			}
			if (ch == '\0')
				break;
			s++;
			continue;
		}
		inword = 1;
		s++;
		if (ch == '\'' || ch == '"') {
			q = ch;
		} else if (ch == '\\') {
			if (*s == '\0') {
				errbuf_set(err, errlen, "credential_process: "
				    "a backslash ends the command");
				goto fail;
			}
			if (*s == '\n') {
				s++;
				if (wl == 0)
					inword = 0;
			} else {
				word[wl++] = *s++;
			}
		} else {
			word[wl++] = ch;
		}
	}
	if (nw == 0) {
		errbuf_set(err, errlen, "credential_process: empty command");
		goto fail;
	}
	explicit_bzero(word, n + 1);
	free(word);
	*argvp = argv;
	return (0);
unterminated:
	errbuf_set(err, errlen, "credential_process: unterminated %s quote",
	    q == '"' ? "double" : "single");
	goto fail;
oom:
	errbuf_set(err, errlen, "credential_process: out of memory");
fail:
	if (word != NULL) {
		explicit_bzero(word, n + 1);
		free(word);
	}
	creds_argv_free(argv);
	return (-1);
}

/* ------------------------------------------------------------------ */
/* Container full URI                                                  */

static int
host_allowed_http(const char *host)
{
	static const char *const ok[] = { "localhost", "169.254.170.2",
	    "169.254.170.23", "[::1]", "::1", "[fd00:ec2::23]",
	    "fd00:ec2::23" };
	unsigned a, b, c, d;
	char tail;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcasecmp(host, ok[i]) == 0)
			return (1);
	if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 &&
	    a == 127 && b < 256 && c < 256 && d < 256)
		return (1);
	return (0);
}

int
creds_full_uri_check(const char *uri, char *err, size_t errlen)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL;
	int rc = -1;
	size_t i;

	if ((u = curl_url()) == NULL)
		return (errbuf_set(err, errlen, "container: out of memory"));
	if (curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		errbuf_set(err, errlen, "container: the full URI is not a "
		    "URL");
		goto out;
	}
	if (strcasecmp(scheme, "https") == 0) {
		rc = 0;
	} else if (strcasecmp(scheme, "http") != 0) {
		errbuf_set(err, errlen, "container: the full URI must be http "
		    "or https");
	} else if (!host_allowed_http(host)) {
		for (i = 0; host[i] != '\0'; i++)
			if ((unsigned char)host[i] < 0x20 ||
			    (unsigned char)host[i] >= 0x7f)
				host[i] = '?';
		errbuf_set(err, errlen, "container: http to %.80s is refused "
		    "(only loopback, 169.254.170.2, 169.254.170.23 or "
		    "fd00:ec2::23; any host over https)", host);
	} else {
		rc = 0;
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return (rc);
}
