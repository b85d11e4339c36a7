/* Unit tests: hour arithmetic, parsing and formatting. */
#include <time.h>

#include "hour.h"
#include "unit.h"

static void
test_epoch_and_known(void)
{
	amp_hour h = -1;
	char api[HOUR_API_LEN], file[HOUR_FILE_LEN], date[11];

	CHECK(hour_from_ymdh(1970, 1, 1, 0, &h) == 0);
	CHECK_EQ_INT(h, 0);
	CHECK_EQ_INT(h, HOUR_MIN);
	CHECK(hour_from_ymdh(1970, 1, 2, 5, &h) == 0);
	CHECK_EQ_INT(h, 29);
	/* 2000-02-29T00Z = 951782400 s. */
	CHECK(hour_from_ymdh(2000, 2, 29, 0, &h) == 0);
	CHECK_EQ_INT(h, 951782400 / 3600);
	/* 2025-11-10T13Z = 1762779600 s. */
	CHECK(hour_from_ymdh(2025, 11, 10, 13, &h) == 0);
	CHECK_EQ_INT(h, 1762779600 / 3600);
	hour_format_api(h, api);
	CHECK_EQ_STR(api, "20251110T13");
	hour_format_file(h, file);
	CHECK_EQ_STR(file, "2025-11-10_13");
	hour_format_date(h, date);
	CHECK_EQ_STR(date, "2025-11-10");

	CHECK(hour_from_ymdh(9999, 12, 31, 23, &h) == 0);
	CHECK_EQ_INT(h, HOUR_MAX);
	CHECK_EQ_INT(HOUR_MAX, 70389527);
	hour_format_api(h, api);
	CHECK_EQ_STR(api, "99991231T23");
	hour_format_file(h, file);
	CHECK_EQ_STR(file, "9999-12-31_23");
	CHECK(hour_parse_api("99991231T23", &h) == 0);
	CHECK_EQ_INT(h, HOUR_MAX);
	CHECK(hour_parse_api("19700101T00", &h) == 0);
	CHECK_EQ_INT(h, HOUR_MIN);
}

static void
test_invalid_dates(void)
{
	amp_hour h = 12345;

	CHECK(hour_from_ymdh(2100, 2, 29, 0, &h) == -1);
	CHECK(hour_from_ymdh(1900, 2, 29, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 2, 29, 0, &h) == -1);
	CHECK(hour_from_ymdh(2024, 2, 30, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 4, 31, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 13, 1, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 0, 1, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 1, 0, 0, &h) == -1);
	CHECK(hour_from_ymdh(2025, 1, 1, 24, &h) == -1);
	CHECK(hour_from_ymdh(2025, 1, 1, -1, &h) == -1);
	CHECK(hour_from_ymdh(1969, 12, 31, 23, &h) == -1);
	CHECK(hour_from_ymdh(10000, 1, 1, 0, &h) == -1);
	CHECK_EQ_INT(h, 12345); /* untouched on failure */
	CHECK(hour_from_ymdh(2024, 2, 29, 23, &h) == 0);
	CHECK(hour_from_ymdh(2000, 2, 29, 0, &h) == 0);
	CHECK(hour_from_ymdh(2400, 2, 29, 0, &h) == 0);
}

/* Every hour of 2020: fields, both spellings, and parse round trips. */
static void
test_round_trip_2020(void)
{
	amp_hour start, end, h;
	int y, m, d, hh, bad = 0, n = 0;
	int ey = 2020, em = 1, ed = 1, eh = 0;
	static const int dim[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	char api[HOUR_API_LEN], file[HOUR_FILE_LEN], want[32];

	CHECK(hour_from_ymdh(2020, 1, 1, 0, &start) == 0);
	CHECK(hour_from_ymdh(2021, 1, 1, 0, &end) == 0);
	CHECK_EQ_INT(end - start, 366 * 24);
	for (h = start; h < end; h++, n++) {
		amp_hour back = -1;

		hour_to_ymdh(h, &y, &m, &d, &hh);
		if (y != ey || m != em || d != ed || hh != eh)
			bad++;
		hour_format_api(h, api);
		snprintf(want, sizeof(want), "%04d%02d%02dT%02d", ey, em, ed,
		    eh);
		if (strcmp(api, want) != 0)
			bad++;
		if (hour_parse_api(api, &back) != 0 || back != h)
			bad++;
		hour_format_file(h, file);
		snprintf(want, sizeof(want), "%04d-%02d-%02d_%02d", ey, em, ed,
		    eh);
		if (strcmp(file, want) != 0)
			bad++;
		back = -1;
		if (hour_parse_file(file, strlen(file), &back) != 0 ||
		    back != h)
			bad++;
		back = -1;
		if (hour_from_ymdh(ey, em, ed, eh, &back) != 0 || back != h)
			bad++;
		/* Advance the expected calendar by one hour. */
		if (++eh == 24) {
			eh = 0;
			if (++ed > dim[em - 1]) {
				ed = 1;
				em++;
			}
		}
	}
	CHECK_EQ_INT(n, 8784);
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(em, 13);
}

/* Every day 1970..9999 round-trips; hours agree with gmtime where it can. */
static void
test_round_trip_range(void)
{
	int y, m, d, hh, bad = 0, leapdays = 0;
	amp_hour h, prev = 7 - 24;

	for (y = 1970; y <= 9999; y++) {
		for (m = 1; m <= 12; m++) {
			for (d = 1; d <= 31; d++) {
				int ry, rm, rd, rh;

				if (hour_from_ymdh(y, m, d, 7, &h) != 0)
					continue;
				if (m == 2 && d == 29)
					leapdays++;
				if (h != prev + 24)
					bad++;
				prev = h;
				hour_to_ymdh(h, &ry, &rm, &rd, &rh);
				if (ry != y || rm != m || rd != d || rh != 7)
					bad++;
			}
		}
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(prev, HOUR_MAX - 16);
	/* Leap days in 1970..9999: 2007 multiples of 4 (1972..9996) minus
	 * the 60 centuries 2100..9900 not divisible by 400. */
	CHECK_EQ_INT(leapdays, 2007 - 60);

	/* Cross-check against gmtime_r for a stride of hours. */
	for (h = 0; h < 24 * 366 * 200; h += 997) {
		time_t t = (time_t)(h * 3600);
		struct tm tm;

		if (gmtime_r(&t, &tm) == NULL) {
			bad++;
			continue;
		}
		hour_to_ymdh(h, &y, &m, &d, &hh);
		if (y != tm.tm_year + 1900 || m != tm.tm_mon + 1 ||
		    d != tm.tm_mday || hh != tm.tm_hour)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
}

static void
test_parse_api_rejects(void)
{
	static const char *bad[] = {
		"", "2025111T00", "20251110T24", "20251310T00", "20250229T00",
		"20251110 00", "20251110T00 ", "20251110T000", "20251110T00Z",
		" 20251110T00", "99999999T99", "21000229T00", "19691231T23",
		"2025-11-10T00", "20251110t00", "2025111aT00", "+2025110T00",
		"20251100T00", "20250010T00", "2025111-T01", "20251110T-1",
		"20251110T", "2025",
	};
	amp_hour h = 777;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = hour_parse_api(bad[i], &h);

		if (r != -1)
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
		CHECK_EQ_INT(r, -1);
	}
	CHECK_EQ_INT(h, 777);
	CHECK(hour_parse_api("20240229T23", &h) == 0);
	CHECK_EQ_INT(h, (19782 * 24) + 23);
}

static void
test_parse_file(void)
{
	amp_hour h = 5, want;
	const char *s = "2025-11-10_13.jsonl";

	CHECK(hour_from_ymdh(2025, 11, 10, 13, &want) == 0);
	CHECK(hour_parse_file(s, 13, &h) == 0);
	CHECK_EQ_INT(h, want);
	h = 5;
	CHECK(hour_parse_file(s, 12, &h) == -1);
	CHECK(hour_parse_file(s, 14, &h) == -1);
	CHECK(hour_parse_file("2025-11-10T13", 13, &h) == -1);
	CHECK(hour_parse_file("2025_11-10_13", 13, &h) == -1);
	CHECK(hour_parse_file("2025-11-10_24", 13, &h) == -1);
	CHECK(hour_parse_file("2025-02-29_00", 13, &h) == -1);
	CHECK(hour_parse_file("2025-1x-10_13", 13, &h) == -1);
	CHECK(hour_parse_file("", 0, &h) == -1);
	CHECK_EQ_INT(h, 5);
	CHECK(hour_parse_file("9999-12-31_23", 13, &h) == 0);
	CHECK_EQ_INT(h, HOUR_MAX);
}

static void
test_now(void)
{
	amp_hour now = hour_now();
	time_t t = time(NULL);

	/* Within one hour boundary of time(). */
	CHECK(now == (amp_hour)(t / 3600) || now + 1 == (amp_hour)(t / 3600));
	CHECK(now > 480000); /* after 2024-10 */
}

UNIT_MAIN("hour",
    TEST(test_epoch_and_known),
    TEST(test_invalid_dates),
    TEST(test_round_trip_2020),
    TEST(test_round_trip_range),
    TEST(test_parse_api_rejects),
    TEST(test_parse_file),
    TEST(test_now))
