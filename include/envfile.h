#ifndef AMP2S3_ENVFILE_H
#define AMP2S3_ENVFILE_H
/*
 * envfile: a strict parser for `.env` files.
 *
 * Accepted, one assignment per line:
 *   KEY=value            unquoted: surrounding blanks trimmed; a " #" starts
 *                        a comment
 *   KEY="value"          double quotes: \n \t \\ \" \$ escapes; may not span lines
 *   KEY='value'          single quotes: literal
 *   export KEY=value     `export ` prefix ignored
 *   # comment, blank lines, CRLF line ends, a UTF-8 BOM at the start
 * KEY is [A-Za-z_][A-Za-z0-9_]*, followed at once by '='.  Blanks before
 * KEY (or `export`) are ignored, lines of blanks are blank, `KEY=` is the
 * empty string, and after a closing quote only blanks and a comment may
 * follow.  Anything else (a NUL byte included) is an error naming the line.
 * No variable expansion.  Later assignments of the same key win.
 */
#include <stddef.h>

/* Callback for each assignment: return 0 to go on, non-zero to stop
 * (envfile_parse then returns that value).  Strings are valid only during
 * the call. */
typedef int envfile_cb(void *ctx, const char *key, const char *value);

/*
 * envfile_parse(buf, len, cb, ctx, err, errlen): parse the ${len} bytes at
 * ${buf}.  Returns 0 on success; -1 on a syntax error, with a one-line
 * message "line N: what is wrong" in ${err} (never quoting the value, which
 * may be a secret); or the callback's non-zero return, with "line N: could
 * not store the assignment" in ${err}.  ${err} may be NULL.
 */
int envfile_parse(const char *buf, size_t len, envfile_cb *cb, void *ctx,
    char *err, size_t errlen);

/*
 * envfile_load(path, cb, ctx, err, errlen): read the file at ${path} and
 * parse it.  Returns 1 if the file does not exist (nothing called), 0 on
 * success, -1 on a read or syntax error ("PATH:N: ..." or "PATH: ..." in
 * ${err}), or the callback's non-zero return ("PATH:N: ...").  Files over
 * 1 MiB and anything but a regular file are refused.
 */
int envfile_load(const char *path, envfile_cb *cb, void *ctx, char *err,
    size_t errlen);

#endif
