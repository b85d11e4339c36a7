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
 *   text   2026-11-27T19:04:22Z amp2s3 info: message
 *   json   {"ts":"2026-11-27T19:04:22.123Z","level":"info","msg":"message"}
 *
 * Timestamps are UTC.  A message is cut to at most LOG_MSG_MAX bytes after
 * escaping, ending in "..." when cut.  JSON lines are always valid JSON:
 * control characters are escaped and bytes that are not valid UTF-8 become
 * U+FFFD.  Text lines escape control characters (C0 but tab, DEL, C1) and
 * bytes that are not valid UTF-8 ("\n", "\x1b", "\xff"), so that one
 * message is one line and cannot drive the terminal.
 *
 * A progress line (log_progress()) shares the terminal: log_msg() on a
 * terminal clears it, writes the message and redraws it, in the same
 * write(2).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* The most bytes of one escaped message, "..." included. */
#define LOG_MSG_MAX 8192

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

/* log_parse_level("debug"|"info"|"warn"|"error"|"off", out): 0 or -1.
 * Case is ignored, as in log_parse_format(). */
int log_parse_level(const char *s, enum log_level *out);

/* log_parse_format("text"|"json", out): 0 or -1. */
int log_parse_format(const char *s, enum log_format *out);

/* log_enabled(lg, level): non-zero if a message of ${level} would be written. */
int log_enabled(const struct logger *lg, enum log_level level);

/* log_is_tty(lg): non-zero if messages go to a terminal. */
int log_is_tty(const struct logger *lg);

/*
 * log_msg(lg, level, fmt, ...): format and write one message.  ${lg} NULL
 * writes text to stderr at every level (used before a logger exists).
 * errno is preserved.
 */
void log_msg(struct logger *lg, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(struct logger *lg, enum log_level level, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

/* A member of a JSON record (log_fields()): ${key} (letters, digits and
 * '_', written as is) with an integer, a string (escaped) or null. */
enum log_field_type { LOG_FIELD_INT, LOG_FIELD_STR, LOG_FIELD_NULL };
struct log_field {
	const char *key;
	enum log_field_type type;
	int64_t i;
	const char *s;
};

/*
 * log_fields(lg, level, f, n, fmt, ...): log_msg(), and in the JSON format
 * the ${n} members ${f} after "msg" (a string member is cut to 256 bytes
 * after escaping).  The text format writes the message alone: say there
 * what the members say.
 */
void log_fields(struct logger *lg, enum log_level level,
    const struct log_field *f, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* log_term_width(lg): the columns of the terminal messages go to, or 0
 * (not a terminal, or unknown). */
int log_term_width(struct logger *lg);

/* log_progress(lg, line): on a terminal, redraw the progress line
 * (\r + line + clear to end of line) and remember it for log_msg();
 * elsewhere (or ${lg} NULL) a no-op.  ${line} NULL clears and forgets it.
 * Control characters in ${line} are dropped. */
void log_progress(struct logger *lg, const char *line);

/*
 * log_reopen(lg): open the log file again by its name and write there
 * from now on (after a rotation renamed it: SIGHUP), closing the old
 * descriptor; a message being written meanwhile goes whole to one of the
 * two.  A logger on stderr (or ${lg} NULL): nothing to do.  Returns 0, or
 * -1 with errno set (the old file stays in use).  Thread-safe.
 */
int log_reopen(struct logger *lg);

/* log_close(lg): clear a progress line still shown, close the file (not
 * stderr) and free.  NULL is a no-op. */
void log_close(struct logger *lg);

#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARN, __VA_ARGS__)
#define log_error(lg, ...) log_msg((lg), LOG_ERROR, __VA_ARGS__)

#endif
