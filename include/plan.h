#ifndef AMP2S3_PLAN_H
#define AMP2S3_PLAN_H
/*
 * plan: which hours of a range are missing, and the export windows that
 * cover them.
 *
 * A coverage map holds one state byte per hour of [start, start + n).
 * Hours are marked LOCAL (a complete file in the data directory) and/or
 * REMOTE (an object in the store).  Missing = neither.  Windows are runs
 * of consecutive missing hours cut to at most `size` hours; every gap of
 * the range is covered, not only a prefix.  Pure and single-threaded:
 * build the map, then hand it to one planner.
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"

#define PLAN_LOCAL 1
#define PLAN_REMOTE 2
#define PLAN_OTHER 4  /* another shard's hour */

struct coverage {
	amp_hour start;
	size_t n;
	uint8_t *st; /* n bytes of PLAN_* bits */
};

/* An export request: hours [first, first + n). */
struct window {
	amp_hour first;
	int n;
	int attempts; /* tries made so far */
	int refused;  /* 429s that lowered the pool's limit (no attempt) */
};

/* coverage_init(cov, start, end): all hours of [start, end] missing.
 * Returns 0 or -1 (out of memory / range too large). */
int coverage_init(struct coverage *cov, amp_hour start, amp_hour end);

/* coverage_mark(cov, hour, bit): set ${bit} for ${hour}; hours outside
 * the range are ignored. */
void coverage_mark(struct coverage *cov, amp_hour hour, uint8_t bit);

/* coverage_count(cov, mask, want): hours whose (state & mask) == want. */
size_t coverage_count(const struct coverage *cov, uint8_t mask,
    uint8_t want);

/*
 * coverage_shard(cov, k, n): mark PLAN_OTHER every hour that is not in
 * shard ${k} of ${n}.  Shards are whole UTC days: day d = hour / 24 is in
 * shard d mod n, so n processes with k = 0..n-1 cover a range exactly once
 * and each still sends day-sized windows.
 */
void coverage_shard(struct coverage *cov, int k, int n);

/* plan_shard_of(hour, n): the shard of ${hour} among ${n}. */
int plan_shard_of(amp_hour hour, int n);

/* coverage_free(cov): NULL-safe. */
void coverage_free(struct coverage *cov);

/*
 * plan_window_size(missing, workers, max_window): the window length to
 * use so that ${workers} requests run at once when there is enough work:
 * ceil(missing / workers), at least 1, at most ${max_window}.
 */
int plan_window_size(size_t missing, int workers, int max_window);

/*
 * plan_next(cov, pos, size, w): the next window at or after index *${pos}
 * of at most ${size} consecutive missing hours.  Returns 1 with *${w} set
 * and *${pos} advanced past it, or 0 when no missing hour is left.
 */
int plan_next(const struct coverage *cov, size_t *pos, int size,
    struct window *w);

#endif
