/*
 * stall: a sliding window of byte counts (see stall.h).
 */
#include <string.h>

#include "stall.h"

void
stall_init(struct stall *s, int64_t window_ms, uint64_t min_bps,
    int64_t now_ms)
{
	memset(s, 0, sizeof(*s));
	s->window_ms = window_ms > 0 ? window_ms : 0;
	s->slot_ms = s->window_ms / STALL_SLOTS > 0 ?
	    s->window_ms / STALL_SLOTS : 1;
	s->start_ms = now_ms;
	s->min_bps = min_bps > 0 ? min_bps : 1;
	s->slot = 0;
}

/* Move the window forward to the slot of ${now_ms}, clearing slots that
 * fell out of it. */
static void
advance(struct stall *s, int64_t now_ms)
{
	int64_t slot = (now_ms - s->start_ms) / s->slot_ms;

	if (slot <= s->slot)
		return;
	if (slot - s->slot > STALL_SLOTS) {
		memset(s->bytes, 0, sizeof(s->bytes));
	} else {
		for (int64_t k = s->slot + 1; k <= slot; k++)
			s->bytes[k % (STALL_SLOTS + 1)] = 0;
	}
	s->slot = slot;
}

void
stall_add(struct stall *s, uint64_t n, int64_t now_ms)
{
	uint64_t *b;

	if (s->window_ms == 0 || n == 0)
		return;
	advance(s, now_ms);
	b = &s->bytes[s->slot % (STALL_SLOTS + 1)];
	*b = *b > UINT64_MAX - n ? UINT64_MAX : *b + n;
}

int
stall_check(struct stall *s, int64_t now_ms)
{
	uint64_t sum = 0, need, span;

	if (s->window_ms == 0 || now_ms - s->start_ms < s->window_ms)
		return (0);
	advance(s, now_ms);
	/* The bytes the window must hold: min_bps over its real length,
	 * STALL_SLOTS whole slots and the part of the current one. */
	span = (uint64_t)(STALL_SLOTS * s->slot_ms +
	    (now_ms - s->start_ms) % s->slot_ms);
	need = s->min_bps > UINT64_MAX / span ? UINT64_MAX :
	    (s->min_bps * span + 999) / 1000;
	/* The slot now running and the STALL_SLOTS whole ones before it. */
	for (int i = 0; i <= STALL_SLOTS; i++) {
		sum = s->bytes[i] > UINT64_MAX - sum ? UINT64_MAX :
		    sum + s->bytes[i];
		if (sum >= need)
			return (0);
	}
	return (1);
}
