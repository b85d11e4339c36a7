/*
 * Unit tests of the pure parts of the creds module (creds_parse.c): shell
 * words, ISO 8601 times, refresh margins, the JSON and XML answers, the
 * container URI rule; and the shared files (creds_files.c) on files
 * written here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "creds.h"
#include "creds_internal.h"
#include "unit.h"

/* Split ${cmd}; the words joined by '|', or "ERR". */
static const char *
split(const char *cmd)
{
	static char buf[512];
	char **argv, err[128];
	size_t i, n = 0;

	if (creds_split_argv(cmd, &argv, err, sizeof(err)) != 0) {
		CHECK(strncmp(err, "credential_process: ", 20) == 0);
		return ("ERR");
	}
	buf[0] = '\0';
	for (i = 0; argv[i] != NULL; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s",
		    i ? "|" : "", argv[i]);
	creds_argv_free(argv);
	return (buf);
}

static void
argv_splitting(void)
{
	CHECK_EQ_STR(split("/bin/tool"), "/bin/tool");
	CHECK_EQ_STR(split("  tool  a\tb\nc  "), "tool|a|b|c");
	CHECK_EQ_STR(split("tool 'a b' \"c d\""), "tool|a b|c d");
	CHECK_EQ_STR(split("tool 'it''s'"), "tool|its");
	CHECK_EQ_STR(split("tool \"it's\""), "tool|it's");
	CHECK_EQ_STR(split("tool 'a\\b'"), "tool|a\\b");
	CHECK_EQ_STR(split("tool \"a\\\"b\\\\c\\d\""), "tool|a\"b\\c\\d");
	CHECK_EQ_STR(split("tool \"\\$HOME\" $HOME ~ *"),
	    "tool|$HOME|$HOME|~|*");
	CHECK_EQ_STR(split("tool a\\ b \\'c"), "tool|a b|'c");
	CHECK_EQ_STR(split("tool '' \"\""), "tool||");
	CHECK_EQ_STR(split("tool a\"b\"'c'd"), "tool|abcd");
	CHECK_EQ_STR(split("tool a\\\nb"), "tool|ab");
	CHECK_EQ_STR(split("tool ; rm -rf / && x | y"),
	    "tool|;|rm|-rf|/|&&|x|||y");
	CHECK_EQ_STR(split("tool 'unterminated"), "ERR");
	CHECK_EQ_STR(split("tool \"unterminated"), "ERR");
	CHECK_EQ_STR(split("tool trailing\\"), "ERR");
	CHECK_EQ_STR(split(""), "ERR");
	CHECK_EQ_STR(split("   "), "ERR");
}

static int64_t
t(const char *s)
{
	int64_t ms = -1;

	return (creds_parse_time(s, &ms) == 0 ? ms : -1);
}

static void
iso8601(void)
{
	CHECK_EQ_INT(t("1970-01-01T00:00:00Z"), 0);
	CHECK_EQ_INT(t("2024-01-01T00:00:00Z"), 1704067200000LL);
	CHECK_EQ_INT(t("2024-02-29T12:34:56Z"), 1709210096000LL);
	CHECK_EQ_INT(t("2024-01-01T00:00:00.123Z"), 1704067200123LL);
	CHECK_EQ_INT(t("2024-01-01T00:00:00.1Z"), 1704067200100LL);
	CHECK_EQ_INT(t("2024-01-01T00:00:00.123456Z"), 1704067200123LL);
	CHECK_EQ_INT(t("2024-01-01T01:00:00+01:00"), 1704067200000LL);
	CHECK_EQ_INT(t("2023-12-31T23:00:00-0100"), 1704067200000LL);
	CHECK_EQ_INT(t("2024-01-01t00:00:00z"), 1704067200000LL);
	CHECK_EQ_INT(t("2024-01-01 00:00:00Z"), 1704067200000LL);
	CHECK_EQ_INT(t("2100-03-01T00:00:00Z"), 4107542400000LL);
	CHECK_EQ_INT(t("2024-01-01T00:00:00"), -1);      /* no zone */
	CHECK_EQ_INT(t("2023-02-29T00:00:00Z"), -1);     /* not leap */
	CHECK_EQ_INT(t("2024-13-01T00:00:00Z"), -1);
	CHECK_EQ_INT(t("2024-01-01T24:00:00Z"), -1);
	CHECK_EQ_INT(t("2024-01-01T00:00:00Zjunk"), -1);
	CHECK_EQ_INT(t("2024-01-01T00:00:00."), -1);
	CHECK_EQ_INT(t("1969-12-31T23:59:59Z"), -1);
	CHECK_EQ_INT(t("24-01-01T00:00:00Z"), -1);
	CHECK_EQ_INT(t(""), -1);
	CHECK_EQ_INT(t(NULL), -1);
}

static void
margins(void)
{
	/* An hour: 5 minutes ahead (A), waiting 1 minute before (M). */
	CHECK_EQ_INT(creds_margin_advisory_ms(3600000), 300000);
	CHECK_EQ_INT(creds_margin_mandatory_ms(3600000), 60000);
	/* 15 minutes: A = L/4 = 225 s, M = 60 s. */
	CHECK_EQ_INT(creds_margin_advisory_ms(900000), 225000);
	CHECK_EQ_INT(creds_margin_mandatory_ms(900000), 60000);
	/* 2 seconds: refresh after 1.5 s, wait from 1.8 s. */
	CHECK_EQ_INT(creds_margin_advisory_ms(2000), 500);
	CHECK_EQ_INT(creds_margin_mandatory_ms(2000), 200);
	CHECK_EQ_INT(creds_margin_advisory_ms(0), 0);
	CHECK_EQ_INT(creds_margin_mandatory_ms(-5), 0);
	/* A >= M always, so the advisory refresh comes first. */
	for (int64_t l = 1; l < 10000000; l = l * 3 + 7)
		CHECK(creds_margin_advisory_ms(l) >=
		    creds_margin_mandatory_ms(l));
	CHECK_EQ_INT(creds_retry_after_ms(3600000), 10000);
	CHECK_EQ_INT(creds_retry_after_ms(2000), 125);
	CHECK_EQ_INT(creds_retry_after_ms(100), 50);
}

static int
pj(enum creds_doc kind, const char *json, struct creds_value *v)
{
	char err[256];
	int r;

	err[0] = '\0';
	r = creds_parse_json(kind, json, strlen(json), v, err, sizeof(err));
	if (r != 0) {
		CHECK(err[0] != '\0');
		/* The error never quotes the document. */
		CHECK(strstr(err, "SECRET") == NULL);
		CHECK(strstr(err, "TOKEN") == NULL);
	}
	return (r);
}

static void
json_documents(void)
{
	struct creds_value v;
	static const char imds[] = "{\n  \"Code\" : \"Success\",\n"
	    "  \"LastUpdated\" : \"2024-01-01T00:00:00Z\",\n"
	    "  \"Type\" : \"AWS-HMAC\",\n"
	    "  \"AccessKeyId\" : \"ASIAEXAMPLEEXAMPLE01\",\n"
	    "  \"SecretAccessKey\" : \"SECRET/abc+def\",\n"
	    "  \"Token\" : \"TOKEN//abc==\",\n"
	    "  \"Expiration\" : \"2024-01-01T06:00:00Z\"\n}";

	CHECK_EQ_INT(pj(CREDS_DOC_IMDS, imds, &v), 0);
	CHECK_EQ_STR(v.access_key, "ASIAEXAMPLEEXAMPLE01");
	CHECK_EQ_STR(v.secret_key, "SECRET/abc+def");
	CHECK_EQ_STR(v.token, "TOKEN//abc==");
	CHECK_EQ_INT(v.expires_ms, 1704088800000LL);
	CHECK_EQ_INT(pj(CREDS_DOC_IMDS, "{\"Code\":\"Failed\","
	    "\"AccessKeyId\":\"ASIAEXAMPLEEXAMPLE01\",\"SecretAccessKey\":"
	    "\"SECRET\",\"Token\":\"TOKEN\",\"Expiration\":"
	    "\"2024-01-01T06:00:00Z\"}", &v), -1);
	CHECK_EQ_STR(v.access_key, ""); /* wiped on failure */
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIAX\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\",\"RoleArn\":"
	    "\"arn:aws:iam::1:role/r\",\"Nested\":{\"AccessKeyId\":1}}", &v),
	    0);
	CHECK_EQ_STR(v.access_key, "ASIAX");
	/* Missing fields, wrong types, not an object, bad time, junk. */
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIAX\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":1,"
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "[\"AccessKeyId\"]", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "\"x\"", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIAX\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"tomorrow\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIAX\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\"} trailing", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIA X\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIAX\","
	    "\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOK\\r\\nEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{\"AccessKeyId\":\"ASIA\\u0000X"
	    "\",\"SecretAccessKey\":\"SECRET\",\"Token\":\"TOKEN\","
	    "\"Expiration\":\"2024-01-01T06:00:00Z\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_CONTAINER, "{", &v), -1);
	/* credential_process: Version 1 required; token and expiry optional */
	CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, "{\"Version\":1,\"AccessKeyId\":"
	    "\"AKIAPROC\",\"SecretAccessKey\":\"SECRET\"}", &v), 0);
	CHECK_EQ_STR(v.token, "");
	CHECK_EQ_INT(v.expires_ms, 0);
	CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, "{\"Version\":1,\"AccessKeyId\":"
	    "\"AKIAPROC\",\"SecretAccessKey\":\"SECRET\",\"SessionToken\":"
	    "\"TOKEN\",\"Expiration\":\"2024-01-01T06:00:00+00:00\"}", &v), 0);
	CHECK_EQ_STR(v.token, "TOKEN");
	CHECK_EQ_INT(v.expires_ms, 1704088800000LL);
	CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, "{\"Version\":2,\"AccessKeyId\":"
	    "\"AKIAPROC\",\"SecretAccessKey\":\"SECRET\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, "{\"Version\":\"1\",\"AccessKeyId\":"
	    "\"AKIAPROC\",\"SecretAccessKey\":\"SECRET\"}", &v), -1);
	CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, "{\"AccessKeyId\":"
	    "\"AKIAPROC\",\"SecretAccessKey\":\"SECRET\"}", &v), -1);
	{
		/* A token longer than the buffer is refused, not cut. */
		size_t n = CREDS_TOKEN_MAX + 100;
		char *big = malloc(n + 200);

		CHECK(big != NULL);
		if (big != NULL) {
			int k = snprintf(big, 200, "{\"Version\":1,"
			    "\"AccessKeyId\":\"AKIAPROC\",\"SecretAccessKey\":"
			    "\"SECRET\",\"SessionToken\":\"");
			memset(big + k, 'A', n);
			strcpy(big + k + n, "\"}");
			CHECK_EQ_INT(pj(CREDS_DOC_PROCESS, big, &v), -1);
			free(big);
		}
	}
	creds_value_wipe(&v);
}

static const char sts_ok[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/"
    "doc/2011-06-15/\">\n  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>\n"
    "    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"
    "<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <SessionToken>TOKEN+abc/def==</SessionToken>\n"
    "      <SecretAccessKey>SECRET/xyz</SecretAccessKey>\n"
    "      <Expiration>2024-01-01T01:00:00Z</Expiration>\n"
    "      <AccessKeyId>ASIASTSEXAMPLE000001</AccessKeyId>\n"
    "    </Credentials>\n  </AssumeRoleWithWebIdentityResult>\n"
    "  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

static int
px(const char *xml, struct creds_value *v, char *code)
{
	char err[256];

	return (creds_parse_sts(xml, strlen(xml), v, code, 64, err,
	    sizeof(err)));
}

static void
sts_xml(void)
{
	struct creds_value v;
	char code[64];
	char buf[4096];

	CHECK_EQ_INT(px(sts_ok, &v, code), 0);
	CHECK_EQ_STR(v.access_key, "ASIASTSEXAMPLE000001");
	CHECK_EQ_STR(v.secret_key, "SECRET/xyz");
	CHECK_EQ_STR(v.token, "TOKEN+abc/def==");
	CHECK_EQ_INT(v.expires_ms, 1704070800000LL);
	CHECK_EQ_INT(px("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/"
	    "2011-06-15/\"><Error><Type>Sender</Type><Code>"
	    "InvalidIdentityToken</Code><Message>bad</Message></Error>"
	    "<RequestId>x</RequestId></ErrorResponse>", &v, code), 1);
	CHECK_EQ_STR(code, "InvalidIdentityToken");
	CHECK_EQ_STR(v.access_key, "");
	/* Credentials outside their path do not count. */
	CHECK_EQ_INT(px("<Credentials><AccessKeyId>ASIAX</AccessKeyId>"
	    "<SecretAccessKey>S</SecretAccessKey><SessionToken>T"
	    "</SessionToken><Expiration>2024-01-01T01:00:00Z</Expiration>"
	    "</Credentials>", &v, code), -1);
	/* Missing token; bad time; a nested element in a field; twice. */
	snprintf(buf, sizeof(buf), "%s", sts_ok);
	memcpy(strstr(buf, "<SessionToken>"), "<SessionTokeX>", 14);
	memcpy(strstr(buf, "</SessionToken>"), "</SessionTokeX>", 15);
	CHECK_EQ_INT(px(buf, &v, code), -1);
	snprintf(buf, sizeof(buf), "%s", sts_ok);
	memcpy(strstr(buf, "2024-01-01T01"), "2024-99-01T01", 13);
	CHECK_EQ_INT(px(buf, &v, code), -1);
	CHECK_EQ_INT(px("<AssumeRoleWithWebIdentityResponse>"
	    "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>"
	    "AS<b>IA</b></AccessKeyId></Credentials>"
	    "</AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResponse>", &v, code), -1);
	CHECK_EQ_INT(px("<AssumeRoleWithWebIdentityResponse>"
	    "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>"
	    "ASIAA</AccessKeyId><AccessKeyId>ASIAB</AccessKeyId>"
	    "</Credentials></AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResponse>", &v, code), -1);
	/* A DOCTYPE (entity tricks) is refused; so is junk. */
	CHECK_EQ_INT(px("<!DOCTYPE x [<!ENTITY a \"b\">]><ErrorResponse>"
	    "<Error><Code>&a;</Code></Error></ErrorResponse>", &v, code), -1);
	CHECK_EQ_INT(px("not xml", &v, code), -1);
	CHECK_EQ_INT(px("", &v, code), -1);
	creds_value_wipe(&v);
}

static void
full_uri_rule(void)
{
	char err[256];

	CHECK_EQ_INT(creds_full_uri_check("http://127.0.0.1:8080/creds", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://127.1.2.3/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://localhost/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://[::1]:80/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://169.254.170.2/v2/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://169.254.170.23/v1/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://[fd00:ec2::23]/v1/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("https://creds.example.com/x", err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(creds_full_uri_check("http://creds.example.com/x", err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "creds.example.com") != NULL);
	CHECK_EQ_INT(creds_full_uri_check("http://10.0.0.1/x", err,
	    sizeof(err)), -1);
	CHECK_EQ_INT(creds_full_uri_check("http://127.0.0.1.evil.com/x", err,
	    sizeof(err)), -1);
	CHECK_EQ_INT(creds_full_uri_check("http://169.254.169.254/x", err,
	    sizeof(err)), -1);
	CHECK_EQ_INT(creds_full_uri_check("ftp://127.0.0.1/x", err,
	    sizeof(err)), -1);
	CHECK_EQ_INT(creds_full_uri_check("not a url", err, sizeof(err)), -1);
}

static void
value_checks(void)
{
	struct creds_value v;
	char err[256];

	memset(&v, 0, sizeof(v));
	strcpy(v.access_key, "S3RVER");
	strcpy(v.secret_key, "S3RVER");
	CHECK_EQ_INT(creds_check_value(&v, err, sizeof(err)), 0);
	strcpy(v.token, "tok\n");
	CHECK_EQ_INT(creds_check_value(&v, err, sizeof(err)), -1);
	v.token[0] = '\0';
	strcpy(v.access_key, "AK/x");
	CHECK_EQ_INT(creds_check_value(&v, err, sizeof(err)), -1);
	strcpy(v.access_key, "AKIA");
	v.secret_key[0] = '\0';
	CHECK_EQ_INT(creds_check_value(&v, err, sizeof(err)), -1);
	creds_value_wipe(&v);
}

/* Write ${text} to a fresh file in ${dir}; its path (static). */
static const char *
put(const char *dir, const char *name, const char *text)
{
	static char path[2][512];
	static int k;
	FILE *f;

	k ^= 1;
	snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
	f = fopen(path[k], "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	return (path[k]);
}

static void
shared_files(void)
{
	char dir[] = "/tmp/amp2s3-unit-creds-XXXXXX", err[512];
	struct creds_profile p;
	const char *cf, *cfg;
	char longtok[3000], *text;

	CHECK(mkdtemp(dir) != NULL);
	memset(longtok, 'T', sizeof(longtok) - 1);
	longtok[sizeof(longtok) - 1] = '\0';
	text = malloc(8192);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	snprintf(text, 8192,
	    "# comment\n[default]\naws_access_key_id = AKIADEFAULT\n"
	    "aws_secret_access_key = sec;ret#1\n\n"
	    "[prod]\nAWS_ACCESS_KEY_ID=AKIAPROD\naws_secret_access_key=s2\n"
	    "aws_session_token = %s\n[profile prod]\naws_access_key_id=NO\n",
	    longtok);
	cf = put(dir, "credentials", text);
	cfg = put(dir, "config", "[default]\nregion = eu-west-2\n"
	    "[profile prod]\nregion=us-east-2\ns3 =\n  addressing_style = "
	    "path\n[profile proc]\ncredential_process = /bin/echo 'a b'\n"
	    "[profile role]\nrole_arn = arn:aws:iam::1:role/x\n"
	    "source_profile = default\n[prod]\nregion = wrong\n");

	CHECK_EQ_INT(creds_profile_load(cf, cfg, "default", &p, err,
	    sizeof(err)), 0);
	CHECK(p.found);
	CHECK_EQ_STR(p.cf_access, "AKIADEFAULT");
	CHECK_EQ_STR(p.cf_secret, "sec;ret#1"); /* no inline comments */
	CHECK(p.cf_token == NULL);
	CHECK_EQ_STR(p.region, "eu-west-2");
	creds_profile_clear(&p);

	CHECK_EQ_INT(creds_profile_load(cf, cfg, "prod", &p, err,
	    sizeof(err)), 0);
	CHECK_EQ_STR(p.cf_access, "AKIAPROD");
	CHECK(p.cf_token != NULL && strcmp(p.cf_token, longtok) == 0);
	CHECK_EQ_STR(p.region, "us-east-2"); /* [profile prod], not [prod] */
	CHECK(p.cfg_access == NULL);
	creds_profile_clear(&p);

	CHECK_EQ_INT(creds_profile_load(cf, cfg, "proc", &p, err,
	    sizeof(err)), 0);
	CHECK(p.found);
	CHECK_EQ_STR(p.process, "/bin/echo 'a b'");
	creds_profile_clear(&p);

	CHECK_EQ_INT(creds_profile_load(cf, cfg, "role", &p, err,
	    sizeof(err)), 0);
	CHECK_EQ_STR(p.unsupported, "role_arn");
	creds_profile_clear(&p);

	CHECK_EQ_INT(creds_profile_load(cf, cfg, "absent", &p, err,
	    sizeof(err)), 0);
	CHECK(!p.found);
	creds_profile_clear(&p);

	/* Missing files are no error. */
	CHECK_EQ_INT(creds_profile_load("/nonexistent/c", NULL, "default", &p,
	    err, sizeof(err)), 0);
	CHECK(!p.found);
	creds_profile_clear(&p);

	/* A key twice in a section; a broken line: the file and line. */
	cf = put(dir, "dup", "[default]\naws_access_key_id=A\n"
	    "aws_access_key_id=B\n");
	CHECK_EQ_INT(creds_profile_load(cf, NULL, "default", &p, err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "line 3") != NULL);
	cf = put(dir, "broken", "[default]\nthis line has no equals\n");
	CHECK_EQ_INT(creds_profile_load(cf, NULL, "default", &p, err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "broken: line 2") != NULL);

	snprintf(text, 8192, "rm -rf %s", dir);
	CHECK(system(text) == 0);
	free(text);
}

UNIT_MAIN("creds", TEST(argv_splitting), TEST(iso8601), TEST(margins),
    TEST(json_documents), TEST(sts_xml), TEST(full_uri_rule),
    TEST(value_checks), TEST(shared_files))
