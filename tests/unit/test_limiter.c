/* Unit tests: limiter (the AIMD arithmetic, and the gate the pools pass). */
#include <pthread.h>
#include <stdint.h>

#include "cancel.h"
#include "limiter.h"
#include "unit.h"

static void
test_init(void)
{
	struct aimd a;

	aimd_init(&a, 16);
	CHECK_EQ_INT(a.ceiling, 16);
	CHECK_EQ_INT(a.limit, 16);      /* an uncapped server: all at once */
	CHECK_EQ_INT(a.run, 0);
	aimd_init(&a, 0);
	CHECK_EQ_INT(a.ceiling, 1);
	CHECK_EQ_INT(a.limit, 1);
	aimd_init(&a, -3);
	CHECK_EQ_INT(a.limit, 1);
}

/* About 10% fewer per refusal, at least one, never below 1. */
static void
test_decrease(void)
{
	static const struct {
		int from, floor, to, ret;
	} t[] = {
		{ 64, 0, 57, -1 },   /* 57.6 */
		{ 16, 0, 14, -1 },   /* 14.4 */
		{ 11, 0, 9, -1 },    /* 9.9 */
		{ 10, 0, 9, -1 },
		{ 5, 0, 4, -1 },     /* 4.5: at least one fewer anyway */
		{ 2, 0, 1, -1 },
		{ 1, 0, 1, 0 },      /* nothing below 1 */
		{ 16, 15, 15, -1 },  /* the floor: requests still in flight */
		{ 16, 4, 14, -1 },   /* a floor below the cut changes nothing */
		{ 16, 16, 16, 0 },   /* never above what it was */
		{ 16, 40, 16, 0 },
		{ 3, -2, 2, -1 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct aimd a;

		aimd_init(&a, 64);
		a.limit = t[i].from;
		a.run = 3;
		CHECK_EQ_INT(aimd_refused(&a, t[i].floor), t[i].ret);
		CHECK_EQ_INT(a.limit, t[i].to);
		CHECK_EQ_INT(a.run, 0);     /* the run starts over */
	}
}

/* One more after `limit` successes while held back, up to the ceiling. */
static void
test_increase(void)
{
	struct aimd a;

	aimd_init(&a, 6);
	a.limit = 4;
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_success(&a, 0), 0);   /* nobody held back */
	CHECK_EQ_INT(a.run, 3);
	CHECK_EQ_INT(aimd_success(&a, 1), 1);
	CHECK_EQ_INT(a.limit, 5);
	CHECK_EQ_INT(a.run, 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_success(&a, 1), 1);
	CHECK_EQ_INT(a.limit, 6);
	/* At the ceiling: no more, however long the run. */
	for (int i = 0; i < 50; i++)
		CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(a.limit, 6);
	CHECK(a.run <= a.limit);

	/* A refusal in the middle of a run: the run starts over. */
	aimd_init(&a, 10);
	a.limit = 3;
	CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_refused(&a, 3), 0);   /* held by the floor */
	CHECK_EQ_INT(a.limit, 3);
	CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_success(&a, 1), 0);
	CHECK_EQ_INT(aimd_success(&a, 1), 1);
	CHECK_EQ_INT(a.limit, 4);
}

/*
 * The cases the pools meet.  -j 16 against a cap of 4: 16 sent at once,
 * 12 refused one after the other while the others are still in flight;
 * the limit lands on the cap.  Then the steady state: each run of 4
 * successes probes 5, whose refusal brings it back to 4.
 */
static void
test_burst_then_probe(void)
{
	struct aimd a;
	int refusals = 0;

	aimd_init(&a, 16);
	for (int k = 1; k <= 12; k++)
		refusals += aimd_refused(&a, 16 - k) != 0;
	CHECK_EQ_INT(a.limit, 4);
	CHECK_EQ_INT(refusals, 12);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++)
			CHECK_EQ_INT(aimd_success(&a, 1), 0);
		CHECK_EQ_INT(aimd_success(&a, 1), 1);
		CHECK_EQ_INT(a.limit, 5);
		CHECK_EQ_INT(aimd_refused(&a, 4), -1);
		CHECK_EQ_INT(a.limit, 4);
	}
	/* -j 64 against a cap of 4: the floor keeps the limit at the cap
	 * instead of cutting to 1 (64 * 0.9^60 < 1). */
	aimd_init(&a, 64);
	for (int k = 1; k <= 60; k++)
		(void)aimd_refused(&a, 64 - k);
	CHECK_EQ_INT(a.limit, 4);
	/* A cap that drops from 4 to 2 under 4 requests in flight: each
	 * new request is refused as a slot frees, until 2. */
	aimd_init(&a, 8);
	a.limit = 4;
	CHECK_EQ_INT(aimd_refused(&a, 3), -1);
	CHECK_EQ_INT(a.limit, 3);
	CHECK_EQ_INT(aimd_refused(&a, 2), -1);
	CHECK_EQ_INT(a.limit, 2);
	/* A refusal without a floor (S3 SlowDown): 4, 3, 2, 1, 1. */
	aimd_init(&a, 4);
	for (int want = 3; want >= 1; want--) {
		CHECK_EQ_INT(aimd_refused(&a, 0), -1);
		CHECK_EQ_INT(a.limit, want);
	}
	CHECK_EQ_INT(aimd_refused(&a, 0), 0);
	/* From 1 back to 4 takes 1 + 2 + 3 successes while held back. */
	for (int i = 0; i < 6; i++)
		(void)aimd_success(&a, 1);
	CHECK_EQ_INT(a.limit, 4);
}

/* The gate: slots, release outcomes, a fixed gate. */
static void
test_gate_counts(void)
{
	struct cancel *c = cancel_new();
	struct limiter *l, *f;
	int was = -1;

	CHECK(c != NULL);
	CHECK((l = limiter_new(3, 1, c)) != NULL);
	CHECK(limiter_adaptive(l));
	CHECK_EQ_INT(limiter_limit(l), 3);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(limiter_acquire(l), 0);
	CHECK_EQ_INT(limiter_inflight(l), 3);
	CHECK_EQ_INT(limiter_waiting(l), 0);
	/* Refused with 2 others still in flight: 3 -> 2. */
	CHECK_EQ_INT(limiter_release(l, LIMITER_REFUSED, &was), 2);
	CHECK_EQ_INT(was, 3);
	CHECK_EQ_INT(limiter_inflight(l), 2);
	/* An OTHER outcome changes nothing; successes with nobody waiting
	 * for a slot do not count towards more, however many. */
	CHECK_EQ_INT(limiter_release(l, LIMITER_OTHER, &was), 2);
	CHECK_EQ_INT(limiter_release(l, LIMITER_OK, NULL), 2);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ_INT(limiter_acquire(l), 0);
		CHECK_EQ_INT(limiter_acquire(l), 0);
		CHECK_EQ_INT(limiter_release(l, LIMITER_OK, NULL), 2);
		CHECK_EQ_INT(limiter_release(l, LIMITER_OK, NULL), 2);
	}
	CHECK_EQ_INT(limiter_inflight(l), 0);
	/* Refused while keeping the slot (S3): no floor. */
	CHECK_EQ_INT(limiter_refused(l, &was), 1);
	CHECK_EQ_INT(was, 2);
	CHECK_EQ_INT(limiter_refused(l, NULL), 1);
	limiter_free(l);

	/* --fixed-concurrency: the limit stays at the ceiling. */
	CHECK((f = limiter_new(4, 0, c)) != NULL);
	CHECK(!limiter_adaptive(f));
	CHECK_EQ_INT(limiter_acquire(f), 0);
	CHECK_EQ_INT(limiter_release(f, LIMITER_REFUSED, &was), 4);
	CHECK_EQ_INT(limiter_refused(f, NULL), 4);
	CHECK_EQ_INT(limiter_limit(f), 4);
	limiter_free(f);
	limiter_free(NULL);
	cancel_free(c);
}

/* A worker waiting for a slot, from another thread. */
struct taker {
	struct limiter *l;
	pthread_mutex_t mu;
	int rc, done;
};

static void *
take_main(void *arg)
{
	struct taker *t = arg;
	int rc = limiter_acquire(t->l);

	pthread_mutex_lock(&t->mu);
	t->rc = rc;
	t->done = 1;
	pthread_mutex_unlock(&t->mu);
	return (NULL);
}

static int
taker_done(struct taker *t)
{
	int v;

	pthread_mutex_lock(&t->mu);
	v = t->done;
	pthread_mutex_unlock(&t->mu);
	return (v);
}

/* Poll (bounded) until ${n} workers wait for a slot of ${l}. */
static int
waiting_for(struct limiter *l, int n)
{
	for (int i = 0; i < 10000; i++) {
		if (limiter_waiting(l) == n)
			return (1);
		(void)cancel_sleep(NULL, 1);
	}
	return (0);
}

/*
 * Workers above the limit wait: a lowered limit holds a new request back
 * until a request in flight ends; a release wakes the waiter, and, as
 * someone was held back, counts towards more; a cancel ends a wait.
 */
static void
test_gate_waits(void)
{
	struct cancel *c = cancel_new();
	struct taker t = { .mu = PTHREAD_MUTEX_INITIALIZER };
	pthread_t th;

	CHECK(c != NULL);
	CHECK((t.l = limiter_new(2, 1, c)) != NULL);
	CHECK_EQ_INT(limiter_acquire(t.l), 0);
	CHECK_EQ_INT(limiter_acquire(t.l), 0);
	/* One refused, one still in flight: the limit is 1, and full. */
	CHECK_EQ_INT(limiter_release(t.l, LIMITER_REFUSED, NULL), 1);
	CHECK(pthread_create(&th, NULL, take_main, &t) == 0);
	CHECK(waiting_for(t.l, 1));
	/* The one slot is ours: the taker cannot have it. */
	CHECK_EQ_INT(limiter_inflight(t.l), 1);
	CHECK_EQ_INT(taker_done(&t), 0);
	/* Answered while the taker was held back: 1 success at limit 1 is a
	 * whole run, so the limit is 2 again; the taker gets its slot. */
	CHECK_EQ_INT(limiter_release(t.l, LIMITER_OK, NULL), 2);
	for (int i = 0; i < 10000 && !taker_done(&t); i++)
		(void)cancel_sleep(NULL, 1);
	if (!taker_done(&t)) {  /* bounded: fail, then let it go */
		CHECK(!"the release woke the taker");
		cancel_trigger(c, 9);
	}
	pthread_join(th, NULL);
	CHECK_EQ_INT(t.rc, 0);
	CHECK_EQ_INT(limiter_waiting(t.l), 0);
	CHECK_EQ_INT(limiter_inflight(t.l), 1);

	/* Full (2 of 2); a cancel ends the next taker's wait. */
	CHECK_EQ_INT(limiter_acquire(t.l), 0);
	t.done = 0;
	t.rc = 5;
	CHECK(pthread_create(&th, NULL, take_main, &t) == 0);
	CHECK(waiting_for(t.l, 1));
	cancel_trigger(c, 1);
	pthread_join(th, NULL);
	CHECK_EQ_INT(t.rc, -1);
	CHECK_EQ_INT(limiter_waiting(t.l), 0);
	CHECK_EQ_INT(limiter_inflight(t.l), 2);
	CHECK_EQ_INT(limiter_acquire(t.l), -1);
	limiter_free(t.l);
	cancel_free(c);
}

UNIT_MAIN("limiter",
    TEST(test_init),
    TEST(test_decrease),
    TEST(test_increase),
    TEST(test_burst_then_probe),
    TEST(test_gate_counts),
    TEST(test_gate_waits))
