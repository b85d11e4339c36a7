/*
 * retry: the retry policy as pure functions (see retry.h for the table).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hour.h"
#include "retry.h"

enum retry_action
retry_classify(long status, int transport_error, int window_hours)
{

	if (transport_error || status == 0)
		return (RETRY_BACKOFF);
	switch (status) {
	case 200:
		return (RETRY_DONE);
	case 404:
		return (RETRY_EMPTY);
	case 429:
		return (RETRY_SLOWDOWN);
	case 408:
	case 500:
	case 502:
	case 503:
		return (RETRY_BACKOFF);
	case 504:
		return (window_hours > 1 ? RETRY_SPLIT : RETRY_BACKOFF);
	case 400:
		return (window_hours > 1 ? RETRY_SPLIT : RETRY_TOO_LARGE);
	case 401:
	case 403:
		return (RETRY_FATAL_AUTH);
	case 501:
	case 505:
		return (RETRY_FAIL);
	default:
		if (status >= 500 && status <= 599)
			return (RETRY_BACKOFF);
		return (RETRY_FAIL);
	}
}

const char *
retry_action_name(enum retry_action a)
{

	switch (a) {
	case RETRY_DONE:
		return ("done");
	case RETRY_EMPTY:
		return ("empty");
	case RETRY_BACKOFF:
		return ("backoff");
	case RETRY_SLOWDOWN:
		return ("slowdown");
	case RETRY_SPLIT:
		return ("split");
	case RETRY_TOO_LARGE:
		return ("too-large");
	case RETRY_FAIL:
		return ("fail");
	case RETRY_FATAL_AUTH:
		return ("fatal-auth");
	}
	return ("unknown");
}

uint32_t
retry_jitter(uint32_t *state)
{
	uint32_t x = *state != 0 ? *state : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (*state = x);
}

int64_t
retry_delay_ms(int attempt, int64_t retry_after_ms, int64_t base_ms,
    int64_t cap_ms, uint32_t rnd)
{
	uint64_t d, half, span, a, b;

	if (cap_ms < 0)
		cap_ms = 0;
	if (base_ms < 0)
		base_ms = 0;
	if (retry_after_ms >= 0)
		return (retry_after_ms < cap_ms ? retry_after_ms : cap_ms);

	/* d = min(base * 2^(attempt-1), cap), doubling only while below cap. */
	d = (uint64_t)(base_ms < cap_ms ? base_ms : cap_ms);
	for (int i = 1; i < attempt && d > 0 && d < (uint64_t)cap_ms; i++)
		d = d > (uint64_t)cap_ms / 2 ? (uint64_t)cap_ms : d * 2;

	/*
	 * Equal jitter: d/2 + floor(span * rnd / UINT32_MAX), span = d - d/2.
	 * Split span = a * UINT32_MAX + b so no product exceeds 64 bits.
	 */
	half = d / 2;
	span = d - half;
	a = span / UINT32_MAX;
	b = span % UINT32_MAX;
	return ((int64_t)(half + a * rnd + b * rnd / UINT32_MAX));
}

/* Parse exactly ${n} digits at ${s}; -1 if any is not a digit. */
static int
digits(const char *s, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return (0);
}

/* Index 0..n-1 of the 3-letter name at ${s} in ${names}, or -1. */
static int
name3(const char *s, const char *names)
{

	for (int i = 0; names[3 * i] != '\0'; i++)
		if (memcmp(s, names + 3 * i, 3) == 0)
			return (i);
	return (-1);
}

/*
 * Parse the ${len} bytes at ${s} as an IMF-fixdate into seconds since the
 * epoch (*${past} set instead if the date lies before 1970).  Returns 0/-1.
 */
static int
parse_fixdate(const char *s, size_t len, int64_t *t, int *past)
{
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	static const char fmt[] = "Www, DD Mmm YYYY hh:mm:ss GMT";
	int d, m, y, hh, mm, ss;
	amp_hour hr;

	if (len != sizeof(fmt) - 1)
		return (-1);
	if (name3(s, "MonTueWedThuFriSatSun") < 0 || s[3] != ',' ||
	    s[4] != ' ' || digits(s + 5, 2, &d) || s[7] != ' ' ||
	    (m = name3(s + 8, "JanFebMarAprMayJunJulAugSepOctNovDec")) < 0 ||
	    s[11] != ' ' || digits(s + 12, 4, &y) || s[16] != ' ' ||
	    digits(s + 17, 2, &hh) || s[19] != ':' || digits(s + 20, 2, &mm) ||
	    s[22] != ':' || digits(s + 23, 2, &ss) ||
	    memcmp(s + 25, " GMT", 4) != 0)
		return (-1);
	if (mm > 59 || ss > 60)
		return (-1);
	*past = 0;
	if (y < 1970) {
		/* Syntax only: any such date is long past. */
		if (d < 1 || d > 31 || hh > 23)
			return (-1);
		*past = 1;
		return (0);
	}
	if (hour_from_ymdh(y, m + 1, d, hh, &hr))
		return (-1);
	*t = (int64_t)hr * 3600 + mm * 60 + ss;
	return (0);
}

int64_t
retry_parse_after(const char *value, int64_t now_s)
{
	const char *s, *e;
	int64_t secs, t;
	size_t len;
	int past;

	if (value == NULL)
		return (-1);
	for (s = value; *s == ' ' || *s == '\t'; s++)
		;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' ||
	    e[-1] == '\r' || e[-1] == '\n'); e--)
		;
	if ((len = (size_t)(e - s)) == 0)
		return (-1);

	if (s[0] >= '0' && s[0] <= '9') {
		/* delta-seconds: digits only, saturating. */
		secs = 0;
		for (const char *p = s; p < e; p++) {
			if (*p < '0' || *p > '9')
				return (-1);
			if (secs < RETRY_AFTER_MAX_S)
				secs = secs * 10 + (*p - '0');
		}
	} else {
		if (parse_fixdate(s, len, &t, &past))
			return (-1);
		if (past || t <= now_s)
			return (0);
		/* t >= 0, so t - RETRY_AFTER_MAX_S cannot overflow. */
		if (t - RETRY_AFTER_MAX_S > now_s)
			secs = RETRY_AFTER_MAX_S;
		else
			secs = t - now_s;
	}
	if (secs > RETRY_AFTER_MAX_S)
		secs = RETRY_AFTER_MAX_S;
	return (secs * 1000);
}
