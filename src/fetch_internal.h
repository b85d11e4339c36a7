#ifndef AMP2S3_FETCH_INTERNAL_H
#define AMP2S3_FETCH_INTERNAL_H
/*
 * fetch_internal: what the files of the fetch module share (see fetch.h;
 * the DESIGN comment is in fetch.c).  fetch.c owns the pool, its threads
 * and what to do with an answer; fetch_xfer.c performs one request of a
 * worker and unpacks its answer while it arrives.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "cancel.h"
#include "fetch.h"
#include "stall.h"

struct afile;
struct queue;

/*
 * Bounds on one answer (200): the Export API refuses (400) a window
 * whose export exceeds 4 GB, and a window of N hours holds at most N
 * hours of --max-hour-mb each; FETCH_ANSWER_SLACK covers the zip's and
 * the gzip members' own bytes (headers, central directory) on top.
 */
#define FETCH_API_MAX_ANSWER ((uint64_t)4 << 30)
#define FETCH_ANSWER_SLACK ((uint64_t)64 << 20)

/* Why an answer was refused while it arrived (the transfer is stopped). */
enum answer_refusal {
	ANSWER_OK = 0,
	ANSWER_NOT_ZIP,    /* its first bytes are not a zip local header */
	ANSWER_TOO_LARGE   /* beyond the window's bound */
};

/* A worker: its thread, its curl handles, and one request's state. */
struct worker {
	struct fetch_pool *p;
	pthread_t th;
	int started;
	CURL *e;
	CURLM *m;
	uint32_t rnd;             /* retry_jitter() state */
	char errbuf[CURL_ERROR_SIZE];

	/* Per attempt (fetch_xfer.c). */
	struct afile *zip;        /* the answer, written and read back */
	long status;
	int write_errno;
	int64_t retry_after_ms;
	uint64_t bytes;           /* body bytes received */
	uint64_t rd_off;          /* of which handed to unpack_stream */
	uint64_t max_answer;      /* the most a 200 answer may hold */
	unsigned char head[4];    /* its first bytes */
	size_t headlen;
	enum answer_refusal refused;
	struct stall stall;
	int poll_ms;
	int running;              /* the transfer is in progress */
	int res;                  /* its CURLcode once over */
	char body[256];           /* start of a non-200 body */
	size_t bodylen;
};

/* Committer threads: one per worker, at most this many. */
#define FETCH_MAX_COMMITTERS 8

struct fetch_pool {
	struct fetch_opts o;
	struct queue *q;          /* struct window, for the workers */
	struct queue *cq;         /* struct done_window, for the committers */
	pthread_t committer[FETCH_MAX_COMMITTERS];
	int ncommitters;          /* started */
	struct worker *w;
	int nw;
	struct limiter *lim;      /* requests at once (its own lock) */
	struct cancel_hook hook;  /* pool_wake on cancel */
	pthread_mutex_t mu;       /* outstanding, plan_done, not_before_ms */
	uint64_t outstanding;
	int plan_done;
	int64_t not_before_ms;
	atomic_int auth_logged;
};

/* fetch_xfer.c */

/* fetch_worker_init(wk, p, i): worker ${i}'s curl handles.  0 or -1. */
int fetch_worker_init(struct worker *wk, struct fetch_pool *p, int i);

/* fetch_worker_fini(wk): free what fetch_worker_init() made. */
void fetch_worker_fini(struct worker *wk);

/*
 * fetch_download(wk, w, us, ust, pp, why, whylen): one request for ${w};
 * a 200 answer is unpacked while it arrives (*${us} its status, *${ust}
 * its counts, *${pp} the commit left to do), else *${us} is
 * UNPACK_SOURCE and wk->status / wk->body say what came.  Returns the
 * transfer's CURLcode, or -1 if the answer's temporary file could not be
 * made (wk->write_errno set).  The temporary stays until
 * fetch_drop_answer().
 */
int fetch_download(struct worker *wk, const struct window *w,
    enum unpack_status *us, struct unpack_stats *ust,
    struct unpack_pending **pp, char *why, size_t whylen);

/* fetch_drop_answer(wk): remove the answer's temporary, if any. */
void fetch_drop_answer(struct worker *wk);

/* fetch_refusal(wk, why, whylen): what wk->refused means, in one line
 * (the answer's first bytes escaped, or the bound it exceeded). */
void fetch_refusal(const struct worker *wk, char *why, size_t whylen);

#endif
