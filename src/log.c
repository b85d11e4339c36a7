/*
 * log: leveled text / JSON lines, one write(2) per message.
 *
 * DESIGN
 * - A message is formatted and escaped into a stack buffer outside the
 *   lock; the mutex ${mu} then covers only the progress-line state and
 *   the write(2), so messages never interleave with each other or with
 *   the progress line.
 * - On a terminal with a progress line shown, the buffer is framed as
 *   "\r\033[K" + line + "\n" + "\r" + progress + "\033[K" and written in
 *   the same single write(2): clear, message, redraw.
 * - If pthread_mutex_lock ever fails, the message is still written,
 *   unframed: losing a log line would be worse than a garbled terminal.
 *   Unlocking a mutex this thread holds, and destroying it once no thread
 *   uses the logger, cannot fail; there is nowhere to report it anyway.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hour.h"
#include "log.h"

#define PROGRESS_MAX 512          /* progress line bytes kept */
#define CLEAR "\r\033[K"          /* back to column 0, clear the line */
#define CLEAR_LEN 4
#define EOL_CLEAR "\033[K"        /* clear to end of line */
#define FIELD_STR_MAX 256         /* a string member's bytes, escaped */
#define FIELDS_MAX 2048           /* all members of a record */

struct logger {
	pthread_mutex_t mu;
	int fd;                       /* changed under ${mu} (log_reopen) */
	int own_fd;                   /* close ${fd} in log_close() */
	char *path;                   /* the file (log_reopen), or NULL */
	int tty;
	enum log_level level;
	enum log_format format;
	/* Guarded by ${mu}: */
	int shown;                    /* a progress line is on screen */
	size_t plen;
	char progress[PROGRESS_MAX];
};

static const char *const level_names[] = { "debug", "info", "warn",
	"error", "off" };

/* A fixed buffer that is appended to and silently stops when full. */
struct obuf {
	char *p;
	size_t len, cap;
};

static void
put(struct obuf *o, const char *s, size_t n)
{

	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
puts0(struct obuf *o, const char *s)
{

	put(o, s, strlen(s));
}

/* Write all ${n} bytes, retrying on EINTR; one write(2) in practice. */
static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/*
 * Length of the valid UTF-8 sequence at ${s} (${n} bytes available), or 0
 * if the bytes there are not one (overlong, surrogate, > U+10FFFF, cut).
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t len;

	if (c < 0x80)
		return (1);
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return (0);
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || s[1] < lo || s[1] > hi)
		return (0);
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return (0);
	return (len);
}

/*
 * Escape the ${n} bytes at ${s} for ${fmt} into ${o}, at most ${max}
 * bytes, ending in "..." if the escaped form (or ${cut}: the message was
 * already cut) does not fit.
 */
static void
escape(struct obuf *o, const unsigned char *s, size_t n, enum log_format fmt,
    size_t max, int cut)
{
	size_t used = 0, len, plen;
	char tmp[16];
	const char *piece;

	for (size_t i = 0; i < n; i += len) {
		unsigned char c = s[i];

		piece = tmp;
		len = utf8_len(s + i, n - i);
		if (len == 0) {
			/* Not UTF-8: one byte replaced. */
			len = 1;
			if (fmt == LOG_JSON)
				piece = "\\ufffd";
			else
				snprintf(tmp, sizeof(tmp), "\\x%02x",
				    (unsigned)c);
		} else if (len == 2 && c == 0xC2 && s[i + 1] < 0xA0 &&
		    fmt == LOG_TEXT) {
			/* C1 control (U+0080..U+009F) on a terminal. */
			snprintf(tmp, sizeof(tmp), "\\xc2\\x%02x",
			    (unsigned)s[i + 1]);
		} else if (len > 1) {
			piece = (const char *)s + i;
		} else if (c == '\n') {
			piece = "\\n";
		} else if (c == '\r') {
			piece = "\\r";
		} else if (c == '\t') {
			piece = fmt == LOG_JSON ? "\\t" : "\t";
		} else if (fmt == LOG_JSON && c == '"') {
			piece = "\\\"";
		} else if (fmt == LOG_JSON && c == '\\') {
			piece = "\\\\";
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), fmt == LOG_JSON ?
			    "\\u%04x" : "\\x%02x", (unsigned)c);
		} else {
			piece = (const char *)s + i;
		}
		plen = piece == (const char *)s + i ? len : strlen(piece);
		if (used + plen > max - 3) {
			cut = 1;
			break;
		}
		put(o, piece, plen);
		used += plen;
	}
	if (cut)
		puts0(o, "...");
}

/* "YYYY-MM-DDTHH:MM:SS" (+ ".mmm" if ${ms}) + "Z" for ${ts}. */
static void
put_time(struct obuf *o, const struct timespec *ts, int ms)
{
	char buf[40];
	int64_t sec = ts->tv_sec < 0 ? 0 : (int64_t)ts->tv_sec;
	int y, m, d, h, rem = (int)(sec % 3600);

	hour_to_ymdh(sec / 3600, &y, &m, &d, &h);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", y, m, d,
	    h, rem / 60, rem % 60);
	puts0(o, buf);
	if (ms) {
		snprintf(buf, sizeof(buf), ".%03d",
		    (int)(ts->tv_nsec / 1000000) % 1000);
		puts0(o, buf);
	}
	puts0(o, "Z");
}

struct logger *
log_open(enum log_level level, enum log_format format, const char *path)
{
	struct logger *lg;
	int rc;

	if ((lg = calloc(1, sizeof(*lg))) == NULL)
		return (NULL);
	lg->level = level;
	lg->format = format;
	if (path == NULL) {
		lg->fd = STDERR_FILENO;
	} else {
		if ((lg->path = strdup(path)) == NULL)
			goto err0;
		lg->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0600);
		if (lg->fd == -1)
			goto err0;
		lg->own_fd = 1;
	}
	lg->tty = isatty(lg->fd);
	if ((rc = pthread_mutex_init(&lg->mu, NULL)) != 0) {
		errno = rc;
		goto err1;
	}

	/* Success! */
	return (lg);

err1:
	if (lg->own_fd) {
		rc = errno;
		close(lg->fd);
		errno = rc;
	}
err0:
	rc = errno;
	free(lg->path);
	free(lg);
	errno = rc;

	/* Failure! */
	return (NULL);
}

int
log_parse_level(const char *s, enum log_level *out)
{

	for (int i = LOG_DEBUG; i <= LOG_OFF; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return (0);
		}
	}
	return (-1);
}

int
log_parse_format(const char *s, enum log_format *out)
{

	if (strcasecmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return (-1);
	return (0);
}

int
log_enabled(const struct logger *lg, enum log_level level)
{

	if (level < LOG_DEBUG || level >= LOG_OFF)
		return (0);
	return (lg == NULL || level >= lg->level);
}

int
log_is_tty(const struct logger *lg)
{

	return (lg != NULL && lg->tty);
}

void
log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lg, level, fmt, ap);
	va_end(ap);
}

/* The members ${f} (${n}) of a JSON record, each after a ',', at most
 * FIELDS_MAX bytes. */
static void
put_fields(struct obuf *o, const struct log_field *f, size_t n)
{
	char buf[FIELDS_MAX], num[32];
	struct obuf m = { buf, 0, sizeof(buf) };

	for (size_t i = 0; i < n; i++) {
		puts0(&m, ",\"");
		puts0(&m, f[i].key);
		puts0(&m, "\":");
		if (f[i].type == LOG_FIELD_INT) {
			snprintf(num, sizeof(num), "%" PRId64, f[i].i);
			puts0(&m, num);
		} else if (f[i].type == LOG_FIELD_STR && f[i].s != NULL) {
			puts0(&m, "\"");
			escape(&m, (const unsigned char *)f[i].s,
			    strlen(f[i].s), LOG_JSON, FIELD_STR_MAX, 0);
			puts0(&m, "\"");
		} else {
			puts0(&m, "null");
		}
	}
	/* A member that did not fit would leave invalid JSON: drop them all. */
	if (m.len < m.cap)
		put(o, buf, m.len);
}

/* log_vmsg(), with the members ${fld} (${nfld}) in a JSON record. */
static void __attribute__((format(printf, 5, 0)))
emit(struct logger *lg, enum log_level level, const struct log_field *fld,
    size_t nfld, const char *fmt, va_list ap)
{
	char raw[LOG_MSG_MAX + 1];
	char line[CLEAR_LEN + 128 + LOG_MSG_MAX + FIELDS_MAX + 2 +
	    PROGRESS_MAX + 8];
	struct obuf o = { line, CLEAR_LEN, sizeof(line) };
	enum log_format f = lg != NULL ? lg->format : LOG_TEXT;
	struct timespec ts;
	int saved = errno, n, cut = 0, locked, fd;
	size_t rlen;

	if (!log_enabled(lg, level))
		return;
	if (clock_gettime(CLOCK_REALTIME, &ts))
		ts.tv_sec = ts.tv_nsec = 0;

	/* Format; errno restored first so that %m reports the caller's. */
	errno = saved;
	if ((n = vsnprintf(raw, sizeof(raw), fmt, ap)) < 0) {
		strcpy(raw, "(message could not be formatted)");
		n = (int)strlen(raw);
	}
	rlen = (size_t)n;
	if (rlen > LOG_MSG_MAX) {
		rlen = LOG_MSG_MAX;
		cut = 1;
	}

	/* Build the line from offset CLEAR_LEN, leaving room to frame it. */
	if (f == LOG_JSON) {
		puts0(&o, "{\"ts\":\"");
		put_time(&o, &ts, 1);
		puts0(&o, "\",\"level\":\"");
		puts0(&o, level_names[level]);
		puts0(&o, "\",\"msg\":\"");
		escape(&o, (const unsigned char *)raw, rlen, f, LOG_MSG_MAX,
		    cut);
		puts0(&o, "\"");
		put_fields(&o, fld, nfld);
		puts0(&o, "}\n");
	} else {
		put_time(&o, &ts, 0);
		puts0(&o, " amp2s3 ");
		puts0(&o, level_names[level]);
		puts0(&o, ": ");
		escape(&o, (const unsigned char *)raw, rlen, f, LOG_MSG_MAX,
		    cut);
		puts0(&o, "\n");
	}

	if (lg == NULL) {
		write_all(STDERR_FILENO, line + CLEAR_LEN, o.len - CLEAR_LEN);
		errno = saved;
		return;
	}
	locked = pthread_mutex_lock(&lg->mu) == 0;
	fd = lg->fd;
	if (locked && lg->tty && lg->shown) {
		memcpy(line, CLEAR, CLEAR_LEN);
		put(&o, "\r", 1);
		put(&o, lg->progress, lg->plen);
		puts0(&o, EOL_CLEAR);
		write_all(fd, line, o.len);
	} else {
		write_all(fd, line + CLEAR_LEN, o.len - CLEAR_LEN);
	}
	if (locked)
		(void)pthread_mutex_unlock(&lg->mu);
	errno = saved;
}

void
log_vmsg(struct logger *lg, enum log_level level, const char *fmt,
    va_list ap)
{
	emit(lg, level, NULL, 0, fmt, ap);
}

void
log_fields(struct logger *lg, enum log_level level,
    const struct log_field *f, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(lg, level, f, n, fmt, ap);
	va_end(ap);
}

int
log_term_width(struct logger *lg)
{
	struct winsize ws;
	int cols = 0, saved = errno;

	if (lg == NULL || !lg->tty || pthread_mutex_lock(&lg->mu) != 0)
		return (0);
	if (ioctl(lg->fd, TIOCGWINSZ, &ws) == 0)
		cols = ws.ws_col;
	(void)pthread_mutex_unlock(&lg->mu);
	errno = saved;
	return (cols);
}

void
log_progress(struct logger *lg, const char *text)
{
	char buf[PROGRESS_MAX + 8];
	struct obuf o = { buf, 0, sizeof(buf) };
	const unsigned char *s;
	int saved = errno;
	size_t n = 0, left;

	if (lg == NULL || !lg->tty)
		return;
	if (pthread_mutex_lock(&lg->mu) != 0)
		return;
	if (text == NULL) {
		if (lg->shown)
			write_all(lg->fd, CLEAR, CLEAR_LEN);
		lg->shown = 0;
		lg->plen = 0;
		goto done;
	}
	/* Keep the line without controls or bad bytes, cut on a character. */
	s = (const unsigned char *)text;
	left = strlen(text);
	while (left > 0) {
		size_t l = utf8_len(s, left);

		if (l == 0 || *s < 0x20 || *s == 0x7f ||
		    (*s == 0xC2 && s[1] < 0xA0)) {
			l = l ? l : 1;
		} else if (n + l > PROGRESS_MAX) {
			break;
		} else {
			memcpy(lg->progress + n, s, l);
			n += l;
		}
		s += l;
		left -= l;
	}
	lg->plen = n;
	lg->shown = 1;
	put(&o, "\r", 1);
	put(&o, lg->progress, n);
	puts0(&o, EOL_CLEAR);
	write_all(lg->fd, buf, o.len);

done:
	(void)pthread_mutex_unlock(&lg->mu);
	errno = saved;
}

int
log_reopen(struct logger *lg)
{
	int fd, old, rc;

	if (lg == NULL || lg->path == NULL)
		return (0);
	if ((fd = open(lg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1)
		return (-1);
	if ((rc = pthread_mutex_lock(&lg->mu)) != 0) {
		close(fd);
		errno = rc;
		return (-1);
	}
	/* lg->tty stays: it is read without the lock, and a log file that
	 * is a terminal is one after a rotation too. */
	old = lg->fd;
	lg->fd = fd;
	(void)pthread_mutex_unlock(&lg->mu);
	close(old);
	return (0);
}

void
log_close(struct logger *lg)
{

	if (lg == NULL)
		return;
	if (lg->tty && lg->shown)
		write_all(lg->fd, CLEAR, CLEAR_LEN);
	if (lg->own_fd)
		close(lg->fd);
	(void)pthread_mutex_destroy(&lg->mu);
	free(lg->path);
	free(lg);
}
