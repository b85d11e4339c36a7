#ifndef AMP2S3_RETRY_H
#define AMP2S3_RETRY_H
/*
 * retry: the Export API's retry policy as two pure functions, *whether*
 * (retry_classify) and *how long* (retry_delay_ms).  No I/O, no clock, no
 * global state: the caller supplies the randomness.
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
 * covered.  A transport error wins over any status.
 */
enum retry_action retry_classify(long status, int transport_error,
    int window_hours);

/* retry_action_name(a): a short lowercase name for logs ("backoff", ...). */
const char *retry_action_name(enum retry_action a);

/*
 * retry_delay_ms(attempt, retry_after_ms, base_ms, cap_ms, rnd): the delay
 * before try number ${attempt} + 1 (${attempt} >= 1 is the number of tries
 * made).  A server's Retry-After (${retry_after_ms} >= 0) wins, capped at
 * ${cap_ms}.  Otherwise exponential backoff base * 2^(attempt-1), capped,
 * with "equal jitter": half fixed, half drawn from ${rnd} (any 32-bit
 * random value), so the result lies in [d/2, d].
 */
int64_t retry_delay_ms(int attempt, int64_t retry_after_ms, int64_t base_ms,
    int64_t cap_ms, uint32_t rnd);

/*
 * retry_parse_after(value, now_s): the delay in milliseconds that a
 * Retry-After header value asks for — delta-seconds or an HTTP-date
 * (relative to ${now_s}, seconds since the epoch).  -1 if absent/invalid.
 */
int64_t retry_parse_after(const char *value, int64_t now_s);

#endif
