#ifndef AMP2S3_HOUR_H
#define AMP2S3_HOUR_H
/*
 * hour: UTC hour arithmetic and the three spellings of an hour.
 *
 * An hour is a signed count of hours since 1970-01-01T00Z.  Every function
 * is pure and thread-safe; none consults the time zone or the C library's
 * time conversions.
 *
 *   API spelling    YYYYMMDDTHH     (Export API query, --start-date)
 *   file spelling   YYYY-MM-DD_HH   (data/<file>.jsonl, S3 keys)
 */
#include <stddef.h>
#include <stdint.h>

typedef int64_t amp_hour;

/* Earliest and latest hour accepted anywhere: 1970-01-01T00 .. 9999-12-31T23. */
#define HOUR_MIN ((amp_hour)0)
#define HOUR_MAX ((amp_hour)70389527) /* 9999-12-31T23 */

/* Buffer sizes, terminating NUL included. */
#define HOUR_API_LEN 12  /* "YYYYMMDDTHH" */
#define HOUR_FILE_LEN 14 /* "YYYY-MM-DD_HH" */

/*
 * hour_from_ymdh(y, m, d, h, out): store the hour of ${y}-${m}-${d}T${h} in
 * ${out}.  Returns 0, or -1 if the date does not exist (month 13, Feb 30,
 * hour 24, ...) or lies outside HOUR_MIN..HOUR_MAX.
 */
int hour_from_ymdh(int y, int m, int d, int h, amp_hour *out);

/* hour_to_ymdh(hr, y, m, d, h): the calendar fields of ${hr}. */
void hour_to_ymdh(amp_hour hr, int *y, int *m, int *d, int *h);

/*
 * hour_parse_api(s, out): parse exactly "YYYYMMDDTHH" (NUL-terminated,
 * nothing before or after).  Returns 0, or -1 on any deviation.
 */
int hour_parse_api(const char *s, amp_hour *out);

/*
 * hour_parse_file(s, len, out): parse exactly the ${len} bytes at ${s} as
 * "YYYY-MM-DD_HH".  Returns 0 or -1.
 */
int hour_parse_file(const char *s, size_t len, amp_hour *out);

/* hour_format_api(hr, buf): write "YYYYMMDDTHH" and a NUL. */
void hour_format_api(amp_hour hr, char buf[HOUR_API_LEN]);

/* hour_format_file(hr, buf): write "YYYY-MM-DD_HH" and a NUL. */
void hour_format_file(amp_hour hr, char buf[HOUR_FILE_LEN]);

/* hour_format_date(hr, buf): write "YYYY-MM-DD" and a NUL (11 bytes). */
void hour_format_date(amp_hour hr, char buf[11]);

/* hour_now(): the hour that contains the current wall-clock time. */
amp_hour hour_now(void);

#endif
