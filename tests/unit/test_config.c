/* Unit tests: configuration precedence, defaults and usage errors. */
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char envpath[256];

static void
write_env(const char *text)
{
	FILE *f = fopen(envpath, "w");
	fputs(text, f);
	fclose(f);
}

static void
clear_env(void)
{
	static const char *names[] = { "AMP_API_KEY", "AMP_SECRET_KEY",
	    "AMP_API_URL", "AMP_REGION", "AMP_FETCH_WORKERS", "AWS_BUCKET_NAME",
	    "AWS_REGION", "AWS_PYTHON_USER_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
	    "AWS_PYTHON_USER_SECRET_KEY", "AWS_SECRET_ACCESS_KEY",
	    "AMP_LAG_HOURS", "AMP_LOOKBACK_DAYS", "AMP_DATA_DIR",
	    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
	    "AMP_MIN_SPEED", "AMP2S3_FILE_MODE", "AMP_PART_SIZE_MB",
	    "AMP2S3_S3_PART_SIZE_MB",
	    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN",
	    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
	    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AMP2S3_SSE",
	    "AMP2S3_STORAGE_CLASS" };
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		unsetenv(names[i]);
	setenv("AMP_ENV_FILE", envpath, 1);
	write_env("");
}

static int
load(struct config *c, amp_hour now, char *err, int argc, ...)
{
	char *argv[32];
	va_list ap;

	argv[0] = "amp2s3";
	va_start(ap, argc);
	for (int i = 1; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return (config_load(c, argc, argv, now, err, 512));
}

static amp_hour
H(int y, int m, int d, int h)
{
	amp_hour r = -1;
	(void)hour_from_ymdh(y, m, d, h, &r);
	return (r);
}

static void
test_defaults(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	write_env("AMP_API_KEY=k\nAMP_SECRET_KEY=s\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), 0);
	CHECK_EQ_INT(c.cmd, CMD_FETCH);
	CHECK_EQ_INT(c.end, now - 12);
	CHECK_EQ_INT(c.start, now - 12 - 24); /* 25 hours inclusive */
	CHECK_EQ_INT(c.fetch_workers, 4);
	CHECK_EQ_INT(c.max_window_hours, 24);
	CHECK_EQ_STR(c.api_url, "https://amplitude.com/api/2/export");
	CHECK_EQ_STR(c.data_dir, "data");
	CHECK_EQ_STR(c.s3_prefix, "python-import/");
	CHECK_EQ_STR(c.api_key, "k");
	CHECK_EQ_INT(c.progress_interval_s, 60);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--progress-interval",
	    "0"), 0);
	CHECK_EQ_INT(c.progress_interval_s, 0);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--progress-interval",
	    "-1"), -1);
	CHECK(strstr(err, "--progress-interval") != NULL);
	config_free(&c);
}

static void
test_precedence(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	write_env("AMP_API_KEY=fromfile\nAMP_SECRET_KEY=s\n"
	    "AMP_FETCH_WORKERS=3\nAMP_API_URL=http://file/x\n"
	    "AMP_LAG_HOURS=2\n");
	setenv("AMP_FETCH_WORKERS", "5", 1);
	setenv("AMP_API_URL", "http://env/x", 1);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--api-url",
	    "http://flag/x"), 0);
	CHECK_EQ_INT(c.fetch_workers, 5);          /* env over file */
	CHECK_EQ_STR(c.api_url, "http://flag/x");  /* flag over env */
	CHECK_EQ_STR(c.api_key, "fromfile");       /* file when alone */
	CHECK_EQ_INT(c.end, now - 2);
	config_free(&c);

	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "-j", "9"), 0);
	CHECK_EQ_INT(c.fetch_workers, 9);
	CHECK_EQ_STR(c.api_url, "http://env/x");
	config_free(&c);
	clear_env();
}

static void
test_region(void)
{
	struct config c;
	char err[512];

	clear_env();
	write_env("AMP_API_KEY=k\nAMP_SECRET_KEY=s\nAMP_REGION=eu\n");
	CHECK_EQ_INT(load(&c, H(2025, 1, 1, 0), err, 2, "fetch"), 0);
	CHECK_EQ_STR(c.api_url,
	    "https://analytics.eu.amplitude.com/api/2/export");
	config_free(&c);
	CHECK_EQ_INT(load(&c, H(2025, 1, 1, 0), err, 4, "fetch", "--region",
	    "mars"), -1);
	CHECK(strstr(err, "--region") != NULL);
	config_free(&c);
}

static void
test_usage_errors(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	write_env("AMP_API_KEY=k\nAMP_SECRET_KEY=secretvalue\n");
	CHECK_EQ_INT(load(&c, now, err, 3, "fetch", "--bogus"), -1);
	CHECK(strstr(err, "--bogus") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--start-date",
	    "99999999T99"), -1);
	CHECK(strstr(err, "--start-date") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 6, "fetch", "--start-date",
	    "20251110T05", "--end-date", "20251110T04"), -1);
	CHECK(strstr(err, "before") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 2, "frobnicate"), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 1), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 3, "fetch", "-j"), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "-j", "0"), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "-j", "4x"), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 6, "fetch", "--start-date",
	    "20140101T00", "--end-date", "20140101T05"), -1);
	CHECK(strstr(err, "2014-11-12") != NULL);
	config_free(&c);
	/* Missing credentials: a clear error that names no value. */
	write_env("");
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), -1);
	CHECK(strstr(err, "AMP_API_KEY") != NULL);
	config_free(&c);
	/* Malformed .env line names the line, not the value. */
	write_env("AMP_API_KEY=k\n\nAMP_SECRET_KEY=\"secretvalue\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), -1);
	CHECK(strstr(err, "3") != NULL);
	CHECK(strstr(err, "secretvalue") == NULL);
	config_free(&c);
}

/* --min-speed, --file-mode, and the floor of --part-size-mb. */
static void
test_data_safety_settings(void)
{
	static const char *bad_modes[] = { "0644x", "0400", "0700",
	    "0640 ", "01600", "", "0o640", "0660\n" };
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	write_env("AMP_API_KEY=k\nAMP_SECRET_KEY=s\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), 0);
	CHECK(c.min_speed == 4096);
	CHECK(c.file_mode == 0600);
	CHECK(c.part_size == (uint64_t)16 << 20);
	config_free(&c);

	setenv("AMP_MIN_SPEED", "100", 1);
	setenv("AMP2S3_FILE_MODE", "0660", 1);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--file-mode", "640"), 0);
	CHECK(c.min_speed == 100);
	CHECK(c.file_mode == 0640);     /* flag over env; octal */
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--min-speed", "0"), -1);
	CHECK(strstr(err, "--min-speed") != NULL);
	config_free(&c);
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(*bad_modes); i++) {
		CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--file-mode",
		    bad_modes[i]), -1);
		CHECK(strstr(err, "--file-mode") != NULL);
		config_free(&c);
	}
	unsetenv("AMP_MIN_SPEED");
	unsetenv("AMP2S3_FILE_MODE");

	CHECK_EQ_INT(load(&c, now, err, 4, "fetch", "--part-size-mb", "4"),
	    -1);
	CHECK(strstr(err, "--part-size-mb") != NULL);
	config_free(&c);
	setenv("AMP_PART_SIZE_MB", "1", 1);
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), -1);
	config_free(&c);
	unsetenv("AMP_PART_SIZE_MB");
	/* The tests' knob goes below S3's minimum. */
	setenv("AMP2S3_S3_PART_SIZE_MB", "1", 1);
	CHECK_EQ_INT(load(&c, now, err, 2, "fetch"), 0);
	CHECK(c.part_size == (uint64_t)1 << 20);
	config_free(&c);
	clear_env();
	unsetenv("AMP2S3_S3_PART_SIZE_MB");
}

static void
test_sync_needs_bucket(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), -1);
	CHECK(strstr(err, "AWS_BUCKET_NAME") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 3, "sync", "--dev"), 0);
	CHECK(c.dev == 1);
	config_free(&c);
	write_env("AWS_BUCKET_NAME=b\nAWS_REGION=eu-west-2\n"
	    "AWS_PYTHON_USER_ACCESS_KEY=a\nAWS_PYTHON_USER_SECRET_KEY=z\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), 0);
	CHECK_EQ_STR(c.bucket, "b");
	CHECK_EQ_STR(c.aws_region, "eu-west-2");
	CHECK_EQ_STR(c.aws.access_key, "a");
	CHECK_EQ_STR(c.aws.secret_key, "z");
	CHECK(c.aws.session_token == NULL);
	CHECK(c.aws.child_env != NULL);
	config_free(&c);
}

/* The credential chain's settings: AWS's names, environment then .env;
 * static keys and their token from one place only. */
static void
test_aws_chain_settings(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	/* No static keys and no region: nothing set, the chain decides. */
	write_env("AWS_BUCKET_NAME=b\nAWS_PROFILE=prod\n"
	    "AWS_EC2_METADATA_DISABLED=true\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), 0);
	CHECK(c.aws.access_key == NULL);
	CHECK(c.aws_region == NULL);
	CHECK_EQ_STR(c.aws.profile, "prod");
	CHECK_EQ_INT(c.aws.imds_disabled, 1);
	config_free(&c);
	/* The environment beats .env name by name ... */
	setenv("AWS_PROFILE", "envprof", 1);
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), 0);
	CHECK_EQ_STR(c.aws.profile, "envprof");
	config_free(&c);
	unsetenv("AWS_PROFILE");
	/* ... but a token in the environment never joins .env's keys. */
	write_env("AWS_BUCKET_NAME=b\nAWS_ACCESS_KEY_ID=AKIAFROMDOTENV\n"
	    "AWS_SECRET_ACCESS_KEY=s\n");
	setenv("AWS_SESSION_TOKEN", "stale-token", 1);
	CHECK_EQ_INT(load(&c, now, err, 4, "sync", "--aws-region",
	    "eu-west-1"), 0);
	CHECK_EQ_STR(c.aws.access_key, "AKIAFROMDOTENV");
	CHECK(c.aws.session_token == NULL);
	CHECK_EQ_STR(c.aws.region, "eu-west-1");
	config_free(&c);
	/* A key without its secret names what is missing. */
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), -1);
	CHECK(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL);
	CHECK(strstr(err, "environment") != NULL);
	config_free(&c);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SESSION_TOKEN");
	write_env("AWS_BUCKET_NAME=b\nAWS_WEB_IDENTITY_TOKEN_FILE=/t\n");
	CHECK_EQ_INT(load(&c, now, err, 2, "sync"), -1);
	CHECK(strstr(err, "AWS_ROLE_ARN") != NULL);
	config_free(&c);
	/* --dev needs none of it. */
	CHECK_EQ_INT(load(&c, now, err, 3, "sync", "--dev"), 0);
	config_free(&c);
}

/* Encryption and storage class: checked at start, by S3's rules. */
static void
test_sse_and_storage_class(void)
{
	struct config c;
	char err[512];
	amp_hour now = H(2025, 11, 10, 12);

	clear_env();
	CHECK_EQ_INT(load(&c, now, err, 10, "sync", "--dev", "--sse", "aws:kms",
	    "--sse-kms-key-id", "alias/amp2s3", "--sse-bucket-key",
	    "--storage-class", "GLACIER_IR"), 0);
	CHECK_EQ_STR(c.sse, "aws:kms");
	CHECK_EQ_STR(c.sse_kms_key_id, "alias/amp2s3");
	CHECK_EQ_INT(c.sse_bucket_key, 1);
	CHECK_EQ_STR(c.storage_class, "GLACIER_IR");
	config_free(&c);
	setenv("AMP2S3_SSE", "AES256", 1);
	CHECK_EQ_INT(load(&c, now, err, 3, "sync", "--dev"), 0);
	CHECK_EQ_STR(c.sse, "AES256");
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 5, "sync", "--dev",
	    "--sse-kms-key-id", "k"), -1);
	CHECK(strstr(err, "--sse aws:kms") != NULL);
	config_free(&c);
	unsetenv("AMP2S3_SSE");
	CHECK_EQ_INT(load(&c, now, err, 5, "sync", "--dev", "--sse",
	    "aws:kms:dsse"), -1);
	CHECK(strstr(err, "--sse") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 4, "sync", "--dev",
	    "--sse-bucket-key"), -1);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 5, "sync", "--dev", "--storage-class",
	    "standard"), -1);
	CHECK(strstr(err, "INTELLIGENT_TIERING") != NULL);
	config_free(&c);
	CHECK_EQ_INT(load(&c, now, err, 7, "sync", "--dev", "--sse", "aws:kms",
	    "--sse-kms-key-id", "k\r\nx-evil: 1"), -1);
	config_free(&c);
}

/* The hints name the settings of the source the credentials came from,
 * and the no-source line names what configures every source. */
static void
test_hints_by_source(void)
{
	struct creds_options o;
	struct creds_tried t;
	struct config_hint h = { NULL, NULL };
	struct config c;
	struct creds *cr;
	char buf[600], err[512], path[300];
	FILE *f;

	config_s3_hint(&h, S3_REFUSED_TOKEN, "", buf, sizeof(buf));
	CHECK(strstr(buf, "AWS_SESSION_TOKEN") != NULL);
	config_s3_hint(&h, S3_REFUSED_SECRET, "", buf, sizeof(buf));
	CHECK(strstr(buf, "AWS_SECRET_ACCESS_KEY") != NULL);
	/* Keys from a profile: the profile, not the environment's names. */
	snprintf(path, sizeof(path), "%s.aws", envpath);
	f = fopen(path, "w");
	fputs("[p]\naws_access_key_id = AKIAPROFILE00001\n"
	    "aws_secret_access_key = s\naws_session_token = t\n", f);
	fclose(f);
	memset(&o, 0, sizeof(o));
	o.profile = "p";
	o.shared_credentials_file = path;
	o.config_file = "/nonexistent";
	o.imds_disabled = 1;
	cr = creds_open(&o, NULL, NULL, err, sizeof(err));
	CHECK(cr != NULL);
	h.creds = cr;
	config_s3_hint(&h, S3_REFUSED_TOKEN, "", buf, sizeof(buf));
	CHECK(strstr(buf, "profile p") != NULL);
	CHECK(strstr(buf, "AWS_SESSION_TOKEN") == NULL);
	/* A refused write names --sse, or the KMS permission with it. */
	memset(&c, 0, sizeof(c));
	h.cfg = &c;
	config_s3_hint(&h, S3_REFUSED_WRITE, "", buf, sizeof(buf));
	CHECK(strstr(buf, "--sse") != NULL);
	c.sse = "aws:kms";
	config_s3_hint(&h, S3_REFUSED_WRITE, "", buf, sizeof(buf));
	CHECK(strstr(buf, "kms:GenerateDataKey") != NULL);
	creds_free(cr);
	unlink(path);
	/* No source: every source by its variables. */
	memset(&o, 0, sizeof(o));
	o.home = "/nonexistent-home";
	o.imds_disabled = 1;
	CHECK(creds_open(&o, NULL, &t, err, sizeof(err)) == NULL);
	CHECK_EQ_INT(t.no_source, 1);
	config_creds_missing(&t, buf, sizeof(buf));
	CHECK(strstr(buf, "AWS_ACCESS_KEY_ID") != NULL);
	CHECK(strstr(buf, "AWS_WEB_IDENTITY_TOKEN_FILE") != NULL);
	CHECK(strstr(buf, "/nonexistent-home/.aws/credentials") != NULL);
	CHECK(strstr(buf, "AWS_CONTAINER_CREDENTIALS_FULL_URI") != NULL);
	CHECK(strstr(buf, "AWS_EC2_METADATA_DISABLED") != NULL);
}

int
main(void)
{
	static const struct unit_test t[] = { TEST(test_defaults),
	    TEST(test_precedence), TEST(test_region), TEST(test_usage_errors),
	    TEST(test_sync_needs_bucket), TEST(test_data_safety_settings),
	    TEST(test_aws_chain_settings), TEST(test_sse_and_storage_class),
	    TEST(test_hints_by_source) };
	char dir[] = "/tmp/amp2s3-config-XXXXXX";
	int rc;

	if (mkdtemp(dir) == NULL)
		return (1);
	snprintf(envpath, sizeof(envpath), "%s/env", dir);
	rc = unit_run("config", t, sizeof(t) / sizeof(*t));
	unlink(envpath);
	rmdir(dir);
	return (rc);
}
