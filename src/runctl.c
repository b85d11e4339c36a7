/*
 * runctl: the run's cancel flag, counters, gauges and waits.
 *
 * A retry's sleep is announced by a node on the sleeping thread's stack,
 * linked into ${waits} for as long as it sleeps.  Lock order: ${wait_mu}
 * (the list) is a leaf: nothing is called while it is held, and the
 * sleep itself (cancel.c's mutex) runs without it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "errbuf.h"
#include "log.h"
#include "runctl.h"

/* A window sleeping before its retry (runctl_retry_sleep()). */
struct run_wait {
	amp_hour first;
	int nhours;
	int64_t until_ms;
	char why[sizeof(((struct run_waits *)0)->why)];
	struct run_wait *next;
};

struct runctl {
	struct cancel *cancel;
	int64_t t0_ms;                 /* cancel_clock_ms() at the start */
	atomic_uint_fast64_t total_hours;
	atomic_uint_fast64_t n[RUN_NCOUNTERS];
	_Atomic int64_t gauge[RUN_NGAUGES];
	atomic_uint_fast64_t retry_by_code[RUNCTL_MAX_CODE];
	pthread_mutex_t wait_mu;       /* the three below */
	int64_t pause_until_ms;
	long pause_code;
	struct run_wait *waits;
};

struct runctl *
runctl_new(struct logger *lg)
{
	struct runctl *c;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->cancel = cancel_new()) == NULL) {
		log_error(lg, "cannot set up the run: out of memory");
		free(c);
		return (NULL);
	}
	if ((rc = pthread_mutex_init(&c->wait_mu, NULL)) != 0) {
		log_error(lg, "pthread_mutex_init: %s", ERRSTR(rc));
		cancel_free(c->cancel);
		free(c);
		return (NULL);
	}
	c->t0_ms = cancel_clock_ms();
	return (c);
}

void
runctl_free(struct runctl *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->wait_mu);
	cancel_free(c->cancel);
	free(c);
}

struct cancel *
runctl_cancel_flag(struct runctl *c)
{
	return (c->cancel);
}

void
runctl_cancel(struct runctl *c, enum run_stop why)
{
	(void)cancel_trigger(c->cancel, (int)why);
}

int
runctl_cancelled(const struct runctl *c)
{
	return (cancel_requested(c->cancel));
}

enum run_stop
runctl_stop_reason(const struct runctl *c)
{
	return ((enum run_stop)cancel_reason(c->cancel));
}

int
runctl_sleep(struct runctl *c, int64_t ms)
{
	return (cancel_sleep(c->cancel, ms));
}

void
runctl_count(struct runctl *c, enum run_counter k, uint64_t n)
{
	atomic_fetch_add(&c->n[k], n);
}

uint64_t
runctl_counter(const struct runctl *c, enum run_counter k)
{
	return (atomic_load(&c->n[k]));
}

void
runctl_gauge_set(struct runctl *c, enum run_gauge g, int64_t v)
{
	atomic_store(&c->gauge[g], v);
}

void
runctl_gauge_add(struct runctl *c, enum run_gauge g, int64_t d)
{
	atomic_fetch_add(&c->gauge[g], d);
}

int64_t
runctl_gauge(const struct runctl *c, enum run_gauge g)
{
	return (atomic_load(&c->gauge[g]));
}

void
runctl_count_retry(struct runctl *c, long code)
{
	if (code < 100 || code >= RUNCTL_MAX_CODE)
		code = 0;
	atomic_fetch_add(&c->retry_by_code[code], 1);
}

uint64_t
runctl_retries_by(const struct runctl *c, int code)
{
	if (code < 0 || code >= RUNCTL_MAX_CODE)
		return (0);
	return (atomic_load(&c->retry_by_code[code]));
}

void
runctl_set_total_hours(struct runctl *c, uint64_t n)
{
	atomic_store(&c->total_hours, n);
}

uint64_t
runctl_total_hours(const struct runctl *c)
{
	return (atomic_load(&c->total_hours));
}

int64_t
runctl_elapsed_ms(const struct runctl *c)
{
	return (cancel_clock_ms() - c->t0_ms);
}

void
runctl_pool_paused(struct runctl *c, int64_t until_ms, long code)
{
	pthread_mutex_lock(&c->wait_mu);
	if (until_ms > c->pause_until_ms) {
		c->pause_until_ms = until_ms;
		c->pause_code = code;
	}
	pthread_mutex_unlock(&c->wait_mu);
}

int
runctl_retry_sleep(struct runctl *c, int64_t ms, amp_hour first, int nhours,
    const char *why)
{
	struct run_wait w = { .first = first, .nhours = nhours,
	    .until_ms = cancel_clock_ms() + ms };
	struct run_wait **pp;
	int rc;

	snprintf(w.why, sizeof(w.why), "%s", why);
	pthread_mutex_lock(&c->wait_mu);
	w.next = c->waits;
	c->waits = &w;
	pthread_mutex_unlock(&c->wait_mu);

	rc = cancel_sleep(c->cancel, ms);

	pthread_mutex_lock(&c->wait_mu);
	for (pp = &c->waits; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == &w) {
			*pp = w.next;
			break;
		}
	}
	pthread_mutex_unlock(&c->wait_mu);
	return (rc);
}

void
runctl_waits(struct runctl *c, int64_t now_ms, struct run_waits *out)
{
	const struct run_wait *soonest = NULL;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->wait_mu);
	if (c->pause_until_ms > now_ms) {
		out->pause_ms = c->pause_until_ms - now_ms;
		out->pause_code = c->pause_code;
	}
	for (const struct run_wait *w = c->waits; w != NULL; w = w->next) {
		if (w->until_ms <= now_ms)
			continue;
		out->retrying++;
		if (soonest == NULL || w->until_ms < soonest->until_ms)
			soonest = w;
	}
	if (soonest != NULL) {
		out->first = soonest->first;
		out->nhours = soonest->nhours;
		out->retry_ms = soonest->until_ms - now_ms;
		memcpy(out->why, soonest->why, sizeof(out->why));
	}
	pthread_mutex_unlock(&c->wait_mu);
}
