/*
 * errbuf: see errbuf.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"

int
errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return (-1);
}

const char *
errbuf_strerror(int e, char *buf, size_t len)
{
	int saved = errno;
	const char *s;

	if (len == 0)
		return ("");
#ifdef _GNU_SOURCE
	s = strerror_r(e, buf, len); /* GNU's: ${buf} or a constant string */
#else
	if (strerror_r(e, buf, len) != 0)
		snprintf(buf, len, "error %d", e);
	s = buf;
#endif
	errno = saved;
	return (s);
}

const char *
errbuf_escape(const void *in, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t o = 0, cut = 0, i;

	if (outlen < 4) {
		if (outlen > 0)
			out[0] = '\0';
		return (out);
	}
	for (i = 0; i < len; i++) {
		unsigned char c = p[i];
		int plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';

		if (o + 3 < outlen)
			cut = o;        /* "..." would still fit after this */
		if (o + (plain ? 1 : 4) >= outlen)
			break;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		o = cut;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return (out);
}
