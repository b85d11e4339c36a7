/* Unit tests: key templates (--key-template), hour <-> key. */
#include "keytmpl.h"
#include "unit.h"

static amp_hour
H(int y, int m, int d, int h)
{
	amp_hour r = -1;
	(void)hour_from_ymdh(y, m, d, h, &r);
	return (r);
}

static struct keytmpl *
parse(const char *tmpl, const char *prefix, const char *suffix, int dir)
{
	char err[512];
	struct keytmpl *t = keytmpl_parse(tmpl, prefix, suffix, dir, err,
	    sizeof(err));

	if (t == NULL)
		fprintf(stderr, "  (parse '%s': %s)\n", tmpl, err);
	return (t);
}

/* The key of ${h}, in a static buffer. */
static const char *
key_of(const struct keytmpl *t, amp_hour h)
{
	static char buf[KEYTMPL_MAX_KEY + 1];

	if (keytmpl_format(t, h, buf, sizeof(buf)) < 0)
		return ("(too long)");
	return (buf);
}

/* The hour ${key} names, or -1. */
static amp_hour
match(const struct keytmpl *t, const char *key)
{
	amp_hour h;

	return (keytmpl_match(t, key, strlen(key), &h) == 0 ? h : -1);
}

static void
test_default(void)
{
	struct keytmpl *t = parse(KEYTMPL_DEFAULT, "python-import/", "", 0);
	char small[8];

	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2024, 1, 1, 5)),
	    "python-import/2024-01-01_05.jsonl");
	CHECK_EQ_INT(match(t, "python-import/2024-01-01_05.jsonl"),
	    H(2024, 1, 1, 5));
	CHECK_EQ_INT(match(t, "python-import/2024-12-31_23.jsonl"),
	    H(2024, 12, 31, 23));
	CHECK_EQ_STR(keytmpl_list_prefix(t), "python-import/");
	CHECK_EQ_INT(keytmpl_slashes(t), 1);
	/* Strict: anything else is not an hour. */
	CHECK_EQ_INT(match(t, "python-import/2024-01-01_05.jsonl.gz"), -1);
	CHECK_EQ_INT(match(t, "python-import/2024-01-01_5.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/2024-01-01_24.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/2023-02-29_00.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/2024-13-01_00.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/2024-01-01T05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/2024-01-0a_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/+024-01-01_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/0000-01-01_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/x/2024-01-01_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-importX2024-01-01_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, "2024-01-01_05.jsonl"), -1);
	CHECK_EQ_INT(match(t, ""), -1);
	CHECK_EQ_INT(keytmpl_format(t, H(2024, 1, 1, 5), small,
	    sizeof(small)), -1);
	CHECK_EQ_STR(small, "");
	keytmpl_free(t);

	/* gzip: ".gz" appended; .jsonl keys are not hours then. */
	t = parse(KEYTMPL_DEFAULT, "p/", ".gz", 0);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2024, 1, 1, 5)), "p/2024-01-01_05.jsonl.gz");
	CHECK_EQ_INT(match(t, "p/2024-01-01_05.jsonl.gz"), H(2024, 1, 1, 5));
	CHECK_EQ_INT(match(t, "p/2024-01-01_05.jsonl"), -1);
	keytmpl_free(t);

	/* No prefix at all. */
	t = parse(KEYTMPL_DEFAULT, NULL, NULL, 1);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(1970, 1, 1, 0)), "1970-01-01_00.jsonl");
	CHECK_EQ_STR(keytmpl_list_prefix(t), "");
	CHECK_EQ_INT(keytmpl_slashes(t), 0);
	keytmpl_free(t);
}

static void
test_hive_and_fields(void)
{
	struct keytmpl *t;

	t = parse("{prefix}dt={date}/hour={hour}/part.jsonl", "python-import/",
	    ".gz", 1);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2024, 1, 1, 5)),
	    "python-import/dt=2024-01-01/hour=05/part.jsonl.gz");
	CHECK_EQ_INT(match(t, "python-import/dt=2024-01-01/hour=05/"
	    "part.jsonl.gz"), H(2024, 1, 1, 5));
	CHECK_EQ_INT(match(t, "python-import/dt=2024-01-01/hour=05/"
	    "part.jsonl"), -1);
	CHECK_EQ_INT(match(t, "python-import/dt=2024-01-01/hour=5/"
	    "part.jsonl.gz"), -1);
	CHECK_EQ_STR(keytmpl_list_prefix(t), "python-import/dt=");
	CHECK_EQ_INT(keytmpl_slashes(t), 3);
	keytmpl_free(t);

	t = parse("{prefix}year={year}/month={month}/day={day}/{hour}.json",
	    "", "", 1);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2025, 11, 9, 23)),
	    "year=2025/month=11/day=09/23.json");
	CHECK_EQ_INT(match(t, "year=2025/month=11/day=09/23.json"),
	    H(2025, 11, 9, 23));
	CHECK_EQ_INT(match(t, "year=2025/month=02/day=30/23.json"), -1);
	CHECK_EQ_STR(keytmpl_list_prefix(t), "year=");
	keytmpl_free(t);

	/* A field twice: both must agree. */
	t = parse("{date}/{year}{month}{day}T{hour}", "", "", 0);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2024, 2, 29, 7)), "2024-02-29/20240229T07");
	CHECK_EQ_INT(match(t, "2024-02-29/20240229T07"), H(2024, 2, 29, 7));
	CHECK_EQ_INT(match(t, "2024-02-29/20240228T07"), -1);
	CHECK_EQ_INT(match(t, "2024-02-28/20240229T07"), -1);
	/* Every hour round-trips. */
	for (amp_hour h = HOUR_MIN; h <= HOUR_MAX; h += 7919) {
		char k[64];
		CHECK_EQ_INT(keytmpl_format(t, h, k, sizeof(k)), 22);
		CHECK_EQ_INT(match(t, k), h);
	}
	CHECK_EQ_INT(match(t, key_of(t, HOUR_MAX)), HOUR_MAX);
	keytmpl_free(t);

	/* {prefix} anywhere, several times, and taken as text. */
	t = parse("a/{prefix}/{date}_{hour}-{prefix}", "{x}", "", 0);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK_EQ_STR(key_of(t, H(2024, 1, 1, 0)), "a/{x}/2024-01-01_00-{x}");
	CHECK_EQ_INT(match(t, "a/{x}/2024-01-01_00-{x}"), H(2024, 1, 1, 0));
	keytmpl_free(t);
}

static void
test_errors(void)
{
	static const struct {
		const char *tmpl;
		int dir;
		const char *msg; /* part of the error */
	} bad[] = {
		{ "", 0, "empty" },
		{ "{prefix}{date}.jsonl", 0, "does not name the hour" },
		{ "{prefix}{hour}.jsonl", 0, "does not name the hour" },
		{ "{year}{month}_{hour}", 0, "does not name the hour" },
		{ "{year}{day}_{hour}", 0, "does not name the hour" },
		{ "{date}_{hour}_{minute}", 0, "unknown placeholder {minute}" },
		{ "{date}_{HOUR}", 0, "unknown placeholder {HOUR}" },
		{ "{date}_{}{hour}", 0, "unknown placeholder {}" },
		{ "{date}_{hour", 0, "unclosed '{'" },
		{ "{date}_{ho{hour}", 0, "unclosed '{'" },
		{ "{date}_hour}", 0, "stray '}'" },
		{ "{date}_{hour}.jsonl.gz", 0, "ends in .gz" },
		{ "{date}/{hour}/", 0, "ends with '/'" },
		{ "{date}\x01{hour}", 0, "control character" },
		{ "/abs/{date}_{hour}", 1, "start with '/'" },
		{ "a//{date}_{hour}", 1, "empty, '.' or '..'" },
		{ "./{date}_{hour}", 1, "empty, '.' or '..'" },
		{ "a/../{date}_{hour}", 1, "empty, '.' or '..'" },
		{ "{date}/{hour}/..", 1, "empty, '.' or '..'" },
	};
	char err[512], long_tmpl[1200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(keytmpl_parse(bad[i].tmpl, "p/", "", bad[i].dir, err,
		    sizeof(err)) == NULL);
		if (strstr(err, bad[i].msg) == NULL)
			fprintf(stderr, "  '%s': got \"%s\"\n", bad[i].tmpl,
			    err);
		CHECK(strstr(err, bad[i].msg) != NULL);
		CHECK_EQ_INT(keytmpl_check(bad[i].tmpl, "p/", 0, bad[i].dir,
		    err, sizeof(err)), -1);
	}
	CHECK(keytmpl_parse(NULL, "", "", 0, err, sizeof(err)) == NULL);
	/* The path checks are for folder stores only. */
	CHECK_EQ_INT(keytmpl_check("/abs/{date}_{hour}", "", 0, 0, err,
	    sizeof(err)), 0);
	CHECK_EQ_INT(keytmpl_check("a//{date}_{hour}", "", 0, 0, err,
	    sizeof(err)), 0);
	/* So is the prefix's part in them. */
	CHECK_EQ_INT(keytmpl_check(KEYTMPL_DEFAULT, "/x/", 0, 1, err,
	    sizeof(err)), -1);
	CHECK_EQ_INT(keytmpl_check(KEYTMPL_DEFAULT, "/x/", 0, 0, err,
	    sizeof(err)), 0);
	/* With gzip the key gets ".gz"; still too long if it was. */
	CHECK_EQ_INT(keytmpl_check(KEYTMPL_DEFAULT, "python-import/", 1, 1,
	    err, sizeof(err)), 0);
	memset(long_tmpl, 'k', sizeof(long_tmpl));
	memcpy(long_tmpl + 1015, "{date}_{hour}", 14); /* 1028 */
	CHECK_EQ_INT(keytmpl_check(long_tmpl, "", 0, 0, err, sizeof(err)),
	    -1);
	CHECK(strstr(err, "S3 allows 1024") != NULL);
	memcpy(long_tmpl + 1010, "{date}_{hour}", 14); /* 1023 */
	CHECK_EQ_INT(keytmpl_check(long_tmpl, "", 0, 0, err, sizeof(err)), 0);
	CHECK_EQ_INT(keytmpl_check(long_tmpl, "", 1, 0, err, sizeof(err)),
	    -1);
	/* Folder stores: at most KEYTMPL_MAX_DIR_DEPTH levels. */
	{
		char deep[256] = "";

		for (int i = 0; i < KEYTMPL_MAX_DIR_DEPTH; i++)
			strcat(deep, "d/");
		strcat(deep, "{date}_{hour}");
		CHECK_EQ_INT(keytmpl_check(deep, "", 0, 1, err, sizeof(err)),
		    0);
		strcat(deep, "/x");
		CHECK_EQ_INT(keytmpl_check(deep, "", 0, 1, err, sizeof(err)),
		    -1);
		CHECK_EQ_INT(keytmpl_check(deep, "", 0, 0, err, sizeof(err)),
		    0);
	}
	keytmpl_free(NULL);
}

/* The span prefix of [first, last] under ${t}, in a static buffer. */
static const char *
span(const struct keytmpl *t, amp_hour first, amp_hour last)
{
	static char buf[KEYTMPL_MAX_KEY + 1];

	if (keytmpl_span_prefix(t, first, last, buf, sizeof(buf)) < 0)
		return ("(error)");
	return (buf);
}

/* Every key of [first, last] starts with ${p}, and some two keys differ
 * at the byte after it (the prefix is the longest one). */
static int
is_longest_common(const struct keytmpl *t, amp_hour first, amp_hour last,
    const char *p)
{
	size_t n = strlen(p);
	int longest = first == last;
	char k0[KEYTMPL_MAX_KEY + 1];

	if (keytmpl_format(t, first, k0, sizeof(k0)) < 0)
		return (0);
	if (first == last)
		return (strcmp(k0, p) == 0);
	for (amp_hour h = first; h <= last; h++) {
		const char *k = key_of(t, h);

		if (strncmp(k, p, n) != 0)
			return (0);
		if (k[n] != k0[n])
			longest = 1;
	}
	return (longest);
}

static void
test_span_prefix(void)
{
	static const char *const tmpls[] = {
		KEYTMPL_DEFAULT,
		"{prefix}dt={date}/hour={hour}/part.jsonl",
		"{prefix}year={year}/month={month}/day={day}/{hour}.jsonl",
		"{prefix}{hour}/{date}.jsonl",
		"{prefix}{day}-{month}-{year}_{hour}",
	};
	struct keytmpl *t = parse(KEYTMPL_DEFAULT, "python-import/", "", 0);
	char small[8];

	CHECK(t != NULL);
	if (t == NULL)
		return;
	/* A cron's 25 hours, a day, a month, a month across a year, one
	 * hour, a year. */
	static const struct {
		int from[4], to[4];
		const char *want;
	} cases[] = {
		{ { 2026, 11, 26, 11 }, { 2026, 11, 27, 11 },
		    "python-import/2026-11-2" },
		{ { 2024, 3, 5, 0 }, { 2024, 3, 5, 23 },
		    "python-import/2024-03-05_" },
		{ { 2024, 2, 1, 0 }, { 2024, 2, 29, 23 },
		    "python-import/2024-02-" },
		{ { 2023, 12, 31, 23 }, { 2024, 1, 1, 0 },
		    "python-import/202" },
		{ { 2024, 1, 1, 5 }, { 2024, 1, 1, 5 },
		    "python-import/2024-01-01_05.jsonl" },
		{ { 2024, 1, 1, 0 }, { 2024, 12, 31, 23 },
		    "python-import/2024-" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const int *a = cases[i].from, *b = cases[i].to;

		CHECK_EQ_STR(span(t, H(a[0], a[1], a[2], a[3]),
		    H(b[0], b[1], b[2], b[3])), cases[i].want);
	}
	CHECK_EQ_INT(keytmpl_span_prefix(t, H(2024, 1, 1, 1), H(2024, 1, 1, 0),
	    small, sizeof(small)), -1);
	CHECK_EQ_INT(keytmpl_span_prefix(t, H(2024, 1, 1, 0), H(2024, 1, 1, 1),
	    small, sizeof(small)), -1);
	keytmpl_free(t);

	/* Other layouts, checked against every key of the span. */
	for (size_t i = 0; i < sizeof(tmpls) / sizeof(tmpls[0]); i++) {
		static const amp_hour spans[][2] = {
			{ 473352, 473352 + 24 },      /* 2024-01-01, 25 h */
			{ 474792, 474792 + 743 },     /* 2024-03, a month */
			{ 473328, 473328 + 8783 },    /* 2023-12-31 + 366 d */
		};

		t = parse(tmpls[i], "p/", ".gz", 0);
		CHECK(t != NULL);
		if (t == NULL)
			continue;
		for (size_t j = 0; j < 3; j++) {
			const char *p = span(t, spans[j][0], spans[j][1]);

			CHECK(is_longest_common(t, spans[j][0], spans[j][1],
			    p));
			CHECK(strncmp(p, keytmpl_list_prefix(t),
			    strlen(keytmpl_list_prefix(t))) == 0);
		}
		keytmpl_free(t);
	}
	t = parse("{prefix}{hour}/{date}.jsonl", "p/", "", 0);
	if (t != NULL)
		CHECK_EQ_STR(span(t, H(2024, 3, 1, 0), H(2024, 3, 31, 23)),
		    "p/");
	keytmpl_free(t);
}

UNIT_MAIN("keytmpl",
    TEST(test_span_prefix),
    TEST(test_default),
    TEST(test_hive_and_fields),
    TEST(test_errors))
