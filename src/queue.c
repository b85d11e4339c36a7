/*
 * queue: bounded blocking MPMC FIFO of pointers.
 *
 * DESIGN
 * - State: one ring buffer ${items} of ${alloc} slots holding ${n} items
 *   from index ${head}, guarded by the mutex ${mu}.  ${alloc} starts at
 *   ${cap} and grows (doubling, under the mutex) only when an urgent push
 *   finds every slot taken; ordinary pushes never make it grow, because
 *   they wait while n >= cap.  So n may exceed cap only by urgent items.
 * - Conditions: ${not_empty} (consumers wait while n == 0 and open) and
 *   ${not_full} (producers wait while n >= cap and open).  A push signals
 *   one consumer, a pop signals one producer; queue_close() broadcasts
 *   both so every waiter re-checks ${closed} and leaves.
 * - Ordering: ordinary pushes append at the tail; urgent pushes insert at
 *   the head (the slot before ${head}), so the last urgent item pushed is
 *   the next one popped.  Pops always take from the head.
 * - Closing: after queue_close() pushes fail (-1), pops keep draining what
 *   is queued and then report the end (1).  A producer waiting on a full
 *   queue when it is closed returns -1 and keeps its item.
 * - Errors: pthread_mutex_lock/unlock and pthread_cond_wait/signal/
 *   broadcast fail only on misuse (a destroyed or corrupt object); the
 *   queue's invariants could not be trusted afterwards, so such a failure
 *   is reported on stderr and aborts.  Initialisation failures return NULL.
 * - The mutex is never held while calling out of this file.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "queue.h"

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	void **items;   /* ring of ${alloc} slots */
	size_t alloc;   /* slots allocated, >= cap */
	size_t cap;     /* bound for ordinary pushes */
	size_t head;    /* index of the oldest item */
	size_t n;       /* items queued */
	int closed;
};

/* Report a pthread failure ${rc} in ${what} and abort (see DESIGN). */
static void
die(const char *what, int rc)
{

	fprintf(stderr, "queue: %s: %s\n", what, ERRSTR(rc));
	abort();
}

static void
lock(struct queue *q)
{
	int rc;

	if ((rc = pthread_mutex_lock(&q->mu)) != 0)
		die("pthread_mutex_lock", rc);
}

static void
unlock(struct queue *q)
{
	int rc;

	if ((rc = pthread_mutex_unlock(&q->mu)) != 0)
		die("pthread_mutex_unlock", rc);
}

static void
wait_on(pthread_cond_t *c, struct queue *q)
{
	int rc;

	if ((rc = pthread_cond_wait(c, &q->mu)) != 0)
		die("pthread_cond_wait", rc);
}

static void
signal_one(pthread_cond_t *c)
{
	int rc;

	if ((rc = pthread_cond_signal(c)) != 0)
		die("pthread_cond_signal", rc);
}

static void
signal_all(pthread_cond_t *c)
{
	int rc;

	if ((rc = pthread_cond_broadcast(c)) != 0)
		die("pthread_cond_broadcast", rc);
}

struct queue *
queue_init(size_t cap)
{
	struct queue *q;
	int rc;

	if (cap < 1 || cap > SIZE_MAX / 2 / sizeof(void *)) {
		errno = EINVAL;
		return (NULL);
	}
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return (NULL);
	if ((q->items = calloc(cap, sizeof(void *))) == NULL)
		goto err0;
	q->alloc = q->cap = cap;
	if ((rc = pthread_mutex_init(&q->mu, NULL)) != 0)
		goto err1;
	if ((rc = pthread_cond_init(&q->not_empty, NULL)) != 0)
		goto err2;
	if ((rc = pthread_cond_init(&q->not_full, NULL)) != 0)
		goto err3;

	/* Success! */
	return (q);

err3:
	(void)pthread_cond_destroy(&q->not_empty);
err2:
	(void)pthread_mutex_destroy(&q->mu);
err1:
	errno = rc;
	free(q->items);
err0:
	free(q);

	/* Failure! */
	return (NULL);
}

/*
 * Double the ring, keeping the items in order from index 0.  Called with
 * the mutex held.  Returns 0, or -1 on allocation failure (queue intact).
 */
static int
grow(struct queue *q)
{
	void **ni;
	size_t na;

	if (q->alloc > SIZE_MAX / 2 / sizeof(void *))
		return (-1);
	na = q->alloc * 2;
	if ((ni = malloc(na * sizeof(void *))) == NULL)
		return (-1);
	for (size_t i = 0; i < q->n; i++)
		ni[i] = q->items[(q->head + i) % q->alloc];
	free(q->items);
	q->items = ni;
	q->alloc = na;
	q->head = 0;
	return (0);
}

int
queue_push(struct queue *q, void *item)
{

	lock(q);
	while (!q->closed && q->n >= q->cap)
		wait_on(&q->not_full, q);
	if (q->closed) {
		unlock(q);
		return (-1);
	}
	/* n < cap <= alloc: a free slot exists at the tail. */
	q->items[(q->head + q->n) % q->alloc] = item;
	q->n++;
	signal_one(&q->not_empty);
	unlock(q);
	return (0);
}

int
queue_push_urgent(struct queue *q, void *item)
{

	lock(q);
	if (q->closed || (q->n == q->alloc && grow(q))) {
		unlock(q);
		return (-1);
	}
	q->head = (q->head + q->alloc - 1) % q->alloc;
	q->items[q->head] = item;
	q->n++;
	signal_one(&q->not_empty);
	unlock(q);
	return (0);
}

/* Take the head item into *${item}.  Mutex held, n > 0. */
static void
take(struct queue *q, void **item)
{

	*item = q->items[q->head];
	q->items[q->head] = NULL;
	q->head = (q->head + 1) % q->alloc;
	q->n--;
	/* Only an ordinary producer waits, and only while n >= cap. */
	if (q->n < q->cap)
		signal_one(&q->not_full);
}

int
queue_pop(struct queue *q, void **item)
{

	lock(q);
	while (q->n == 0 && !q->closed)
		wait_on(&q->not_empty, q);
	if (q->n == 0) {
		unlock(q);
		return (1);
	}
	take(q, item);
	unlock(q);
	return (0);
}

int
queue_trypop(struct queue *q, void **item)
{
	int r;

	lock(q);
	if (q->n > 0) {
		take(q, item);
		r = 0;
	} else {
		r = q->closed ? 1 : 2;
	}
	unlock(q);
	return (r);
}

void
queue_close(struct queue *q)
{

	lock(q);
	q->closed = 1;
	signal_all(&q->not_empty);
	signal_all(&q->not_full);
	unlock(q);
}

size_t
queue_len(struct queue *q)
{
	size_t n;

	lock(q);
	n = q->n;
	unlock(q);
	return (n);
}

void
queue_free(struct queue *q)
{

	if (q == NULL)
		return;
	/* No thread uses ${q}: destroying cannot fail (EBUSY is misuse). */
	(void)pthread_cond_destroy(&q->not_full);
	(void)pthread_cond_destroy(&q->not_empty);
	(void)pthread_mutex_destroy(&q->mu);
	free(q->items);
	free(q);
}
