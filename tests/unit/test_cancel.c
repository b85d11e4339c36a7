/* Unit tests: cancel (flag, reason, sleep, wait, hooks) and errbuf. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "cancel.h"
#include "errbuf.h"
#include "unit.h"

static void
count_hook(void *arg)
{
	(*(int *)arg)++;
}

static void
test_flag_and_hooks(void)
{
	struct cancel *c = cancel_new();
	struct cancel_hook h1, h2, h3;
	int n1 = 0, n2 = 0, n3 = 0;

	CHECK(c != NULL);
	CHECK_EQ_INT(cancel_requested(c), 0);
	CHECK_EQ_INT(cancel_requested(NULL), 0);
	cancel_hook_add(c, &h1, count_hook, &n1);
	cancel_hook_add(c, &h2, count_hook, &n2);
	cancel_hook_remove(c, &h2);
	CHECK_EQ_INT(cancel_sleep(c, 5), 0);
	CHECK_EQ_INT(cancel_trigger(c, 7), 1);
	CHECK_EQ_INT(cancel_trigger(c, 9), 0);   /* first reason wins */
	CHECK_EQ_INT(cancel_reason(c), 7);
	CHECK_EQ_INT(n1, 1);                     /* hooks run once */
	CHECK_EQ_INT(n2, 0);                     /* removed */
	cancel_hook_add(c, &h3, count_hook, &n3); /* late: at once */
	CHECK_EQ_INT(n3, 1);
	CHECK_EQ_INT(cancel_sleep(c, 60000), -1);
	cancel_hook_remove(c, &h1);
	cancel_hook_remove(c, &h3);
	cancel_free(c);
	CHECK_EQ_INT(cancel_sleep(NULL, 1), 0);
}

static void *
trigger_later(void *arg)
{
	struct cancel *c = arg;

	/* Wait until the sleeper has started to wait (no hard timing). */
	(void)cancel_sleep(NULL, 50);
	cancel_trigger(c, 2);
	return (NULL);
}

/* A sleeper is woken by the trigger, long before its time. */
static void
test_sleep_woken(void)
{
	struct cancel *c = cancel_new();
	pthread_t th;
	int64_t t0;

	CHECK(pthread_create(&th, NULL, trigger_later, c) == 0);
	t0 = cancel_clock_ms();
	CHECK_EQ_INT(cancel_sleep(c, 600000), -1);
	CHECK(cancel_clock_ms() - t0 < 60000);
	pthread_join(th, NULL);
	cancel_free(c);
}

/* A condition of the test's own, for cancel_wait(). */
struct cond {
	pthread_mutex_t mu;
	int open;      /* what ready() waits for */
	int asked;     /* ready() calls */
	struct cancel *c;
	int rc;        /* cancel_wait()'s result */
	int done;
};

static int
cond_ready(void *arg)
{
	struct cond *k = arg;
	int v;

	pthread_mutex_lock(&k->mu);
	k->asked++;
	v = k->open;
	pthread_mutex_unlock(&k->mu);
	return (v);
}

static int
cond_get(struct cond *k, int *field)
{
	int v;

	pthread_mutex_lock(&k->mu);
	v = *field;
	pthread_mutex_unlock(&k->mu);
	return (v);
}

static void *
waiter(void *arg)
{
	struct cond *k = arg;
	int rc = cancel_wait(k->c, cond_ready, k);

	pthread_mutex_lock(&k->mu);
	k->rc = rc;
	k->done = 1;
	pthread_mutex_unlock(&k->mu);
	return (NULL);
}

/* Poll (bounded) until *${field} of ${k} is at least ${want}. */
static int
cond_reached(struct cond *k, int *field, int want)
{
	for (int i = 0; i < 10000; i++) {
		if (cond_get(k, field) >= want)
			return (1);
		(void)cancel_sleep(NULL, 1);
	}
	return (0);
}

/* cancel_wait(): ready at once; woken by a notify after the condition
 * changed; ended by a trigger; not even asked once cancelled. */
static void
test_wait_notify(void)
{
	struct cond k = { .mu = PTHREAD_MUTEX_INITIALIZER };
	pthread_t th;

	CHECK((k.c = cancel_new()) != NULL);
	k.open = 1;
	CHECK_EQ_INT(cancel_wait(k.c, cond_ready, &k), 0);
	CHECK_EQ_INT(k.asked, 1);

	/* A waiter that found the condition closed wakes on the notify. */
	k.open = 0;
	k.asked = 0;
	CHECK(pthread_create(&th, NULL, waiter, &k) == 0);
	CHECK(cond_reached(&k, &k.asked, 1));
	cancel_notify(k.c);             /* nothing changed: waits on */
	CHECK(cond_reached(&k, &k.asked, 2));
	CHECK_EQ_INT(cond_get(&k, &k.done), 0);
	pthread_mutex_lock(&k.mu);
	k.open = 1;
	pthread_mutex_unlock(&k.mu);
	cancel_notify(k.c);
	/* Bounded: a waiter the notify missed fails the test, then the
	 * trigger lets it go. */
	if (!cond_reached(&k, &k.done, 1)) {
		CHECK(!"the notify woke the waiter");
		cancel_trigger(k.c, 9);
	}
	pthread_join(th, NULL);
	CHECK_EQ_INT(k.done, 1);
	CHECK_EQ_INT(k.rc, 0);

	/* A trigger ends the wait with -1. */
	k.open = 0;
	k.asked = 0;
	k.done = 0;
	CHECK(pthread_create(&th, NULL, waiter, &k) == 0);
	CHECK(cond_reached(&k, &k.asked, 1));
	cancel_trigger(k.c, 3);
	pthread_join(th, NULL);
	CHECK_EQ_INT(k.rc, -1);

	/* Already cancelled: -1 at once, ready() not called. */
	k.open = 1;
	k.asked = 0;
	CHECK_EQ_INT(cancel_wait(k.c, cond_ready, &k), -1);
	CHECK_EQ_INT(k.asked, 0);
	cancel_notify(NULL);
	cancel_free(k.c);
}

static void
test_errbuf(void)
{
	char out[32], err[64];
	const char *s;

	CHECK_EQ_STR(errbuf_escape("ab\"c\\\n\x01\xff", 8, out, sizeof(out)),
	    "ab\\x22c\\x5c\\x0a\\x01\\xff");
	CHECK_EQ_STR(errbuf_escape("\0x", 2, out, sizeof(out)), "\\x00x");
	/* Cut at a whole escape, "..." when more follows. */
	CHECK_EQ_STR(errbuf_escape("abcdefgh", 8, out, 8), "abcd...");
	CHECK_EQ_STR(errbuf_escape("\x01\x02\x03", 3, out, 10), "\\x01...");
	CHECK_EQ_STR(errbuf_escape("abc", 3, out, 4), "abc");
	errno = 42;
	s = ERRSTR(ENOENT);
	CHECK(strstr(s, "No such file") != NULL);
	CHECK_EQ_INT(errno, 42);
	CHECK_EQ_INT(errbuf_set(err, sizeof(err), "x %d", 5), -1);
	CHECK_EQ_STR(err, "x 5");
	CHECK_EQ_INT(errno, 42);
}

UNIT_MAIN("cancel",
    TEST(test_flag_and_hooks),
    TEST(test_sleep_woken),
    TEST(test_wait_notify),
    TEST(test_errbuf))
