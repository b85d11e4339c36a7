#ifndef AMP2S3_ERRBUF_H
#define AMP2S3_ERRBUF_H
/*
 * errbuf: the one-line error message a function leaves in its caller's
 * (err, errlen) buffer.
 *
 * Thread-safety: no state; writes only the caller's buffer.
 */
#include <stddef.h>

/*
 * errbuf_set(err, errlen, fmt, ...): format the message into ${err}
 * (truncated to ${errlen} bytes, NUL-terminated); nothing if ${err} is
 * NULL or ${errlen} is 0.  Returns -1, so that a failing function can
 * `return (errbuf_set(...));`.
 */
int errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
