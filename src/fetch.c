/*
 * fetch: the export worker pool.
 *
 * DESIGN
 * - Threads: N workers, each owning one CURL easy handle driven by its own
 *   CURLM (multi) handle, so a cancel can interrupt a transfer at once
 *   through curl_multi_wakeup() instead of waiting for a timeout.  Each
 *   worker also owns its unpack state (unpack_stream is reentrant).
 *   Committer threads (one per worker, at most FETCH_MAX_COMMITTERS) make
 *   unpacked windows durable and visible.  fetch_xfer.c performs one
 *   request of a worker; this file decides what to do with its answer.
 * - Commit: a worker asks unpack_stream to stop short of the commit and
 *   hands the written, verified window (struct done_window) to the
 *   committers over a small bounded queue (cq), then goes on with its
 *   next request; a committer commits it (unpack_commit: atomicfile),
 *   counts and reports the hours (on_hour).  So the ~tens of ms an fsync
 *   waits for the disk never stall a download.  fetch_join() closes cq
 *   only after every worker has left, and the committers drain it before
 *   they end; on cancel they discard what is left (temporaries removed).
 * - Work: struct window items on one bounded queue (queue.h).  The planner
 *   blocks on the bound, which keeps memory flat for year-long ranges.
 *   A window split in halves (504 / 400 on several hours) is pushed back
 *   with queue_push_urgent(): a worker must never block on the bound that
 *   only the workers themselves drain.
 * - Termination: `outstanding` counts windows submitted and not finished
 *   (a split adds two, finishes one).  The queue is closed when the
 *   planner is done and outstanding reaches zero, or at once on cancel;
 *   workers leave when queue_pop() reports closed-and-empty.
 * - Concurrency: the workers are a ceiling.  Before each request a
 *   worker takes a slot of the pool's limiter (limiter.h), waiting while
 *   the pool uses its whole limit, and gives it back once the transfer is
 *   over with what came of it (give_slot): a 200 or 404 counts towards
 *   one more while other workers wait for a slot, a 429 lowers the
 *   limit.  The limiter's DESIGN says who changes the limit; the pool
 *   only mirrors it into the run's gauge (a display, which two releases
 *   may set out of order; fetch_join sets the final value) and counters,
 *   and the planner reads it (fetch_limit).
 * - Retries: a worker keeps its window through backoff and sleeps on the
 *   run's cancel flag, holding no slot.  A 429 that lowered the limit is
 *   the pool finding the API's limit, not the window failing: it costs
 *   the window no attempt, and the window waits its Retry-After (or a
 *   backoff) alone while the other workers go on within the new limit.
 *   A 429 at limit 1, or with --fixed-concurrency, moves the pool-wide
 *   `not_before` forward instead, so every worker pauses: the pool can
 *   slow down no other way.
 * - Lock order: the pool mutex is a leaf.  The cancel hook (pool_wake,
 *   run under the cancel flag's mutex) closes the queues (their own leaf
 *   mutexes) and wakes the multi handles, and takes no lock of ours.  The
 *   limiter's mutex is a leaf of its own, never held with ours.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "fetch_internal.h"
#include "limiter.h"
#include "localdir.h"
#include "log.h"
#include "queue.h"
#include "retry.h"
#include "runctl.h"

/* A window unpacked and verified, waiting for the committer. */
struct done_window {
	struct window w;
	struct unpack_pending *pp;
	struct unpack_stats ust;
};

static void
window_name(const struct window *w, char *buf, size_t len)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN];

	hour_format_api(w->first, a);
	hour_format_api(w->first + w->n - 1, b);
	snprintf(buf, len, "%s..%s", a, b);
}

/* ${url} without any "user:password@" part, for messages. */
static void
url_for_log(const char *url, char *out, size_t len)
{
	const char *scheme = strstr(url, "://"), *host, *at, *slash;

	host = scheme ? scheme + 3 : url;
	slash = strchr(host, '/');
	at = strchr(host, '@');
	if (at && (slash == NULL || at < slash))
		snprintf(out, len, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, len, "%s", url);
}

static void
finish_window(struct fetch_pool *p)
{
	pthread_mutex_lock(&p->mu);
	if (--p->outstanding == 0 && p->plan_done)
		queue_close(p->q);
	pthread_mutex_unlock(&p->mu);
}

int
fetch_submit(struct fetch_pool *p, const struct window *w)
{
	struct window *c;

	if (runctl_cancelled(p->o.ctl) || (c = malloc(sizeof(*c))) == NULL)
		return (-1);
	*c = *w;
	pthread_mutex_lock(&p->mu);
	p->outstanding++;
	pthread_mutex_unlock(&p->mu);
	if (queue_push(p->q, c)) {
		free(c);
		finish_window(p);
		return (-1);
	}
	return (0);
}

void
fetch_plan_done(struct fetch_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->plan_done = 1;
	if (p->outstanding == 0)
		queue_close(p->q);
	pthread_mutex_unlock(&p->mu);
}

static void
fail_window(struct fetch_pool *p, const struct window *w, const char *why)
{
	char name[64];

	window_name(w, name, sizeof(name));
	runctl_count(p->o.ctl, RUN_HOURS_FAILED, (uint64_t)w->n);
	log_error(p->o.lg, "hours %s failed: %s", name, why);
}

/* Fail ${w} for a local I/O error, which stops the run. */
static void
fail_window_io(struct fetch_pool *p, const struct window *w, const char *why)
{
	fail_window(p, w, why);
	runctl_cancel(p->o.ctl, STOP_IO);
}

static void
hours_done(struct fetch_pool *p, const struct window *w)
{
	for (int i = 0; i < w->n; i++)
		if (p->o.on_hour)
			p->o.on_hour(p->o.on_hour_ctx, w->first + i);
}

/* Push the two halves of ${w}; the caller finishes ${w} itself. */
static void
split_window(struct fetch_pool *p, const struct window *w)
{
	struct window *h[2];
	int n1 = w->n / 2;

	h[0] = malloc(sizeof(**h));
	h[1] = malloc(sizeof(**h));
	if (h[0] == NULL || h[1] == NULL) {
		free(h[0]);
		free(h[1]);
		fail_window(p, w, "out of memory splitting the window");
		return;
	}
	*h[0] = (struct window){ .first = w->first, .n = n1 };
	*h[1] = (struct window){ .first = w->first + n1, .n = w->n - n1 };
	runctl_count(p->o.ctl, RUN_SPLITS, 1);
	pthread_mutex_lock(&p->mu);
	p->outstanding += 2;
	pthread_mutex_unlock(&p->mu);
	/* Second half first so that the first half ends up at the head. */
	for (int i = 1; i >= 0; i--) {
		if (queue_push_urgent(p->q, h[i])) {
			free(h[i]);
			finish_window(p);
		}
	}
}

int
fetch_limit(struct fetch_pool *p)
{
	return (limiter_limit(p->lim));
}

/* Mirror a move of the limit from ${was} to ${now} into the run. */
static void
limit_moved(struct fetch_pool *p, int was, int now)
{
	if (now == was)
		return;
	runctl_gauge_set(p->o.ctl, RUN_FETCH_LIMIT, limiter_limit(p->lim));
	runctl_count(p->o.ctl, now < was ? RUN_FETCH_LIMIT_DOWN :
	    RUN_FETCH_LIMIT_UP, 1);
	log_debug(p->o.lg, "export requests at once: %d of %d (was %d)", now,
	    p->o.workers, was);
}

/*
 * Give back the slot of the request just made, with what came of it: the
 * status of an answer (wk->status, if the transfer itself went through,
 * ${res}).  *${was}: the limit before.  Returns the limit after.
 */
static int
give_slot(struct worker *wk, int res, int *was)
{
	struct fetch_pool *p = wk->p;
	enum limiter_outcome o = LIMITER_OTHER;
	int now;

	if (wk->status == 429 && res == CURLE_OK)
		o = LIMITER_REFUSED;
	else if (wk->status == 200 || wk->status == 404)
		o = LIMITER_OK; /* let in, whatever the body did */
	now = limiter_release(p->lim, o, was);
	limit_moved(p, *was, now);
	return (now);
}

/* Wait for the pool-wide 429 pause, if any.  -1 if cancelled. */
static int
wait_pool(struct worker *wk)
{
	struct fetch_pool *p = wk->p;
	int64_t until, now;

	pthread_mutex_lock(&p->mu);
	until = p->not_before_ms;
	pthread_mutex_unlock(&p->mu);
	now = cancel_clock_ms();
	if (until > now)
		return (runctl_sleep(p->o.ctl, until - now));
	return (runctl_cancelled(p->o.ctl) ? -1 : 0);
}

static int
transport_fatal(int res)
{
	switch (res) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_LOGIN_DENIED:
		return (1);
	default:
		return (0);
	}
}

/* Give the committer a window written and verified (or drop it). */
static void
hand_over(struct fetch_pool *p, const struct window *w,
    struct unpack_pending *pp, const struct unpack_stats *ust)
{
	struct done_window *d = malloc(sizeof(*d));

	if (d == NULL) {
		unpack_discard(pp);
		fail_window_io(p, w, "out of memory");
		return;
	}
	d->w = *w;
	d->pp = pp;
	d->ust = *ust;
	if (queue_push(p->cq, d)) { /* closed: cancelled */
		unpack_discard(pp);
		free(d);
	}
}

/* Make one handed-over window durable and visible, then report it. */
static void
commit_one(struct fetch_pool *p, struct done_window *d)
{
	struct runctl *ctl = p->o.ctl;
	char name[64], why[512];

	if (runctl_cancelled(ctl)) {
		unpack_discard(d->pp);
		return;
	}
	if (unpack_commit(d->pp, why, sizeof(why)) != UNPACK_OK) {
		fail_window_io(p, &d->w, why);
		return;
	}
	window_name(&d->w, name, sizeof(name));
	if (!d->ust.streamed)
		runctl_count(ctl, RUN_REREAD, 1);
	runctl_count(ctl, RUN_HOURS_DATA, d->ust.hours_data);
	runctl_count(ctl, RUN_HOURS_EMPTY, d->ust.hours_empty);
	runctl_count(ctl, RUN_BYTES_OUT, d->ust.bytes_out);
	runctl_count(ctl, RUN_EVENTS, d->ust.events);
	log_info(p->o.lg, "fetched %s: %" PRIu64 " events, %u hours with "
	    "data, %u empty", name, d->ust.events, d->ust.hours_data,
	    d->ust.hours_empty);
	hours_done(p, &d->w);
}

static void *
committer_main(void *arg)
{
	struct fetch_pool *p = arg;
	void *item;

	while (queue_pop(p->cq, &item) == 0) {
		commit_one(p, item);
		free(item);
	}
	return (NULL);
}

/*
 * A 200 answer unpacked as it arrived, with status ${us} (${why} its
 * message): hand the window over, or fail it (returns 1), or set *${act}
 * to ask again (returns 0).
 */
static int
unpacked(struct fetch_pool *p, const struct window *w, enum unpack_status us,
    struct unpack_pending *pp, const struct unpack_stats *ust,
    const char *why, enum retry_action *act)
{
	switch (us) {
	case UNPACK_OK:
		hand_over(p, w, pp, ust);
		return (1);
	case UNPACK_NOT_ZIP:
	case UNPACK_CORRUPT:
		*act = RETRY_BACKOFF; /* a bad answer: ask again */
		return (0);
	case UNPACK_IO:
		fail_window_io(p, w, why);
		return (1);
	case UNPACK_CANCELLED:
		return (1);
	case UNPACK_BADNAME:
	case UNPACK_TOO_BIG:
	default:
		fail_window(p, w, why);
		return (1);
	}
}

/*
 * Any other outcome of the request (result ${res}): fail the window
 * (returns 1), or classify the answer into *${act} with ${why} saying
 * what it was (returns 0).
 */
static int
answered(struct worker *wk, const struct window *w, int res,
    const char *name, char *why, size_t whylen, enum retry_action *act)
{
	struct fetch_pool *p = wk->p;
	char snippet[160];

	if (wk->refused != ANSWER_OK) {
		/* Not a zip: a broken answer, worth asking again.  Too
		 * large: more than the hours can hold, asking again will
		 * not change it. */
		fetch_refusal(wk, why, whylen);
		if (wk->refused == ANSWER_TOO_LARGE) {
			fail_window(p, w, why);
			return (1);
		}
		*act = RETRY_BACKOFF;
		return (0);
	}
	if (res < 0 || wk->write_errno) {
		snprintf(why, whylen, "cannot write the answer in %.300s: %s",
		    p->o.data_dir, ERRSTR(wk->write_errno));
		fail_window_io(p, w, why);
		return (1);
	}
	if (res != CURLE_OK) {
		snprintf(why, whylen, "%s", wk->errbuf[0] ? wk->errbuf :
		    curl_easy_strerror((CURLcode)res));
		if (transport_fatal(res)) {
			fail_window(p, w, why);
			return (1);
		}
	} else {
		errbuf_escape(wk->body, wk->bodylen, snippet, sizeof(snippet));
		snprintf(why, whylen, "HTTP %ld%s%s", wk->status,
		    snippet[0] ? ": " : "", snippet);
	}
	*act = retry_classify(wk->status, res != CURLE_OK, w->n);
	log_debug(p->o.lg, "request %s: %s (%" PRIu64 " bytes) -> %s", name,
	    res != CURLE_OK ? why : "answered", wk->bytes,
	    retry_action_name(*act));
	if (*act == RETRY_DONE) /* a 200 not unpacked */
		*act = RETRY_BACKOFF;
	return (0);
}

/* The Export API's own 404 ("No data available for the time range
 * requested") says this in its body; any other 404 is someone else's. */
#define API_NO_DATA "Raw data files were not found"

/* 1 if the 404 body in wk->body is the Export API's own. */
static int
api_no_data(const struct worker *wk)
{
	size_t n = sizeof(API_NO_DATA) - 1;

	for (size_t i = 0; i + n <= wk->bodylen; i++)
		if (memcmp(wk->body + i, API_NO_DATA, n) == 0)
			return (1);
	return (0);
}

/*
 * A 404 that is not the Export API's (a wrong path, a proxy's or a web
 * server's page): no hour is known to be empty, so the window fails, not
 * retried; counted apart so that the run can tell a configuration error.
 */
static void
foreign_not_found(struct worker *wk, const struct window *w)
{
	struct fetch_pool *p = wk->p;
	char u[512], body[160], why[800];

	url_for_log(p->o.api_url, u, sizeof(u));
	errbuf_escape(wk->body, wk->bodylen, body, sizeof(body));
	snprintf(why, sizeof(why), "HTTP 404 from %s is not the Export "
	    "API's \"no data\" answer (body: \"%s\"); not retried", u, body);
	runctl_count(p->o.ctl, RUN_HOURS_NOT_FOUND, (uint64_t)w->n);
	fail_window(p, w, why);
}

/* 404: the window's hours are complete and empty. */
static void
write_empty(struct fetch_pool *p, const struct window *w, const char *name)
{
	char why[600];

	if (localdir_write_empty(p->o.data_dir, p->o.format !=
	    UNPACK_FMT_JSONL, p->o.unpack.file_mode != 0 ?
	    p->o.unpack.file_mode : 0600, w->first, w->n, why,
	    sizeof(why)) != 0) {
		fail_window_io(p, w, why);
		return;
	}
	runctl_count(p->o.ctl, RUN_HOURS_EMPTY, (uint64_t)w->n);
	log_info(p->o.lg, "fetched %s: no data (404), %d empty hours", name,
	    w->n);
	hours_done(p, w);
}

/* 401/403: the credentials or the data region are wrong; stop the run. */
static void
auth_refused(struct worker *wk, const struct window *w)
{
	struct fetch_pool *p = wk->p;
	char u[512];

	if (atomic_exchange(&p->auth_logged, 1) == 0) {
		url_for_log(p->o.api_url, u, sizeof(u));
		log_error(p->o.lg, "the Export API at %s refused the "
		    "credentials (HTTP %ld): %s", u, wk->status,
		    p->o.auth_hint != NULL ? p->o.auth_hint : "");
	}
	runctl_count(p->o.ctl, RUN_HOURS_FAILED, (uint64_t)w->n);
	runctl_cancel(p->o.ctl, STOP_AUTH);
}

/* A few words on what ${wk}'s last try (result ${res}) got, for the
 * progress line: "503", "timeout", "bad answer". */
static void
retry_reason(const struct worker *wk, int res, char *buf, size_t len)
{
	if (res == CURLE_OPERATION_TIMEDOUT)
		snprintf(buf, len, "timeout");
	else if (res != CURLE_OK)
		snprintf(buf, len, "network error");
	else if (wk->status == 200)
		snprintf(buf, len, "bad answer");
	else
		snprintf(buf, len, "%ld", wk->status);
}

/*
 * A transient failure (${act} BACKOFF or SLOWDOWN) of ${w}'s try: wait
 * and return 0 to try again, or return 1 (given up, or cancelled).
 * ${was}, ${now}: the pool's limit before and after this try's answer.
 */
static int
back_off(struct worker *wk, struct window *w, enum retry_action act,
    int res, const char *name, const char *why, int was, int now)
{
	struct fetch_pool *p = wk->p;
	int64_t delay, until;
	char msg[700], reason[24];
	int alone = act == RETRY_SLOWDOWN && limiter_adaptive(p->lim) &&
	    was > 1;

	if (alone && now < was && w->refused < p->o.max_attempts) {
		/* The pool found the API's limit: not this window's try
		 * (up to --max-attempts times). */
		w->attempts--;
		w->refused++;
	} else if (w->attempts >= p->o.max_attempts) {
		snprintf(msg, sizeof(msg), "giving up after %d attempts; last: "
		    "%s", w->attempts, why);
		fail_window(p, w, msg);
		return (1);
	}
	runctl_count_retry(p->o.ctl, res == CURLE_OK ? wk->status : 0);
	delay = retry_delay_ms(w->attempts > 0 ? w->attempts : 1,
	    act == RETRY_SLOWDOWN ? wk->retry_after_ms : -1,
	    p->o.retry_base_ms, p->o.retry_max_ms, retry_jitter(&wk->rnd));
	if (alone)
		log_debug(p->o.lg, "%s: %s; %d requests at once (of %d), this "
		    "one again in %" PRId64 " ms", name, why, now,
		    p->o.workers, delay);
	else
		log_warn(p->o.lg, "%s: %s; retry %d/%d in %" PRId64 " ms",
		    name, why, w->attempts, p->o.max_attempts - 1, delay);
	if (act != RETRY_SLOWDOWN || alone) {
		retry_reason(wk, res, reason, sizeof(reason));
		return (runctl_retry_sleep(p->o.ctl, delay, w->first, w->n,
		    reason) != 0);
	}
	/* 429 with no lower limit to go to: the whole pool pauses
	 * (wait_pool before the next try). */
	until = cancel_clock_ms() + delay;
	pthread_mutex_lock(&p->mu);
	if (until > p->not_before_ms)
		p->not_before_ms = until;
	pthread_mutex_unlock(&p->mu);
	runctl_pool_paused(p->o.ctl, until, wk->status);
	return (0);
}

/*
 * One try of ${w}: download it, and say what to do next in *${act}.
 * Returns 1 when the window is finished (committed, failed, cancelled).
 */
static int
try_window(struct worker *wk, struct window *w, const char *name,
    enum retry_action *act, int *res, char *why, size_t whylen)
{
	struct fetch_pool *p = wk->p;
	struct runctl *ctl = p->o.ctl;
	struct unpack_pending *pp = NULL;
	struct unpack_stats ust;
	enum unpack_status us;

	if (w->attempts > 0 || w->refused > 0)
		runctl_count(ctl, RUN_RETRIES, 1);
	w->attempts++;
	*res = fetch_download(wk, w, &us, &ust, &pp, why, whylen);
	if (runctl_cancelled(ctl)) {
		unpack_discard(pp);
		fetch_drop_answer(wk);
		return (1);
	}
	if (us == UNPACK_SOURCE) {
		fetch_drop_answer(wk);
		return (answered(wk, w, *res, name, why, whylen, act));
	}
	/* A 200 answer, unpacked while it arrived. */
	fetch_drop_answer(wk);
	runctl_count(ctl, RUN_BYTES_ZIP, wk->bytes);
	log_debug(p->o.lg, "request %s: answered (%" PRIu64 " bytes) -> "
	    "unpack %s%s", name, wk->bytes, unpack_status_name(us),
	    us == UNPACK_OK && !ust.streamed ? " (read again from the file)" :
	    "");
	return (unpacked(p, w, us, pp, &ust, why, act));
}

/* Fetch ${w} until it is committed, empty, split, failed or cancelled. */
static void
process_window(struct worker *wk, struct window *w)
{
	struct fetch_pool *p = wk->p;
	char name[64], why[512];
	enum retry_action act = RETRY_FAIL;
	int res, done, was, now;

	window_name(w, name, sizeof(name));
	for (;;) {
		if (wait_pool(wk) || limiter_acquire(p->lim))
			return;
		done = try_window(wk, w, name, &act, &res, why, sizeof(why));
		now = give_slot(wk, res, &was);
		if (done)
			return;
		switch (act) {
		case RETRY_DONE:
			break;
		case RETRY_EMPTY:
			if (api_no_data(wk))
				write_empty(p, w, name);
			else
				foreign_not_found(wk, w);
			return;
		case RETRY_SPLIT:
			log_info(p->o.lg, "%s: %s; splitting the window", name,
			    why);
			split_window(p, w);
			return;
		case RETRY_TOO_LARGE:
			fail_window(p, w, "the hour exceeds the Export API's "
			    "4 GB limit (HTTP 400); it cannot be exported by "
			    "this API");
			return;
		case RETRY_FAIL:
			fail_window(p, w, why);
			return;
		case RETRY_FATAL_AUTH:
			auth_refused(wk, w);
			return;
		case RETRY_BACKOFF:
		case RETRY_SLOWDOWN:
			if (back_off(wk, w, act, res, name, why, was, now))
				return;
			break;
		}
	}
}

static void *
worker_main(void *arg)
{
	struct worker *wk = arg;
	struct fetch_pool *p = wk->p;
	void *item;

	while (queue_pop(p->q, &item) == 0) {
		struct window *w = item;
		if (!runctl_cancelled(p->o.ctl))
			process_window(wk, w);
		free(w);
		finish_window(p);
	}
	return (NULL);
}

/* The cancel hook: close the queues, interrupt every transfer. */
static void
pool_wake(void *arg)
{
	struct fetch_pool *p = arg;

	queue_close(p->q);
	queue_close(p->cq);
	for (int i = 0; i < p->nw; i++)
		if (p->w[i].m)
			curl_multi_wakeup(p->w[i].m);
}

/* A thread of ${p} could not be started (${rc}): cancel the run, let the
 * threads already started end, free ${p}.  Returns NULL. */
static struct fetch_pool *
start_failed(struct fetch_pool *p, int rc)
{
	log_error(p->o.lg, "pthread_create: %s", ERRSTR(rc));
	runctl_cancel(p->o.ctl, STOP_IO);
	fetch_plan_done(p);
	fetch_join(p);
	return (NULL);
}

/* Free a pool whose threads never started. */
static void
pool_free(struct fetch_pool *p)
{
	if (p->w != NULL)
		for (int i = 0; i < p->nw; i++)
			fetch_worker_fini(&p->w[i]);
	free(p->w);
	queue_free(p->cq);
	queue_free(p->q);
	limiter_free(p->lim);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct fetch_pool *
fetch_start(const struct fetch_opts *opts)
{
	struct fetch_pool *p;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	p->o = *opts;
	p->nw = opts->workers;
	if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0) {
		log_error(opts->lg, "pthread_mutex_init: %s", ERRSTR(rc));
		free(p);
		return (NULL);
	}
	if ((p->lim = limiter_new(p->nw, !opts->fixed_concurrency,
	    runctl_cancel_flag(opts->ctl))) == NULL ||
	    (p->q = queue_init((size_t)(opts->queue_cap > 0 ?
	    opts->queue_cap : 1))) == NULL ||
	    (p->cq = queue_init((size_t)p->nw + 1)) == NULL ||
	    (p->w = calloc((size_t)p->nw, sizeof(*p->w))) == NULL)
		goto fail;
	for (int i = 0; i < p->nw; i++)
		if (fetch_worker_init(&p->w[i], p, i))
			goto fail;
	runctl_gauge_set(opts->ctl, RUN_FETCH_CEILING, p->nw);
	runctl_gauge_set(opts->ctl, RUN_FETCH_LIMIT, limiter_limit(p->lim));
	cancel_hook_add(runctl_cancel_flag(opts->ctl), &p->hook, pool_wake, p);
	for (int i = 0; i < p->nw && i < FETCH_MAX_COMMITTERS; i++) {
		if ((rc = pthread_create(&p->committer[i], NULL,
		    committer_main, p)) != 0)
			return (start_failed(p, rc));
		p->ncommitters = i + 1;
	}
	for (int i = 0; i < p->nw; i++) {
		if ((rc = pthread_create(&p->w[i].th, NULL, worker_main,
		    &p->w[i])) != 0)
			return (start_failed(p, rc));
		p->w[i].started = 1;
	}
	return (p);
fail:
	log_error(opts->lg, "cannot start the fetch workers: out of memory");
	pool_free(p);
	return (NULL);
}

void
fetch_join(struct fetch_pool *p)
{
	void *item;

	if (p == NULL)
		return;
	for (int i = 0; i < p->nw; i++)
		if (p->w[i].started)
			pthread_join(p->w[i].th, NULL);
	/* No worker hands anything over any more: let the committers finish
	 * what they have, then end. */
	queue_close(p->cq);
	for (int i = 0; i < p->ncommitters; i++)
		pthread_join(p->committer[i], NULL);
	cancel_hook_remove(runctl_cancel_flag(p->o.ctl), &p->hook);
	/* Every worker is gone: the limit as the run ends. */
	runctl_gauge_set(p->o.ctl, RUN_FETCH_LIMIT, limiter_limit(p->lim));
	while (queue_trypop(p->q, &item) == 0)
		free(item);
	while (queue_trypop(p->cq, &item) == 0) {
		unpack_discard(((struct done_window *)item)->pp);
		free(item);
	}
	pool_free(p);
}
