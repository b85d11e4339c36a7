/*
 * envfile: a strict `.env` parser (grammar in envfile.h).
 *
 * Each line is parsed on its own into a scratch buffer as large as the
 * line, handed to the callback, then wiped: values may be secrets, so they
 * never reach an error message and never outlive the call.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envfile.h"
#include "errbuf.h"

#define ENVFILE_MAX (1024 * 1024)

/* memset() that the compiler may not elide. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

static int
is_blank(char c)
{

	return (c == ' ' || c == '\t');
}

static int
is_key_start(char c)
{

	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_');
}

static int
is_key_char(char c)
{

	return (is_key_start(c) || (c >= '0' && c <= '9'));
}

/*
 * Parse the line ${s}[0..${n}) (no line end) into ${buf} (>= n + 2 bytes):
 * the key, a NUL, the value, a NUL.  Returns 1 with *${val} set for an
 * assignment, 0 for a blank or comment line, or -1 with *${why} set.
 */
static int
parse_line(const char *s, size_t n, char *buf, char **val, const char **why)
{
	size_t i = 0, k = 0, end;
	char *o;

	while (i < n && is_blank(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return (0);

	/* Optional "export" and at least one blank. */
	if (n - i > 6 && memcmp(s + i, "export", 6) == 0 &&
	    is_blank(s[i + 6])) {
		i += 6;
		while (i < n && is_blank(s[i]))
			i++;
	}

	/* KEY */
	if (i == n || !is_key_start(s[i])) {
		*why = "expected a variable name ([A-Za-z_][A-Za-z0-9_]*)";
		return (-1);
	}
	while (i < n && is_key_char(s[i]))
		buf[k++] = s[i++];
	buf[k++] = '\0';
	if (i == n || s[i] != '=') {
		*why = "expected '=' right after the variable name";
		return (-1);
	}
	i++;
	*val = o = buf + k;

	while (i < n && is_blank(s[i]))
		i++;
	if (i < n && s[i] == '"') {
		for (i++; i < n && s[i] != '"'; i++) {
			if (s[i] != '\\') {
				*o++ = s[i];
				continue;
			}
			if (++i == n)
				break;
			switch (s[i]) {
			case 'n':
				*o++ = '\n';
				break;
			case 't':
				*o++ = '\t';
				break;
			case '\\':
			case '"':
			case '$':
				*o++ = s[i];
				break;
			default:
				*why = "unknown escape in double-quoted value "
				    "(use \\n \\t \\\\ \\\" \\$)";
				return (-1);
			}
		}
		if (i == n) {
			*why = "unterminated double-quoted value";
			return (-1);
		}
		i++;
	} else if (i < n && s[i] == '\'') {
		for (i++; i < n && s[i] != '\''; i++)
			*o++ = s[i];
		if (i == n) {
			*why = "unterminated single-quoted value";
			return (-1);
		}
		i++;
	} else {
		/*
		 * Unquoted: up to a blank followed by '#', blanks trimmed.
		 * s[end - 1] exists: at worst it is the '='.
		 */
		for (end = i; end < n; end++)
			if (s[end] == '#' && is_blank(s[end - 1]))
				break;
		while (end > i && is_blank(s[end - 1]))
			end--;
		memcpy(o, s + i, end - i);
		o += end - i;
		*o = '\0';
		return (1);
	}
	*o = '\0';

	/* After a closing quote: blanks, then nothing or a comment. */
	while (i < n && is_blank(s[i]))
		i++;
	if (i < n && s[i] != '#') {
		*why = "unexpected text after the closing quote";
		return (-1);
	}
	return (1);
}

/*
 * Parse ${buf}.  Returns 0, -1 on a syntax error or the callback's non-zero
 * return, with *${line} and *${why} set (*${line} is 0 when the error is
 * not a line's: out of memory).
 */
static int
parse(const char *buf, size_t len, envfile_cb *cb, void *ctx, size_t *line,
    const char **why)
{
	const char *p = buf, *end = buf + len, *nl;
	char *scratch = NULL, *val = NULL;
	size_t n, cap = 0;
	int r = 0;

	*line = 0;
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
		/* Name the first line holding a NUL. */
		const char *z = memchr(p, '\0', (size_t)(end - p));

		*line = 1;
		for (const char *q = p; q < z; q++)
			if (*q == '\n')
				(*line)++;
		*why = "NUL byte in the file";
		return (-1);
	}
	while (p < end) {
		(*line)++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n + 2 > cap) {
			if (scratch != NULL)
				wipe(scratch, cap);
			free(scratch);
			cap = n + 2;
			if ((scratch = malloc(cap)) == NULL) {
				*line = 0;
				*why = "out of memory";
				r = -1;
				goto done;
			}
		}
		switch (parse_line(p, n, scratch, &val, why)) {
		case -1:
			r = -1;
			goto done;
		case 1:
			if ((r = cb(ctx, scratch, val)) != 0) {
				*why = "could not store the assignment";
				goto done;
			}
			break;
		}
		wipe(scratch, cap);
		p = nl < end ? nl + 1 : end;
	}

done:
	if (scratch != NULL)
		wipe(scratch, cap);
	free(scratch);
	return (r);
}

int
envfile_parse(const char *buf, size_t len, envfile_cb *cb, void *ctx,
    char *err, size_t errlen)
{
	const char *why = NULL;
	size_t line;
	int r;

	if ((r = parse(buf, len, cb, ctx, &line, &why)) != 0 && why != NULL) {
		if (line > 0)
			errbuf_set(err, errlen, "line %zu: %s", line, why);
		else
			errbuf_set(err, errlen, "%s", why);
	}
	return (r);
}

int
envfile_load(const char *path, envfile_cb *cb, void *ctx, char *err,
    size_t errlen)
{
	struct stat sb;
	const char *why = NULL;
	char *buf = NULL;
	size_t len = 0, line;
	ssize_t got;
	int fd, r = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return (1);
		errbuf_set(err, errlen, "%s: %s", path, ERRSTR(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1) {
		errbuf_set(err, errlen, "%s: %s", path, ERRSTR(errno));
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		errbuf_set(err, errlen, "%s: not a regular file", path);
		goto done;
	}
	/* Read one byte past the limit to notice a file that grew. */
	if ((buf = malloc(ENVFILE_MAX + 1)) == NULL) {
		errbuf_set(err, errlen, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		got = read(fd, buf + len, ENVFILE_MAX + 1 - len);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			errbuf_set(err, errlen, "%s: %s", path, ERRSTR(errno));
			goto done;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > ENVFILE_MAX) {
			errbuf_set(err, errlen, "%s: larger than 1 MiB", path);
			goto done;
		}
	}
	if ((r = parse(buf, len, cb, ctx, &line, &why)) != 0 && why != NULL) {
		if (line > 0)
			errbuf_set(err, errlen, "%s:%zu: %s", path, line, why);
		else
			errbuf_set(err, errlen, "%s: %s", path, why);
	}

done:
	if (buf != NULL)
		wipe(buf, len);
	free(buf);
	close(fd);
	return (r);
}
