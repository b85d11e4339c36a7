/* Unit tests: strvec (append, search, free, ENOMEM leaves it unchanged). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strvec.h"
#include "unit.h"

static void
test_add_has_free(void)
{
	struct strvec sv = STRVEC_INIT;
	char s[16];

	CHECK_EQ_INT(strvec_has(&sv, "a"), 0);
	/* Past the first capacity, so the array grows. */
	for (int i = 0; i < 40; i++) {
		snprintf(s, sizeof(s), "tok-%d", i);
		CHECK_EQ_INT(strvec_add(&sv, s), 0);
	}
	CHECK_EQ_INT((int)sv.n, 40);
	CHECK(sv.cap >= 40);
	CHECK_EQ_STR(sv.v[0], "tok-0");
	CHECK_EQ_STR(sv.v[39], "tok-39");
	CHECK_EQ_INT(strvec_has(&sv, "tok-17"), 1);
	CHECK_EQ_INT(strvec_has(&sv, "tok-40"), 0);
	CHECK_EQ_INT(strvec_has(&sv, "tok-1"), 1);
	CHECK_EQ_INT(strvec_has(&sv, "tok-"), 0);
	/* A copy: changing the caller's buffer changes nothing held. */
	snprintf(s, sizeof(s), "mine");
	CHECK_EQ_INT(strvec_add(&sv, s), 0);
	s[0] = 'X';
	CHECK_EQ_STR(sv.v[40], "mine");
	strvec_free(&sv);
	CHECK(sv.v == NULL);
	CHECK_EQ_INT((int)sv.n, 0);
	CHECK_EQ_INT((int)sv.cap, 0);
	/* Empty again, and usable. */
	CHECK_EQ_INT(strvec_add(&sv, "again"), 0);
	CHECK_EQ_INT(strvec_has(&sv, "again"), 1);
	strvec_free(&sv);
	strvec_free(&sv);
}

static void
test_dropped_by_caller(void)
{
	struct strvec sv = STRVEC_INIT;

	CHECK_EQ_INT(strvec_add(&sv, "keep"), 0);
	CHECK_EQ_INT(strvec_add(&sv, "drop"), 0);
	free(sv.v[1]);
	sv.n = 1;
	CHECK_EQ_INT(strvec_has(&sv, "drop"), 0);
	CHECK_EQ_INT(strvec_add(&sv, "next"), 0);
	CHECK_EQ_STR(sv.v[1], "next");
	strvec_free(&sv);
}

UNIT_MAIN("strvec",
    TEST(test_add_has_free),
    TEST(test_dropped_by_caller))
