#ifndef AMP2S3_QUEUE_H
#define AMP2S3_QUEUE_H
/*
 * queue: a bounded, blocking, multi-producer multi-consumer FIFO of
 * pointers.  The queue never owns the items: whoever pops one owns it.
 *
 * Producers block in queue_push() while the queue holds ${cap} items;
 * consumers block in queue_pop() while it is empty.  queue_close() wakes
 * every waiter: after it, pushes fail and pops drain what is left, then
 * report the end.  All functions are thread-safe except queue_free().
 */
#include <stddef.h>

struct queue;

/* queue_init(cap): a new empty queue of capacity ${cap} >= 1, or NULL. */
struct queue *queue_init(size_t cap);

/*
 * queue_push(q, item): append ${item}, waiting while the queue is full.
 * Returns 0, or -1 if the queue is (or becomes, while waiting) closed; the
 * item then stays with the caller.
 */
int queue_push(struct queue *q, void *item);

/*
 * queue_push_urgent(q, item): put ${item} at the head, ignoring the bound
 * (used to re-queue work a consumer already held, which must never wait on
 * the bound it is itself responsible for draining).  Items pushed this way
 * come out last-in first-out, before every ordinary item.  Returns 0, or -1
 * if closed or out of memory (the queue grows past ${cap} only here); the
 * item then stays with the caller.
 */
int queue_push_urgent(struct queue *q, void *item);

/*
 * queue_pop(q, item): take the item at the head (the oldest, unless urgent
 * items wait), waiting while the queue is empty and open.  Returns 0 with
 * *${item} set, or 1 when the queue is closed and empty.
 */
int queue_pop(struct queue *q, void **item);

/*
 * queue_trypop(q, item): like queue_pop() but never waits.  Returns 0 with
 * *${item} set, 1 if closed and empty, 2 if open and empty.
 */
int queue_trypop(struct queue *q, void **item);

/* queue_close(q): refuse further pushes and wake every waiter.  Idempotent. */
void queue_close(struct queue *q);

/* queue_len(q): the number of items now queued (a snapshot). */
size_t queue_len(struct queue *q);

/* queue_free(q): free the queue (not the items).  NULL is a no-op.  No
 * thread may be using ${q}. */
void queue_free(struct queue *q);

#endif
