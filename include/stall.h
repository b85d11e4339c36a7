#ifndef AMP2S3_STALL_H
#define AMP2S3_STALL_H
/*
 * stall: the one rule for giving up on a slow transfer, for the Export
 * API and for S3 alike.
 *
 * A transfer is stalled when, over the last ${window_ms} milliseconds
 * (--stall-timeout), fewer than ${min_bps} bytes per second on average
 * moved in either direction (--min-speed), once it has run at least that
 * long.  Bytes count when they arrive or leave, headers included.  So a
 * transfer that stops dead is abandoned one window after its last byte,
 * and one that trickles below the minimum is abandoned too, however
 * steadily it trickles.  (curl's CURLOPT_LOW_SPEED_* is not used: it
 * measures its speed over its own fixed few seconds, so bytes received
 * before a stall delay its check by that much.)
 *
 * The window is kept as STALL_SLOTS whole slots of window / STALL_SLOTS
 * ms plus the slot now running, so the verdict is never early and at
 * most one slot late.  Pure: the caller passes the time
 * (cancel_clock_ms()); no I/O, no state outside the struct.
 * Thread-safety: a struct stall belongs to one transfer's thread.
 */
#include <stdint.h>

#define STALL_SLOTS 16

struct stall {
	int64_t window_ms, slot_ms;
	int64_t start_ms;          /* when the transfer began */
	uint64_t min_bps;          /* bytes per second, at least */
	int64_t slot;              /* the newest slot's number */
	uint64_t bytes[STALL_SLOTS + 1];
};

/* stall_init(s, window_ms, min_bps, now_ms): a transfer beginning now.
 * ${window_ms} <= 0: never stalled.  ${min_bps} 0 counts as 1. */
void stall_init(struct stall *s, int64_t window_ms, uint64_t min_bps,
    int64_t now_ms);

/* stall_add(s, n, now_ms): ${n} bytes moved at ${now_ms}. */
void stall_add(struct stall *s, uint64_t n, int64_t now_ms);

/* stall_check(s, now_ms): 1 if the transfer is stalled at ${now_ms}
 * (the window is over and held too few bytes), else 0. */
int stall_check(struct stall *s, int64_t now_ms);

#endif
