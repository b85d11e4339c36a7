/*
 * cancel: the run's cancel flag, sleep and wake hooks (see cancel.h).
 *
 * DESIGN
 * - State: ${flag} and ${why} are atomics, so cancel_requested() polls
 *   without the lock.  ${mu} guards the hook list and is the mutex of
 *   ${cv}, the condition every cancel_sleep() waits on (with the
 *   monotonic clock, so a wall-clock step cannot stretch a backoff).
 * - Trigger: the flag is set under ${mu}, then hooks run and sleepers are
 *   woken, still under ${mu}: a sleeper checks the flag under the same
 *   mutex before it waits, so no wake-up is lost, and a hook being
 *   removed is never running.
 * - Waits: cancel_wait() sleeps on the same ${cv}, calling the caller's
 *   ready() under ${mu} before each wait; cancel_notify() broadcasts ${cv}
 *   under ${mu}.  A changer updates its state (under its own lock), lets
 *   go of that lock, then notifies: a waiter that saw the old state still
 *   holds ${mu} until it waits, so the broadcast cannot come before the
 *   wait.  The broadcast wakes the sleepers of cancel_sleep() as well;
 *   they find their time not yet up and wait again.
 * - Lock order: ${mu} is a leaf but for the hooks and ready(), which run
 *   under it (see cancel.h): ${mu} before any lock they take.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cancel.h"

struct cancel {
	atomic_int flag;
	atomic_int why;
	pthread_mutex_t mu;       /* hooks; the mutex of cv */
	pthread_cond_t cv;
	struct cancel_hook *hooks;
};

int64_t
cancel_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

struct cancel *
cancel_new(void)
{
	struct cancel *c;
	pthread_condattr_t ca;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	atomic_init(&c->flag, 0);
	atomic_init(&c->why, 0);
	if ((rc = pthread_mutex_init(&c->mu, NULL)) != 0)
		goto err0;
	if ((rc = pthread_condattr_init(&ca)) != 0)
		goto err1;
	if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (rc = pthread_cond_init(&c->cv, &ca)) != 0) {
		pthread_condattr_destroy(&ca);
		goto err1;
	}
	pthread_condattr_destroy(&ca);
	return (c);
err1:
	pthread_mutex_destroy(&c->mu);
err0:
	free(c);
	errno = rc;
	return (NULL);
}

void
cancel_free(struct cancel *c)
{
	if (c == NULL)
		return;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int
cancel_trigger(struct cancel *c, int why)
{
	int none = 0, first = 0;

	(void)atomic_compare_exchange_strong(&c->why, &none, why);
	pthread_mutex_lock(&c->mu);
	if (atomic_load(&c->flag) == 0) {
		atomic_store(&c->flag, 1);
		first = 1;
		for (struct cancel_hook *h = c->hooks; h != NULL; h = h->next)
			h->fn(h->arg);
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return (first);
}

int
cancel_requested(const struct cancel *c)
{
	return (c != NULL && atomic_load(&c->flag) != 0);
}

int
cancel_reason(const struct cancel *c)
{
	return (c != NULL ? atomic_load(&c->why) : 0);
}

int
cancel_sleep(struct cancel *c, int64_t ms)
{
	struct timespec ts;
	int cancelled;

	if (ms < 0)
		ms = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (c == NULL) {
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
		return (0);
	}
	pthread_mutex_lock(&c->mu);
	while (atomic_load(&c->flag) == 0 &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
		; /* 0: woken (maybe spuriously); else the time is up */
	cancelled = atomic_load(&c->flag) != 0;
	pthread_mutex_unlock(&c->mu);
	return (cancelled ? -1 : 0);
}

void
cancel_hook_add(struct cancel *c, struct cancel_hook *h, void (*fn)(void *),
    void *arg)
{
	if (c == NULL)
		return;
	h->fn = fn;
	h->arg = arg;
	pthread_mutex_lock(&c->mu);
	h->next = c->hooks;
	c->hooks = h;
	if (atomic_load(&c->flag) != 0)
		fn(arg);
	pthread_mutex_unlock(&c->mu);
}

void
cancel_hook_remove(struct cancel *c, struct cancel_hook *h)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	for (struct cancel_hook **pp = &c->hooks; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

int
cancel_wait(struct cancel *c, int (*ready)(void *), void *arg)
{
	int rc = -1;

	pthread_mutex_lock(&c->mu);
	while (atomic_load(&c->flag) == 0) {
		if (ready(arg)) {
			rc = 0;
			break;
		}
		pthread_cond_wait(&c->cv, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return (rc);
}

void
cancel_notify(struct cancel *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}
