/*
 * s3_multipart: an upload in parts — initiate, one PUT per part, complete,
 * and abort on any failure or cancel (see s3_internal.h's DESIGN).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "log.h"
#include "s3_internal.h"

#define MAX_PARTS 10000
#define ABORT_ATTEMPTS 3

/* An upload in progress. */
struct mp {
	struct s3 *s3;
	const char *key;
	int fd;
	uint64_t size, part, nparts;
	char *eid;                 /* the UploadId, encoded */
	char (*etags)[ETAG_MAX];   /* one per part */
};

/* Keep the count of retries made so far across the upload's requests. */
static void
err_next(struct s3_error *err)
{
	int retries = err->retries;

	s3_err_init(err);
	err->retries = retries;
}

/* Abort the upload ${eid} (encoded), ignoring cancel; logs if it fails. */
static void
abort_upload(struct s3 *s3, const char *key, const char *eid)
{
	struct req r;
	struct s3_error e;
	char q[FIELD_MAX * 3 + 16];

	s3_err_init(&e);
	memset(&r, 0, sizeof(r));
	snprintf(q, sizeof(q), "uploadId=%s", eid);
	r.method = "DELETE";
	r.key = key;
	r.query = q;
	r.body_max = SMALL_BODY_MAX;
	r.no_cancel = 1;
	r.attempts = ABORT_ATTEMPTS;
	if (s3_request(s3, &r, &e) != S3_OK)
		log_warn(s3->lg, "s3: could not abort the multipart upload of "
		    "'%s' (%s); its parts stay until a lifecycle rule "
		    "(AbortIncompleteMultipartUpload) removes them", key,
		    e.msg);
	else
		log_debug(s3->lg, "s3: aborted the multipart upload of '%s'",
		    key);
	s3_xml_clear(&r.x);
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

/* POST ?uploads=: start the upload (the object's Content-Type, metadata,
 * encryption and storage class are given here, never on the parts);
 * mp->eid set. */
static enum s3_status
initiate(struct mp *mp, const char *ctype, const char *sha256,
    struct s3_error *err)
{
	struct req r = { .method = "POST", .key = mp->key, .query = "uploads=",
	    .content_type = ctype, .meta_sha256 = sha256,
	    .body_max = SMALL_BODY_MAX, .creates_object = 1 };
	enum s3_status st;

	if ((st = s3_request(mp->s3, &r, err)) != S3_OK)
		goto out;
	if (r.x.failed || r.x.upload_id[0] == '\0') {
		st = S3_FAIL;
		s3_set_msg(err, "s3: POST '%s' ?uploads: no UploadId in the "
		    "answer", mp->key);
		goto out;
	}
	if ((mp->eid = s3_encode_dup(r.x.upload_id, 0)) == NULL) {
		st = S3_FAIL;
		s3_set_msg(err, "s3: out of memory");
	}
out:
	s3_xml_clear(&r.x);
	return (st);
}

/* PUT part ${i} (0-based); its ETag kept. */
static enum s3_status
put_part(struct mp *mp, uint64_t i, struct s3_error *err)
{
	char sha[65], md5[25], q[FIELD_MAX * 3 + 64];
	struct src body = { .fd = mp->fd, .off = i * mp->part };
	struct req r = { .method = "PUT", .key = mp->key, .query = q,
	    .sha256 = sha, .md5_b64 = md5, .body = &body,
	    .body_max = SMALL_BODY_MAX };
	enum s3_status st;

	body.len = mp->size - body.off < mp->part ? mp->size - body.off :
	    mp->part;
	if (s3_hash_range(mp->fd, body.off, body.len, sha, md5) != 0) {
		s3_set_msg(err, "s3: PUT '%s': cannot read the local file: %s",
		    mp->key, ERRSTR(errno));
		return (S3_IO);
	}
	snprintf(q, sizeof(q), "partNumber=%" PRIu64 "&uploadId=%s", i + 1,
	    mp->eid);
	err_next(err);
	if ((st = s3_request(mp->s3, &r, err)) == S3_OK &&
	    r.etag[0] == '\0') {
		st = S3_FAIL;
		s3_set_msg(err, "s3: PUT '%s' part %" PRIu64 ": no ETag in the "
		    "answer", mp->key, i + 1);
	}
	if (st == S3_OK)
		memcpy(mp->etags[i], r.etag, ETAG_MAX);
	s3_xml_clear(&r.x);
	return (st);
}

/* The CompleteMultipartUpload body, or NULL (out of memory). */
static char *
part_list(const struct mp *mp, size_t *len)
{
	char esc[ETAG_MAX * 6 + 1], line[ETAG_MAX * 6 + 96];
	char *xml = NULL;
	size_t cap = 0;

	*len = 0;
	if (sb_add(&xml, len, &cap, "<CompleteMultipartUpload xmlns="
	    "\"http://s3.amazonaws.com/doc/2006-03-01/\">") != 0)
		goto nomem;
	for (uint64_t i = 0; i < mp->nparts; i++) {
		xml_escape(mp->etags[i], esc, sizeof(esc));
		snprintf(line, sizeof(line), "<Part><PartNumber>%" PRIu64
		    "</PartNumber><ETag>%s</ETag></Part>", i + 1, esc);
		if (sb_add(&xml, len, &cap, line) != 0)
			goto nomem;
	}
	if (sb_add(&xml, len, &cap, "</CompleteMultipartUpload>") != 0)
		goto nomem;
	return (xml);
nomem:
	free(xml);
	return (NULL);
}

/* POST ?uploadId=U with the part list: the object is complete. */
static enum s3_status
complete(struct mp *mp, struct s3_error *err)
{
	char sha[65], md5[25], q[FIELD_MAX * 3 + 16];
	struct src body = { 0 };
	struct req r = { .method = "POST", .key = mp->key, .query = q,
	    .content_type = "application/xml", .sha256 = sha, .md5_b64 = md5,
	    .body = &body, .body_max = SMALL_BODY_MAX };
	enum s3_status st;
	char *xml;

	if ((xml = part_list(mp, &body.len)) == NULL ||
	    s3_hash_mem(xml, body.len, sha, md5) != 0) {
		free(xml);
		s3_set_msg(err, "s3: out of memory");
		return (S3_FAIL);
	}
	body.mem = xml;
	snprintf(q, sizeof(q), "uploadId=%s", mp->eid);
	err_next(err);
	if ((st = s3_request(mp->s3, &r, err)) == S3_OK &&
	    (r.x.failed || !r.x.complete_seen)) {
		st = S3_FAIL;
		s3_set_msg(err, "s3: POST '%s' ?uploadId: no "
		    "CompleteMultipartUploadResult in the answer", mp->key);
	}
	s3_xml_clear(&r.x);
	free(xml);
	return (st);
}

enum s3_status
s3_put_multipart(struct s3 *s3, const char *key, int fd, uint64_t size,
    const char *ctype, const char *sha256, struct s3_error *err)
{
	struct mp mp = { .s3 = s3, .key = key, .fd = fd, .size = size,
	    .part = s3->part_size };
	enum s3_status st;

	if ((size + mp.part - 1) / mp.part > MAX_PARTS)
		mp.part = (size + MAX_PARTS - 1) / MAX_PARTS; /* S3's cap */
	mp.nparts = (size + mp.part - 1) / mp.part;
	if ((mp.etags = calloc((size_t)mp.nparts, sizeof(*mp.etags))) ==
	    NULL) {
		s3_set_msg(err, "s3: out of memory");
		err->status = S3_FAIL;
		return (S3_FAIL);
	}
	if ((st = initiate(&mp, ctype, sha256, err)) == S3_OK) {
		log_debug(s3->lg, "s3: multipart upload of '%s': %" PRIu64
		    " parts of %" PRIu64 " bytes", key, mp.nparts, mp.part);
		for (uint64_t i = 0; st == S3_OK && i < mp.nparts; i++)
			st = put_part(&mp, i, err);
		if (st == S3_OK)
			st = complete(&mp, err);
		if (st != S3_OK)
			abort_upload(s3, key, mp.eid);
	}
	err->status = st;
	free(mp.eid);
	free(mp.etags);
	return (st);
}
