/*
 * s3_xml: the S3 answers' XML, parsed as it arrives by expat, element-path
 * aware, every field bounded (see s3_internal.h).  Codes, messages and
 * regions an answer names are kept printable (errbuf_escape): they end up
 * in messages.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "s3_internal.h"

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
		memset(&x->cur, 0, sizeof(x->cur));
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
		if (parse_u64(t, &x->cur.size) != 0)
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
		x->ents[x->n++].obj = x->cur;
	} else if (strcmp(p, "ListBucketResult/Contents/ETag") == 0) {
		s3_strip_etag(t, x->cur.etag, sizeof(x->cur.etag));
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
		errbuf_escape(t, x->textlen, x->code, sizeof(x->code));
	} else if (strcmp(p, "Error/Message") == 0) {
		errbuf_escape(t, x->textlen, x->message, sizeof(x->message));
	} else if (strcmp(p, "Error/Region") == 0) {
		errbuf_escape(t, x->textlen, x->region, sizeof(x->region));
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

void
s3_xml_clear(struct xml *x)
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
int
s3_xml_reset(struct xml *x)
{
	s3_xml_clear(x);
	if ((x->p = XML_ParserCreateNS(NULL, '|')) == NULL)
		return (-1);
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, xml_start, xml_end);
	XML_SetCharacterDataHandler(x->p, xml_text);
	return (0);
}

void
s3_xml_feed(struct xml *x, const char *p, size_t len)
{
	if (x->failed || len == 0)
		return;
	x->fed += len;
	if (XML_Parse(x->p, p, (int)len, XML_FALSE) != XML_STATUS_OK)
		x->failed = 1;
}

void
s3_xml_finish(struct xml *x)
{
	if (x->failed || x->fed == 0)
		return;
	if (XML_Parse(x->p, "", 0, XML_TRUE) != XML_STATUS_OK)
		x->failed = 1;
}

/*
 * s3_list_page_check(x, prev, why): the checks a parsed ListObjectsV2 page
 * must pass before any of its keys is reported (${prev}: the token that
 * asked for it, or NULL).  Returns 0, or -1 with *${why} set to a suffix
 * for "malformed ListObjectsV2 answer".  A well-formed body whose root is
 * not ListBucketResult (an HTML error page, an empty body) is no listing:
 * taking it for an empty one would make every stored hour look missing.
 */
int
s3_list_page_check(const struct xml *x, const char *prev, const char **why)
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

/* s3_list_page_emit(x, cb, ctx): report the page's keys in order; returns 1
 * if ${cb} stopped the listing, else 0. */
int
s3_list_page_emit(const struct xml *x, s3_list_cb *cb, void *ctx)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (cb(ctx, x->ents[i].key, &x->ents[i].obj) != 0)
			return (1);
	return (0);
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
	s3_err_init(err);
	*next_token = NULL;
	*truncated = 0;
	memset(&x, 0, sizeof(x));
	if (len > LIST_BODY_MAX) {
		s3_set_msg(err, "s3: list: answer larger than %" PRIu64 " bytes",
		    LIST_BODY_MAX);
		return (-1);
	}
	if (s3_xml_reset(&x) != 0) {
		s3_set_msg(err, "s3: out of memory");
		goto out;
	}
	/* In pieces no larger than libcurl's (CURL_MAX_WRITE_SIZE). */
	for (off = 0; off < len; off += n) {
		n = len - off < 16384 ? len - off : 16384;
		s3_xml_feed(&x, xml + off, n);
	}
	s3_xml_finish(&x);
	if (x.is_error) {
		/* What classify() and describe() make of a 200 <Error>. */
		snprintf(err->code, sizeof(err->code), "%s", x.code);
		s3_set_msg(err, "s3: list: %s%s%s", x.code, x.message[0] ?
		    ": " : "", x.message);
		goto out;
	}
	if (s3_list_page_check(&x, prev_token, &why) != 0) {
		s3_set_msg(err, "s3: list: malformed ListObjectsV2 answer%s",
		    why);
		goto out;
	}
	if (x.truncated && (*next_token = strdup(x.token)) == NULL) {
		s3_set_msg(err, "s3: out of memory");
		goto out;
	}
	*truncated = x.truncated;
	rc = s3_list_page_emit(&x, cb, ctx);
	err->status = S3_OK;
out:
	s3_xml_clear(&x);
	return (rc);
}
