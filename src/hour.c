/*
 * hour: UTC hour arithmetic.
 *
 * Calendar conversion uses Howard Hinnant's days_from_civil() and
 * civil_from_days() (proleptic Gregorian, exact for every date in
 * HOUR_MIN..HOUR_MAX), so nothing here depends on the time zone, on
 * time_t's width or on the C library's conversions.
 */
#include <time.h>

#include "hour.h"

/* Days since 1970-01-01 of ${y}-${m}-${d} (fields already validated). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;                                     /* [0, 399] */
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* [0, 365] */
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
	return (era * 146097 + doe - 719468);
}

/* The calendar date of day ${z} since 1970-01-01. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;                                /* [0, 146096] */
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           /* [0, 365] */
	mp = (5 * doy + 2) / 153;                                /* [0, 11] */
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
is_leap(int y)
{

	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (m == 2 && is_leap(y))
		return 29;
	return dim[m - 1];
}

int
hour_from_ymdh(int y, int m, int d, int h, amp_hour *out)
{
	amp_hour hr;

	/* Years outside 1970..9999 are outside HOUR_MIN..HOUR_MAX anyway. */
	if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 ||
	    d > days_in_month(y, m) || h < 0 || h > 23)
		return (-1);
	hr = days_from_civil(y, m, d) * 24 + h;
	if (hr < HOUR_MIN || hr > HOUR_MAX)
		return (-1);
	*out = hr;
	return (0);
}

void
hour_to_ymdh(amp_hour hr, int *y, int *m, int *d, int *h)
{
	int64_t days, yy;
	int64_t hh;

	/* Floor division, so hours before the epoch still map correctly. */
	days = hr / 24;
	hh = hr % 24;
	if (hh < 0) {
		hh += 24;
		days--;
	}
	civil_from_days(days, &yy, m, d);
	*y = (int)yy;
	*h = (int)hh;
}

/* Parse ${n} decimal digits at ${s} into *${v}; -1 if any is not a digit. */
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

int
hour_parse_api(const char *s, amp_hour *out)
{
	int y, m, d, h;

	/* Exactly 11 bytes: check each for NUL before reading past it. */
	for (int i = 0; i < HOUR_API_LEN - 1; i++)
		if (s[i] == '\0')
			return (-1);
	if (s[HOUR_API_LEN - 1] != '\0')
		return (-1);
	if (digits(s, 4, &y) || digits(s + 4, 2, &m) || digits(s + 6, 2, &d) ||
	    s[8] != 'T' || digits(s + 9, 2, &h))
		return (-1);
	return (hour_from_ymdh(y, m, d, h, out));
}

int
hour_parse_file(const char *s, size_t len, amp_hour *out)
{
	int y, m, d, h;

	if (len != HOUR_FILE_LEN - 1)
		return (-1);
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || s[10] != '_' ||
	    digits(s + 11, 2, &h))
		return (-1);
	return (hour_from_ymdh(y, m, d, h, out));
}

/* Write ${v} as ${n} zero-padded digits at ${p} (0 <= v < 10^n). */
static void
put_digits(char *p, int n, int v)
{

	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/*
 * The calendar fields of ${hr}, clamped into HOUR_MIN..HOUR_MAX so the
 * fixed-width formats below can never overflow their buffers.
 */
static void
fields(amp_hour hr, int *y, int *m, int *d, int *h)
{

	if (hr < HOUR_MIN)
		hr = HOUR_MIN;
	if (hr > HOUR_MAX)
		hr = HOUR_MAX;
	hour_to_ymdh(hr, y, m, d, h);
}

void
hour_format_api(amp_hour hr, char buf[HOUR_API_LEN])
{
	int y, m, d, h;

	fields(hr, &y, &m, &d, &h);
	put_digits(buf, 4, y);
	put_digits(buf + 4, 2, m);
	put_digits(buf + 6, 2, d);
	buf[8] = 'T';
	put_digits(buf + 9, 2, h);
	buf[11] = '\0';
}

void
hour_format_file(amp_hour hr, char buf[HOUR_FILE_LEN])
{
	int y, m, d, h;

	fields(hr, &y, &m, &d, &h);
	put_digits(buf, 4, y);
	buf[4] = '-';
	put_digits(buf + 5, 2, m);
	buf[7] = '-';
	put_digits(buf + 8, 2, d);
	buf[10] = '_';
	put_digits(buf + 11, 2, h);
	buf[13] = '\0';
}

void
hour_format_date(amp_hour hr, char buf[11])
{
	int y, m, d, h;

	fields(hr, &y, &m, &d, &h);
	put_digits(buf, 4, y);
	buf[4] = '-';
	put_digits(buf + 5, 2, m);
	buf[7] = '-';
	put_digits(buf + 8, 2, d);
	buf[10] = '\0';
}

amp_hour
hour_now(void)
{
	struct timespec ts;
	int64_t s;

	if (clock_gettime(CLOCK_REALTIME, &ts))
		return (HOUR_MIN);
	s = (int64_t)ts.tv_sec;
	if (s < 0)
		return (HOUR_MIN);
	return ((amp_hour)(s / 3600));
}
