/* Unit tests: the streaming JSONL validator. */
#include "jsonl.h"
#include "unit.h"

/*
 * Feed ${s} split at every pair of offsets (three chunks), finish, and
 * check that every split gives ${want} (and ${lines}/${nl} when OK).
 */
static void
check_splits(const char *s, size_t max_line, enum jsonl_status want,
    uint64_t lines, int nl)
{
	size_t n = strlen(s);
	int bad = 0;

	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			struct jsonl *j = jsonl_new(max_line);
			enum jsonl_status st;
			int need_nl = -1;

			if (j == NULL)
				abort();
			st = jsonl_feed(j, s, a);
			if (st == JSONL_OK)
				st = jsonl_feed(j, s + a, b - a);
			if (st == JSONL_OK)
				st = jsonl_feed(j, s + b, n - b);
			if (st == JSONL_OK)
				st = jsonl_finish(j, &need_nl);
			if (st != want || (want == JSONL_OK &&
			    (jsonl_lines(j) != lines || need_nl != nl))) {
				if (!bad)
					fprintf(stderr, "\"%s\" split %zu,%zu: "
					    "%d (%s)\n", s, a, b, (int)st,
					    jsonl_error(j));
				bad = 1;
			}
			jsonl_free(j);
		}
	}
	CHECK(!bad);
}

static void
test_valid(void)
{
	check_splits("{}\n", 0, JSONL_OK, 1, 0);
	check_splits("{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\xc3\xa9\"}\n"
	    "[true,false]\n", 0, JSONL_OK, 2, 0);
	check_splits("1\n\"s\"\n-2.5e3\n", 0, JSONL_OK, 3, 0);
	check_splits("  {}  \r\n[]", 0, JSONL_OK, 2, 1);
	check_splits("12345", 0, JSONL_OK, 1, 1);
	check_splits("", 0, JSONL_OK, 0, 0);
}

static void
test_invalid(void)
{
	check_splits("{}\n\n{}\n", 0, JSONL_EMPTY, 0, 0);
	check_splits("\n", 0, JSONL_EMPTY, 0, 0);
	check_splits("{} {}\n", 0, JSONL_BAD, 0, 0);
	check_splits("{}\n{\n", 0, JSONL_BAD, 0, 0);
	check_splits("{}\n{\"a\":1", 0, JSONL_BAD, 0, 0);
	check_splits("{\"a\"\n:1}\n", 0, JSONL_BAD, 0, 0);
	check_splits(" \n", 0, JSONL_BAD, 0, 0);
	check_splits("\t", 0, JSONL_BAD, 0, 0);
	check_splits("nul\n", 0, JSONL_BAD, 0, 0);
	check_splits("\"\xc3\"\n", 0, JSONL_BAD, 0, 0);
	check_splits("{'a':1}\n", 0, JSONL_BAD, 0, 0);
	check_splits("[1]]\n", 0, JSONL_BAD, 0, 0);
}

static void
test_max_line(void)
{
	check_splits("[1,2]\n[1]\n", 5, JSONL_OK, 2, 0);
	check_splits("[1,2]\n[1]\n", 4, JSONL_LONG, 0, 0);
	check_splits("[1]\n[1,2]", 5, JSONL_OK, 2, 1);
	check_splits("[1]\n[1,2]", 4, JSONL_LONG, 0, 0);
	check_splits("[1,2]  \n", 6, JSONL_LONG, 0, 0);
}

/* Lines counted across streams; the line number restarts per stream. */
static void
test_streams_and_errors(void)
{
	struct jsonl *j = jsonl_new(0);
	int nl;

	CHECK(j != NULL);
	if (j == NULL)
		return;
	CHECK_EQ_STR(jsonl_error(j), "");
	CHECK_EQ_INT(jsonl_feed(j, "{}\n[]", 5), JSONL_OK);
	CHECK_EQ_INT(jsonl_finish(j, &nl), JSONL_OK);
	CHECK_EQ_INT(nl, 1);
	CHECK_EQ_INT(jsonl_lines(j), 2);
	CHECK_EQ_INT(jsonl_feed(j, "1\n2\n{x}\n", 8), JSONL_BAD);
	CHECK(strncmp(jsonl_error(j), "line 3: invalid JSON", 20) == 0);
	CHECK(strchr(jsonl_error(j), '\n') == NULL);
	CHECK_EQ_INT(jsonl_lines(j), 4);
	/* Refused until reset. */
	CHECK_EQ_INT(jsonl_feed(j, "1\n", 2), JSONL_BAD);
	CHECK_EQ_INT(jsonl_finish(j, &nl), JSONL_BAD);
	jsonl_reset(j);
	CHECK_EQ_STR(jsonl_error(j), "");
	CHECK_EQ_INT(jsonl_feed(j, "[1,", 3), JSONL_OK);
	jsonl_reset(j); /* drops the partial line */
	CHECK_EQ_INT(jsonl_feed(j, "\n", 1), JSONL_EMPTY);
	CHECK_EQ_STR(jsonl_error(j), "line 1: empty line");
	jsonl_free(j);
	jsonl_free(NULL);

	j = jsonl_new(3);
	CHECK(j != NULL);
	if (j == NULL)
		return;
	CHECK_EQ_INT(jsonl_feed(j, "[1]\n[2]\n[10]", 12), JSONL_LONG);
	CHECK_EQ_STR(jsonl_error(j), "line 3: line too long");
	jsonl_free(j);
}

UNIT_MAIN("jsonl",
    TEST(test_valid),
    TEST(test_invalid),
    TEST(test_max_line),
    TEST(test_streams_and_errors))
