/*
 * jsonl: one JSON value per line, checked by yajl without callbacks.
 *
 * How it works: memchr finds the next newline in the chunk; the bytes of
 * the current line up to it go to yajl_parse in one call (a line spanning
 * chunks is parsed in several calls, yajl keeps the state), and the
 * newline ends the value with yajl_complete_parse.  yajl 2.1 has no reset,
 * and a handle that completed a value refuses another one (multiple values
 * are off), so each line gets a fresh handle: allocated lazily at the
 * line's first byte, freed at its newline.  With no callbacks yajl only
 * lexes and checks the grammar, which makes this costlier than memchr but
 * far cheaper than building a tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "jsonl.h"

struct jsonl {
	yajl_handle h;      /* parser of the current line, NULL between lines */
	size_t max_line;    /* 0: no limit */
	size_t linelen;     /* bytes of the current line so far */
	uint64_t lines;     /* complete lines, all streams */
	uint64_t lineno;    /* 1-based line number in the current stream */
	int failed;         /* an error was returned; feed refuses */
	char msg[160];
};

struct jsonl *
jsonl_new(size_t max_line)
{
	struct jsonl *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (NULL);
	j->max_line = max_line;
	j->lineno = 1;
	return (j);
}

/* j->msg = "line N: what[: detail]", printable ASCII only, one line. */
static void
set_msg(struct jsonl *j, const char *what, const char *detail)
{
	size_t n;
	int k;

	k = snprintf(j->msg, sizeof(j->msg), "line %llu: %s",
	    (unsigned long long)j->lineno, what);
	if (k < 0 || (size_t)k >= sizeof(j->msg) || detail == NULL)
		return;
	n = (size_t)k;
	if (n + 2 < sizeof(j->msg)) {
		j->msg[n++] = ':';
		j->msg[n++] = ' ';
	}
	for (; *detail != '\0' && n + 1 < sizeof(j->msg); detail++) {
		unsigned char c = (unsigned char)*detail;

		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		j->msg[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	while (n > 0 && j->msg[n - 1] == ' ')
		n--;
	j->msg[n] = '\0';
}

/* Record the yajl error of the current line and fail. */
static enum jsonl_status
fail_yajl(struct jsonl *j)
{
	unsigned char *e;

	e = yajl_get_error(j->h, 0, NULL, 0);
	set_msg(j, "invalid JSON", e != NULL ? (const char *)e : NULL);
	if (e != NULL)
		yajl_free_error(j->h, e);
	j->failed = 1;
	return (JSONL_BAD);
}

static enum jsonl_status
fail(struct jsonl *j, enum jsonl_status st, const char *what)
{
	set_msg(j, what, NULL);
	j->failed = 1;
	return (st);
}

/* End the current (non-empty) line: the value must be complete. */
static enum jsonl_status
end_line(struct jsonl *j)
{
	if (yajl_complete_parse(j->h) != yajl_status_ok)
		return (fail_yajl(j));
	yajl_free(j->h);
	j->h = NULL;
	j->linelen = 0;
	j->lines++;
	j->lineno++;
	return (JSONL_OK);
}

enum jsonl_status
jsonl_feed(struct jsonl *j, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	const unsigned char *nl;
	size_t seg;

	if (j->failed)
		return (JSONL_BAD);
	while (len > 0) {
		nl = memchr(p, '\n', len);
		seg = nl != NULL ? (size_t)(nl - p) : len;
		if (seg > 0) {
			if (j->max_line != 0 && seg > j->max_line - j->linelen)
				return (fail(j, JSONL_LONG, "line too long"));
			if (j->h == NULL &&
			    (j->h = yajl_alloc(NULL, NULL, NULL)) == NULL)
				return (fail(j, JSONL_NOMEM, "out of memory"));
			if (yajl_parse(j->h, p, seg) != yajl_status_ok)
				return (fail_yajl(j));
			j->linelen += seg;
		}
		if (nl == NULL)
			break;
		if (j->linelen == 0)
			return (fail(j, JSONL_EMPTY, "empty line"));
		if (end_line(j) != JSONL_OK)
			return (JSONL_BAD);
		p += seg + 1;
		len -= seg + 1;
	}
	return (JSONL_OK);
}

enum jsonl_status
jsonl_finish(struct jsonl *j, int *need_nl)
{
	*need_nl = 0;
	if (j->failed)
		return (JSONL_BAD);
	if (j->linelen > 0) {
		if (end_line(j) != JSONL_OK)
			return (JSONL_BAD);
		*need_nl = 1;
	}
	j->lineno = 1;
	return (JSONL_OK);
}

void
jsonl_reset(struct jsonl *j)
{
	if (j->h != NULL)
		yajl_free(j->h);
	j->h = NULL;
	j->linelen = 0;
	j->lineno = 1;
	j->failed = 0;
	j->msg[0] = '\0';
}

uint64_t
jsonl_lines(const struct jsonl *j)
{
	return (j->lines);
}

const char *
jsonl_error(const struct jsonl *j)
{
	return (j->msg);
}

void
jsonl_free(struct jsonl *j)
{
	if (j == NULL)
		return;
	if (j->h != NULL)
		yajl_free(j->h);
	free(j);
}
