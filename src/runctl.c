/*
 * runctl: the run's cancel flag, counters and progress line.
 *
 * Lock order: ${draw_mu} (the progress throttle) is a leaf; the cancel
 * flag's own mutex (cancel.c) is never taken while it is held.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "errbuf.h"
#include "log.h"
#include "runctl.h"

struct runctl {
	struct cancel *cancel;
	struct logger *lg;
	int progress;                  /* draw a progress line */
	int64_t t0_ms;                 /* cancel_clock_ms() at the start */
	atomic_uint_fast64_t total_hours;
	atomic_uint_fast64_t n[RUN_NCOUNTERS];
	_Atomic int64_t gauge[RUN_NGAUGES];
	atomic_uint_fast64_t retry_by_code[RUNCTL_MAX_CODE];
	pthread_mutex_t draw_mu;       /* last_draw_ms */
	int64_t last_draw_ms;
};

struct runctl *
runctl_new(struct logger *lg, int progress)
{
	struct runctl *c;
	int rc;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->cancel = cancel_new()) == NULL) {
		log_error(lg, "cannot set up the run: out of memory");
		free(c);
		return (NULL);
	}
	if ((rc = pthread_mutex_init(&c->draw_mu, NULL)) != 0) {
		log_error(lg, "pthread_mutex_init: %s", ERRSTR(rc));
		cancel_free(c->cancel);
		free(c);
		return (NULL);
	}
	c->lg = lg;
	c->progress = progress;
	c->t0_ms = cancel_clock_ms();
	return (c);
}

void
runctl_free(struct runctl *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->draw_mu);
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

int64_t
runctl_elapsed_ms(const struct runctl *c)
{
	return (cancel_clock_ms() - c->t0_ms);
}

void
runctl_progress(struct runctl *c, int force)
{
	char line[200];
	int64_t now;
	uint64_t done, mb, up, total, out;
	double secs, rate;

	if (!c->progress)
		return;
	now = cancel_clock_ms();
	pthread_mutex_lock(&c->draw_mu);
	if (!force && now - c->last_draw_ms < 250) {
		pthread_mutex_unlock(&c->draw_mu);
		return;
	}
	c->last_draw_ms = now;
	pthread_mutex_unlock(&c->draw_mu);

	done = runctl_counter(c, RUN_HOURS_DATA) +
	    runctl_counter(c, RUN_HOURS_EMPTY) +
	    runctl_counter(c, RUN_HOURS_FAILED);
	up = runctl_counter(c, RUN_UPLOADS);
	out = runctl_counter(c, RUN_BYTES_OUT);
	total = atomic_load(&c->total_hours);
	mb = out >> 20;
	secs = (double)(now - c->t0_ms) / 1000.0;
	rate = secs > 0 ? (double)out / 1048576.0 / secs : 0;
	if (done > 0 && done < total) {
		double eta = secs / (double)done * (double)(total - done);
		snprintf(line, sizeof(line), "hours %" PRIu64 "/%" PRIu64
		    "  uploaded %" PRIu64 "  %" PRIu64 " MB  %.1f MB/s  "
		    "ETA %.0fs", done, total, up, mb, rate, eta);
	} else {
		snprintf(line, sizeof(line), "hours %" PRIu64 "/%" PRIu64
		    "  uploaded %" PRIu64 "  %" PRIu64 " MB  %.1f MB/s", done,
		    total, up, mb, rate);
	}
	log_progress(c->lg, line);
}
