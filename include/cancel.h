#ifndef AMP2S3_CANCEL_H
#define AMP2S3_CANCEL_H
/*
 * cancel: a run's one way to stop — a flag with the reason it was set,
 * the one sleep every retry and backoff waits in, the one wait for a
 * condition of the caller's (cancel_wait: a free slot of a pool), and
 * wake hooks that interrupt whatever a thread blocks in (a transfer, a
 * queue).
 *
 * cancel_trigger() sets the flag (the first reason wins), calls every
 * registered hook and wakes every cancel_sleep(), so no thread waits
 * longer than its current library call.  The lower modules (s3, unpack,
 * localdir, fetch, upload) see only this; the run's counters and progress
 * live in runctl, which owns one.
 *
 * Thread-safety: every function but cancel_free() may be called from any
 * thread.  Lock: one mutex, a leaf but for the hooks, which run under it:
 * a hook must not block, and must not take a lock that is ever held while
 * calling into this module (curl_multi_wakeup() and queue_close() are the
 * hooks in use; neither calls back here).
 */
#include <stdint.h>

struct cancel;

/* A hook: a struct the caller embeds in its own object (no allocation);
 * it must stay valid until cancel_hook_remove(). */
struct cancel_hook {
	void (*fn)(void *arg);
	void *arg;
	struct cancel_hook *next;   /* private */
};

/* cancel_new(): a flag not set, or NULL (errno set). */
struct cancel *cancel_new(void);

/* cancel_free(c): no thread may use ${c} any more.  NULL is a no-op. */
void cancel_free(struct cancel *c);

/*
 * cancel_trigger(c, why): set the flag with the reason ${why} (non-zero;
 * the first reason set is kept), run the hooks, wake the sleepers.
 * Idempotent: hooks run once.  Returns 1 if this call set the flag.
 */
int cancel_trigger(struct cancel *c, int why);

/* cancel_requested(c): non-zero once triggered; lock-free.  ${c} NULL:
 * never cancelled (for callers that run without one, e.g. tests). */
int cancel_requested(const struct cancel *c);

/* cancel_reason(c): the first ${why} given, or 0. */
int cancel_reason(const struct cancel *c);

/*
 * cancel_sleep(c, ms): wait ${ms} milliseconds of the monotonic clock,
 * or until triggered.  Returns 0 if the time passed, -1 if cancelled
 * (at once if already cancelled).  ${c} NULL: an uncancellable sleep.
 */
int cancel_sleep(struct cancel *c, int64_t ms);

/*
 * cancel_hook_add(c, h, fn, arg): call fn(arg) when ${c} is triggered —
 * at once, before returning, if it already was.  cancel_hook_remove(c,
 * h): forget ${h} (call it before ${arg} goes away); a no-op if ${h} is
 * not registered.  ${c} NULL: both are no-ops.
 */
void cancel_hook_add(struct cancel *c, struct cancel_hook *h,
    void (*fn)(void *), void *arg);
void cancel_hook_remove(struct cancel *c, struct cancel_hook *h);

/* cancel_clock_ms(): the monotonic clock cancel_sleep() counts in, in
 * milliseconds. */
int64_t cancel_clock_ms(void);

/*
 * cancel_wait(c, ready, arg): wait, without a time limit, until
 * ready(${arg}) returns non-zero or ${c} is triggered.  ready() is called
 * under the flag's mutex, first at once and then each time the waiter
 * wakes (cancel_notify(), a trigger, or the wake-ups of other waiters):
 * it may take a leaf lock of its own and change the caller's state
 * (e.g. take a free slot), and must not call into this module.  Whoever
 * changes what ready() looks at calls cancel_notify(c) afterwards (not
 * while holding a lock ready() takes).  Returns 0 once ready() returned
 * non-zero, -1 if cancelled (at once, without calling ready(), if
 * already cancelled).  ${c} must not be NULL.
 */
int cancel_wait(struct cancel *c, int (*ready)(void *), void *arg);

/* cancel_notify(c): wake every cancel_wait() so that it calls its ready()
 * again (cancel_sleep()s wake too, and go back to sleep).  ${c} NULL: a
 * no-op. */
void cancel_notify(struct cancel *c);

#endif
