/*
 * fetch: the export worker pool.
 *
 * DESIGN
 * - Threads: N workers, each owning one CURL easy handle driven by its own
 *   CURLM (multi) handle, so a cancel can interrupt a transfer at once
 *   through curl_multi_wakeup() instead of waiting for a timeout.  Each
 *   worker also owns its unpack state (unpack_stream is reentrant).
 *   Committer threads (one per worker, at most FETCH_MAX_COMMITTERS) make
 *   unpacked windows durable and visible.
 * - Commit: a worker asks unpack_stream to stop short of the commit and
 *   hands the written, verified window (struct done_window) to the
 *   committers over a small bounded queue (cq), then goes on with its
 *   next request; a committer fsyncs, renames (unpack_commit), counts and
 *   reports the hours (on_hour).  So the ~tens of ms an fsync waits for
 *   the disk never stall a download.  fetch_join() closes cq only after
 *   every worker has left, and the committers drain it before they end;
 *   on cancel they discard what is left (temporaries removed).
 * - Work: struct window items on one bounded queue (queue.h).  The planner
 *   blocks on the bound, which keeps memory flat for year-long ranges.
 *   A window split in halves (504 / 400 on several hours) is pushed back
 *   with queue_push_urgent(): a worker must never block on the bound that
 *   only the workers themselves drain.
 * - Termination: `outstanding` counts windows submitted and not finished
 *   (a split adds two, finishes one).  The queue is closed when the
 *   planner is done and outstanding reaches zero, or at once on cancel;
 *   workers leave when queue_pop() reports closed-and-empty.
 * - Retries: a worker keeps its window through backoff and sleeps on
 *   runctl (cancellable).  A 429 also moves the pool-wide `not_before`
 *   forward, so every worker pauses: the pool slows down as a whole.
 * - Answers stream to a temporary file (".tmp-w…zip") in the data
 *   directory as they arrive, and unpack_stream() turns them into hour
 *   files at the same time: its read callback (answer_read) reads the
 *   temporary back up to what curl has written and, when it has caught
 *   up, drives the transfer one step (xfer_step), so download, inflate
 *   and the writes overlap in the worker's own thread.  unpack_stream
 *   verifies the complete file (or unpacks it again) before any hour is
 *   committed; the temporary is unlinked whatever happens.  No answer is
 *   ever held in memory; only the first bytes of an error body are kept
 *   for messages.
 * - Lock order: pool mutex and runctl mutex are never held together;
 *   the cancel hook (run under runctl's mutex) only closes the queue and
 *   wakes the multi handles, which take no lock of ours.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"
#include "localdir.h"
#include "log.h"
#include "queue.h"
#include "retry.h"
#include "runctl.h"
#include "version.h"

/* Committer threads: one per worker, at most this many.  Several, so that
 * fsyncs of different windows can share the file system's journal
 * commits instead of waiting for each other. */
#define FETCH_MAX_COMMITTERS 8

struct worker {
	struct fetch_pool *p;
	pthread_t th;
	int started;
	CURL *e;
	CURLM *m;
	uint32_t rnd;             /* xorshift state for jitter */
	char errbuf[CURL_ERROR_SIZE];

	/* Per attempt. */
	char tmp[4096];
	int fd;                   /* the temporary, written and read back */
	long status;
	int write_errno;
	int64_t retry_after_ms;
	uint64_t bytes;           /* body bytes received */
	uint64_t filed;           /* of which written to the temporary */
	uint64_t rd_off;          /* of which handed to unpack_stream */
	int64_t last_rx_ms;       /* when the last byte arrived */
	int64_t stall_ms;
	int poll_ms;
	int running;              /* the transfer is in progress */
	int res;                  /* its CURLcode once over */
	char body[256];           /* start of a non-200 body */
	size_t bodylen;
};

/* A window unpacked and verified, waiting for the committer. */
struct done_window {
	struct window w;
	struct unpack_pending *pp;
	struct unpack_stats ust;
};

struct fetch_pool {
	struct fetch_opts o;
	struct queue *q;
	struct queue *cq;         /* struct done_window, for the committers */
	pthread_t committer[FETCH_MAX_COMMITTERS];
	int ncommitters;          /* started */
	struct worker *w;
	int nw;
	pthread_mutex_t mu;       /* outstanding, plan_done, not_before_ms */
	uint64_t outstanding;
	int plan_done;
	int64_t not_before_ms;
	atomic_uint seq;
	atomic_int auth_logged;
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

/* Keep only printable ASCII of a server's error body, for one log line. */
static void
sanitize(const char *in, size_t len, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < len && j + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch == '\n' || ch == '\r' || ch == '\t')
			ch = ' ';
		out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct worker *wk = arg;
	size_t len = size * nmemb, off = 0;

	if (wk->status == 0)
		curl_easy_getinfo(wk->e, CURLINFO_RESPONSE_CODE, &wk->status);
	wk->bytes += len;
	wk->last_rx_ms = runctl_now_ms();
	if (wk->status != 200) {
		size_t room = sizeof(wk->body) - wk->bodylen;
		if (room > len)
			room = len;
		memcpy(wk->body + wk->bodylen, ptr, room);
		wk->bodylen += room;
		return (len);
	}
	while (off < len) {
		ssize_t n = write(wk->fd, ptr + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			wk->write_errno = n < 0 ? errno : EIO;
			return (0);
		}
		off += (size_t)n;
	}
	wk->filed += len;
	return (len);
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct worker *wk = arg;
	size_t len = size * nmemb;
	static const char name[] = "retry-after:";
	char val[128];

	wk->last_rx_ms = runctl_now_ms();
	/* A new status line (after 100 Continue or a redirect) resets. */
	if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		wk->retry_after_ms = -1;
		wk->status = 0;
		return (len);
	}
	if (len > sizeof(name) - 1 &&
	    strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		size_t vl = len - (sizeof(name) - 1);
		const char *v = ptr + sizeof(name) - 1;
		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && isspace((unsigned char)v[vl - 1]))
			vl--;
		if (vl < sizeof(val)) {
			memcpy(val, v, vl);
			val[vl] = '\0';
			wk->retry_after_ms = retry_parse_after(val,
			    (int64_t)time(NULL));
		}
	}
	return (len);
}

static void
drop_tmp(struct worker *wk)
{
	if (wk->fd >= 0) {
		close(wk->fd);
		wk->fd = -1;
	}
	if (wk->tmp[0]) {
		unlink(wk->tmp);
		wk->tmp[0] = '\0';
	}
}

/*
 * Start one request for ${w}: the answer's body will land in wk->tmp
 * (status 200) or wk->body (others).  0, or -1 if the temporary file
 * could not be made (wk->write_errno set) or curl refused.
 */
static int
xfer_begin(struct worker *wk, const struct window *w)
{
	struct fetch_pool *p = wk->p;
	char url[4096], a[HOUR_API_LEN], b[HOUR_API_LEN];

	hour_format_api(w->first, a);
	hour_format_api(w->first + w->n - 1, b);
	wk->running = 0;
	wk->res = CURLE_OK;
	if (snprintf(wk->tmp, sizeof(wk->tmp), "%s/" LOCALDIR_TMP_PREFIX
	    "w%s-%d.%ld.%u.zip", p->o.data_dir, a, w->n, (long)getpid(),
	    atomic_fetch_add(&p->seq, 1)) >= (int)sizeof(wk->tmp) ||
	    snprintf(url, sizeof(url), "%s%cstart=%s&end=%s", p->o.api_url,
	    strchr(p->o.api_url, '?') ? '&' : '?', a, b) >= (int)sizeof(url)) {
		wk->tmp[0] = '\0';
		wk->write_errno = ENAMETOOLONG;
		return (-1);
	}
	wk->fd = open(wk->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (wk->fd < 0) {
		wk->write_errno = errno;
		wk->tmp[0] = '\0';
		return (-1);
	}
	wk->status = 0;
	wk->write_errno = 0;
	wk->retry_after_ms = -1;
	wk->bytes = wk->filed = wk->rd_off = 0;
	wk->bodylen = 0;
	wk->errbuf[0] = '\0';
	curl_easy_setopt(wk->e, CURLOPT_URL, url);
	if (curl_multi_add_handle(wk->m, wk->e) != CURLM_OK) {
		wk->res = CURLE_OUT_OF_MEMORY;
		return (-1);
	}
	atomic_fetch_add(&p->o.ctl->st.requests, 1);
	/*
	 * Stall detection is ours, not CURLOPT_LOW_SPEED_TIME: curl averages
	 * the speed over several seconds, so bytes received before a stall
	 * delay its check by ~5 s.  Here the clock restarts at every byte
	 * (headers included) and the transfer is abandoned exactly
	 * --stall-timeout after the last one.
	 */
	wk->stall_ms = (int64_t)p->o.stall_timeout_s * 1000;
	wk->poll_ms = wk->stall_ms / 4 < 1000 ? (int)(wk->stall_ms / 4) :
	    1000;
	if (wk->poll_ms < 20)
		wk->poll_ms = 20;
	wk->last_rx_ms = runctl_now_ms();
	wk->running = 1;
	return (0);
}

/* The finished transfer's result and status into wk->res, wk->status. */
static void
xfer_collect(struct worker *wk)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(wk->m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			wk->res = (int)msg->data.result;
	if (wk->res == CURLE_OK || wk->status == 0)
		curl_easy_getinfo(wk->e, CURLINFO_RESPONSE_CODE, &wk->status);
}

/* Stop the transfer (finished or not), collect its result. */
static void
xfer_end(struct worker *wk)
{
	if (wk->running) {
		wk->running = 0;
		if (wk->res == CURLE_OK)
			wk->res = CURLE_ABORTED_BY_CALLBACK;
	}
	xfer_collect(wk);
	curl_multi_remove_handle(wk->m, wk->e);
}

/*
 * Drive the transfer once: let curl move data, then wait (at most
 * poll_ms) for more.  Leaves wk->running 0 when it is over: done, failed,
 * stalled or cancelled (wk->res says which).
 */
static void
xfer_step(struct worker *wk)
{
	struct fetch_pool *p = wk->p;
	int running = 0;

	if (curl_multi_perform(wk->m, &running) != CURLM_OK) {
		wk->res = CURLE_OUT_OF_MEMORY;
		wk->running = 0;
		return;
	}
	if (!running) {
		wk->running = 0;
		xfer_collect(wk);
		return;
	}
	if (runctl_cancelled(p->o.ctl)) {
		wk->res = CURLE_ABORTED_BY_CALLBACK;
		wk->running = 0;
		return;
	}
	if (runctl_now_ms() - wk->last_rx_ms > wk->stall_ms) {
		snprintf(wk->errbuf, sizeof(wk->errbuf), "no data for %ld s "
		    "(--stall-timeout)", p->o.stall_timeout_s);
		wk->res = CURLE_OPERATION_TIMEDOUT;
		wk->running = 0;
		return;
	}
	if (curl_multi_poll(wk->m, NULL, 0, wk->poll_ms, NULL) != CURLM_OK) {
		wk->res = CURLE_OUT_OF_MEMORY;
		wk->running = 0;
	}
}

/*
 * unpack_source for unpack_stream: the next bytes of a 200 answer, read
 * back from the temporary as curl writes them there; drives the transfer
 * while it has nothing new.
 */
static long
answer_read(void *arg, void *buf, size_t len)
{
	struct worker *wk = arg;
	ssize_t n;

	for (;;) {
		if (wk->rd_off < wk->filed) {
			if (len > wk->filed - wk->rd_off)
				len = (size_t)(wk->filed - wk->rd_off);
			n = pread(wk->fd, buf, len, (off_t)wk->rd_off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				wk->write_errno = n < 0 ? errno : EIO;
				return (-1);
			}
			wk->rd_off += (uint64_t)n;
			return ((long)n);
		}
		if (!wk->running)
			return (wk->res == CURLE_OK && wk->status == 200 &&
			    wk->write_errno == 0 ? 0 : -1);
		xfer_step(wk);
	}
}

/*
 * One request for ${w}, its answer unpacked while it arrives if it is a
 * 200 (*${us} = the result, *${pp} the commit left to do; else
 * UNPACK_SOURCE: nothing unpacked).
 * Returns the transfer's CURLcode, or -1 if the temporary file could not
 * be made (wk->write_errno set).
 */
static int
download(struct worker *wk, const struct window *w, enum unpack_status *us,
    struct unpack_stats *ust, struct unpack_pending **pp, char *why,
    size_t whylen)
{
	struct fetch_pool *p = wk->p;
	struct unpack_source src = { answer_read, wk };

	*us = UNPACK_SOURCE;
	if (xfer_begin(wk, w) != 0)
		return (wk->write_errno ? -1 : wk->res);
	/* Until the status is known: a body byte, or the end. */
	while (wk->running && wk->bytes == 0)
		xfer_step(wk);
	if (wk->status == 200 && (wk->running || wk->res == CURLE_OK)) {
		memset(ust, 0, sizeof(*ust));
		*us = unpack_stream(&src, wk->tmp, p->o.data_dir, w->first,
		    w->n, p->o.format, &p->o.unpack, &p->o.ctl->cancel, ust,
		    why, whylen, pp);
	}
	/* Whatever the unpacking left: the rest of the answer (error bodies
	 * are small), or an abort if unpacking stopped early. */
	while (wk->running && *us == UNPACK_SOURCE)
		xfer_step(wk);
	xfer_end(wk);
	if (close(wk->fd) && wk->write_errno == 0 && wk->res == CURLE_OK)
		wk->write_errno = errno;
	wk->fd = -1;
	return (wk->res);
}

static void
fail_window(struct fetch_pool *p, const struct window *w, const char *why)
{
	char name[64];

	window_name(w, name, sizeof(name));
	atomic_fetch_add(&p->o.ctl->st.hours_failed, (uint64_t)w->n);
	log_error(p->o.lg, "hours %s failed: %s", name, why);
}

static void
hours_done(struct fetch_pool *p, const struct window *w)
{
	for (int i = 0; i < w->n; i++)
		if (p->o.on_hour)
			p->o.on_hour(p->o.on_hour_ctx, w->first + i);
	runctl_progress(p->o.ctl, 0);
}

/* Push the two halves of ${w}; the caller finishes ${w} itself. */
static void
split_window(struct worker *wk, const struct window *w)
{
	struct fetch_pool *p = wk->p;
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
	h[0]->first = w->first;
	h[0]->n = n1;
	h[1]->first = w->first + n1;
	h[1]->n = w->n - n1;
	h[0]->attempts = h[1]->attempts = 0;
	atomic_fetch_add(&p->o.ctl->st.splits, 1);
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

/* Wait for the pool-wide 429 pause, if any.  -1 if cancelled. */
static int
wait_pool(struct worker *wk)
{
	struct fetch_pool *p = wk->p;
	int64_t until, now;

	pthread_mutex_lock(&p->mu);
	until = p->not_before_ms;
	pthread_mutex_unlock(&p->mu);
	now = runctl_now_ms();
	if (until > now)
		return (runctl_sleep(p->o.ctl, until - now));
	return (runctl_cancelled(p->o.ctl) ? -1 : 0);
}

static uint32_t
xorshift(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (*s = x);
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
		fail_window(p, w, "out of memory");
		runctl_cancel(p->o.ctl, STOP_IO);
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
		fail_window(p, &d->w, why);
		runctl_cancel(ctl, STOP_IO);
		return;
	}
	window_name(&d->w, name, sizeof(name));
	if (!d->ust.streamed)
		atomic_fetch_add(&ctl->st.reread, 1);
	atomic_fetch_add(&ctl->st.hours_data, d->ust.hours_data);
	atomic_fetch_add(&ctl->st.hours_empty, d->ust.hours_empty);
	atomic_fetch_add(&ctl->st.bytes_out, d->ust.bytes_out);
	atomic_fetch_add(&ctl->st.events, d->ust.events);
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
		fail_window(p, w, why);
		runctl_cancel(p->o.ctl, STOP_IO);
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
 * what it was (returns 0).  Removes the temporary either way.
 */
static int
answered(struct worker *wk, const struct window *w, int res,
    const char *name, char *why, size_t whylen, enum retry_action *act)
{
	struct fetch_pool *p = wk->p;
	char snippet[160];

	if (res < 0 || wk->write_errno) {
		snprintf(why, whylen, "cannot write %.300s: %s", wk->tmp[0] ?
		    wk->tmp : p->o.data_dir, strerror(wk->write_errno));
		drop_tmp(wk);
		fail_window(p, w, why);
		runctl_cancel(p->o.ctl, STOP_IO);
		return (1);
	}
	drop_tmp(wk);
	if (res != CURLE_OK) {
		snprintf(why, whylen, "%s", wk->errbuf[0] ? wk->errbuf :
		    curl_easy_strerror((CURLcode)res));
		if (transport_fatal(res)) {
			fail_window(p, w, why);
			return (1);
		}
	} else {
		sanitize(wk->body, wk->bodylen, snippet, sizeof(snippet));
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

static void
process_window(struct worker *wk, struct window *w)
{
	struct fetch_pool *p = wk->p;
	struct runctl *ctl = p->o.ctl;
	char name[64], why[512];
	int res;

	window_name(w, name, sizeof(name));
	for (;;) {
		enum retry_action act;
		enum unpack_status us;
		struct unpack_stats ust;
		struct unpack_pending *pp = NULL;
		int64_t delay;

		if (wait_pool(wk))
			return;
		if (w->attempts > 0)
			atomic_fetch_add(&ctl->st.retries, 1);
		w->attempts++;
		res = download(wk, w, &us, &ust, &pp, why, sizeof(why));
		if (runctl_cancelled(ctl)) {
			unpack_discard(pp);
			drop_tmp(wk);
			return;
		}
		if (us != UNPACK_SOURCE) {
			/* A 200 answer, unpacked while it arrived. */
			drop_tmp(wk);
			atomic_fetch_add(&ctl->st.bytes_zip, wk->bytes);
			log_debug(p->o.lg, "request %s: answered (%" PRIu64
			    " bytes) -> unpack %s%s", name, wk->bytes,
			    unpack_status_name(us), us == UNPACK_OK &&
			    !ust.streamed ? " (read again from the file)" : "");
			if (unpacked(p, w, us, pp, &ust, why, &act))
				return;
		} else if (answered(wk, w, res, name, why, sizeof(why), &act)) {
			return;
		}

		switch (act) {
		case RETRY_DONE:
			break;
		case RETRY_EMPTY:
			for (int i = 0; i < w->n; i++) {
				if (localdir_write_empty(p->o.data_dir,
				    p->o.format != UNPACK_FMT_JSONL,
				    w->first + i, why, sizeof(why))) {
					fail_window(p, w, why);
					runctl_cancel(ctl, STOP_IO);
					return;
				}
			}
			(void)localdir_sync(p->o.data_dir);
			atomic_fetch_add(&ctl->st.hours_empty, (uint64_t)w->n);
			log_info(p->o.lg, "fetched %s: no data (404), %d empty "
			    "hours", name, w->n);
			hours_done(p, w);
			return;
		case RETRY_SPLIT:
			log_info(p->o.lg, "%s: %s; splitting the window", name,
			    why);
			split_window(wk, w);
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
			if (atomic_exchange(&p->auth_logged, 1) == 0) {
				char u[512];
				url_for_log(p->o.api_url, u, sizeof(u));
				log_error(p->o.lg, "the Export API refused the "
				    "credentials (HTTP %ld): check AMP_API_KEY "
				    "and AMP_SECRET_KEY, and the data region "
				    "(--region us|eu, now %s)", wk->status, u);
			}
			atomic_fetch_add(&ctl->st.hours_failed, (uint64_t)w->n);
			runctl_cancel(ctl, STOP_AUTH);
			return;
		case RETRY_BACKOFF:
		case RETRY_SLOWDOWN:
			if (w->attempts >= p->o.max_attempts) {
				char msg[700];
				snprintf(msg, sizeof(msg), "giving up after %d "
				    "attempts; last: %s", w->attempts, why);
				fail_window(p, w, msg);
				return;
			}
			atomic_fetch_add(&ctl->st.retry_by_code[res ==
			    CURLE_OK && wk->status > 0 && wk->status < 600 ?
			    wk->status : 0], 1);
			delay = retry_delay_ms(w->attempts,
			    act == RETRY_SLOWDOWN ? wk->retry_after_ms : -1,
			    p->o.retry_base_ms, p->o.retry_max_ms,
			    xorshift(&wk->rnd));
			log_warn(p->o.lg, "%s: %s; retry %d/%d in %" PRId64
			    " ms", name, why, w->attempts,
			    p->o.max_attempts - 1, delay);
			if (act == RETRY_SLOWDOWN) {
				int64_t until = runctl_now_ms() + delay;
				pthread_mutex_lock(&p->mu);
				if (until > p->not_before_ms)
					p->not_before_ms = until;
				pthread_mutex_unlock(&p->mu);
			} else if (runctl_sleep(ctl, delay)) {
				return;
			}
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

static int
worker_init(struct worker *wk, struct fetch_pool *p, int i)
{
	const struct fetch_opts *o = &p->o;

	wk->p = p;
	wk->fd = -1;
	wk->rnd = (uint32_t)(0x9e3779b9u * (uint32_t)(i + 1)) ^
	    (uint32_t)runctl_now_ms() ^ (uint32_t)getpid();
	if (wk->rnd == 0)
		wk->rnd = 1;
	if ((wk->e = curl_easy_init()) == NULL ||
	    (wk->m = curl_multi_init()) == NULL)
		return (-1);
	curl_easy_setopt(wk->e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(wk->e, CURLOPT_USERNAME, o->api_key);
	curl_easy_setopt(wk->e, CURLOPT_PASSWORD, o->secret_key);
	curl_easy_setopt(wk->e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(wk->e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(wk->e, CURLOPT_WRITEDATA, wk);
	curl_easy_setopt(wk->e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(wk->e, CURLOPT_HEADERDATA, wk);
	curl_easy_setopt(wk->e, CURLOPT_ERRORBUFFER, wk->errbuf);
	curl_easy_setopt(wk->e, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
	curl_easy_setopt(wk->e, CURLOPT_USERAGENT, version_user_agent());
	curl_easy_setopt(wk->e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(wk->e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(wk->e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(wk->e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(wk->e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_bundle)
		curl_easy_setopt(wk->e, CURLOPT_CAINFO, o->ca_bundle);
	return (0);
}

/* A thread of ${p} could not be started (${rc}): cancel the run, let the
 * threads already started end, free ${p}.  Returns NULL. */
static struct fetch_pool *
start_failed(struct fetch_pool *p, int rc)
{
	log_error(p->o.lg, "pthread_create: %s", strerror(rc));
	runctl_cancel(p->o.ctl, STOP_IO);
	fetch_plan_done(p);
	fetch_join(p);
	return (NULL);
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
		log_error(opts->lg, "pthread_mutex_init: %s", strerror(rc));
		free(p);
		return (NULL);
	}
	if ((p->q = queue_init((size_t)(opts->queue_cap > 0 ?
	    opts->queue_cap : 1))) == NULL ||
	    (p->cq = queue_init((size_t)p->nw + 1)) == NULL ||
	    (p->w = calloc((size_t)p->nw, sizeof(*p->w))) == NULL)
		goto fail;
	for (int i = 0; i < p->nw; i++)
		if (worker_init(&p->w[i], p, i))
			goto fail;
	if (runctl_add_hook(opts->ctl, pool_wake, p))
		goto fail;
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
	if (p->w)
		for (int i = 0; i < p->nw; i++) {
			curl_multi_cleanup(p->w[i].m);
			curl_easy_cleanup(p->w[i].e);
		}
	free(p->w);
	queue_free(p->cq);
	queue_free(p->q);
	pthread_mutex_destroy(&p->mu);
	free(p);
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
	/* No worker hands anything over any more: let the committer finish
	 * what it has, then end. */
	queue_close(p->cq);
	for (int i = 0; i < p->ncommitters; i++)
		pthread_join(p->committer[i], NULL);
	runctl_remove_hook(p->o.ctl, pool_wake, p);
	while (queue_trypop(p->q, &item) == 0)
		free(item);
	while (queue_trypop(p->cq, &item) == 0) {
		unpack_discard(((struct done_window *)item)->pp);
		free(item);
	}
	for (int i = 0; i < p->nw; i++) {
		drop_tmp(&p->w[i]);
		curl_multi_cleanup(p->w[i].m);
		curl_easy_cleanup(p->w[i].e);
	}
	free(p->w);
	queue_free(p->cq);
	queue_free(p->q);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
