#ifndef AMP2S3_KEYTMPL_H
#define AMP2S3_KEYTMPL_H
/*
 * keytmpl: the object key layout (--key-template), both ways: hour -> key
 * for uploads, key -> hour for listings.
 *
 * A template is literal text with placeholders:
 *
 *   {prefix}  the key prefix (--s3-prefix), substituted once, as text
 *   {date}    YYYY-MM-DD          {year}  YYYY
 *   {hour}    HH (00..23)         {month} MM
 *                                 {day}   DD
 *
 * It must name the hour: {hour} and either {date} or all of {year},
 * {month} and {day}.  Any other "{...}", an unclosed '{', a stray '}', an
 * empty template, one ending in '/' or one ending in ".gz" (--gzip
 * appends ".gz" itself) is refused.  The default is the original tool's
 * layout, "{prefix}{date}_{hour}.jsonl"; a Hive layout for Athena, Glue or
 * Spark is e.g. "{prefix}dt={date}/hour={hour}/part.jsonl".
 *
 * Every placeholder but {prefix} has a fixed width and holds only digits
 * and '-', so a key parses back without ambiguity.  A key counts as an
 * hour only if formatting that hour gives exactly the same key (a field
 * repeated, e.g. {date} and {year}, must agree; Feb 30 never matches).
 *
 * With ${suffix} (".gz" for --gzip) appended, the key of every hour is
 * template-with-fields + suffix.  The listing prefix is the constant text
 * before the first field, so an S3 listing asks only for that prefix
 * (every page of it), e.g. "python-import/dt=".
 *
 * Thread-safety: a parsed template is immutable; any number of threads may
 * format and match with it at once.
 */
#include <stddef.h>

#include "hour.h"

#define KEYTMPL_DEFAULT "{prefix}{date}_{hour}.jsonl"
#define KEYTMPL_MAX_KEY 1024 /* S3's limit on a key, in bytes */
#define KEYTMPL_MAX_DIR_DEPTH 32 /* '/' in a folder store's keys, at most */

struct keytmpl;

/*
 * keytmpl_parse(tmpl, prefix, suffix, for_dir, err, errlen): parse
 * ${tmpl} with {prefix} = ${prefix} (NULL: "") and ${suffix} (NULL: "")
 * appended.  With ${for_dir} the keys must also be safe relative paths
 * for a folder store: no leading '/', no empty, "." or ".." segment, at
 * most KEYTMPL_MAX_DIR_DEPTH '/'.
 * Returns the template, or NULL with one line in ${err} (no "--flag: "
 * in front) — also on ENOMEM.
 */
struct keytmpl *keytmpl_parse(const char *tmpl, const char *prefix,
    const char *suffix, int for_dir, char *err, size_t errlen);

/*
 * keytmpl_check(tmpl, prefix, gzip, for_dir, err, errlen): 0 if ${tmpl}
 * would parse (with ".gz" as the suffix when ${gzip}), else -1 and the
 * reason in ${err}.  For configuration checks.
 */
int keytmpl_check(const char *tmpl, const char *prefix, int gzip,
    int for_dir, char *err, size_t errlen);

/*
 * keytmpl_format(t, hour, buf, len): write the key of ${hour} and a NUL.
 * Returns its length, or -1 if ${len} is too small (buf then holds "").
 */
int keytmpl_format(const struct keytmpl *t, amp_hour hour, char *buf,
    size_t len);

/*
 * keytmpl_match(t, key, len, out): if the ${len} bytes at ${key} are
 * exactly the key of some hour, store it in *${out} and return 0; else -1.
 */
int keytmpl_match(const struct keytmpl *t, const char *key, size_t len,
    amp_hour *out);

/* keytmpl_list_prefix(t): the constant text every key starts with. */
const char *keytmpl_list_prefix(const struct keytmpl *t);

/*
 * keytmpl_span_prefix(t, first, last, buf, len): write the longest text
 * that the key of every hour in [${first}, ${last}] starts with, and a NUL
 * (at least keytmpl_list_prefix(t)).  An S3 listing of that prefix finds
 * every hour of the span.  Formats each hour of the span until the prefix
 * is down to the list prefix: meant for spans of a month or a year.
 * Returns its length, or -1 if ${first} > ${last} or ${len} is too small.
 */
int keytmpl_span_prefix(const struct keytmpl *t, amp_hour first,
    amp_hour last, char *buf, size_t len);

/* keytmpl_slashes(t): the number of '/' in every key. */
int keytmpl_slashes(const struct keytmpl *t);

/* keytmpl_free(t): NULL is a no-op. */
void keytmpl_free(struct keytmpl *t);

#endif
