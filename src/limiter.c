/*
 * limiter: a pool's concurrency limit (see limiter.h).
 *
 * DESIGN
 * - State: struct limiter holds the arithmetic's state (struct aimd: the
 *   ceiling, the limit, the run of successes), ${inflight}, the slots
 *   taken, and ${waiting}, the workers waiting for one.  One mutex, ${mu},
 *   guards all three.
 * - Who changes it: the pool's workers, and only through three calls:
 *   limiter_acquire() takes a slot (inflight + 1) once inflight < limit,
 *   counted in ${waiting} meanwhile; limiter_release() gives it back
 *   (inflight - 1) and applies what came of the request (aimd_success,
 *   held back if anyone waits; aimd_refused); limiter_refused()
 *   lowers the limit for a request still holding its slot (the upload
 *   pool's S3 hook, called from inside the S3 client's retries).  The
 *   pool reads the limit (limiter_limit) for its gauges, its counters and
 *   the planner's window size; nobody else writes it.
 * - Waiting: a worker above the limit waits in cancel_wait() on the
 *   run's cancel flag, whose ready() callback (take_slot) takes ${mu}; so
 *   a cancel wakes it like every other wait of the run.  A release
 *   notifies (cancel_notify) after letting go of ${mu}.  A lowered limit
 *   preempts nobody: requests in flight finish, and no new one is sent
 *   until fewer than the limit are in flight.
 * - Lock order: the cancel flag's mutex, then ${mu} (take_slot runs
 *   under the former); ${mu} is a leaf, never held while calling into
 *   cancel.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "cancel.h"
#include "limiter.h"

void
aimd_init(struct aimd *a, int ceiling)
{
	a->ceiling = ceiling >= 1 ? ceiling : 1;
	a->limit = a->ceiling;
	a->run = 0;
}

int
aimd_success(struct aimd *a, int held_back)
{
	if (!held_back)
		return (0);
	if (a->run < a->limit)
		a->run++;
	if (a->run < a->limit || a->limit >= a->ceiling)
		return (0);
	a->limit++;
	a->run = 0;
	return (1);
}

int
aimd_refused(struct aimd *a, int floor)
{
	int cut = (int)((int64_t)a->limit * AIMD_CUT_NUM / AIMD_CUT_DEN);

	a->run = 0;
	if (cut > a->limit - 1)
		cut = a->limit - 1;
	if (cut < floor)
		cut = floor;
	if (cut < 1)
		cut = 1;
	if (cut >= a->limit)
		return (0);
	a->limit = cut;
	return (-1);
}

struct limiter {
	struct cancel *cancel;
	int adaptive;
	pthread_mutex_t mu;   /* a, inflight, waiting */
	struct aimd a;
	int inflight;
	int waiting;
};

struct limiter *
limiter_new(int ceiling, int adaptive, struct cancel *c)
{
	struct limiter *l;
	int rc;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return (NULL);
	if ((rc = pthread_mutex_init(&l->mu, NULL)) != 0) {
		free(l);
		errno = rc;
		return (NULL);
	}
	l->cancel = c;
	l->adaptive = adaptive;
	aimd_init(&l->a, ceiling);
	return (l);
}

void
limiter_free(struct limiter *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* A slot request: the limiter, and whether it counts in ${waiting}. */
struct take {
	struct limiter *l;
	int waits;
};

/* cancel_wait()'s ready(): take a slot if one is free, else count as
 * waiting (under the cancel flag's mutex; takes ${mu}). */
static int
take_slot(void *arg)
{
	struct take *t = arg;
	struct limiter *l = t->l;
	int ok = 0;

	pthread_mutex_lock(&l->mu);
	if (l->inflight < l->a.limit) {
		l->inflight++;
		if (t->waits)
			l->waiting--;
		t->waits = 0;
		ok = 1;
	} else if (!t->waits) {
		l->waiting++;
		t->waits = 1;
	}
	pthread_mutex_unlock(&l->mu);
	return (ok);
}

int
limiter_acquire(struct limiter *l)
{
	struct take t = { l, 0 };

	if (cancel_wait(l->cancel, take_slot, &t) == 0)
		return (0);
	pthread_mutex_lock(&l->mu);
	if (t.waits)
		l->waiting--;
	pthread_mutex_unlock(&l->mu);
	return (-1);
}

int
limiter_release(struct limiter *l, enum limiter_outcome outcome, int *was)
{
	int after;

	pthread_mutex_lock(&l->mu);
	if (l->inflight > 0)
		l->inflight--;
	if (was != NULL)
		*was = l->a.limit;
	if (l->adaptive && outcome == LIMITER_OK)
		(void)aimd_success(&l->a, l->waiting > 0);
	else if (l->adaptive && outcome == LIMITER_REFUSED)
		(void)aimd_refused(&l->a, l->inflight);
	after = l->a.limit;
	pthread_mutex_unlock(&l->mu);
	/* A slot is free (and maybe more than one): let the waiters look. */
	cancel_notify(l->cancel);
	return (after);
}

int
limiter_refused(struct limiter *l, int *was)
{
	int after;

	pthread_mutex_lock(&l->mu);
	if (was != NULL)
		*was = l->a.limit;
	if (l->adaptive)
		(void)aimd_refused(&l->a, 0);
	after = l->a.limit;
	pthread_mutex_unlock(&l->mu);
	return (after);
}

int
limiter_limit(struct limiter *l)
{
	int v;

	pthread_mutex_lock(&l->mu);
	v = l->a.limit;
	pthread_mutex_unlock(&l->mu);
	return (v);
}

int
limiter_inflight(struct limiter *l)
{
	int v;

	pthread_mutex_lock(&l->mu);
	v = l->inflight;
	pthread_mutex_unlock(&l->mu);
	return (v);
}

int
limiter_waiting(struct limiter *l)
{
	int v;

	pthread_mutex_lock(&l->mu);
	v = l->waiting;
	pthread_mutex_unlock(&l->mu);
	return (v);
}

int
limiter_adaptive(const struct limiter *l)
{
	return (l->adaptive);
}
