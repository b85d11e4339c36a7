/*
 * fetch_xfer: one export request of a worker — the transfer, driven
 * through the worker's own multi handle, and its answer unpacked while it
 * arrives (see fetch.c's DESIGN).
 *
 * A 200 answer streams into a temporary in the data directory (an
 * atomicfile handle that is never committed, only aborted) as it
 * arrives, unless it is refused on the way: the transfer is stopped as
 * soon as its first bytes are not a zip local header, or it exceeds the
 * window's bound (FETCH_API_MAX_ANSWER), so a hostile or broken server
 * never fills the disk.  While it arrives, unpack_stream() turns it into
 * hour files: its read callback (answer_read) reads the temporary back
 * up to what curl has written and, when it has caught up, drives the
 * transfer one step (xfer_step), so download, inflate and the writes
 * overlap in the worker's own thread.  No answer is ever held in
 * memory; only the first bytes of an error body are kept for messages.
 *
 * A transfer ends when curl says so, when the run is cancelled (a wake
 * hook interrupts curl_multi_poll), or when it stalls (stall.h: the same
 * rule as the S3 client's).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "errbuf.h"
#include "fetch_internal.h"
#include "retry.h"
#include "runctl.h"
#include "version.h"

/*
 * The bytes at ${p} (${len}) just arrived in a 200 answer, which now
 * holds wk->bytes: refuse it (set wk->refused, return 1) if it does not
 * start like a zip (local file header "PK\3\4"), announces or holds
 * more than wk->max_answer bytes.
 */
static int
refuse_answer(struct worker *wk, const char *p, size_t len)
{
	static const unsigned char LOCAL_HEADER[4] = { 'P', 'K', 3, 4 };
	curl_off_t announced = -1;
	size_t i;

	if (wk->headlen == 0 && curl_easy_getinfo(wk->e,
	    CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
	    announced > 0 && (uint64_t)announced > wk->max_answer)
		wk->refused = ANSWER_TOO_LARGE;
	for (i = 0; i < len && wk->headlen < sizeof(wk->head); i++)
		wk->head[wk->headlen++] = (unsigned char)p[i];
	if (memcmp(wk->head, LOCAL_HEADER, wk->headlen) != 0)
		wk->refused = ANSWER_NOT_ZIP;
	else if (wk->bytes > wk->max_answer)
		wk->refused = ANSWER_TOO_LARGE;
	return (wk->refused != ANSWER_OK);
}

void
fetch_refusal(const struct worker *wk, char *why, size_t whylen)
{
	char head[64];

	switch (wk->refused) {
	case ANSWER_NOT_ZIP:
		errbuf_escape(wk->head, wk->headlen, head, sizeof(head));
		snprintf(why, whylen, "the answer is not a zip (it starts "
		    "\"%s\"): transfer stopped", head);
		break;
	case ANSWER_TOO_LARGE:
		snprintf(why, whylen, "the answer exceeds %" PRIu64 " bytes, "
		    "the most this window's hours can hold: transfer stopped",
		    wk->max_answer);
		break;
	case ANSWER_OK:
	default:
		snprintf(why, whylen, "the answer was accepted");
		break;
	}
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct worker *wk = arg;
	size_t len = size * nmemb;

	if (wk->status == 0)
		curl_easy_getinfo(wk->e, CURLINFO_RESPONSE_CODE, &wk->status);
	wk->bytes += len;
	runctl_count(wk->p->o.ctl, RUN_BYTES_RECEIVED, len);
	stall_add(&wk->stall, len, cancel_clock_ms());
	if (wk->status != 200) {
		size_t room = sizeof(wk->body) - wk->bodylen;
		if (room > len)
			room = len;
		memcpy(wk->body + wk->bodylen, ptr, room);
		wk->bodylen += room;
		return (len);
	}
	if (refuse_answer(wk, ptr, len))
		return (0);
	if (afile_write(wk->zip, ptr, len, NULL, 0) != 0) {
		wk->write_errno = errno != 0 ? errno : EIO;
		return (0);
	}
	return (len);
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct worker *wk = arg;
	size_t len = size * nmemb;
	static const char name[] = "retry-after:";
	char val[128];

	stall_add(&wk->stall, len, cancel_clock_ms());
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

void
fetch_drop_answer(struct worker *wk)
{
	afile_abort(wk->zip);
	wk->zip = NULL;
}

/* The most bytes an answer for ${nhours} hours may hold (see
 * FETCH_API_MAX_ANSWER), with hours of at most ${max_hour} bytes (0: no
 * cap). */
static uint64_t
answer_bound(int nhours, uint64_t max_hour)
{
	uint64_t b = FETCH_API_MAX_ANSWER;

	if (max_hour != 0 && max_hour <= b / (uint64_t)nhours &&
	    max_hour * (uint64_t)nhours < b)
		b = max_hour * (uint64_t)nhours;
	return (b + FETCH_ANSWER_SLACK);
}

/*
 * Start one request for ${w}: the answer's body will land in wk->zip
 * (status 200) or wk->body (others).  0, or -1 if the temporary file
 * could not be made (wk->write_errno set) or curl refused.
 */
static int
xfer_begin(struct worker *wk, const struct window *w)
{
	struct fetch_pool *p = wk->p;
	char url[4096], a[HOUR_API_LEN], b[HOUR_API_LEN], name[4200];

	hour_format_api(w->first, a);
	hour_format_api(w->first + w->n - 1, b);
	wk->running = 0;
	wk->res = CURLE_OK;
	wk->headlen = 0;
	wk->refused = ANSWER_OK;  /* before any early return: see answered() */
	wk->status = 0;     /* no answer yet, whatever the last try got */
	if (snprintf(name, sizeof(name), "%s/w%s-%d.zip", p->o.data_dir, a,
	    w->n) >= (int)sizeof(name) ||
	    snprintf(url, sizeof(url), "%s%cstart=%s&end=%s", p->o.api_url,
	    strchr(p->o.api_url, '?') ? '&' : '?', a, b) >= (int)sizeof(url)) {
		wk->write_errno = ENAMETOOLONG;
		return (-1);
	}
	if ((wk->zip = afile_create(name, 0600, 0, NULL, 0)) == NULL) {
		wk->write_errno = errno;
		return (-1);
	}
	wk->status = 0;
	wk->write_errno = 0;
	wk->retry_after_ms = -1;
	wk->bytes = wk->rd_off = 0;
	wk->bodylen = 0;
	wk->max_answer = answer_bound(w->n, p->o.unpack.max_hour_bytes);
	wk->errbuf[0] = '\0';
	curl_easy_setopt(wk->e, CURLOPT_URL, url);
	if (curl_multi_add_handle(wk->m, wk->e) != CURLM_OK) {
		wk->res = CURLE_OUT_OF_MEMORY;
		return (-1);
	}
	runctl_count(p->o.ctl, RUN_REQUESTS, 1);
	stall_init(&wk->stall, (int64_t)p->o.stall_timeout_s * 1000,
	    p->o.min_speed, cancel_clock_ms());
	wk->poll_ms = p->o.stall_timeout_s * 1000 / STALL_SLOTS < 1000 ?
	    (int)(p->o.stall_timeout_s * 1000 / STALL_SLOTS) : 1000;
	if (wk->poll_ms < 20)
		wk->poll_ms = 20;
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
	if (stall_check(&wk->stall, cancel_clock_ms())) {
		snprintf(wk->errbuf, sizeof(wk->errbuf), "less than %" PRIu64
		    " bytes/s over the last %ld s", p->o.min_speed,
		    p->o.stall_timeout_s);
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
	uint64_t filed;
	ssize_t n;

	for (;;) {
		filed = afile_size(wk->zip);
		if (wk->rd_off < filed) {
			if (len > filed - wk->rd_off)
				len = (size_t)(filed - wk->rd_off);
			n = pread(afile_fd(wk->zip), buf, len,
			    (off_t)wk->rd_off);
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

int
fetch_download(struct worker *wk, const struct window *w,
    enum unpack_status *us, struct unpack_stats *ust,
    struct unpack_pending **pp, char *why, size_t whylen)
{
	struct fetch_pool *p = wk->p;
	struct unpack_source src = { answer_read, wk };

	*us = UNPACK_SOURCE;
	if (xfer_begin(wk, w) != 0)
		return (wk->write_errno ? -1 : wk->res);
	runctl_gauge_add(p->o.ctl, RUN_FETCH_INFLIGHT, 1);
	/* Until the status is known: a body byte, or the end. */
	while (wk->running && wk->bytes == 0)
		xfer_step(wk);
	if (wk->status == 200 && (wk->running || wk->res == CURLE_OK)) {
		memset(ust, 0, sizeof(*ust));
		*us = unpack_stream(&src, afile_tmp(wk->zip), p->o.data_dir,
		    w->first, w->n, p->o.format, &p->o.unpack,
		    runctl_cancel_flag(p->o.ctl), ust, why, whylen, pp);
	}
	/* Whatever the unpacking left: the rest of the answer (error bodies
	 * are small), or an abort if unpacking stopped early. */
	while (wk->running && *us == UNPACK_SOURCE)
		xfer_step(wk);
	xfer_end(wk);
	runctl_gauge_add(p->o.ctl, RUN_FETCH_INFLIGHT, -1);
	if (afile_close(wk->zip, 0, NULL, 0) != 0 && wk->write_errno == 0 &&
	    wk->res == CURLE_OK)
		wk->write_errno = errno;
	return (wk->res);
}

int
fetch_worker_init(struct worker *wk, struct fetch_pool *p, int i)
{
	const struct fetch_opts *o = &p->o;

	wk->p = p;
	wk->rnd = (uint32_t)(0x9e3779b9u * (uint32_t)(i + 1)) ^
	    (uint32_t)cancel_clock_ms() ^ (uint32_t)getpid();
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

void
fetch_worker_fini(struct worker *wk)
{
	fetch_drop_answer(wk);
	curl_multi_cleanup(wk->m);
	curl_easy_cleanup(wk->e);
}
