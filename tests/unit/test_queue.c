/*
 * Unit tests: the bounded MPMC queue.  Threads synchronise through the
 * queue itself and atomics, never through sleeps.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "queue.h"
#include "unit.h"

static int vals[64];

static void *
P(int i)
{

	return (&vals[i]);
}

static void
test_fifo(void)
{
	struct queue *q;
	void *it = NULL;

	CHECK(queue_init(0) == NULL);
	CHECK((q = queue_init(8)) != NULL);
	if (q == NULL)
		return;
	CHECK_EQ_INT(queue_trypop(q, &it), 2);
	/* Several laps around the ring. */
	for (int lap = 0; lap < 5; lap++) {
		for (int i = 0; i < 8; i++)
			CHECK_EQ_INT(queue_push(q, P(i + lap)), 0);
		CHECK_EQ_INT(queue_len(q), 8);
		for (int i = 0; i < 5; i++) {
			CHECK_EQ_INT(queue_pop(q, &it), 0);
			CHECK(it == P(i + lap));
		}
		for (int i = 0; i < 3; i++)
			CHECK_EQ_INT(queue_push(q, P(40 + i)), 0);
		for (int i = 5; i < 8; i++) {
			CHECK_EQ_INT(queue_trypop(q, &it), 0);
			CHECK(it == P(i + lap));
		}
		for (int i = 0; i < 3; i++) {
			CHECK_EQ_INT(queue_trypop(q, &it), 0);
			CHECK(it == P(40 + i));
		}
		CHECK_EQ_INT(queue_len(q), 0);
		CHECK_EQ_INT(queue_trypop(q, &it), 2);
	}
	/* Close: pushes fail, pops drain, then report the end. */
	CHECK_EQ_INT(queue_push(q, P(1)), 0);
	CHECK_EQ_INT(queue_push(q, P(2)), 0);
	queue_close(q);
	queue_close(q);
	CHECK_EQ_INT(queue_push(q, P(3)), -1);
	CHECK_EQ_INT(queue_push_urgent(q, P(3)), -1);
	CHECK_EQ_INT(queue_len(q), 2);
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(1));
	CHECK_EQ_INT(queue_trypop(q, &it), 0);
	CHECK(it == P(2));
	it = NULL;
	CHECK_EQ_INT(queue_pop(q, &it), 1);
	CHECK_EQ_INT(queue_trypop(q, &it), 1);
	CHECK(it == NULL);
	queue_free(q);
	queue_free(NULL);
}

struct blocker {
	struct queue *q;
	void *item;
	atomic_int started;
	atomic_int done;
	int rc;
};

static void *
push_main(void *arg)
{
	struct blocker *b = arg;

	atomic_store(&b->started, 1);
	b->rc = queue_push(b->q, b->item);
	atomic_store(&b->done, 1);
	return (NULL);
}

static void *
pop_main(void *arg)
{
	struct blocker *b = arg;

	atomic_store(&b->started, 1);
	b->rc = queue_pop(b->q, &b->item);
	atomic_store(&b->done, 1);
	return (NULL);
}

/* Give a thread that has started every chance to run ahead. */
static void
let_run(struct blocker *b)
{

	while (!atomic_load(&b->started))
		sched_yield();
	for (int i = 0; i < 2000 && !atomic_load(&b->done); i++)
		sched_yield();
}

static void
test_bound_blocks(void)
{
	struct queue *q;
	struct blocker b = { .item = P(3) };
	pthread_t th;
	void *it = NULL;

	CHECK((q = queue_init(2)) != NULL);
	if (q == NULL)
		return;
	b.q = q;
	CHECK_EQ_INT(queue_push(q, P(1)), 0);
	CHECK_EQ_INT(queue_push(q, P(2)), 0);
	CHECK_EQ_INT(pthread_create(&th, NULL, push_main, &b), 0);
	let_run(&b);
	/* The push cannot finish before a slot frees up. */
	CHECK_EQ_INT(atomic_load(&b.done), 0);
	CHECK_EQ_INT(queue_len(q), 2);
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(1));
	CHECK_EQ_INT(pthread_join(th, NULL), 0);
	CHECK_EQ_INT(atomic_load(&b.done), 1);
	CHECK_EQ_INT(b.rc, 0);
	CHECK_EQ_INT(queue_len(q), 2);
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(2));
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(3));

	/* An empty queue blocks a consumer until a push. */
	b.started = 0;
	b.done = 0;
	b.item = NULL;
	b.rc = -5;
	CHECK_EQ_INT(pthread_create(&th, NULL, pop_main, &b), 0);
	let_run(&b);
	CHECK_EQ_INT(atomic_load(&b.done), 0);
	CHECK_EQ_INT(queue_push(q, P(9)), 0);
	CHECK_EQ_INT(pthread_join(th, NULL), 0);
	CHECK_EQ_INT(b.rc, 0);
	CHECK(b.item == P(9));
	CHECK_EQ_INT(queue_len(q), 0);
	queue_free(q);
}

static void
test_close_wakes(void)
{
	struct queue *q;
	struct blocker cons[3], prod[3];
	pthread_t tc[3], tp[3];
	void *it = NULL;

	/* Consumers blocked on an empty queue. */
	CHECK((q = queue_init(1)) != NULL);
	if (q == NULL)
		return;
	for (int i = 0; i < 3; i++) {
		cons[i] = (struct blocker){ .q = q, .rc = -5 };
		CHECK_EQ_INT(pthread_create(&tc[i], NULL, pop_main, &cons[i]),
		    0);
	}
	for (int i = 0; i < 3; i++)
		let_run(&cons[i]);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(atomic_load(&cons[i].done), 0);
	queue_close(q);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(pthread_join(tc[i], NULL), 0);
		CHECK_EQ_INT(cons[i].rc, 1);
		CHECK(cons[i].item == NULL);
	}
	queue_free(q);

	/* Producers blocked on a full queue. */
	CHECK((q = queue_init(1)) != NULL);
	if (q == NULL)
		return;
	CHECK_EQ_INT(queue_push(q, P(0)), 0);
	for (int i = 0; i < 3; i++) {
		prod[i] = (struct blocker){ .q = q, .item = P(10 + i),
		    .rc = -5 };
		CHECK_EQ_INT(pthread_create(&tp[i], NULL, push_main, &prod[i]),
		    0);
	}
	for (int i = 0; i < 3; i++)
		let_run(&prod[i]);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(atomic_load(&prod[i].done), 0);
	queue_close(q);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(pthread_join(tp[i], NULL), 0);
		CHECK_EQ_INT(prod[i].rc, -1);
	}
	CHECK_EQ_INT(queue_len(q), 1);
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(0));
	CHECK_EQ_INT(queue_pop(q, &it), 1);
	queue_free(q);
}

static void
test_urgent(void)
{
	struct queue *q;
	void *it = NULL;

	CHECK((q = queue_init(3)) != NULL);
	if (q == NULL)
		return;
	/* Move the head off slot 0 so growth must unwrap the ring. */
	CHECK_EQ_INT(queue_push(q, P(50)), 0);
	CHECK_EQ_INT(queue_push(q, P(51)), 0);
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(50));
	CHECK_EQ_INT(queue_push(q, P(1)), 0);
	CHECK_EQ_INT(queue_push(q, P(2)), 0);
	CHECK_EQ_INT(queue_len(q), 3);   /* full: 51, 1, 2 */
	/* Urgent pushes ignore the bound (this thread would hang if not). */
	for (int i = 0; i < 20; i++)
		CHECK_EQ_INT(queue_push_urgent(q, P(20 + i)), 0);
	CHECK_EQ_INT(queue_len(q), 23);
	for (int i = 19; i >= 0; i--) {
		CHECK_EQ_INT(queue_trypop(q, &it), 0);
		CHECK(it == P(20 + i));
	}
	CHECK_EQ_INT(queue_pop(q, &it), 0);
	CHECK(it == P(51));
	/* Ordinary pushes still respect the bound after growth. */
	CHECK_EQ_INT(queue_push(q, P(3)), 0);
	CHECK_EQ_INT(queue_len(q), 3);
	CHECK_EQ_INT(queue_push_urgent(q, P(60)), 0);
	for (int i = 0; i < 4; i++) {
		static const int want[] = { 60, 1, 2, 3 };

		CHECK_EQ_INT(queue_pop(q, &it), 0);
		CHECK(it == P(want[i]));
	}
	CHECK_EQ_INT(queue_trypop(q, &it), 2);
	queue_free(q);
}

#define NPROD 4
#define NCONS 4
#define NITEMS 10000

struct stress {
	struct queue *q;
	int id;
	long long sum;
	long count;
	int disorder;   /* items from one producer seen out of order */
	int bad;        /* pushes or pops that failed */
};

static int pool[NPROD * NITEMS];
static atomic_int seen[NPROD * NITEMS];

static void *
stress_prod(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < NITEMS; i++) {
		int *p = &pool[s->id * NITEMS + i];

		if (queue_push(s->q, p))
			s->bad++;
	}
	return (NULL);
}

static void *
stress_cons(void *arg)
{
	struct stress *s = arg;
	int last[NPROD];
	void *it;

	for (int i = 0; i < NPROD; i++)
		last[i] = -1;
	while (queue_pop(s->q, &it) == 0) {
		int v = *(int *)it;

		s->sum += v;
		s->count++;
		atomic_fetch_add(&seen[v], 1);
		if (v % NITEMS <= last[v / NITEMS])
			s->disorder++;
		last[v / NITEMS] = v % NITEMS;
	}
	return (NULL);
}

static void
test_stress(void)
{
	struct queue *q;
	struct stress p[NPROD], c[NCONS];
	pthread_t tp[NPROD], tc[NCONS];
	long long sum = 0;
	long count = 0;
	int disorder = 0, bad = 0, dup = 0;

	for (int i = 0; i < NPROD * NITEMS; i++) {
		pool[i] = i;
		atomic_store(&seen[i], 0);
	}
	CHECK((q = queue_init(16)) != NULL);
	if (q == NULL)
		return;
	for (int i = 0; i < NCONS; i++) {
		c[i] = (struct stress){ .q = q, .id = i };
		CHECK_EQ_INT(pthread_create(&tc[i], NULL, stress_cons, &c[i]),
		    0);
	}
	for (int i = 0; i < NPROD; i++) {
		p[i] = (struct stress){ .q = q, .id = i };
		CHECK_EQ_INT(pthread_create(&tp[i], NULL, stress_prod, &p[i]),
		    0);
	}
	for (int i = 0; i < NPROD; i++) {
		CHECK_EQ_INT(pthread_join(tp[i], NULL), 0);
		bad += p[i].bad;
	}
	queue_close(q);
	for (int i = 0; i < NCONS; i++) {
		CHECK_EQ_INT(pthread_join(tc[i], NULL), 0);
		sum += c[i].sum;
		count += c[i].count;
		disorder += c[i].disorder;
	}
	for (int i = 0; i < NPROD * NITEMS; i++)
		if (atomic_load(&seen[i]) != 1)
			dup++;
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(count, NPROD * NITEMS);
	CHECK_EQ_INT(sum, (long long)(NPROD * NITEMS - 1) * NPROD * NITEMS /
	    2);
	CHECK_EQ_INT(dup, 0);
	CHECK_EQ_INT(disorder, 0);
	CHECK_EQ_INT(queue_len(q), 0);
	queue_free(q);
}

UNIT_MAIN("queue",
    TEST(test_fifo),
    TEST(test_bound_blocks),
    TEST(test_close_wakes),
    TEST(test_urgent),
    TEST(test_stress))
