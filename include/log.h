#ifndef AMP2S3_LOG_H
#define AMP2S3_LOG_H
/*
 * log: leveled messages as text or JSON lines, to stderr or a file.
 *
 * One struct logger per run, passed to whoever logs.  log_msg() is
 * thread-safe: each message is written whole with one write(2).  Messages
 * carry no trailing newline.  Nothing secret may be passed in: callers log
 * hours, URLs without credentials, status codes and paths.
 *
 * A progress line (see progress.h) shares the terminal: log_msg() clears
 * it before writing when log_set_tty_clear() was given a callback.
 */
#include <stdarg.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_TEXT, LOG_JSON };

struct logger;

/*
 * log_open(level, format, path): a logger writing messages of ${level} and
 * above.  ${path} NULL means stderr; otherwise the file is opened for
 * appending (created 0600).  Returns NULL with errno set on failure.
 */
struct logger *log_open(enum log_level level, enum log_format format,
    const char *path);

/* log_parse_level("debug"|"info"|"warn"|"error"|"off", out): 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);

/* log_parse_format("text"|"json", out): 0 or -1. */
int log_parse_format(const char *s, enum log_format *out);

/* log_enabled(lg, level): non-zero if a message of ${level} would be written. */
int log_enabled(const struct logger *lg, enum log_level level);

/* log_is_tty(lg): non-zero if messages go to a terminal. */
int log_is_tty(const struct logger *lg);

/*
 * log_msg(lg, level, fmt, ...): format and write one message.  ${lg} NULL
 * writes text to stderr (used before a logger exists).
 */
void log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(struct logger *lg, enum log_level level, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

/* log_progress(lg, line): on a terminal, redraw the progress line
 * (\r + line + clear to end of line); elsewhere a no-op.  NULL clears it. */
void log_progress(struct logger *lg, const char *line);

/* log_close(lg): flush and free.  NULL is a no-op. */
void log_close(struct logger *lg);

#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARN, __VA_ARGS__)
#define log_error(lg, ...) log_msg((lg), LOG_ERROR, __VA_ARGS__)

#endif
