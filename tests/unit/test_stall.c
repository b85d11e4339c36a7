/* Unit tests: stall (the slow-transfer rule). */
#include "stall.h"
#include "unit.h"

/* A transfer that stops dead is stalled one window after its last byte:
 * never before, at most one slot after. */
static void
test_dead_stop(void)
{
	struct stall s;

	stall_init(&s, 1600, 1, 0);
	CHECK_EQ_INT(stall_check(&s, 0), 0);
	stall_add(&s, 1000000, 50);
	stall_add(&s, 10, 700);          /* the last byte */
	for (int64_t t = 700; t < 700 + 1600; t += 10)
		CHECK_EQ_INT(stall_check(&s, t), 0);
	CHECK_EQ_INT(stall_check(&s, 700 + 1600 + 100), 1);
	/* More bytes revive it. */
	stall_add(&s, 5000, 2500);
	CHECK_EQ_INT(stall_check(&s, 2600), 0);
}

/* Never stalled within the first window, even with no byte at all. */
static void
test_first_window(void)
{
	struct stall s;

	stall_init(&s, 2000, 4096, 1000);
	CHECK_EQ_INT(stall_check(&s, 2999), 0);
	CHECK_EQ_INT(stall_check(&s, 3000 + 125), 1);
}

/* A steady trickle below the minimum is stalled; at the minimum it is
 * not. */
static void
test_trickle(void)
{
	struct stall slow, ok;
	int64_t t;
	int stalled_at = -1;

	stall_init(&slow, 2000, 1024, 0);
	stall_init(&ok, 2000, 1024, 0);
	for (t = 0; t <= 10000; t += 100) {
		stall_add(&slow, 100, t);   /* 1000 B/s */
		stall_add(&ok, 110, t);     /* 1100 B/s */
		if (stalled_at < 0 && stall_check(&slow, t))
			stalled_at = (int)t;
		CHECK_EQ_INT(stall_check(&ok, t), 0);
	}
	CHECK(stalled_at >= 2000 && stalled_at <= 2200);
}

/* A long silence clears every slot; window 0 never stalls; huge
 * minimums do not overflow. */
static void
test_edges(void)
{
	struct stall s;

	stall_init(&s, 1000, 1, 0);
	stall_add(&s, 1, 10);
	CHECK_EQ_INT(stall_check(&s, 100000), 1);
	stall_init(&s, 0, 1, 0);
	CHECK_EQ_INT(stall_check(&s, 1000000), 0);
	stall_init(&s, 1000, UINT64_MAX, 0);
	stall_add(&s, UINT64_MAX, 10);
	stall_add(&s, UINT64_MAX, 20);
	CHECK_EQ_INT(stall_check(&s, 1000), 0);
	CHECK_EQ_INT(stall_check(&s, 5000), 1);
}

UNIT_MAIN("stall",
    TEST(test_dead_stop),
    TEST(test_first_window),
    TEST(test_trickle),
    TEST(test_edges))
