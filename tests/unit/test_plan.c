/* Unit tests: coverage map and window planning. */
#include "plan.h"
#include "unit.h"

static amp_hour
H(int y, int m, int d, int h)
{
	amp_hour r = -1;
	(void)hour_from_ymdh(y, m, d, h, &r);
	return (r);
}

static void
test_window_size(void)
{
	CHECK_EQ_INT(plan_window_size(168, 8, 24), 21);
	CHECK_EQ_INT(plan_window_size(25, 4, 24), 7);
	CHECK_EQ_INT(plan_window_size(8760, 4, 24), 24);
	CHECK_EQ_INT(plan_window_size(1, 8, 24), 1);
	CHECK_EQ_INT(plan_window_size(0, 8, 24), 1);
	CHECK_EQ_INT(plan_window_size(10, 0, 24), 10);
	CHECK_EQ_INT(plan_window_size(100, 1, 0), 100);
}

static void
test_every_gap(void)
{
	struct coverage cov;
	struct window w;
	size_t pos = 0;
	amp_hour s = H(2025, 11, 10, 0);

	CHECK(coverage_init(&cov, s, s + 9) == 0);
	CHECK_EQ_INT(cov.n, 10);
	/* present: 0, 1, 4, 9 -> gaps [2,3], [5..8] */
	coverage_mark(&cov, s + 0, PLAN_LOCAL);
	coverage_mark(&cov, s + 1, PLAN_REMOTE);
	coverage_mark(&cov, s + 4, PLAN_LOCAL | PLAN_REMOTE);
	coverage_mark(&cov, s + 9, PLAN_LOCAL);
	coverage_mark(&cov, s + 100, PLAN_LOCAL); /* outside: ignored */
	coverage_mark(&cov, s - 1, PLAN_LOCAL);
	CHECK_EQ_INT(coverage_count(&cov, PLAN_LOCAL | PLAN_REMOTE, 0), 6);
	CHECK_EQ_INT(coverage_count(&cov, PLAN_LOCAL, PLAN_LOCAL), 3);

	CHECK(plan_next(&cov, &pos, 3, &w) == 1);
	CHECK_EQ_INT(w.first, s + 2);
	CHECK_EQ_INT(w.n, 2);
	CHECK(plan_next(&cov, &pos, 3, &w) == 1);
	CHECK_EQ_INT(w.first, s + 5);
	CHECK_EQ_INT(w.n, 3);
	CHECK(plan_next(&cov, &pos, 3, &w) == 1);
	CHECK_EQ_INT(w.first, s + 8);
	CHECK_EQ_INT(w.n, 1);
	CHECK(plan_next(&cov, &pos, 3, &w) == 0);
	CHECK(plan_next(&cov, &pos, 3, &w) == 0);
	coverage_free(&cov);
	coverage_free(&cov);
}

static void
test_windows_cover_exactly(void)
{
	struct coverage cov;
	struct window w;
	size_t pos = 0, total = 0;
	amp_hour s = H(2024, 1, 1, 0), prev_end = s - 1;
	int seen[8760] = { 0 };

	CHECK(coverage_init(&cov, s, s + 8759) == 0);
	for (size_t i = 0; i < cov.n; i += 7)
		coverage_mark(&cov, s + (amp_hour)i, PLAN_REMOTE);
	while (plan_next(&cov, &pos, 5, &w)) {
		CHECK(w.n >= 1 && w.n <= 5);
		CHECK(w.first > prev_end);
		prev_end = w.first + w.n - 1;
		for (int i = 0; i < w.n; i++) {
			size_t k = (size_t)(w.first - s) + (size_t)i;
			CHECK(k % 7 != 0);
			seen[k]++;
		}
		total += (size_t)w.n;
	}
	CHECK_EQ_INT(total, coverage_count(&cov, 3, 0));
	for (size_t i = 0; i < 8760; i++)
		CHECK_EQ_INT(seen[i], i % 7 == 0 ? 0 : 1);
	coverage_free(&cov);
}

static void
test_bad_range(void)
{
	struct coverage cov;

	CHECK(coverage_init(&cov, 10, 9) == -1);
	CHECK(coverage_init(&cov, 0, HOUR_MAX) == -1);
	CHECK(coverage_init(&cov, 5, 5) == 0);
	CHECK_EQ_INT(cov.n, 1);
	coverage_free(&cov);
}

UNIT_MAIN("plan", TEST(test_window_size), TEST(test_every_gap),
    TEST(test_windows_cover_exactly), TEST(test_bad_range))
