/*
 * fuzz_creds: the parsers of the creds module (src/creds_parse.c) on
 * arbitrary bytes.  The first byte selects the parser, the rest is its
 * input:
 *   0, 1, 2  creds_parse_json() as IMDS, container, credential_process
 *   3        creds_parse_sts()
 *   4        creds_parse_time()
 *   5        creds_split_argv()
 *   6        creds_full_uri_check()
 *
 * Properties:
 *   - JSON / XML: the result is 0 or -1 (1 too for STS); on success every
 *     field is NUL-terminated inside its buffer and passes
 *     creds_check_value(); on failure the value is all zero bytes; the
 *     message is one printable line (it never quotes the input: its only
 *     variable parts are service codes reduced to [A-Za-z0-9.?]);
 *   - times: an accepted time formats back (UTC, "Z", milliseconds) to a
 *     string that parses to the same value;
 *   - shell words: accepted input gives at least one word, none longer
 *     than the input; each word single-quoted ('\'' for a quote) and
 *     joined by spaces splits back into the same words;
 *   - full URI: 0 or -1 and a printable one-line message.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "creds_internal.h"
#include "fuzz.h"

static void
check_value_result(int rc, const struct creds_value *v, const char *err)
{
	static const struct creds_value zero;

	if (rc == 0) {
		FUZZ_CHECK(memchr(v->access_key, '\0',
		    sizeof(v->access_key)) != NULL);
		FUZZ_CHECK(memchr(v->secret_key, '\0',
		    sizeof(v->secret_key)) != NULL);
		FUZZ_CHECK(memchr(v->token, '\0', sizeof(v->token)) != NULL);
		FUZZ_CHECK(creds_check_value(v, NULL, 0) == 0);
	} else {
		FUZZ_CHECK(memcmp(v, &zero, sizeof(zero)) == 0);
		FUZZ_CHECK(err[0] != '\0' && fuzz_printable(err));
	}
}

static void
check_time(const char *s)
{
	int64_t ms, back;
	char buf[64];
	struct tm tm;
	time_t secs;

	if (creds_parse_time(s, &ms) != 0)
		return;
	FUZZ_CHECK(ms >= 0);
	secs = (time_t)(ms / 1000);
	FUZZ_CHECK(gmtime_r(&secs, &tm) != NULL);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	FUZZ_CHECK(creds_parse_time(buf, &back) == 0);
	FUZZ_CHECK(back == ms);
}

static void
check_argv(const char *s, size_t len)
{
	char **argv, **again, err[256], *joined, *p;
	size_t i, n, need = 1;

	if (creds_split_argv(s, &argv, err, sizeof(err)) != 0) {
		FUZZ_CHECK(fuzz_printable(err));
		return;
	}
	FUZZ_CHECK(argv[0] != NULL);
	for (i = 0; argv[i] != NULL; i++) {
		n = strlen(argv[i]);
		FUZZ_CHECK(n <= len);
		need += 4 * n + 3;
	}
	joined = malloc(need);
	FUZZ_CHECK(joined != NULL);
	p = joined;
	for (i = 0; argv[i] != NULL; i++) {
		const char *w;

		if (i > 0)
			*p++ = ' ';
		*p++ = '\'';
		for (w = argv[i]; *w != '\0'; w++) {
			if (*w == '\'') {
				memcpy(p, "'\\''", 4);
				p += 4;
			} else {
				*p++ = *w;
			}
		}
		*p++ = '\'';
	}
	*p = '\0';
	FUZZ_CHECK(creds_split_argv(joined, &again, err, sizeof(err)) == 0);
	for (i = 0; argv[i] != NULL; i++)
		FUZZ_CHECK(again[i] != NULL && strcmp(again[i], argv[i]) == 0);
	FUZZ_CHECK(again[i] == NULL);
	creds_argv_free(again);
	creds_argv_free(argv);
	free(joined);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct creds_value v;
	char err[512], code[64], *s;
	int rc;

	if (size < 1 || size > CREDS_BODY_MAX + 1)
		return (0);
	/* A NUL-terminated copy, for the string parsers. */
	if ((s = malloc(size)) == NULL)
		return (0);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	err[0] = '\0';
	switch (data[0] % 7) {
	case 0:
	case 1:
	case 2:
		rc = creds_parse_json((enum creds_doc)(data[0] % 7),
		    (const char *)data + 1, size - 1, &v, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == -1);
		check_value_result(rc, &v, err);
		break;
	case 3:
		rc = creds_parse_sts((const char *)data + 1, size - 1, &v, code,
		    sizeof(code), err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);
		check_value_result(rc == 0 ? 0 : -1, &v, err);
		if (rc == 1)
			FUZZ_CHECK(fuzz_printable(code));
		break;
	case 4:
		check_time(s);
		break;
	case 5:
		check_argv(s, strlen(s));
		break;
	default:
		rc = creds_full_uri_check(s, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == -1);
		if (rc != 0)
			FUZZ_CHECK(fuzz_printable(err));
		break;
	}
	creds_value_wipe(&v);
	free(s);
	return (0);
}
