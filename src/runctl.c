/*
 * runctl: shared cancel flag, counters, sleeps and progress.
 *
 * Lock order: runctl's mutex is a leaf — nothing else is locked while it
 * is held, except that wake hooks run under it; hooks must only call
 * async-safe, non-locking functions such as curl_multi_wakeup().
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "runctl.h"

int64_t
runctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int
runctl_init(struct runctl *c, struct logger *lg, int progress)
{
	pthread_condattr_t ca;
	int rc;

	memset(c, 0, sizeof(*c));
	c->lg = lg;
	c->progress = progress;
	c->t0_ms = runctl_now_ms();
	if ((rc = pthread_mutex_init(&c->mu, NULL)) != 0) {
		log_error(lg, "pthread_mutex_init: %s", strerror(rc));
		return (-1);
	}
	if ((rc = pthread_condattr_init(&ca)) != 0 ||
	    (rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (rc = pthread_cond_init(&c->cv, &ca)) != 0) {
		log_error(lg, "pthread_cond_init: %s", strerror(rc));
		pthread_mutex_destroy(&c->mu);
		return (-1);
	}
	pthread_condattr_destroy(&ca);
	return (0);
}

void
runctl_destroy(struct runctl *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

int
runctl_add_hook(struct runctl *c, void (*fn)(void *), void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->nhooks == RUNCTL_MAX_HOOKS) {
		rc = -1;
	} else {
		c->hook[c->nhooks] = fn;
		c->hook_arg[c->nhooks++] = arg;
		if (atomic_load(&c->cancel))
			fn(arg);
	}
	pthread_mutex_unlock(&c->mu);
	return (rc);
}

void
runctl_remove_hook(struct runctl *c, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < c->nhooks; i++) {
		if (c->hook[i] != fn || c->hook_arg[i] != arg)
			continue;
		c->hook[i] = c->hook[c->nhooks - 1];
		c->hook_arg[i] = c->hook_arg[c->nhooks - 1];
		c->nhooks--;
		break;
	}
	pthread_mutex_unlock(&c->mu);
}

void
runctl_cancel(struct runctl *c, enum run_stop why)
{
	int none = STOP_NONE;

	atomic_compare_exchange_strong(&c->stop, &none, (int)why);
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->cancel, 1);
	for (int i = 0; i < c->nhooks; i++)
		c->hook[i](c->hook_arg[i]);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

int
runctl_cancelled(struct runctl *c)
{
	return (atomic_load(&c->cancel));
}

int
runctl_sleep(struct runctl *c, int64_t ms)
{
	struct timespec ts;
	int cancelled;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (!atomic_load(&c->cancel) &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
		;
	cancelled = atomic_load(&c->cancel);
	pthread_mutex_unlock(&c->mu);
	return (cancelled ? -1 : 0);
}

void
runctl_progress(struct runctl *c, int force)
{
	char line[200];
	int64_t now;
	uint64_t done, mb, up;
	double secs, rate;

	if (!c->progress)
		return;
	now = runctl_now_ms();
	pthread_mutex_lock(&c->mu);
	if (!force && now - c->last_draw_ms < 250) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	c->last_draw_ms = now;
	pthread_mutex_unlock(&c->mu);

	done = atomic_load(&c->st.hours_data) + atomic_load(&c->st.hours_empty)
	    + atomic_load(&c->st.hours_failed);
	up = atomic_load(&c->st.uploads);
	mb = atomic_load(&c->st.bytes_out) >> 20;
	secs = (double)(now - c->t0_ms) / 1000.0;
	rate = secs > 0 ? (double)atomic_load(&c->st.bytes_out) / 1048576.0 /
	    secs : 0;
	if (done > 0 && done < c->total_hours) {
		double eta = secs / (double)done *
		    (double)(c->total_hours - done);
		snprintf(line, sizeof(line), "hours %" PRIu64 "/%" PRIu64
		    "  uploaded %" PRIu64 "  %" PRIu64 " MB  %.1f MB/s  "
		    "ETA %.0fs", done, c->total_hours, up, mb, rate, eta);
	} else {
		snprintf(line, sizeof(line), "hours %" PRIu64 "/%" PRIu64
		    "  uploaded %" PRIu64 "  %" PRIu64 " MB  %.1f MB/s", done,
		    c->total_hours, up, mb, rate);
	}
	log_progress(c->lg, line);
}
