/*
 * store: complete hours kept in S3 or in a folder, behind one interface
 * (see store.h).
 *
 * An hour's object is <prefix>YYYY-MM-DD_HH.jsonl.  The S3 backend is a
 * thin layer over s3.h (the S3 semantics make a PUT atomic).  The folder
 * backend writes a temporary name in the target directory, fsyncs it and
 * renames it over the final name (then fsyncs the directory), so a reader
 * sees a whole file or none.  Both keep no mutable state after open except
 * the folder's atomic temporary-name counter, so calls may run in any
 * number of threads at once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hour.h"
#include "s3.h"
#include "store.h"

#define HOUR_NAME_LEN (HOUR_FILE_LEN - 1)  /* "YYYY-MM-DD_HH" */
#define SUFFIX ".jsonl"
#define SUFFIX_LEN (sizeof(SUFFIX) - 1)
#define COPY_BUF (256 * 1024)

enum backend { B_DIR, B_S3 };

struct store {
	enum backend kind;
	char *prefix;       /* the configured prefix, as given */
	char *desc;         /* store_describe() */

	/* B_DIR: files are ${dir}/${name_prefix}YYYY-MM-DD_HH.jsonl. */
	char *dir;
	char *name_prefix;
	atomic_uint tmpseq;

	/* B_S3 */
	struct s3 *s3;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *
joinstr(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);

	if (s != NULL)
		snprintf(s, n, "%s%s%s", a, b, c);
	return (s);
}

/*
 * hour_of_name(name, len, plen, out): if the ${len} bytes at ${name} are
 * ${plen} bytes of prefix (already matched by the caller) followed by
 * exactly "YYYY-MM-DD_HH.jsonl", store the hour.  0 or -1.
 */
static int
hour_of_name(const char *name, size_t len, size_t plen, amp_hour *out)
{
	if (len != plen + HOUR_NAME_LEN + SUFFIX_LEN ||
	    memcmp(name + plen + HOUR_NAME_LEN, SUFFIX, SUFFIX_LEN) != 0)
		return (-1);
	return (hour_parse_file(name + plen, HOUR_NAME_LEN, out));
}

/* mkdir -p ${path}.  0 or -1 with errno. */
static int
mkdirs(const char *path)
{
	struct stat sb;
	char *p, *s, c;
	int rc = -1;

	if ((p = strdup(path)) == NULL)
		return (-1);
	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(p, 0755) != 0) {
			if (errno != EEXIST || stat(p, &sb) != 0)
				goto out;
			if (!S_ISDIR(sb.st_mode)) {
				errno = ENOTDIR;
				goto out;
			}
		}
		*s = c;
		if (c == '\0')
			break;
	}
	rc = 0;
out:
	free(p);
	return (rc);
}

struct store *
store_open_dir(const char *root, const char *prefix, char *err, size_t errlen)
{
	struct store *st = NULL;
	const char *slash;
	char *sub = NULL;
	size_t dlen;

	if (root == NULL || root[0] == '\0') {
		seterr(err, errlen, "store: no folder given");
		return (NULL);
	}
	if (prefix == NULL)
		prefix = "";
	if (strstr(prefix, "..") != NULL) {
		seterr(err, errlen, "store: prefix '%s' must not contain '..' "
		    "for a folder store", prefix);
		return (NULL);
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		goto nomem;
	st->kind = B_DIR;
	atomic_init(&st->tmpseq, 0);
	/* "a/b/c-" -> directory root/a/b, file names "c-YYYY...". */
	slash = strrchr(prefix, '/');
	dlen = slash != NULL ? (size_t)(slash - prefix) : 0;
	if ((sub = strndup(prefix, dlen)) == NULL ||
	    (st->prefix = strdup(prefix)) == NULL ||
	    (st->name_prefix = strdup(slash != NULL ? slash + 1 : prefix)) ==
	    NULL ||
	    (st->dir = joinstr(root, dlen > 0 ? "/" : "", sub)) == NULL ||
	    (st->desc = malloc(strlen(root) + strlen(prefix) + 6)) == NULL)
		goto nomem;
	snprintf(st->desc, strlen(root) + strlen(prefix) + 6, "dir:%s/%s",
	    root, prefix);
	if (mkdirs(st->dir) != 0) {
		seterr(err, errlen, "store: cannot create %s: %s", st->dir,
		    strerror(errno));
		goto fail;
	}
	free(sub);
	return (st);
nomem:
	seterr(err, errlen, "store: out of memory");
fail:
	free(sub);
	store_free(st);
	return (NULL);
}

struct store *
store_open_s3(const struct s3_config *cfg, const char *prefix,
    struct logger *lg, char *err, size_t errlen)
{
	struct store *st = NULL;
	struct s3_error e;
	size_t n;

	if (prefix == NULL)
		prefix = "";
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->prefix = strdup(prefix)) == NULL) {
		seterr(err, errlen, "store: out of memory");
		goto fail;
	}
	st->kind = B_S3;
	if ((st->s3 = s3_init(cfg, lg, &e)) == NULL) {
		seterr(err, errlen, "%s", e.msg);
		goto fail;
	}
	n = strlen(cfg->bucket) + strlen(prefix) + 7;
	if ((st->desc = malloc(n)) == NULL) {
		seterr(err, errlen, "store: out of memory");
		goto fail;
	}
	snprintf(st->desc, n, "s3://%s/%s", cfg->bucket, prefix);
	return (st);
fail:
	store_free(st);
	return (NULL);
}

static enum store_status
from_s3(enum s3_status s)
{
	switch (s) {
	case S3_OK:
		return (STORE_OK);
	case S3_FATAL:
		return (STORE_FATAL);
	case S3_CANCELLED:
		return (STORE_CANCELLED);
	case S3_FAIL:
	case S3_IO:
	default:
		return (STORE_FAIL);
	}
}

struct s3_list_ctx {
	size_t plen;
	store_hour_cb *cb;
	void *ctx;
};

static int
s3_list_one(void *arg, const char *key, uint64_t size)
{
	struct s3_list_ctx *lc = arg;
	amp_hour h;

	/* s3_list reports only keys under the prefix. */
	if (hour_of_name(key, strlen(key), lc->plen, &h) == 0)
		lc->cb(lc->ctx, h, size);
	return (0);
}

static enum store_status
dir_list(struct store *st, store_hour_cb *cb, void *ctx, char *err,
    size_t errlen)
{
	size_t plen = strlen(st->name_prefix);
	struct dirent *de;
	amp_hour h;
	DIR *d;

	if ((d = opendir(st->dir)) == NULL) {
		if (errno == ENOENT)
			return (STORE_OK);
		seterr(err, errlen, "store: cannot list %s: %s", st->dir,
		    strerror(errno));
		return (STORE_FAIL);
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type == DT_DIR ||
		    strncmp(de->d_name, st->name_prefix, plen) != 0)
			continue;
		if (hour_of_name(de->d_name, strlen(de->d_name), plen, &h) ==
		    0) {
			struct stat sb;
			if (fstatat(dirfd(d), de->d_name, &sb, 0) == 0 &&
			    S_ISREG(sb.st_mode))
				cb(ctx, h, (uint64_t)sb.st_size);
		}
		errno = 0;
	}
	if (errno != 0) {
		seterr(err, errlen, "store: cannot list %s: %s", st->dir,
		    strerror(errno));
		closedir(d);
		return (STORE_FAIL);
	}
	closedir(d);
	return (STORE_OK);
}

enum store_status
store_list(struct store *st, store_hour_cb *cb, void *ctx, char *err,
    size_t errlen)
{
	struct s3_list_ctx lc;
	struct s3_error e;
	enum store_status s;

	if (st->kind == B_DIR)
		return (dir_list(st, cb, ctx, err, errlen));
	lc.plen = strlen(st->prefix);
	lc.cb = cb;
	lc.ctx = ctx;
	if ((s = from_s3(s3_list(st->s3, st->prefix, s3_list_one, &lc, &e))) !=
	    STORE_OK)
		seterr(err, errlen, "%s", e.msg);
	return (s);
}

/* Copy ${src} into the open ${dfd}.  0 or -1 with errno. */
static int
copy_fd(int sfd, int dfd)
{
	char *buf;
	ssize_t r, w, off;
	int rc = -1;

	if ((buf = malloc(COPY_BUF)) == NULL)
		return (-1);
	for (;;) {
		r = read(sfd, buf, COPY_BUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		for (off = 0; off < r; off += w) {
			w = write(dfd, buf + off, (size_t)(r - off));
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w < 0)
				goto out;
		}
	}
	rc = 0;
out:
	free(buf);
	return (rc);
}

static enum store_status
dir_put(struct store *st, amp_hour hour, const char *path, char *err,
    size_t errlen)
{
	char name[HOUR_FILE_LEN], *dst = NULL, *tmp = NULL;
	size_t n;
	int sfd = -1, dfd = -1, dirfd = -1, rc = -1;
	const char *what = "";

	hour_format_file(hour, name);
	n = strlen(st->dir) + strlen(st->name_prefix) + 96;
	if ((dst = malloc(n)) == NULL || (tmp = malloc(n)) == NULL) {
		seterr(err, errlen, "store: out of memory");
		goto out;
	}
	snprintf(dst, n, "%s/%s%s%s", st->dir, st->name_prefix, name, SUFFIX);
	snprintf(tmp, n, "%s/.tmp-%s%s.%ld.%u", st->dir, name, SUFFIX,
	    (long)getpid(), atomic_fetch_add(&st->tmpseq, 1));
	what = path;
	if ((sfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		goto ioerr;
	what = tmp;
	if ((dfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) <
	    0 || copy_fd(sfd, dfd) != 0 || fsync(dfd) != 0)
		goto ioerr;
	if (close(dfd) != 0) {
		dfd = -1;
		goto ioerr;
	}
	dfd = -1;
	what = dst;
	if (rename(tmp, dst) != 0)
		goto ioerr;
	/* Make the rename itself durable. */
	if ((dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		(void)fsync(dirfd);
	rc = 0;
	goto out;
ioerr:
	seterr(err, errlen, "store: %s: %s", what, strerror(errno));
out:
	if (dfd >= 0)
		close(dfd);
	if (rc != 0 && tmp != NULL)
		(void)unlink(tmp);
	if (sfd >= 0)
		close(sfd);
	if (dirfd >= 0)
		close(dirfd);
	free(dst);
	free(tmp);
	return (rc == 0 ? STORE_OK : STORE_FAIL);
}

enum store_status
store_put(struct store *st, amp_hour hour, const char *path, char *err,
    size_t errlen)
{
	char name[HOUR_FILE_LEN], *key;
	struct s3_error e;
	enum store_status s;

	if (st->kind == B_DIR)
		return (dir_put(st, hour, path, err, errlen));
	hour_format_file(hour, name);
	if ((key = joinstr(st->prefix, name, SUFFIX)) == NULL) {
		seterr(err, errlen, "store: out of memory");
		return (STORE_FAIL);
	}
	if ((s = from_s3(s3_put_file(st->s3, key, path,
	    "application/x-ndjson", &e))) != STORE_OK)
		seterr(err, errlen, "%s", e.msg);
	free(key);
	return (s);
}

const char *
store_describe(const struct store *st)
{
	return (st != NULL && st->desc != NULL ? st->desc : "(no store)");
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	s3_free(st->s3);
	free(st->prefix);
	free(st->desc);
	free(st->dir);
	free(st->name_prefix);
	free(st);
}
