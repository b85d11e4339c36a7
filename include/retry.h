#ifndef AMP2S3_RETRY_H
#define AMP2S3_RETRY_H
/*
 * retry: the retry policy as pure functions: *whether* to retry an Export
 * API answer (retry_classify; the S3 client has its own table, see
 * s3_internal.h) and *how long* to wait, for both clients
 * (retry_delay_ms, retry_parse_after), with the jitter's randomness
 * (retry_jitter).  No I/O, no clock, no global state: the caller keeps
 * the generator's state.
 */
#include <stdint.h>

enum retry_action {
	RETRY_DONE,       /* 200 with a body to unpack */
	RETRY_EMPTY,      /* 404: every hour of the window is complete and empty */
	RETRY_BACKOFF,    /* transient: retry the same window after a delay */
	RETRY_SLOWDOWN,   /* 429: retry after Retry-After/backoff, slow the pool */
	RETRY_SPLIT,      /* too large or too slow: split the window in halves */
	RETRY_TOO_LARGE,  /* 400 on a single hour: fail it, it exceeds 4 GB */
	RETRY_FAIL,       /* other 4xx / 3xx: fail the window, no retry */
	RETRY_FATAL_AUTH  /* 401/403: stop everything, no retry */
};

/*
 * retry_classify(status, transport_error, window_hours): what to do with
 * an answer.  ${status} is the HTTP status (0 when no answer arrived);
 * ${transport_error} is non-zero when the transfer failed (reset, timeout,
 * truncated body); ${window_hours} is the number of hours the request
 * covered.  A transport error wins over any status.  The table:
 *   transport error; status 0 (no answer)   BACKOFF
 *   200                   DONE
 *   404                   EMPTY
 *   429                   SLOWDOWN
 *   408, 500, 502, 503    BACKOFF
 *   504                   SPLIT if window_hours > 1, else BACKOFF
 *   400                   SPLIT if window_hours > 1, else TOO_LARGE
 *   401, 403              FATAL_AUTH
 *   501, 505              FAIL (not transient: retrying cannot help)
 *   any other 5xx         BACKOFF
 *   anything else         FAIL (1xx, other 2xx, 3xx, other 4xx, >= 600)
 */
enum retry_action retry_classify(long status, int transport_error,
    int window_hours);

/* retry_action_name(a): a short lowercase name for logs ("backoff", ...). */
const char *retry_action_name(enum retry_action a);

/*
 * retry_delay_ms(attempt, retry_after_ms, base_ms, cap_ms, rnd): the delay
 * before try number ${attempt} + 1 (${attempt} >= 1 is the number of tries
 * made).  A server's Retry-After (${retry_after_ms} >= 0) wins, capped at
 * ${cap_ms}, without jitter.  Otherwise exponential backoff
 * d = min(base * 2^(attempt-1), cap), computed without overflow for any
 * ${attempt}, with "equal jitter": half fixed, half drawn from ${rnd} (any
 * 32-bit random value), so the result lies in [d/2, d] (integer halving):
 * rnd 0 gives d/2, rnd UINT32_MAX gives d.  Negative ${base_ms} or
 * ${cap_ms} count as 0; ${attempt} < 1 counts as 1.
 */
int64_t retry_delay_ms(int attempt, int64_t retry_after_ms, int64_t base_ms,
    int64_t cap_ms, uint32_t rnd);

/*
 * retry_jitter(state): the next value of the xorshift32 generator whose
 * state is *${state} (one per thread or per call, seeded from anything;
 * a zero state, which xorshift cannot leave, is first replaced by a fixed
 * non-zero seed).  For retry_delay_ms()'s ${rnd}.
 */
uint32_t retry_jitter(uint32_t *state);

/*
 * retry_parse_after(value, now_s): the delay in milliseconds that a
 * Retry-After header value asks for — delta-seconds (digits only) or an
 * IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (relative to ${now_s},
 * seconds since the epoch; a date not after ${now_s} gives 0; the day name
 * is checked for spelling, not against the date).  Either form is capped
 * at RETRY_AFTER_MAX_S seconds.  Blanks around the value are ignored.
 * -1 if ${value} is NULL, empty or invalid (including the obsolete RFC 850
 * and asctime date forms).
 */
#define RETRY_AFTER_MAX_S ((int64_t)86400 * 366)
int64_t retry_parse_after(const char *value, int64_t now_s);

#endif
