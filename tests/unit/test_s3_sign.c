/*
 * Unit tests: the S3 client's Signature Version 4 (src/s3_sign.c) against
 * values computed by AWS's documentation and by botocore.
 */
#include <stdio.h>
#include <string.h>

#include "s3_internal.h"
#include "unit.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DATE "20130524T000000Z"

/* AWS's "GET Object" example (S3 API reference, Signature Version 4). */
static void
test_aws_documentation_example(void)
{
	struct s3_header h[] = {
		{ "x-amz-date", DATE },
		{ "range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA256 },
		{ "host", "examplebucket.s3.amazonaws.com" },
	};
	char auth[1024];

	CHECK_EQ_INT(s3_sign("us-east-1", "GET", "/test.txt", 9, NULL, h, 4,
	    EMPTY_SHA256, DATE, AK, SK, auth, sizeof(auth)), 0);
	CHECK_EQ_STR(auth, "AWS4-HMAC-SHA256 Credential=" AK "/20130524/"
	    "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
	    "x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857"
	    "bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

/*
 * Header names that extend one another are sorted by name, the shorter
 * first (curl 7.88 sorts whole "name:value" lines and gets this wrong);
 * the query and a path with more after it (the caller passes the path's
 * length) as CreateMultipartUpload sends them.  Expected: botocore.
 */
static void
test_sse_kms_headers_sorted_by_name(void)
{
	struct s3_header h[] = {
		{ "x-amz-server-side-encryption-bucket-key-enabled", "true" },
		{ "x-amz-server-side-encryption-aws-kms-key-id", "alias/k" },
		{ "x-amz-server-side-encryption", "aws:kms" },
		{ "content-type", "application/x-ndjson" },
		{ "x-amz-security-token", "tok" },
		{ "x-amz-content-sha256", EMPTY_SHA256 },
		{ "host", "examplebucket.s3.amazonaws.com" },
		{ "x-amz-date", DATE },
	};
	const char *path = "/p/x.jsonl?uploads=";
	char auth[1024];

	CHECK_EQ_INT(s3_sign("eu-west-2", "POST", path, strcspn(path, "?"),
	    "uploads=", h, 8, EMPTY_SHA256, DATE, AK, SK, auth,
	    sizeof(auth)), 0);
	CHECK_EQ_STR(auth, "AWS4-HMAC-SHA256 Credential=" AK "/20130524/"
	    "eu-west-2/s3/aws4_request, SignedHeaders=content-type;host;"
	    "x-amz-content-sha256;x-amz-date;x-amz-security-token;"
	    "x-amz-server-side-encryption;"
	    "x-amz-server-side-encryption-aws-kms-key-id;"
	    "x-amz-server-side-encryption-bucket-key-enabled, Signature="
	    "209d411bbc97c8d06ecd1126e154c331d3cd1ee08ccc639ae0cc69678598f8eb");
	/* Too small a buffer: -1, never a cut value. */
	CHECK_EQ_INT(s3_sign("eu-west-2", "POST", path, strcspn(path, "?"),
	    "uploads=", h, 8, EMPTY_SHA256, DATE, AK, SK, auth, 64), -1);
}

int
main(void)
{
	static const struct unit_test t[] = {
	    TEST(test_aws_documentation_example),
	    TEST(test_sse_kms_headers_sorted_by_name) };

	return (unit_run("s3_sign", t, sizeof(t) / sizeof(*t)));
}
