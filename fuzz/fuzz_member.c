/*
 * fuzz_member: member_parse() on arbitrary bytes.
 *
 * Properties, for every input the parser accepts:
 *   - the hour lies in HOUR_MIN..HOUR_MAX and its date is the date written
 *     in the name; the name holds no NUL, exactly one '/', no "..";
 *   - the canonical spelling of the result (no leading zeros, hour with
 *     one and with two digits) parses to the same result, and equals the
 *     input when the input has no leading zero;
 *   - no proper prefix of the input parses (the match is anchored).
 */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "hour.h"
#include "member.h"

/* 1 if the digit run at s[0..n) has a superfluous leading zero. */
static int
lead_zero(const char *s, size_t n)
{
	return (n > 1 && s[0] == '0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct member_name mn, mn2;
	char canon[2][128], date[11];
	const char *slash, *hash, *us;
	int y, mo, d, h, n[2], zeros;
	size_t i;

	if (member_parse(s, size, &mn) != 0)
		return (0);

	FUZZ_CHECK(mn.hour >= HOUR_MIN && mn.hour <= HOUR_MAX);
	FUZZ_CHECK(memchr(s, '\0', size) == NULL);
	slash = memchr(s, '/', size);
	FUZZ_CHECK(slash != NULL);
	FUZZ_CHECK(memchr(slash + 1, '/', size - (size_t)(slash + 1 - s)) ==
	    NULL);
	for (i = 0; i + 1 < size; i++)
		FUZZ_CHECK(s[i] != '.' || s[i + 1] != '.');
	FUZZ_CHECK(size > 8 && memcmp(s + size - 8, ".json.gz", 8) == 0);

	/* The date in the name is the date of the hour. */
	hour_format_date(mn.hour, date);
	us = memchr(slash, '_', size - (size_t)(slash - s));
	FUZZ_CHECK(us != NULL && (size_t)(us - s) + 11 < size);
	FUZZ_CHECK(memcmp(us + 1, date, 10) == 0);

	/* Canonical spellings parse to the same member. */
	hour_to_ymdh(mn.hour, &y, &mo, &d, &h);
	n[0] = snprintf(canon[0], sizeof(canon[0]),
	    "%llu/%llu_%s_%d#%llu.json.gz", (unsigned long long)mn.project,
	    (unsigned long long)mn.project, date, h,
	    (unsigned long long)mn.part);
	n[1] = snprintf(canon[1], sizeof(canon[1]),
	    "%llu/%llu_%s_%02d#%llu.json.gz", (unsigned long long)mn.project,
	    (unsigned long long)mn.project, date, h,
	    (unsigned long long)mn.part);
	for (i = 0; i < 2; i++) {
		FUZZ_CHECK(n[i] > 0 && (size_t)n[i] < sizeof(canon[i]));
		FUZZ_CHECK(member_parse(canon[i], (size_t)n[i], &mn2) == 0);
		FUZZ_CHECK(mn2.project == mn.project && mn2.hour == mn.hour &&
		    mn2.part == mn.part);
	}

	/* Without leading zeros the input is one of the canonical names. */
	hash = memchr(s, '#', size);
	FUZZ_CHECK(hash != NULL);
	zeros = lead_zero(s, (size_t)(slash - s)) ||
	    lead_zero(hash + 1, (size_t)(s + size - 8 - (hash + 1)));
	if (!zeros)
		FUZZ_CHECK(((size_t)n[0] == size &&
		    memcmp(canon[0], s, size) == 0) ||
		    ((size_t)n[1] == size && memcmp(canon[1], s, size) == 0));

	/* Anchored: no proper prefix is a member name. */
	for (i = 0; i < size; i++)
		FUZZ_CHECK(member_parse(s, i, &mn2) != 0);
	return (0);
}
