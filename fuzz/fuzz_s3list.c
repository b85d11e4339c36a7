/*
 * fuzz_s3list: the ListObjectsV2 page parser of src/s3.c, through
 * s3_parse_list_xml() (the code s3_list runs on every page it receives;
 * an <Error> body goes through the same parser).
 *
 * Properties:
 *   - the result is -1, 0 or 1; on -1 no key was reported, there is no
 *     next token, and the message (and an <Error>'s code) is one line;
 *   - a page is accepted only with a ListBucketResult root (an HTML error
 *     page or an empty body taken for an empty listing would make every
 *     stored hour look missing), so its input names that element;
 *   - a reported key is at most 1024 bytes; a page that says it is truncated
 *     comes with a non-empty next token, one that does not, with none;
 *   - the same page parsed again is the same page (the same keys, sizes
 *     and token); asked for with its own next token (a server repeating
 *     itself) it is refused, so a listing cannot loop;
 *   - a callback that stops at the first key is called exactly once and
 *     the result is then 1.
 */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "s3.h"

struct keys {
	size_t n;
	uint64_t hash;     /* of every key and size, in order */
	int stop_first;
};

static int
on_key(void *ctx, const char *key, const struct s3_object *obj)
{
	struct keys *k = ctx;
	size_t len = strlen(key), i;

	FUZZ_CHECK(len <= 1024);
	/* An ETag is printable and holds no quote of its own. */
	for (i = 0; obj->etag[i] != '\0'; i++)
		FUZZ_CHECK(obj->etag[i] >= 0x20 && obj->etag[i] < 0x7f &&
		    obj->etag[i] != '"');
	for (i = 0; i < len; i++)
		k->hash = (k->hash ^ (unsigned char)key[i]) *
		    1099511628211ull;
	for (i = 0; obj->etag[i] != '\0'; i++)
		k->hash = (k->hash ^ (unsigned char)obj->etag[i]) *
		    1099511628211ull;
	k->hash = (k->hash ^ obj->size) * 1099511628211ull;
	k->n++;
	return (k->stop_first);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml = (const char *)data;
	struct keys a = { 0, 14695981039346656037ull, 0 }, b = a, c = a;
	struct s3_error err;
	char *tok = NULL, *tok2 = NULL;
	int rc, rc2, trunc, trunc2;

	rc = s3_parse_list_xml(xml, size, NULL, on_key, &a, &tok, &trunc,
	    &err);
	FUZZ_CHECK(rc == -1 || rc == 0);
	FUZZ_CHECK(fuzz_one_line(err.msg) && fuzz_one_line(err.code));
	if (rc == -1) {
		FUZZ_CHECK(a.n == 0 && tok == NULL && trunc == 0);
		FUZZ_CHECK(err.msg[0] != '\0' && err.status != S3_OK);
	} else {
		FUZZ_CHECK(err.status == S3_OK);
		FUZZ_CHECK(memmem(xml, size, "ListBucketResult", 16) != NULL);
		FUZZ_CHECK(trunc ? tok != NULL && tok[0] != '\0' :
		    tok == NULL);
	}

	/* Deterministic. */
	rc2 = s3_parse_list_xml(xml, size, NULL, on_key, &b, &tok2, &trunc2,
	    NULL);
	FUZZ_CHECK(rc2 == rc && trunc2 == trunc && b.n == a.n &&
	    b.hash == a.hash);
	FUZZ_CHECK((tok == NULL) == (tok2 == NULL) &&
	    (tok == NULL || strcmp(tok, tok2) == 0));
	free(tok2);
	tok2 = NULL;

	/* The same page again, asked for with its own token: refused. */
	if (rc == 0 && trunc) {
		rc2 = s3_parse_list_xml(xml, size, tok, on_key, &b, &tok2,
		    &trunc2, &err);
		FUZZ_CHECK(rc2 == -1 && tok2 == NULL && b.n == a.n);
	}

	/* A callback that stops at once. */
	c.stop_first = 1;
	rc2 = s3_parse_list_xml(xml, size, NULL, on_key, &c, &tok2, &trunc2,
	    NULL);
	FUZZ_CHECK(c.n == (a.n > 0 ? 1u : 0u));
	FUZZ_CHECK(rc2 == (rc == -1 ? -1 : a.n > 0 ? 1 : 0));
	free(tok2);
	free(tok);
	return (0);
}
