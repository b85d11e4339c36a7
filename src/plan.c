/* plan: coverage map and window cutting (pure, no threads). */
#include <stdlib.h>

#include "plan.h"

/* Longest range accepted: 200 years of hours (1.75 MB of map). */
#define PLAN_MAX_HOURS ((size_t)200 * 366 * 24)

int
coverage_init(struct coverage *cov, amp_hour start, amp_hour end)
{
	cov->st = NULL;
	cov->start = start;
	cov->n = 0;
	if (end < start || (uint64_t)(end - start) >= PLAN_MAX_HOURS)
		return (-1);
	cov->n = (size_t)(end - start) + 1;
	if ((cov->st = calloc(cov->n, 1)) == NULL)
		return (-1);
	return (0);
}

void
coverage_mark(struct coverage *cov, amp_hour hour, uint8_t bit)
{
	if (hour < cov->start || (uint64_t)(hour - cov->start) >= cov->n)
		return;
	cov->st[hour - cov->start] |= bit;
}

size_t
coverage_count(const struct coverage *cov, uint8_t mask, uint8_t want)
{
	size_t c = 0;

	for (size_t i = 0; i < cov->n; i++)
		c += (cov->st[i] & mask) == want;
	return (c);
}

int
plan_shard_of(amp_hour hour, int n)
{
	amp_hour day = hour >= 0 ? hour / 24 : -((-hour + 23) / 24);

	return (n <= 1 ? 0 : (int)(((day % n) + n) % n));
}

void
coverage_shard(struct coverage *cov, int k, int n)
{
	if (n <= 1)
		return;
	for (size_t i = 0; i < cov->n; i++)
		if (plan_shard_of(cov->start + (amp_hour)i, n) != k)
			cov->st[i] |= PLAN_OTHER;
}

void
coverage_free(struct coverage *cov)
{
	if (cov == NULL)
		return;
	free(cov->st);
	cov->st = NULL;
	cov->n = 0;
}

int
plan_window_size(size_t missing, int workers, int max_window)
{
	size_t w;

	if (workers < 1)
		workers = 1;
	w = (missing + (size_t)workers - 1) / (size_t)workers;
	if (w < 1)
		w = 1;
	if (max_window >= 1 && w > (size_t)max_window)
		w = (size_t)max_window;
	return ((int)w);
}

int
plan_next(const struct coverage *cov, size_t *pos, int size,
    struct window *w)
{
	size_t i = *pos, j;

	while (i < cov->n && cov->st[i] != 0)
		i++;
	if (i >= cov->n) {
		*pos = cov->n;
		return (0);
	}
	for (j = i; j < cov->n && cov->st[j] == 0 && (j - i) < (size_t)size;
	    j++)
		;
	w->first = cov->start + (amp_hour)i;
	w->n = (int)(j - i);
	w->attempts = 0;
	w->refused = 0;
	*pos = j;
	return (1);
}
