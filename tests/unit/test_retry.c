/* Unit tests: the retry policy (classification, delays, Retry-After). */
#include <stdint.h>

#include "retry.h"
#include "unit.h"

static void
test_classify_table(void)
{
	static const struct {
		long status;
		int transport, hours;
		enum retry_action want;
	} t[] = {
		{ 200, 0, 1, RETRY_DONE },
		{ 200, 0, 24, RETRY_DONE },
		{ 404, 0, 24, RETRY_EMPTY },
		{ 404, 0, 1, RETRY_EMPTY },
		{ 429, 0, 1, RETRY_SLOWDOWN },
		{ 429, 0, 24, RETRY_SLOWDOWN },
		{ 500, 0, 1, RETRY_BACKOFF },
		{ 502, 0, 24, RETRY_BACKOFF },
		{ 503, 0, 1, RETRY_BACKOFF },
		{ 408, 0, 24, RETRY_BACKOFF },
		{ 504, 0, 2, RETRY_SPLIT },
		{ 504, 0, 24, RETRY_SPLIT },
		{ 504, 0, 1, RETRY_BACKOFF },
		{ 400, 0, 2, RETRY_SPLIT },
		{ 400, 0, 1, RETRY_TOO_LARGE },
		{ 401, 0, 1, RETRY_FATAL_AUTH },
		{ 403, 0, 24, RETRY_FATAL_AUTH },
		{ 501, 0, 1, RETRY_FAIL },
		{ 505, 0, 1, RETRY_FAIL },
		{ 507, 0, 1, RETRY_BACKOFF },
		{ 599, 0, 1, RETRY_BACKOFF },
		{ 520, 0, 24, RETRY_BACKOFF },
		{ 600, 0, 1, RETRY_FAIL },
		{ 405, 0, 1, RETRY_FAIL },
		{ 410, 0, 1, RETRY_FAIL },
		{ 413, 0, 2, RETRY_FAIL },
		{ 301, 0, 1, RETRY_FAIL },
		{ 302, 0, 1, RETRY_FAIL },
		{ 304, 0, 1, RETRY_FAIL },
		{ 100, 0, 1, RETRY_FAIL },
		{ 204, 0, 1, RETRY_FAIL },
		{ 206, 0, 1, RETRY_FAIL },
		{ 0, 0, 1, RETRY_BACKOFF },
		/* A transport error wins over any status. */
		{ 0, 1, 1, RETRY_BACKOFF },
		{ 200, 1, 1, RETRY_BACKOFF },
		{ 401, 1, 1, RETRY_BACKOFF },
		{ 400, 1, 24, RETRY_BACKOFF },
		{ 404, 7, 1, RETRY_BACKOFF },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum retry_action a = retry_classify(t[i].status,
		    t[i].transport, t[i].hours);

		if (a != t[i].want)
			fprintf(stderr, "status %ld transport %d hours %d\n",
			    t[i].status, t[i].transport, t[i].hours);
		CHECK_EQ_INT(a, t[i].want);
	}
}

static void
test_action_names(void)
{

	CHECK_EQ_STR(retry_action_name(RETRY_DONE), "done");
	CHECK_EQ_STR(retry_action_name(RETRY_EMPTY), "empty");
	CHECK_EQ_STR(retry_action_name(RETRY_BACKOFF), "backoff");
	CHECK_EQ_STR(retry_action_name(RETRY_SLOWDOWN), "slowdown");
	CHECK_EQ_STR(retry_action_name(RETRY_SPLIT), "split");
	CHECK_EQ_STR(retry_action_name(RETRY_TOO_LARGE), "too-large");
	CHECK_EQ_STR(retry_action_name(RETRY_FAIL), "fail");
	CHECK_EQ_STR(retry_action_name(RETRY_FATAL_AUTH), "fatal-auth");
}

static void
test_delay(void)
{
	/* base 1000, cap 60000: d = 1000, 2000, 4000, ..., 32000, 60000. */
	static const int64_t d[] = { 1000, 2000, 4000, 8000, 16000, 32000,
	    60000, 60000 };

	for (int a = 1; a <= 8; a++) {
		CHECK_EQ_INT(retry_delay_ms(a, -1, 1000, 60000, 0),
		    d[a - 1] / 2);
		CHECK_EQ_INT(retry_delay_ms(a, -1, 1000, 60000, UINT32_MAX),
		    d[a - 1]);
		CHECK_EQ_INT(retry_delay_ms(a, -1, 1000, 60000,
		    UINT32_MAX / 2 + 1), d[a - 1] / 2 + d[a - 1] / 4);
	}
	/* Odd d: [d/2, d] with integer halving. */
	CHECK_EQ_INT(retry_delay_ms(1, -1, 999, 60000, 0), 499);
	CHECK_EQ_INT(retry_delay_ms(1, -1, 999, 60000, UINT32_MAX), 999);
	/* Jitter stays within bounds for many random values. */
	{
		int out = 0;
		uint32_t x = 2463534242u;

		for (int i = 0; i < 10000; i++) {
			int64_t v;

			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			v = retry_delay_ms(1 + i % 12, -1, 500, 30000, x);
			if (v < 250 || v > 30000)
				out++;
		}
		CHECK_EQ_INT(out, 0);
	}
	/* Overflow: huge attempts stay at the cap. */
	CHECK_EQ_INT(retry_delay_ms(100, -1, 1000, 60000, UINT32_MAX), 60000);
	CHECK_EQ_INT(retry_delay_ms(100, -1, 1000, 60000, 0), 30000);
	CHECK_EQ_INT(retry_delay_ms(INT32_MAX, -1, 1000, 60000, UINT32_MAX),
	    60000);
	CHECK_EQ_INT(retry_delay_ms(100, -1, 1000, INT64_MAX, UINT32_MAX),
	    INT64_MAX);
	CHECK_EQ_INT(retry_delay_ms(100, -1, 1000, INT64_MAX, 0),
	    INT64_MAX / 2);
	CHECK_EQ_INT(retry_delay_ms(63, -1, 1, INT64_MAX, UINT32_MAX),
	    (int64_t)1 << 62);
	/* Base above the cap, zero and negative inputs, attempt < 1. */
	CHECK_EQ_INT(retry_delay_ms(1, -1, 90000, 60000, UINT32_MAX), 60000);
	CHECK_EQ_INT(retry_delay_ms(5, -1, 0, 60000, UINT32_MAX), 0);
	CHECK_EQ_INT(retry_delay_ms(5, -1, -5, 60000, UINT32_MAX), 0);
	CHECK_EQ_INT(retry_delay_ms(5, -1, 1000, -1, UINT32_MAX), 0);
	CHECK_EQ_INT(retry_delay_ms(0, -1, 1000, 60000, UINT32_MAX), 1000);
	CHECK_EQ_INT(retry_delay_ms(-3, -1, 1000, 60000, UINT32_MAX), 1000);

	/* Retry-After wins, is capped, and carries no jitter. */
	CHECK_EQ_INT(retry_delay_ms(1, 5000, 1000, 60000, 0), 5000);
	CHECK_EQ_INT(retry_delay_ms(1, 5000, 1000, 60000, UINT32_MAX), 5000);
	CHECK_EQ_INT(retry_delay_ms(9, 0, 1000, 60000, UINT32_MAX), 0);
	CHECK_EQ_INT(retry_delay_ms(1, 600000, 1000, 60000, 12345), 60000);
	CHECK_EQ_INT(retry_delay_ms(100, INT64_MAX, 1000, 60000, 0), 60000);
}

static void
test_parse_after(void)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const int64_t t94 = 784111777;

	CHECK_EQ_INT(retry_parse_after(NULL, 0), -1);
	CHECK_EQ_INT(retry_parse_after("", 0), -1);
	CHECK_EQ_INT(retry_parse_after("   ", 0), -1);
	CHECK_EQ_INT(retry_parse_after("0", 0), 0);
	CHECK_EQ_INT(retry_parse_after("120", 0), 120000);
	CHECK_EQ_INT(retry_parse_after(" 7 ", 0), 7000);
	CHECK_EQ_INT(retry_parse_after("\t7\r\n", 0), 7000);
	CHECK_EQ_INT(retry_parse_after("007", 0), 7000);
	CHECK_EQ_INT(retry_parse_after("86400", 0), 86400000);
	CHECK_EQ_INT(retry_parse_after("99999999999999999999999999", 0),
	    RETRY_AFTER_MAX_S * 1000);
	CHECK_EQ_INT(retry_parse_after("31622401", 0),
	    RETRY_AFTER_MAX_S * 1000);
	CHECK_EQ_INT(retry_parse_after("-5", 0), -1);
	CHECK_EQ_INT(retry_parse_after("+5", 0), -1);
	CHECK_EQ_INT(retry_parse_after("5s", 0), -1);
	CHECK_EQ_INT(retry_parse_after("1.5", 0), -1);
	CHECK_EQ_INT(retry_parse_after("1 2", 0), -1);
	CHECK_EQ_INT(retry_parse_after("0x10", 0), -1);

	/* IMF-fixdate. */
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:37 GMT",
	    t94 - 30), 30000);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:37 GMT",
	    t94), 0);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:37 GMT",
	    t94 + 3600), 0);
	CHECK_EQ_INT(retry_parse_after("  Sun, 06 Nov 1994 08:49:37 GMT ",
	    t94 - 1), 1000);
	/* 2025-11-10T13:00:00Z = 1762779600. */
	CHECK_EQ_INT(retry_parse_after("Mon, 10 Nov 2025 13:00:05 GMT",
	    1762779600), 5000);
	CHECK_EQ_INT(retry_parse_after("Thu, 29 Feb 2024 23:59:59 GMT",
	    1709251199 - 59), 59000);
	CHECK_EQ_INT(retry_parse_after("Fri, 31 Dec 9999 23:59:59 GMT", 0),
	    RETRY_AFTER_MAX_S * 1000);
	CHECK_EQ_INT(retry_parse_after("Fri, 31 Dec 9999 23:59:59 GMT",
	    INT64_MIN), RETRY_AFTER_MAX_S * 1000);
	CHECK_EQ_INT(retry_parse_after("Thu, 01 Jan 1970 00:00:00 GMT",
	    1000), 0);
	CHECK_EQ_INT(retry_parse_after("Wed, 31 Dec 1969 23:59:59 GMT",
	    1000), 0);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:60 GMT",
	    t94), 23000);

	/* Invalid dates and the obsolete forms. */
	CHECK_EQ_INT(retry_parse_after("Sunday, 06-Nov-94 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun Nov  6 08:49:37 1994", 0), -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:37 UTC", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:37 GMTX", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 6 Nov 1994 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 nov 1994 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sux, 06 Nov 1994 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 31 Nov 1994 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 29 Feb 2025 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 24:00:00 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:60:00 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08:49:61 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 00 Nov 1994 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 1994 08-49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("Sun, 06 Nov 19a4 08:49:37 GMT", 0),
	    -1);
	CHECK_EQ_INT(retry_parse_after("soon", 0), -1);
}

UNIT_MAIN("retry",
    TEST(test_classify_table),
    TEST(test_action_names),
    TEST(test_delay),
    TEST(test_parse_after))
