#ifndef AMP2S3_LIMITER_H
#define AMP2S3_LIMITER_H
/*
 * limiter: how many requests a pool lets out at once.  `-j N` / `-u M`
 * are a ceiling; below it the pool keeps a concurrency limit that
 * follows what the server allows (AIMD, as TCP's congestion avoidance
 * and Netflix's concurrency-limits): one more after a run of successes
 * while the limit held work back, about 10% fewer (at least one) on each
 * refusal.
 *
 * Two layers.  struct aimd is the arithmetic alone: pure functions, no
 * lock, no clock (unit-tested like retry.c).  struct limiter is the gate
 * a pool's workers pass: a worker takes a slot before it sends
 * (limiter_acquire(), which waits in cancel_wait() while the pool uses
 * its whole limit) and gives it back with what came of its request
 * (limiter_release()).  A fixed limiter (--fixed-concurrency) is the
 * same gate with the limit held at the ceiling.
 *
 * Thread-safety: struct aimd is the caller's to lock.  Every limiter_*
 * function but limiter_new()/limiter_free() may be called from any
 * thread.
 */
#include <stdint.h>

struct cancel;

/* The arithmetic. */
struct aimd {
	int ceiling;   /* the most allowed at once (-j, -u), >= 1 */
	int limit;     /* allowed at once now, 1..ceiling */
	int run;       /* successes while held back since the last change */
};

/* A refusal leaves limit * AIMD_CUT_NUM / AIMD_CUT_DEN (and at least one
 * fewer); a run of `limit` successes while held back adds one. */
#define AIMD_CUT_NUM 9
#define AIMD_CUT_DEN 10

/* aimd_init(a, ceiling): the limit starts at ${ceiling} (at least 1):
 * an uncapped server sees the whole pool at once. */
void aimd_init(struct aimd *a, int ceiling);

/*
 * aimd_success(a, held_back): a request was answered (not refused).  It
 * counts towards the next increase only if ${held_back}: the limit is
 * holding other requests back (a pool that has no more work than slots
 * learns nothing by trying more, and its last requests would pay for the
 * probe).  After `limit` such successes in a row the limit grows by one,
 * up to the ceiling.  Returns 1 if the limit grew, else 0.
 */
int aimd_success(struct aimd *a, int held_back);

/*
 * aimd_refused(a, floor): a request was refused (429, SlowDown).  The
 * limit becomes limit * 9 / 10, at most limit - 1, but not below
 * ${floor} (the requests still in flight, which the server let in or has
 * yet to answer: a burst of refusals stops at them; 0: no such floor)
 * nor below 1, nor above what it was.  The run of successes starts over.
 * Returns -1 if the limit dropped, else 0.
 */
int aimd_refused(struct aimd *a, int floor);

/* What came of a request, for limiter_release(). */
enum limiter_outcome {
	LIMITER_OK,        /* answered: 200, 404, an object stored */
	LIMITER_REFUSED,   /* refused for load: 429, 503 SlowDown */
	LIMITER_OTHER      /* anything else (5xx, reset, cancel): no signal */
};

struct limiter;

/*
 * limiter_new(ceiling, adaptive, c): a gate for ${ceiling} requests at
 * once (at least 1), adapting its limit if ${adaptive}, else holding it
 * at the ceiling; its waits end when ${c} (not NULL, it must outlive the
 * limiter) is triggered.  NULL (errno set) on failure.
 */
struct limiter *limiter_new(int ceiling, int adaptive, struct cancel *c);

/* limiter_free(l): no thread may use ${l} any more.  NULL: no-op. */
void limiter_free(struct limiter *l);

/*
 * limiter_acquire(l): take a slot of ${l}, waiting (cancel_wait()) while
 * every slot of the current limit is taken.  Returns 0 with the slot
 * taken, or -1 if the run was cancelled (no slot taken).
 */
int limiter_acquire(struct limiter *l);

/*
 * limiter_release(l, outcome, was): give back a slot taken with
 * limiter_acquire() whose request ended with ${outcome}, and adapt the
 * limit: LIMITER_OK counts towards an increase if another worker waits
 * for a slot now (aimd_success()'s held back), LIMITER_REFUSED lowers it
 * (aimd_refused() with the requests still in flight as the floor).
 * *${was} (may be NULL): the limit before.  Returns the limit after.
 */
int limiter_release(struct limiter *l, enum limiter_outcome outcome,
    int *was);

/*
 * limiter_refused(l, was): a request that keeps its slot was refused (a
 * client that retries inside one call, as the S3 client does on 503
 * SlowDown): lower the limit without a floor.  *${was} (may be NULL):
 * the limit before.  Returns the limit after.
 */
int limiter_refused(struct limiter *l, int *was);

/* limiter_limit(l): the limit now.  limiter_inflight(l): slots taken.
 * limiter_waiting(l): workers waiting for a slot. */
int limiter_limit(struct limiter *l);
int limiter_inflight(struct limiter *l);
int limiter_waiting(struct limiter *l);

/* limiter_adaptive(l): non-zero unless the limit is held at the ceiling. */
int limiter_adaptive(const struct limiter *l);

#endif
