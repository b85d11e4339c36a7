/* Unit tests: the strict .env parser. */
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include "envfile.h"
#include "unit.h"

#define MAXKV 32

struct got {
	int n;
	char key[MAXKV][64];
	char val[MAXKV][256];
	int stop_at;   /* return 7 on this call (1-based), 0: never */
};

static int
collect(void *ctx, const char *key, const char *value)
{
	struct got *g = ctx;

	if (g->n >= MAXKV)
		return (-1);
	snprintf(g->key[g->n], sizeof(g->key[0]), "%s", key);
	snprintf(g->val[g->n], sizeof(g->val[0]), "%s", value);
	g->n++;
	if (g->stop_at == g->n)
		return (7);
	return (0);
}

/* Parse a NUL-terminated ${s} into ${g}; returns envfile_parse()'s value. */
static int
parse(const char *s, struct got *g, char *err, size_t errlen)
{

	memset(g, 0, sizeof(*g));
	err[0] = '\0';
	return (envfile_parse(s, strlen(s), collect, g, err, errlen));
}

static void
test_syntax(void)
{
	struct got g;
	char err[256];
	const char *s =
	    "\xEF\xBB\xBF" "A=1\n"
	    "# a comment\n"
	    "\n"
	    "   \t \n"
	    "  # indented comment\n"
	    "B = x\n";

	/* "B = x" has a blank before '=': an error on line 6. */
	CHECK_EQ_INT(parse(s, &g, err, sizeof(err)), -1);
	CHECK_EQ_STR(err, "line 6: expected '=' right after the variable "
	    "name");
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.key[0], "A");
	CHECK_EQ_STR(g.val[0], "1");

	s = "\xEF\xBB\xBF" "A=1\r\n"
	    "# comment\r\n"
	    "\r\n"
	    "  \t\r\n"
	    "export B=two words  \r\n"
	    "export\t\tC='single $X \\n \"q\" # not a comment'\n"
	    "D=\"dq \\n\\t\\\\\\\"\\$HOME # kept\"  # comment\n"
	    "E=\n"
	    "F=   \n"
	    "G=a#b\n"
	    "H=a #b\n"
	    "I=a\t#b\n"
	    "J= #only a comment\n"
	    "K=#x\n"
	    "  L=indented\n"
	    "_m9=lower_and_digits\n"
	    "N=\"\"\n"
	    "O=''\n"
	    "P=   \"spaced quote\"\t\n"
	    "Q=\"x\"#c\n"
	    "R=a=b=c\n"
	    "S=it's\n"
	    "export=plain\n"
	    "A=later\n"
	    "T=last line without newline";
	CHECK_EQ_INT(parse(s, &g, err, sizeof(err)), 0);
	CHECK_EQ_STR(err, "");
	CHECK_EQ_INT(g.n, 22);
	{
		static const char *want[][2] = {
			{ "A", "1" },
			{ "B", "two words" },
			{ "C", "single $X \\n \"q\" # not a comment" },
			{ "D", "dq \n\t\\\"$HOME # kept" },
			{ "E", "" },
			{ "F", "" },
			{ "G", "a#b" },
			{ "H", "a" },
			{ "I", "a" },
			{ "J", "" },
			{ "K", "#x" },
			{ "L", "indented" },
			{ "_m9", "lower_and_digits" },
			{ "N", "" },
			{ "O", "" },
			{ "P", "spaced quote" },
			{ "Q", "x" },
			{ "R", "a=b=c" },
			{ "S", "it's" },
			{ "export", "plain" },
			{ "A", "later" },
			{ "T", "last line without newline" },
		};

		for (int i = 0; i < 22 && i < g.n; i++) {
			CHECK_EQ_STR(g.key[i], want[i][0]);
			CHECK_EQ_STR(g.val[i], want[i][1]);
		}
	}

	/* Empty input, only a BOM, only blank lines. */
	CHECK_EQ_INT(parse("", &g, err, sizeof(err)), 0);
	CHECK_EQ_INT(g.n, 0);
	CHECK_EQ_INT(parse("\xEF\xBB\xBF", &g, err, sizeof(err)), 0);
	CHECK_EQ_INT(g.n, 0);
	CHECK_EQ_INT(parse("\n\r\n  \n\t\n", &g, err, sizeof(err)), 0);
	CHECK_EQ_INT(g.n, 0);
	/* A BOM only counts at the very start. */
	CHECK_EQ_INT(parse("A=1\n\xEF\xBB\xBF" "B=2\n", &g, err, sizeof(err)),
	    -1);
	CHECK_EQ_STR(err, "line 2: expected a variable name "
	    "([A-Za-z_][A-Za-z0-9_]*)");
}

/*
 * Each case: input, expected message.  Every secret value is "s3cr3t" so
 * the test can check it never appears in the message.
 */
static void
test_errors(void)
{
	static const char *cases[][2] = {
		{ "A=1\nB=\"s3cr3t\n", "line 2: unterminated double-quoted "
		    "value" },
		{ "A=1\n\nC='s3cr3t\n", "line 3: unterminated single-quoted "
		    "value" },
		{ "A=\"s3cr3t\nmore\"\n", "line 1: unterminated "
		    "double-quoted value" },
		{ "A=\"s3cr3t\" trailing\n", "line 1: unexpected text after "
		    "the closing quote" },
		{ "# c\nA='s3cr3t'x\n", "line 2: unexpected text after the "
		    "closing quote" },
		{ "A=\"s3cr3t\\q\"\n", "line 1: unknown escape in "
		    "double-quoted value (use \\n \\t \\\\ \\\" \\$)" },
		{ "A=\"s3cr3t\\\"\n", "line 1: unterminated double-quoted "
		    "value" },
		{ "A=\"s3cr3t\\", "line 1: unterminated double-quoted "
		    "value" },
		{ "A=1\r\n\r\n\r\nBAD KEY=s3cr3t\r\n", "line 4: expected '=' "
		    "right after the variable name" },
		{ "9A=s3cr3t\n", "line 1: expected a variable name "
		    "([A-Za-z_][A-Za-z0-9_]*)" },
		{ "A-B=s3cr3t\n", "line 1: expected '=' right after the "
		    "variable name" },
		{ "=s3cr3t\n", "line 1: expected a variable name "
		    "([A-Za-z_][A-Za-z0-9_]*)" },
		{ "JUSTAKEY\n", "line 1: expected '=' right after the "
		    "variable name" },
		{ "export\n", "line 1: expected '=' right after the "
		    "variable name" },
		{ "export \n", "line 1: expected a variable name "
		    "([A-Za-z_][A-Za-z0-9_]*)" },
		{ "exportA=s3cr3t x\nexport A B=s3cr3t\n", "line 2: "
		    "expected '=' right after the variable name" },
		{ "A=1\nset B=s3cr3t\n", "line 2: expected '=' right after "
		    "the variable name" },
		{ "A=1\n\"B\"=s3cr3t\n", "line 2: expected a variable name "
		    "([A-Za-z_][A-Za-z0-9_]*)" },
	};
	struct got g;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse(cases[i][0], &g, err, sizeof(err));

		CHECK_EQ_INT(r, -1);
		CHECK_EQ_STR(err, cases[i][1]);
		CHECK(strstr(err, "s3cr3t") == NULL);
	}

	/* A NUL byte, named by line. */
	{
		static const char nul[] = "A=1\nB=s3\0cr3t\n";

		memset(&g, 0, sizeof(g));
		CHECK_EQ_INT(envfile_parse(nul, sizeof(nul) - 1, collect, &g,
		    err, sizeof(err)), -1);
		CHECK_EQ_STR(err, "line 2: NUL byte in the file");
		CHECK_EQ_INT(g.n, 0);
	}
	/* A short error buffer is truncated, not overrun; NULL is allowed. */
	{
		char small[8];

		memset(&g, 0, sizeof(g));
		memset(small, 'x', sizeof(small));
		CHECK_EQ_INT(envfile_parse("A='s3cr3t", 9, collect, &g, small,
		    sizeof(small)), -1);
		CHECK_EQ_STR(small, "line 1:");
		CHECK_EQ_INT(envfile_parse("A='s3cr3t", 9, collect, &g, NULL,
		    0), -1);
	}
}

static void
test_callback_stop(void)
{
	struct got g;
	char err[256];

	memset(&g, 0, sizeof(g));
	g.stop_at = 2;
	CHECK_EQ_INT(envfile_parse("A=1\nB=2\nC=3\n", 12, collect, &g, err,
	    sizeof(err)), 7);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(err, "line 2: could not store the assignment");
	/* len bounds the input: a value is not read past it. */
	memset(&g, 0, sizeof(g));
	CHECK_EQ_INT(envfile_parse("A=12345", 4, collect, &g, err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.val[0], "12");
}

static int
write_file(const char *path, const char *s, size_t n)
{
	int fd, r = -1;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return (-1);
	if (write(fd, s, n) == (ssize_t)n)
		r = 0;
	close(fd);
	return (r);
}

static void
test_load(void)
{
	char dir[] = "/tmp/amp2s3-envXXXXXX", path[128], err[512], want[512];
	struct got g;
	char *big;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/.env", dir);

	memset(&g, 0, sizeof(g));
	strcpy(err, "untouched");
	CHECK_EQ_INT(envfile_load(path, collect, &g, err, sizeof(err)), 1);
	CHECK_EQ_INT(g.n, 0);

	CHECK_EQ_INT(write_file(path, "export K=v\nX='y'\n", 17), 0);
	CHECK_EQ_INT(envfile_load(path, collect, &g, err, sizeof(err)), 0);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.key[0], "K");
	CHECK_EQ_STR(g.val[0], "v");
	CHECK_EQ_STR(g.key[1], "X");
	CHECK_EQ_STR(g.val[1], "y");

	CHECK_EQ_INT(write_file(path, "A=1\nB=2\nC=\"s3cr3t\n", 18), 0);
	memset(&g, 0, sizeof(g));
	CHECK_EQ_INT(envfile_load(path, collect, &g, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: unterminated double-quoted value",
	    path);
	CHECK_EQ_STR(err, want);
	CHECK(strstr(err, "s3cr3t") == NULL);

	/* Exactly 1 MiB is accepted; one byte more is refused. */
	if ((big = malloc(1024 * 1024 + 1)) != NULL) {
		memset(big, '\n', 1024 * 1024 + 1);
		memcpy(big, "Z=1", 3);
		CHECK_EQ_INT(write_file(path, big, 1024 * 1024), 0);
		memset(&g, 0, sizeof(g));
		CHECK_EQ_INT(envfile_load(path, collect, &g, err,
		    sizeof(err)), 0);
		CHECK_EQ_INT(g.n, 1);
		CHECK_EQ_INT(write_file(path, big, 1024 * 1024 + 1), 0);
		memset(&g, 0, sizeof(g));
		CHECK_EQ_INT(envfile_load(path, collect, &g, err,
		    sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s: larger than 1 MiB", path);
		CHECK_EQ_STR(err, want);
		CHECK_EQ_INT(g.n, 0);
		free(big);
	}
	CHECK_EQ_INT(unlink(path), 0);

	/* A directory is refused. */
	CHECK_EQ_INT(envfile_load(dir, collect, &g, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: not a regular file", dir);
	CHECK_EQ_STR(err, want);
	CHECK_EQ_INT(rmdir(dir), 0);
}

UNIT_MAIN("envfile",
    TEST(test_syntax),
    TEST(test_errors),
    TEST(test_callback_stop),
    TEST(test_load))
