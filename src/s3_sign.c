/*
 * s3_sign: AWS Signature Version 4 for the S3 client's requests (see
 * s3_internal.h's DESIGN).
 *
 * The canonical request is built from exactly what is sent: the method,
 * the path and query as make_url() wrote them (already AWS-encoded and
 * sorted), every header of the request (host included) sorted by its
 * lowercase name, and the payload's SHA-256.  The string to sign and the
 * signing key follow the AWS documentation; HMAC-SHA256 and SHA-256 come
 * from OpenSSL's libcrypto.  Everything that was derived from the secret
 * key, and the canonical request (it holds the session token), is wiped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "creds.h"
#include "s3_internal.h"
#include "secret.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

static int
by_name(const void *a, const void *b)
{
	const struct s3_header *x = a, *y = b;

	return (strcmp(x->name, y->name));
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hmac(const unsigned char *key, size_t keylen, const char *msg,
    unsigned char out[32])
{
	unsigned int n = 32;

	return (HMAC(EVP_sha256(), key, (int)keylen,
	    (const unsigned char *)msg, strlen(msg), out, &n) != NULL &&
	    n == 32 ? 0 : -1);
}

/* Append ${n} bytes of ${s} to the buffer at ${b} (${cap} bytes, *${len}
 * used); the caller sized it. */
static void
put(char *b, size_t *len, const char *s, size_t n)
{
	memcpy(b + *len, s, n);
	*len += n;
}

/*
 * The canonical request (malloc'd, NUL-terminated; the caller wipes and
 * frees it) for ${h} sorted, and the signed-headers list into ${signed}.
 */
static char *
canonical(const char *method, const char *path, size_t pathlen,
    const char *query, const struct s3_header *h, size_t n,
    const char *payload, char *signed_hdrs, size_t signedlen)
{
	size_t cap, len = 0, sl = 0, i;
	char *b;

	cap = strlen(method) + pathlen + (query ? strlen(query) : 0) +
	    strlen(payload) + 8;
	for (i = 0; i < n; i++)
		cap += 2 * strlen(h[i].name) + strlen(h[i].value) + 3;
	if ((b = malloc(cap)) == NULL)
		return (NULL);
	put(b, &len, method, strlen(method));
	put(b, &len, "\n", 1);
	put(b, &len, path, pathlen);
	put(b, &len, "\n", 1);
	if (query != NULL)
		put(b, &len, query, strlen(query));
	put(b, &len, "\n", 1);
	for (i = 0; i < n; i++) {
		put(b, &len, h[i].name, strlen(h[i].name));
		put(b, &len, ":", 1);
		put(b, &len, h[i].value, strlen(h[i].value));
		put(b, &len, "\n", 1);
		sl += (size_t)snprintf(signed_hdrs + sl, signedlen - sl, "%s%s",
		    i > 0 ? ";" : "", h[i].name);
		if (sl >= signedlen) {
			secret_wipe(b, cap);
			free(b);
			return (NULL);
		}
	}
	put(b, &len, "\n", 1);
	put(b, &len, signed_hdrs, strlen(signed_hdrs));
	put(b, &len, "\n", 1);
	put(b, &len, payload, strlen(payload));
	b[len] = '\0';
	return (b);
}

/* The signing key for ${date} (YYYYMMDD) and ${region}, into ${key}. */
static int
signing_key(const char *secret, const char *date, const char *region,
    unsigned char key[32])
{
	char k0[4 + CREDS_SECRET_MAX];
	unsigned char a[32], b[32];
	int rc = -1;

	snprintf(k0, sizeof(k0), "AWS4%s", secret);
	if (hmac((unsigned char *)k0, strlen(k0), date, a) == 0 &&
	    hmac(a, 32, region, b) == 0 && hmac(b, 32, "s3", a) == 0 &&
	    hmac(a, 32, "aws4_request", key) == 0)
		rc = 0;
	secret_wipe(k0, sizeof(k0));
	secret_wipe(a, sizeof(a));
	secret_wipe(b, sizeof(b));
	return (rc);
}

int
s3_sign(const char *region, const char *method, const char *path,
    size_t pathlen, const char *query, struct s3_header *h, size_t n,
    const char *payload, const char *amz_date, const char *access_key,
    const char *secret_key, char *auth, size_t authlen)
{
	char signed_hdrs[512], scope[128], date[9], chash[65], sig[65];
	char *creq = NULL, *sts = NULL;
	unsigned char d[32], key[32], mac[32];
	unsigned int dn = 32;
	size_t stslen;
	int rc = -1;

	qsort(h, n, sizeof(*h), by_name);
	snprintf(date, sizeof(date), "%.8s", amz_date);
	snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", date, region);
	if ((creq = canonical(method, path, pathlen, query, h, n, payload,
	    signed_hdrs, sizeof(signed_hdrs))) == NULL)
		goto out;
	if (EVP_Digest(creq, strlen(creq), d, &dn, EVP_sha256(), NULL) != 1)
		goto out;
	hex(d, 32, chash);
	stslen = sizeof(ALGORITHM) + strlen(amz_date) + strlen(scope) + 68;
	if ((sts = malloc(stslen)) == NULL)
		goto out;
	snprintf(sts, stslen, "%s\n%s\n%s\n%s", ALGORITHM, amz_date, scope,
	    chash);
	if (signing_key(secret_key, date, region, key) != 0 ||
	    hmac(key, 32, sts, mac) != 0)
		goto out;
	hex(mac, 32, sig);
	if ((size_t)snprintf(auth, authlen, "%s Credential=%s/%s, "
	    "SignedHeaders=%s, Signature=%s", ALGORITHM, access_key, scope,
	    signed_hdrs, sig) < authlen)
		rc = 0;
out:
	if (creq != NULL) {
		secret_wipe(creq, strlen(creq));
		free(creq);
	}
	free(sts);
	secret_wipe(key, sizeof(key));
	secret_wipe(mac, sizeof(mac));
	return (rc);
}
