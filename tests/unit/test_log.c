/*
 * Unit tests: the logger's text and JSON lines (JSON checked with yajl),
 * level filtering, truncation, concurrency and the terminal progress line.
 */
#define _XOPEN_SOURCE 700 /* posix_openpt */
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "hour.h"
#include "log.h"
#include "unit.h"

static char tmpdir[64];
static char path[128];

static void
setup(void)
{

	if (tmpdir[0] == '\0') {
		strcpy(tmpdir, "/tmp/amp2s3-logXXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			abort();
	}
	snprintf(path, sizeof(path), "%s/log", tmpdir);
	unlink(path);
}

/* The whole file at ${p} as a NUL-terminated string (free it), or NULL. */
static char *
slurp(const char *p, size_t *lenp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t got;
	int fd;

	if ((fd = open(p, O_RDONLY)) == -1)
		return (NULL);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap * 2 + 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				close(fd);
				return (NULL);
			}
			buf = nb;
		}
		if ((got = read(fd, buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return (buf);
}

/* ${s} starts with ${pat}, where '#' is any digit, other bytes literal. */
static int
shape(const char *s, const char *pat)
{

	for (; *pat; s++, pat++) {
		if (*pat == '#' ? (*s < '0' || *s > '9') : *s != *pat)
			return (0);
	}
	return (1);
}

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS" at ${s}. */
static int64_t
ts_secs(const char *s)
{
	amp_hour h;
	int y, mo, d, hh, mi, se;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &hh, &mi,
	    &se) != 6 || hour_from_ymdh(y, mo, d, hh, &h))
		return (-1);
	return (h * 3600 + mi * 60 + se);
}

struct jline {
	char ts[64], level[16];
	char *msg;
};

/*
 * Parse one JSON line (${s}, ${n} bytes, no newline) with yajl: it must be
 * an object of exactly "ts", "level", "msg", all strings.  Returns 0/-1.
 */
static int
parse_json(const char *s, size_t n, struct jline *j)
{
	static const char *keys[] = { "ts", "level", "msg" };
	char *copy, ebuf[256];
	yajl_val v;
	int r = -1;

	if ((copy = malloc(n + 1)) == NULL)
		return (-1);
	memcpy(copy, s, n);
	copy[n] = '\0';
	if ((v = yajl_tree_parse(copy, ebuf, sizeof(ebuf))) == NULL) {
		fprintf(stderr, "yajl: %s\n", ebuf);
		goto out;
	}
	if (!YAJL_IS_OBJECT(v) || v->u.object.len != 3)
		goto out;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(v->u.object.keys[i], keys[i]) != 0 ||
		    !YAJL_IS_STRING(v->u.object.values[i]))
			goto out;
	/* All three are strings (checked above). */
	snprintf(j->ts, sizeof(j->ts), "%s", v->u.object.values[0]->u.string);
	snprintf(j->level, sizeof(j->level), "%s",
	    v->u.object.values[1]->u.string);
	if ((j->msg = strdup(v->u.object.values[2]->u.string)) == NULL)
		goto out;
	r = 0;
out:
	yajl_tree_free(v);
	free(copy);
	return (r);
}

static void
test_text(void)
{
	struct logger *lg;
	char *buf, *p;
	int64_t now = (int64_t)time(NULL), t;
	struct stat sb;
	mode_t old;

	setup();
	old = umask(022);
	lg = log_open(LOG_INFO, LOG_TEXT, path);
	umask(old);
	CHECK(lg != NULL);
	if (lg == NULL)
		return;
	CHECK_EQ_INT(log_is_tty(lg), 0);
	CHECK_EQ_INT(stat(path, &sb), 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	errno = EDOM;
	log_info(lg, "hello %d %s", 42, "world");
	CHECK_EQ_INT(errno, EDOM);
	log_debug(lg, "not shown");
	log_warn(lg, "careful");
	log_error(lg, "broken: %s", "esc\n\x1b[31mred\tq\"\\\xff\xc2\x85"
	    " caf\xc3\xa9");
	log_msg(lg, LOG_OFF, "never");
	log_progress(lg, "not a terminal: ignored");
	log_progress(lg, NULL);
	log_close(lg);

	/* Appending keeps the first lines. */
	CHECK((lg = log_open(LOG_DEBUG, LOG_TEXT, path)) != NULL);
	log_debug(lg, "second open");
	log_close(lg);

	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf == NULL)
		return;
	p = buf;
	CHECK(shape(p, "####-##-##T##:##:##Z amp2s3 info: hello 42 world\n"));
	t = ts_secs(p);
	CHECK(t >= now - 1 && t <= now + 5);
	p = strchr(p, '\n') + 1;
	CHECK(shape(p, "####-##-##T##:##:##Z amp2s3 warn: careful\n"));
	p = strchr(p, '\n') + 1;
	CHECK(shape(p, "####-##-##T##:##:##Z amp2s3 error: broken: "
	    "esc\\n\\x1b[31mred\tq\"\\\\xff\\xc2\\x85 caf\xc3\xa9\n"));
	p = strchr(p, '\n') + 1;
	CHECK(shape(p, "####-##-##T##:##:##Z amp2s3 debug: second open\n"));
	p = strchr(p, '\n') + 1;
	CHECK_EQ_STR(p, "");
	CHECK_EQ_INT(p - buf, 4 * 20 + strlen(" amp2s3 info: hello 42 world\n")
	    + strlen(" amp2s3 warn: careful\n") + strlen(" amp2s3 error: "
	    "broken: esc\\n\\x1b[31mred\tq\"\\\\xff\\xc2\\x85 caf\xc3\xa9\n") +
	    strlen(" amp2s3 debug: second open\n"));
	free(buf);
}

static void
test_json(void)
{
	static const struct {
		enum log_level level;
		const char *in, *want;
	} c[] = {
		{ LOG_INFO, "plain", "plain" },
		{ LOG_WARN, "say \"hi\" \\ back\\slash", "say \"hi\" \\ "
		    "back\\slash" },
		{ LOG_ERROR, "two\nlines\r\n\ttab", "two\nlines\r\n\ttab" },
		{ LOG_INFO, "ctl \x01\x02\x1f\x7f\b\f end",
		    "ctl \x01\x02\x1f\x7f\b\f end" },
		/* Invalid UTF-8: lone continuation, bad lead, overlong,
		 * surrogate, cut sequence, > U+10FFFF. */
		{ LOG_INFO, "bad \x80|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82|"
		    "\xf4\x90\x80\x80", "bad \xef\xbf\xbd|\xef\xbf\xbd|"
		    "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd"
		    "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd"
		    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ LOG_INFO, "ok caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
		    "\xc2\x85", "ok caf\xc3\xa9 \xe2\x82\xac "
		    "\xf0\x9f\x98\x80 \xc2\x85" },
		{ LOG_INFO, "", "" },
	};
	static const char *lv[] = { "debug", "info", "warn", "error" };
	const size_t nc = sizeof(c) / sizeof(c[0]);
	struct logger *lg;
	char *buf, *p, *nl;
	size_t i = 0;
	int64_t now = (int64_t)time(NULL), t;

	setup();
	CHECK((lg = log_open(LOG_DEBUG, LOG_JSON, path)) != NULL);
	if (lg == NULL)
		return;
	for (i = 0; i < nc; i++)
		log_msg(lg, c[i].level, "%s", c[i].in);
	log_close(lg);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf == NULL)
		return;

	/* Exact shape of the first line. */
	CHECK(shape(buf, "{\"ts\":\"####-##-##T##:##:##.###Z\","
	    "\"level\":\"info\",\"msg\":\"plain\"}\n"));
	t = ts_secs(buf + 7);
	CHECK(t >= now - 1 && t <= now + 5);
	/* Control characters are escaped, never raw. */
	CHECK(strstr(buf, "ctl \\u0001\\u0002\\u001f\\u007f\\u0008"
	    "\\u000c end") != NULL);
	CHECK(strstr(buf, "two\\nlines\\r\\n\\ttab") != NULL);

	for (p = buf, i = 0; *p != '\0'; p = nl + 1, i++) {
		struct jline j = { .msg = NULL };

		if ((nl = strchr(p, '\n')) == NULL)
			break;
		CHECK(i < nc);
		if (i >= nc)
			break;
		CHECK_EQ_INT(parse_json(p, (size_t)(nl - p), &j), 0);
		CHECK(shape(j.ts, "####-##-##T##:##:##.###Z"));
		CHECK_EQ_INT(strlen(j.ts), 24);
		CHECK_EQ_STR(j.level, lv[c[i].level]);
		CHECK_EQ_STR(j.msg, c[i].want);
		free(j.msg);
	}
	CHECK_EQ_INT(i, nc);
	CHECK(*p == '\0');
	free(buf);
}

/* log_fields(): members after "msg" in JSON, the message alone in text;
 * log_term_width(): a terminal's columns, 0 elsewhere. */
static void
test_json_fields(void)
{
	static const struct log_field f[] = {
		{ .key = "hours_done", .type = LOG_FIELD_INT, .i = 3 },
		{ .key = "bytes", .type = LOG_FIELD_INT, .i = -5000000000 },
		{ .key = "wait", .type = LOG_FIELD_STR,
		    .s = "429: \"x\"\n\x01" },
		{ .key = "eta_s", .type = LOG_FIELD_NULL },
		{ .key = "none", .type = LOG_FIELD_STR, .s = NULL },
	};
	char ebuf[256], *buf, *name;
	struct winsize ws = { .ws_row = 24, .ws_col = 77 };
	struct logger *lg;
	yajl_val v, x;
	const char *k;
	int m, s;

	setup();
	CHECK((lg = log_open(LOG_INFO, LOG_JSON, path)) != NULL);
	if (lg == NULL)
		return;
	CHECK_EQ_INT(log_term_width(lg), 0);
	log_fields(lg, LOG_INFO, f, 5, "progress: %d", 7);
	log_fields(lg, LOG_DEBUG, f, 5, "below the level");
	log_close(lg);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf == NULL)
		return;
	CHECK(strchr(buf, '\n') == buf + strlen(buf) - 1);
	v = yajl_tree_parse(buf, ebuf, sizeof(ebuf));
	CHECK(v != NULL && YAJL_IS_OBJECT(v) && v->u.object.len == 8);
	if (v != NULL && YAJL_IS_OBJECT(v) && v->u.object.len == 8) {
		k = v->u.object.keys[2];
		x = v->u.object.values[2];
		CHECK_EQ_STR(k, "msg");
		CHECK(YAJL_IS_STRING(x) && strcmp(x->u.string,
		    "progress: 7") == 0);
		x = v->u.object.values[3];
		CHECK_EQ_STR(v->u.object.keys[3], "hours_done");
		CHECK(YAJL_IS_INTEGER(x) && YAJL_GET_INTEGER(x) == 3);
		x = v->u.object.values[4];
		CHECK(YAJL_IS_INTEGER(x) &&
		    YAJL_GET_INTEGER(x) == -5000000000LL);
		x = v->u.object.values[5];
		CHECK_EQ_STR(v->u.object.keys[5], "wait");
		CHECK(YAJL_IS_STRING(x) && strcmp(x->u.string,
		    "429: \"x\"\n\x01") == 0);
		CHECK(YAJL_IS_NULL(v->u.object.values[6]));
		CHECK_EQ_STR(v->u.object.keys[7], "none");
		CHECK(YAJL_IS_NULL(v->u.object.values[7]));
	}
	yajl_tree_free(v);
	free(buf);

	/* Text: the message alone. */
	setup();
	CHECK((lg = log_open(LOG_INFO, LOG_TEXT, path)) != NULL);
	if (lg == NULL)
		return;
	log_fields(lg, LOG_INFO, f, 5, "progress: %d", 7);
	log_close(lg);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf != NULL)
		CHECK(shape(buf, "####-##-##T##:##:##Z amp2s3 info: "
		    "progress: 7\n") && strlen(buf) == 20 + 26);
	free(buf);

	/* A terminal's width, read again on each call. */
	CHECK((m = posix_openpt(O_RDWR | O_NOCTTY)) != -1);
	if (m == -1)
		return;
	CHECK(grantpt(m) == 0 && unlockpt(m) == 0);
	CHECK((name = ptsname(m)) != NULL);
	if (name != NULL && (s = open(name, O_RDWR | O_NOCTTY)) != -1) {
		CHECK(ioctl(s, TIOCSWINSZ, &ws) == 0);
		CHECK((lg = log_open(LOG_INFO, LOG_TEXT, name)) != NULL);
		CHECK_EQ_INT(log_term_width(lg), 77);
		ws.ws_col = 132;
		CHECK(ioctl(s, TIOCSWINSZ, &ws) == 0);
		CHECK_EQ_INT(log_term_width(lg), 132);
		log_close(lg);
		close(s);
	}
	close(m);
}

static void
test_levels(void)
{
	struct logger *lg;
	enum log_level l = LOG_OFF;
	enum log_format f = LOG_TEXT;
	char *buf;
	size_t len = 99;

	CHECK_EQ_INT(log_parse_level("debug", &l), 0);
	CHECK_EQ_INT(l, LOG_DEBUG);
	CHECK_EQ_INT(log_parse_level("info", &l), 0);
	CHECK_EQ_INT(l, LOG_INFO);
	CHECK_EQ_INT(log_parse_level("WARN", &l), 0);
	CHECK_EQ_INT(l, LOG_WARN);
	CHECK_EQ_INT(log_parse_level("error", &l), 0);
	CHECK_EQ_INT(l, LOG_ERROR);
	CHECK_EQ_INT(log_parse_level("off", &l), 0);
	CHECK_EQ_INT(l, LOG_OFF);
	CHECK_EQ_INT(log_parse_level("verbose", &l), -1);
	CHECK_EQ_INT(log_parse_level("", &l), -1);
	CHECK_EQ_INT(log_parse_level("info ", &l), -1);
	CHECK_EQ_INT(l, LOG_OFF);
	CHECK_EQ_INT(log_parse_format("json", &f), 0);
	CHECK_EQ_INT(f, LOG_JSON);
	CHECK_EQ_INT(log_parse_format("Text", &f), 0);
	CHECK_EQ_INT(f, LOG_TEXT);
	CHECK_EQ_INT(log_parse_format("xml", &f), -1);

	setup();
	CHECK((lg = log_open(LOG_WARN, LOG_TEXT, path)) != NULL);
	if (lg == NULL)
		return;
	CHECK_EQ_INT(log_enabled(lg, LOG_DEBUG), 0);
	CHECK_EQ_INT(log_enabled(lg, LOG_INFO), 0);
	CHECK(log_enabled(lg, LOG_WARN) != 0);
	CHECK(log_enabled(lg, LOG_ERROR) != 0);
	CHECK_EQ_INT(log_enabled(lg, LOG_OFF), 0);
	log_debug(lg, "d");
	log_info(lg, "i");
	log_warn(lg, "w");
	log_error(lg, "e");
	log_close(lg);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf != NULL) {
		static const char pat[] = "####-##-##T##:##:##Z amp2s3 warn: "
		    "w\n####-##-##T##:##:##Z amp2s3 error: e\n";

		CHECK(shape(buf, pat));
		CHECK_EQ_INT(strlen(buf), strlen(pat));
		free(buf);
	}

	setup();
	CHECK((lg = log_open(LOG_OFF, LOG_JSON, path)) != NULL);
	if (lg == NULL)
		return;
	CHECK_EQ_INT(log_enabled(lg, LOG_ERROR), 0);
	log_error(lg, "e");
	log_close(lg);
	CHECK((buf = slurp(path, &len)) != NULL);
	CHECK_EQ_INT(len, 0);
	free(buf);

	CHECK(log_enabled(NULL, LOG_DEBUG) != 0);
	CHECK_EQ_INT(log_enabled(NULL, LOG_OFF), 0);
	CHECK_EQ_INT(log_is_tty(NULL), 0);
	log_close(NULL);
	log_progress(NULL, "x");

	/* A log file that cannot be opened. */
	errno = 0;
	CHECK(log_open(LOG_INFO, LOG_TEXT, "/nonexistent-dir/x/log") == NULL);
	CHECK_EQ_INT(errno, ENOENT);
}

static void
test_truncate(void)
{
	struct logger *lg;
	char *big, *buf, *nl, *p;
	struct jline j = { .msg = NULL };
	size_t n = 20000;

	if ((big = malloc(n + 1)) == NULL)
		return;
	setup();
	CHECK((lg = log_open(LOG_INFO, LOG_JSON, path)) != NULL);
	if (lg == NULL) {
		free(big);
		return;
	}
	/* 1: plain bytes over the limit. */
	memset(big, 'x', n);
	big[n] = '\0';
	log_info(lg, "%s", big);
	/* 2: control bytes whose escapes (6 bytes each) overflow. */
	memset(big, '\x01', n);
	log_info(lg, "%s", big);
	/* 3: 3-byte characters cut by the raw limit (8192 = 3 * 2730 + 2). */
	for (size_t i = 0; i + 3 <= n; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);
	big[n - n % 3] = '\0';
	log_info(lg, "%s", big);
	/* 4: exactly at the limit less "..." is written whole. */
	memset(big, 'y', LOG_MSG_MAX - 3);
	big[LOG_MSG_MAX - 3] = '\0';
	log_info(lg, "%s", big);
	log_close(lg);

	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf == NULL) {
		free(big);
		return;
	}
	p = buf;
	for (int line = 1; line <= 4; line++, p = nl + 1) {
		size_t ml;

		CHECK((nl = strchr(p, '\n')) != NULL);
		if (nl == NULL)
			break;
		CHECK_EQ_INT(parse_json(p, (size_t)(nl - p), &j), 0);
		if (j.msg == NULL)
			continue;
		ml = strlen(j.msg);
		switch (line) {
		case 1:
			CHECK_EQ_INT(ml, LOG_MSG_MAX);
			CHECK_EQ_INT(strspn(j.msg, "x"), LOG_MSG_MAX - 3);
			CHECK_EQ_STR(j.msg + ml - 3, "...");
			break;
		case 2:
			/* (8192 - 3) / 6 = 1364 escapes fit. */
			CHECK_EQ_INT(ml, 1364 + 3);
			CHECK_EQ_INT(strspn(j.msg, "\x01"), 1364);
			CHECK_EQ_STR(j.msg + ml - 3, "...");
			CHECK_EQ_INT(nl - p, 55 + 1364 * 6 + 3 + 2);
			break;
		case 3:
			/* 2729 whole characters (8187 bytes) fit in 8189. */
			CHECK_EQ_INT(ml, 2729 * 3 + 3);
			CHECK_EQ_STR(j.msg + ml - 3, "...");
			CHECK(strncmp(j.msg, "\xe2\x82\xac\xe2\x82\xac", 6) ==
			    0);
			CHECK(strstr(j.msg, "\xef\xbf\xbd") == NULL);
			break;
		case 4:
			CHECK_EQ_INT(ml, LOG_MSG_MAX - 3);
			CHECK_EQ_INT(strspn(j.msg, "y"), LOG_MSG_MAX - 3);
			break;
		}
		free(j.msg);
		j.msg = NULL;
	}
	CHECK(*p == '\0');
	free(buf);
	free(big);
}

#define NTHREADS 4
#define NMSGS 500

struct writer {
	struct logger *lg;
	int id;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < NMSGS; i++)
		log_info(w->lg, "thread %d message %d \"q\"\n%0300d", w->id,
		    i, i);
	return (NULL);
}

static void
test_threads(void)
{
	struct logger *lg;
	struct writer w[NTHREADS];
	pthread_t th[NTHREADS];
	int seen[NTHREADS] = { 0 }, bad = 0, lines = 0;
	char *buf, *p, *nl;

	setup();
	CHECK((lg = log_open(LOG_INFO, LOG_JSON, path)) != NULL);
	if (lg == NULL)
		return;
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct writer){ lg, i };
		CHECK_EQ_INT(pthread_create(&th[i], NULL, writer_main, &w[i]),
		    0);
	}
	for (int i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(pthread_join(th[i], NULL), 0);
	log_close(lg);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf == NULL)
		return;
	for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		struct jline j = { .msg = NULL };
		int id, n;

		lines++;
		if (parse_json(p, (size_t)(nl - p), &j) != 0 ||
		    sscanf(j.msg, "thread %d message %d", &id, &n) != 2 ||
		    id < 0 || id >= NTHREADS || n != seen[id]) {
			bad++;
		} else {
			seen[id]++;
		}
		free(j.msg);
	}
	CHECK_EQ_INT(lines, NTHREADS * NMSGS);
	CHECK_EQ_INT(bad, 0);
	for (int i = 0; i < NTHREADS; i++)
		CHECK_EQ_INT(seen[i], NMSGS);
	free(buf);
}

/* log_msg(NULL, ...) writes text to stderr. */
static void
test_null_logger(void)
{
	int saved, fd;
	char *buf;

	setup();
	fflush(stderr);
	CHECK((saved = dup(STDERR_FILENO)) != -1);
	CHECK((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1);
	if (saved == -1 || fd == -1)
		return;
	CHECK(dup2(fd, STDERR_FILENO) != -1);
	close(fd);
	log_msg(NULL, LOG_DEBUG, "before %s", "the logger");
	log_error(NULL, "bad\x1b");
	CHECK(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	CHECK((buf = slurp(path, NULL)) != NULL);
	if (buf != NULL) {
		static const char pat[] = "####-##-##T##:##:##Z amp2s3 debug: "
		    "before the logger\n####-##-##T##:##:##Z amp2s3 error: "
		    "bad\\x1b\n";

		CHECK(shape(buf, pat));
		CHECK_EQ_INT(strlen(buf), strlen(pat));
		free(buf);
	}
}

/* Read from ${fd} until ${want} bytes arrived or 5 s pass. */
static size_t
read_n(int fd, char *buf, size_t want)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t r;

	while (got < want && poll(&pfd, 1, 5000) == 1) {
		if ((r = read(fd, buf + got, want - got)) <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	return (got);
}

static void
test_tty(void)
{
	struct logger *lg;
	struct termios tio;
	char buf[512], want[512], *name;
	int m, s;
	size_t n;

	/* No pseudo-terminal is a failure, not a skip: the progress line
	 * must be tested wherever the suite runs. */
	CHECK((m = posix_openpt(O_RDWR | O_NOCTTY)) != -1);
	if (m == -1)
		return;
	CHECK(grantpt(m) == 0 && unlockpt(m) == 0);
	CHECK((name = ptsname(m)) != NULL);
	if (name == NULL) {
		close(m);
		return;
	}
	/* Raw output: the pty must not turn "\n" into "\r\n". */
	CHECK((s = open(name, O_RDWR | O_NOCTTY)) != -1);
	CHECK(tcgetattr(s, &tio) == 0);
	cfmakeraw(&tio);
	CHECK(tcsetattr(s, TCSANOW, &tio) == 0);

	CHECK((lg = log_open(LOG_INFO, LOG_TEXT, name)) != NULL);
	if (lg == NULL) {
		close(s);
		close(m);
		return;
	}
	CHECK(log_is_tty(lg) != 0);

	/* A message with no progress line shown is written plain. */
	log_info(lg, "first");
	strcpy(want, "####-##-##T##:##:##Z amp2s3 info: first\n");
	n = read_n(m, buf, strlen(want));
	CHECK_EQ_INT(n, strlen(want));
	CHECK(shape(buf, want));

	/* Progress: \r line \033[K, control characters dropped. */
	log_progress(lg, "hours 1/9\x1b[2J\n");
	strcpy(want, "\rhours 1/9[2J\033[K");
	n = read_n(m, buf, strlen(want));
	CHECK_EQ_STR(buf, want);

	/* A message clears the line, is written, and the line is redrawn. */
	log_warn(lg, "second");
	strcpy(want, "\r\033[K####-##-##T##:##:##Z amp2s3 warn: second\n"
	    "\rhours 1/9[2J\033[K");
	n = read_n(m, buf, strlen(want));
	CHECK_EQ_INT(n, strlen(want));
	CHECK(shape(buf, want));

	/* NULL clears it and a later message is plain again. */
	log_progress(lg, NULL);
	n = read_n(m, buf, 4);
	CHECK_EQ_STR(buf, "\r\033[K");
	log_progress(lg, NULL);  /* nothing shown: writes nothing */
	log_info(lg, "third");
	strcpy(want, "####-##-##T##:##:##Z amp2s3 info: third\n");
	n = read_n(m, buf, strlen(want));
	CHECK_EQ_INT(n, strlen(want));
	CHECK(shape(buf, want));

	/* Closing clears a progress line still shown. */
	log_progress(lg, "p");
	n = read_n(m, buf, 5);
	CHECK_EQ_STR(buf, "\rp\033[K");
	log_close(lg);
	n = read_n(m, buf, 4);
	CHECK_EQ_STR(buf, "\r\033[K");
	close(s);
	close(m);
}

/* A rotation renames the file; log_reopen writes to a new one by the
 * same name (0600), the old one keeps what came before.  On stderr it is
 * a no-op. */
static void
test_reopen(void)
{
	struct logger *lg;
	char old[160], *a, *b;
	struct stat sb;

	setup();
	snprintf(old, sizeof(old), "%s.1", path);
	unlink(old);
	CHECK((lg = log_open(LOG_INFO, LOG_TEXT, path)) != NULL);
	if (lg == NULL)
		return;
	log_info(lg, "before");
	CHECK_EQ_INT(rename(path, old), 0);
	log_info(lg, "still the old file");
	CHECK_EQ_INT(log_reopen(lg), 0);
	log_info(lg, "after");
	log_close(lg);
	a = slurp(old, NULL);
	b = slurp(path, NULL);
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL) {
		CHECK(strstr(a, "before") != NULL);
		CHECK(strstr(a, "still the old file") != NULL);
		CHECK(strstr(a, "after") == NULL);
		CHECK(strstr(b, "after") != NULL);
		CHECK(strstr(b, "before") == NULL);
	}
	free(a);
	free(b);
	CHECK_EQ_INT(stat(path, &sb), 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	unlink(old);

	CHECK((lg = log_open(LOG_INFO, LOG_TEXT, NULL)) != NULL);
	CHECK_EQ_INT(log_reopen(lg), 0);
	log_close(lg);
	CHECK_EQ_INT(log_reopen(NULL), 0);
}

UNIT_MAIN("log",
    TEST(test_reopen),
    TEST(test_text),
    TEST(test_json),
    TEST(test_json_fields),
    TEST(test_levels),
    TEST(test_truncate),
    TEST(test_threads),
    TEST(test_null_logger),
    TEST(test_tty))
