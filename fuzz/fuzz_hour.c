/*
 * fuzz_hour: the date parsers — hour_parse_api, hour_parse_file,
 * retry_parse_after — and the hour arithmetic they rest on.
 *
 * The input is used three ways at once: as a NUL-terminated string (its
 * bytes up to the first NUL), as a byte range, and (its first 36 bytes,
 * if there are that many) as integers.  Properties:
 *   - whatever hour_parse_api / hour_parse_file accept lies in
 *     HOUR_MIN..HOUR_MAX and formats back to exactly the input (both
 *     spellings are fixed-width, so the accepted form is the only one);
 *   - for every hour h: parse(format(h)) == h in both spellings,
 *     hour_from_ymdh(hour_to_ymdh(h)) == h, the date spelling is the
 *     file spelling's prefix; formatting an hour outside the range gives
 *     the clamped hour, never anything unparsable;
 *   - retry_parse_after: -1 or 0..RETRY_AFTER_MAX_S * 1000, valid or not
 *     independently of "now", the same for every "now" when the value is
 *     delta-seconds, never longer for a later "now" when it is a date;
 *   - retry_delay_ms: within [d/2, d] of the documented d, or the capped
 *     Retry-After.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hour.h"
#include "retry.h"

/* Check the round trips of hour ${hr} (any value). */
static void
round_trip(amp_hour hr)
{
	char api[HOUR_API_LEN], file[HOUR_FILE_LEN], date[11];
	amp_hour clamped, back;
	int y, m, d, h;

	clamped = hr < HOUR_MIN ? HOUR_MIN : hr > HOUR_MAX ? HOUR_MAX : hr;
	hour_format_api(hr, api);
	hour_format_file(hr, file);
	hour_format_date(hr, date);
	FUZZ_CHECK(strlen(api) == HOUR_API_LEN - 1);
	FUZZ_CHECK(strlen(file) == HOUR_FILE_LEN - 1);
	FUZZ_CHECK(strlen(date) == 10 && memcmp(file, date, 10) == 0);
	FUZZ_CHECK(hour_parse_api(api, &back) == 0 && back == clamped);
	FUZZ_CHECK(hour_parse_file(file, HOUR_FILE_LEN - 1, &back) == 0 &&
	    back == clamped);
	hour_to_ymdh(clamped, &y, &m, &d, &h);
	FUZZ_CHECK(hour_from_ymdh(y, m, d, h, &back) == 0 && back == clamped);
	/* The neighbours are distinct hours, one apart. */
	if (clamped < HOUR_MAX) {
		char next[HOUR_FILE_LEN];

		hour_format_file(clamped + 1, next);
		FUZZ_CHECK(strcmp(file, next) < 0);
	}
	hour_to_ymdh(hr, &y, &m, &d, &h); /* any value: no UB */
}

/* Check retry_parse_after on ${s} for several clocks. */
static void
retry_after(const char *s)
{
	static const int64_t nows[] = { 0, 784111777, 1700000000,
	    4102444800, 253402300799 };
	int64_t r[sizeof(nows) / sizeof(nows[0])];
	size_t i, n = sizeof(nows) / sizeof(nows[0]);
	const char *p = s;

	for (i = 0; i < n; i++) {
		r[i] = retry_parse_after(s, nows[i]);
		FUZZ_CHECK(r[i] == -1 ||
		    (r[i] >= 0 && r[i] <= RETRY_AFTER_MAX_S * 1000));
		FUZZ_CHECK((r[i] == -1) == (r[0] == -1));
		if (i > 0)
			FUZZ_CHECK(r[i] <= r[i - 1]);
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (r[0] >= 0 && *p >= '0' && *p <= '9')
		for (i = 1; i < n; i++)
			FUZZ_CHECK(r[i] == r[0]);
}

/* Check retry_delay_ms against its contract. */
static void
delay(int attempt, int64_t after, int64_t base, int64_t cap, uint32_t rnd)
{
	int64_t got = retry_delay_ms(attempt, after, base, cap, rnd);
	int64_t b = base < 0 ? 0 : base, c = cap < 0 ? 0 : cap, d;
	int a = attempt < 1 ? 1 : attempt;

	if (after >= 0) {
		FUZZ_CHECK(got == (after < c ? after : c));
		return;
	}
	d = b < c ? b : c;
	for (int i = 1; i < a && d > 0 && d < c; i++)
		d = d > c / 2 ? c : d * 2;
	FUZZ_CHECK(got >= d / 2 && got <= d);
	if (rnd == 0)
		FUZZ_CHECK(got == d / 2);
	if (rnd == UINT32_MAX)
		FUZZ_CHECK(got == d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char api[HOUR_API_LEN], file[HOUR_FILE_LEN];
	char *s;
	amp_hour hr;
	int64_t v[4];
	uint32_t rnd;

	if ((s = malloc(size + 1)) == NULL)
		return (0);
	memcpy(s, data, size);
	s[size] = '\0';

	if (hour_parse_api(s, &hr) == 0) {
		FUZZ_CHECK(hr >= HOUR_MIN && hr <= HOUR_MAX);
		hour_format_api(hr, api);
		FUZZ_CHECK(strcmp(api, s) == 0);
	}
	if (hour_parse_file((const char *)data, size, &hr) == 0) {
		FUZZ_CHECK(hr >= HOUR_MIN && hr <= HOUR_MAX);
		hour_format_file(hr, file);
		FUZZ_CHECK(size == HOUR_FILE_LEN - 1 &&
		    memcmp(file, data, size) == 0);
	}
	retry_after(s);
	free(s);

	if (size >= sizeof(v) + sizeof(rnd)) {
		memcpy(v, data, sizeof(v));
		memcpy(&rnd, data + sizeof(v), sizeof(rnd));
		round_trip(v[0]);
		/* Mostly in range, so the calendar itself gets exercised. */
		round_trip((amp_hour)((uint64_t)v[0] %
		    ((uint64_t)HOUR_MAX + 1)));
		delay((int)v[0], v[1], v[2], v[3], rnd);
		/* The values the program uses: small base and cap. */
		delay((int)(v[0] & 0xff) - 8, (v[1] & 1) ? -1 : v[1] & 0xfffff,
		    v[2] & 0xffff, v[3] & 0xfffff, rnd);
	}
	return (0);
}
