/*
 * fuzz_envfile: envfile_parse() on arbitrary bytes.
 *
 * Properties:
 *   - every key handed to the callback is [A-Za-z_][A-Za-z0-9_]* and no
 *     longer than the input; every value is shorter than the input;
 *   - the result is 0 or -1; on -1 the message is exactly "line N: " and
 *     one of the parser's fixed reasons, N a line of the input — never
 *     anything taken from the input (values may be secrets);
 *   - line ends do not matter: with every LF turned into CRLF (inputs
 *     without CR) the result, the assignments and the message are the
 *     same; a UTF-8 BOM in front changes nothing either;
 *   - a callback that refuses the first assignment stops the parse at
 *     once: its value is returned, with "line N: could not store the
 *     assignment".
 */
#include <stdlib.h>
#include <string.h>

#include "envfile.h"
#include "fuzz.h"

/* The reasons envfile.c gives (after "line N: "). */
static const char *const reasons[] = {
	"expected a variable name ([A-Za-z_][A-Za-z0-9_]*)",
	"expected '=' right after the variable name",
	"unknown escape in double-quoted value (use \\n \\t \\\\ \\\" \\$)",
	"unterminated double-quoted value",
	"unterminated single-quoted value",
	"unexpected text after the closing quote",
	"NUL byte in the file",
};

/* What one parse produced: every assignment as "key\0value\0". */
struct result {
	int rc;
	char err[256];
	char *rec;
	size_t len, cap;
	size_t calls;
	size_t limit;  /* input length: no key or value may be longer */
	int refuse;    /* return 7 from the first call */
};

static int
on_assign(void *ctx, const char *key, const char *value)
{
	struct result *r = ctx;
	size_t kl = strlen(key), vl = strlen(value), i;

	r->calls++;
	FUZZ_CHECK(kl > 0 && kl <= r->limit && vl < r->limit);
	FUZZ_CHECK((key[0] >= 'A' && key[0] <= 'Z') ||
	    (key[0] >= 'a' && key[0] <= 'z') || key[0] == '_');
	for (i = 1; i < kl; i++)
		FUZZ_CHECK((key[i] >= 'A' && key[i] <= 'Z') ||
		    (key[i] >= 'a' && key[i] <= 'z') || key[i] == '_' ||
		    (key[i] >= '0' && key[i] <= '9'));
	if (r->len + kl + vl + 2 > r->cap) {
		size_t nc = (r->cap ? r->cap * 2 : 256) + kl + vl + 2;
		char *nr = realloc(r->rec, nc);

		FUZZ_CHECK(nr != NULL);
		r->rec = nr;
		r->cap = nc;
	}
	memcpy(r->rec + r->len, key, kl + 1);
	memcpy(r->rec + r->len + kl + 1, value, vl + 1);
	r->len += kl + vl + 2;
	return (r->refuse ? 7 : 0);
}

/* Parse ${len} bytes at ${buf} into ${r} (which the caller zeroed). */
static void
parse(struct result *r, const char *buf, size_t len, size_t limit)
{
	r->limit = limit;
	r->rc = envfile_parse(buf, len, on_assign, r, r->err,
	    sizeof(r->err));
}

/* "line N: <one of ${reasons} or ${extra}>", 1 <= N <= ${maxline}. */
static void
check_err(const char *err, size_t maxline, const char *extra)
{
	char *end;
	unsigned long long n;
	size_t i;
	int known = 0;

	FUZZ_CHECK(strncmp(err, "line ", 5) == 0);
	n = strtoull(err + 5, &end, 10);
	FUZZ_CHECK(end != err + 5 && n >= 1 && n <= maxline);
	FUZZ_CHECK(end[0] == ':' && end[1] == ' ');
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		known |= strcmp(end + 2, reasons[i]) == 0;
	if (extra != NULL)
		known |= strcmp(end + 2, extra) == 0;
	FUZZ_CHECK(known);
}

static void
same(const struct result *a, const struct result *b)
{
	FUZZ_CHECK(a->rc == b->rc);
	FUZZ_CHECK(a->len == b->len && (a->len == 0 ||
	    memcmp(a->rec, b->rec, a->len) == 0));
	FUZZ_CHECK(a->rc == 0 || strcmp(a->err, b->err) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct result r0, r1;
	size_t i, lines = 1, n;
	char *v;

	memset(&r0, 0, sizeof(r0));
	parse(&r0, s, size, size);
	for (i = 0; i < size; i++)
		lines += s[i] == '\n';
	FUZZ_CHECK(r0.rc == 0 || r0.rc == -1);
	if (r0.rc != 0)
		check_err(r0.err, lines, NULL);

	/* CRLF line ends: the same result. */
	if (memchr(s, '\r', size) == NULL && (v = malloc(2 * size + 1)) !=
	    NULL) {
		for (i = n = 0; i < size; i++) {
			if (s[i] == '\n')
				v[n++] = '\r';
			v[n++] = s[i];
		}
		memset(&r1, 0, sizeof(r1));
		parse(&r1, v, n, n);
		same(&r0, &r1);
		free(r1.rec);
		free(v);
	}

	/* A BOM in front: the same result. */
	if ((size < 3 || memcmp(s, "\xEF\xBB\xBF", 3) != 0) &&
	    (v = malloc(size + 3)) != NULL) {
		memcpy(v, "\xEF\xBB\xBF", 3);
		memcpy(v + 3, s, size);
		memset(&r1, 0, sizeof(r1));
		parse(&r1, v, size + 3, size + 3);
		same(&r0, &r1);
		free(r1.rec);
		free(v);
	}

	/* A callback that refuses: stops at the first assignment. */
	memset(&r1, 0, sizeof(r1));
	r1.refuse = 1;
	parse(&r1, s, size, size);
	if (r0.calls > 0) {
		FUZZ_CHECK(r1.rc == 7 && r1.calls == 1);
		FUZZ_CHECK(r1.len <= r0.len &&
		    memcmp(r1.rec, r0.rec, r1.len) == 0);
		check_err(r1.err, lines, "could not store the assignment");
	} else {
		same(&r0, &r1);
	}
	free(r1.rec);
	free(r0.rec);
	return (0);
}
