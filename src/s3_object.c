/*
 * s3_object: what the store holds of an object, and the proof that it is
 * a given file's bytes — HEAD (size, ETag, metadata), a GET hashed as it
 * arrives, and s3_same(), which tries the cheapest proof first (see
 * s3.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "errbuf.h"
#include "s3_internal.h"

/* An ETag as S3 writes it ("\"abc\"", in a header or XML) into ${out}:
 * without the quotes, printable. */
void
s3_strip_etag(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);

	if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
		in++;
		n -= 2;
	}
	errbuf_escape(in, n, out, outlen);
}

enum s3_status
s3_head(struct s3 *s3, const char *key, struct s3_object *obj,
    char sha256[65], struct s3_error *err)
{
	struct req r = { .method = "HEAD", .key = key,
	    .body_max = SMALL_BODY_MAX };
	enum s3_status st;

	s3_err_init(err);
	memset(obj, 0, sizeof(*obj));
	sha256[0] = '\0';
	if ((st = s3_request(s3, &r, err)) == S3_OK) {
		obj->size = r.content_length;
		s3_strip_etag(r.etag, obj->etag, sizeof(obj->etag));
		memcpy(sha256, r.meta, sizeof(r.meta));
	}
	s3_xml_clear(&r.x);
	return (st);
}

/* A GET's body, hashed as it arrives. */
struct hasher {
	EVP_MD_CTX *md;
	uint64_t bytes;
	int failed;
};

static void
hasher_reset(void *ctx)
{
	struct hasher *h = ctx;

	h->bytes = 0;
	h->failed = EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1;
}

static int
hasher_feed(void *ctx, const void *p, size_t n)
{
	struct hasher *h = ctx;

	h->bytes += n;
	if (h->failed || EVP_DigestUpdate(h->md, p, n) != 1)
		h->failed = 1;
	return (h->failed ? -1 : 0);
}

/* The object's SHA-256 (hex) and size, by reading it.  S3_OK or the
 * failure. */
static enum s3_status
get_sha256(struct s3 *s3, const char *key, char hex[65], uint64_t *size,
    struct s3_error *err)
{
	static const char digits[] = "0123456789abcdef";
	struct hasher h = { 0 };
	struct sink sk = { hasher_reset, hasher_feed, &h };
	struct req r = { .method = "GET", .key = key, .sink = &sk,
	    .body_max = UINT64_MAX };
	unsigned char d[32];
	unsigned int n;
	enum s3_status st;

	if ((h.md = EVP_MD_CTX_new()) == NULL) {
		s3_set_msg(err, "s3: out of memory");
		return (S3_FAIL);
	}
	if ((st = s3_request(s3, &r, err)) == S3_OK &&
	    (h.failed || EVP_DigestFinal_ex(h.md, d, &n) != 1)) {
		st = S3_FAIL;
		s3_set_msg(err, "s3: GET '%s': cannot hash the object", key);
	}
	if (st == S3_OK) {
		for (int i = 0; i < 32; i++) {
			hex[2 * i] = digits[d[i] >> 4];
			hex[2 * i + 1] = digits[d[i] & 15];
		}
		hex[64] = '\0';
		*size = h.bytes;
	}
	s3_xml_clear(&r.x);
	EVP_MD_CTX_free(h.md);
	return (st);
}

/* An ETag that is the MD5 of a single PUT: 32 hex digits. */
static int
etag_is_md5(const char *etag)
{
	return (strlen(etag) == 32 && strspn(etag, "0123456789abcdef") == 32);
}

/* The local file's SHA-256 (hex) and MD5 (hex) into ${sha}, ${md5hex}. */
static enum s3_status
local_digests(int fd, uint64_t size, char sha[65], char md5hex[33],
    struct s3_error *err)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char raw[18];
	char b64[25];
	int len;

	if (s3_hash_range(fd, 0, size, sha, b64) != 0) {
		s3_set_msg(err, "s3: cannot read the local file: %s",
		    ERRSTR(errno));
		return (S3_IO);
	}
	/* Content-MD5 is base64; an ETag is hex. */
	if ((len = EVP_DecodeBlock(raw, (const unsigned char *)b64, 24)) < 16) {
		s3_set_msg(err, "s3: cannot decode a digest");
		return (S3_FAIL);
	}
	for (int i = 0; i < 16; i++) {
		md5hex[2 * i] = digits[raw[i] >> 4];
		md5hex[2 * i + 1] = digits[raw[i] & 15];
	}
	md5hex[32] = '\0';
	return (S3_OK);
}

enum s3_status
s3_same(struct s3 *s3, const char *key, int fd, uint64_t size,
    const struct s3_object *known, int *same, struct s3_error *err)
{
	struct s3_object head;
	char sha[65], md5hex[33], meta[65], got[65];
	uint64_t got_size;
	enum s3_status st;

	s3_err_init(err);
	*same = 0;
	if (known == NULL) {
		if ((st = s3_head(s3, key, &head, meta, err)) != S3_OK)
			return (err->http_status == 404 ? (err->status = S3_OK) :
			    st);
		known = &head;
	} else {
		meta[0] = '\0';
	}
	if (known->size != size)
		return (err->status = S3_OK);      /* proven different */
	if (size == 0) {
		*same = 1;
		return (err->status = S3_OK);
	}
	if ((st = local_digests(fd, size, sha, md5hex, err)) != S3_OK)
		return (err->status = st);
	if (etag_is_md5(known->etag) && strcmp(known->etag, md5hex) == 0) {
		*same = 1;
		return (err->status = S3_OK);
	}
	/* Multipart, or encrypted with KMS: the metadata, else the bytes. */
	if (meta[0] == '\0' && known != &head &&
	    (st = s3_head(s3, key, &head, meta, err)) != S3_OK)
		return (err->http_status == 404 ? (err->status = S3_OK) : st);
	if (meta[0] != '\0') {
		*same = strcmp(meta, sha) == 0;
		return (err->status = S3_OK);
	}
	if ((st = get_sha256(s3, key, got, &got_size, err)) != S3_OK)
		return (err->http_status == 404 ? (err->status = S3_OK) : st);
	*same = got_size == size && strcmp(got, sha) == 0;
	return (err->status = S3_OK);
}
