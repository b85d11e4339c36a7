#ifndef AMP2S3_ERRBUF_H
#define AMP2S3_ERRBUF_H
/*
 * errbuf: the one-line messages a failing function leaves for its caller,
 * and the two ways untrusted or system text enters them.
 *
 * The project's error convention (README, "Source layout"): a function
 * that can fail returns -1 (or NULL, or a status enum where its callers
 * branch on the kind of failure) and leaves one line saying why in its
 * caller's (err, errlen) buffer, filled with errbuf_set().  errno text
 * comes from errbuf_strerror() (never strerror(3), which is not
 * thread-safe), and bytes from the network or a file name from
 * errbuf_escape().
 *
 * Thread-safety: no state; every function writes only its caller's
 * buffers.
 */
#include <stddef.h>

/*
 * errbuf_set(err, errlen, fmt, ...): format the message into ${err}
 * (truncated to ${errlen} bytes, NUL-terminated); nothing if ${err} is
 * NULL or ${errlen} is 0.  Returns -1, so that a failing function can
 * `return (errbuf_set(...));`.  errno is preserved.
 */
int errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * errbuf_strerror(e, buf, len): the text of the errno value ${e}: ${buf}
 * (${len} bytes, filled) or a constant string.  Thread-safe; errno is
 * preserved.  ERRSTR(e) is the same into a buffer that lives until the
 * end of the enclosing block, for use inside an argument list:
 *     errbuf_set(err, errlen, "cannot open %s: %s", p, ERRSTR(errno));
 */
#define ERRBUF_STRERROR_MAX 128
const char *errbuf_strerror(int e, char *buf, size_t len);
#define ERRSTR(e) errbuf_strerror((e), (char[ERRBUF_STRERROR_MAX]){ 0 }, \
    ERRBUF_STRERROR_MAX)

/*
 * errbuf_escape(in, len, out, outlen): the ${len} bytes at ${in} (any
 * bytes, NULs included) as printable text for one message line: printable
 * ASCII but '"' and '\\' is kept, every other byte becomes "\xNN".  When
 * it does not fit in ${outlen} bytes it is cut at a whole escape and ends
 * in "...".  Returns ${out} (always NUL-terminated; ${outlen} >= 4).
 */
const char *errbuf_escape(const void *in, size_t len, char *out,
    size_t outlen);

#endif
