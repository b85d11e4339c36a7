/*
 * store: complete hours kept in S3 or in a folder, behind one interface
 * (see store.h).
 *
 * An hour's object is the key template's key for it (keytmpl.h; default
 * <prefix>YYYY-MM-DD_HH.jsonl, ".gz" appended in gzip mode).  The S3
 * backend is a thin layer over s3.h (the S3 semantics make a PUT atomic);
 * it lists only the key prefixes of the hours a caller asks about and
 * keeps the keys that parse back exactly.  The folder backend maps a key
 * to ${root}/<key>: a put creates the key's directories and commits the
 * object through atomicfile (a hard link to the local file when both are
 * on one file system, else a copy), so a reader sees a whole file or
 * none; a listing walks the directory of the constant prefix exactly as
 * many levels deep as the template has '/' below it, without following
 * directory symlinks.  Both keep no mutable state after open and
 * store_set_layout, so calls may run in any number of threads at once.
 *
 * DESIGN (listing threads)
 * - store_list turns its spans into key prefixes (one per month they
 *   touch, keytmpl_span_prefix; the template's whole prefix beyond
 *   STORE_MAX_LISTINGS months), sorts them and drops those inside
 *   another, so no key is listed twice.
 * - The calling thread and up to STORE_LIST_THREADS - 1 threads started
 *   for the call take prefixes in turn from a shared index and list each
 *   with s3_list (which borrows its own curl handle, so listings run in
 *   parallel).  One mutex guards the index, the first error and every
 *   call of the caller's callback, which therefore needs no lock of its
 *   own.  After a failure no new prefix is started; the call joins its
 *   threads before it returns, and reports a fatal error over others.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "errbuf.h"
#include "hour.h"
#include "keytmpl.h"
#include "localdir.h"
#include "s3.h"
#include "store.h"
#include "strvec.h"

#define COPY_BUF (256 * 1024)
#define CT_JSONL "application/x-ndjson"
#define CT_GZIP "application/gzip"

enum backend { B_DIR, B_S3 };

struct store {
	enum backend kind;
	char *prefix;       /* the configured prefix, as given */
	char *desc;         /* store_describe() */
	struct keytmpl *kt; /* key layout */
	int gzip;           /* .gz objects */

	/* B_DIR: files are ${root}/<key>, copies of mode ${file_mode} in
	 * directories of localdir_dir_mode(${file_mode}). */
	char *root;
	unsigned file_mode;

	/* B_S3 */
	struct s3 *s3;
};

/* mkdir -p ${path}, new directories of ${mode}.  0 or -1 with errno. */
static int
mkdirs(const char *path, unsigned mode)
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
		if (mkdir(p, (mode_t)mode) != 0) {
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
store_open_dir(const char *root, const char *prefix, unsigned file_mode,
    int create, char *err, size_t errlen)
{
	struct store *st = NULL;
	char msg[512];
	size_t n;

	if (root == NULL || root[0] == '\0') {
		errbuf_set(err, errlen, "store: no folder given");
		return (NULL);
	}
	if (prefix == NULL)
		prefix = "";
	if (strstr(prefix, "..") != NULL) {
		errbuf_set(err, errlen, "store: prefix '%s' must not contain '..' "
		    "for a folder store", prefix);
		return (NULL);
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		goto nomem;
	st->kind = B_DIR;
	st->file_mode = file_mode != 0 ? file_mode : 0600;
	n = strlen(root) + strlen(prefix) + 6;
	if ((st->prefix = strdup(prefix)) == NULL ||
	    (st->root = strdup(root)) == NULL ||
	    (st->desc = malloc(n)) == NULL)
		goto nomem;
	snprintf(st->desc, n, "dir:%s/%s", root, prefix);
	if ((st->kt = keytmpl_parse(KEYTMPL_DEFAULT, prefix, "", 1, msg,
	    sizeof(msg))) == NULL) {
		errbuf_set(err, errlen, "store: %s", msg);
		goto fail;
	}
	if (create && mkdirs(st->root, localdir_dir_mode(st->file_mode)) !=
	    0) {
		errbuf_set(err, errlen, "store: cannot create %s: %s", st->root,
		    ERRSTR(errno));
		goto fail;
	}
	return (st);
nomem:
	errbuf_set(err, errlen, "store: out of memory");
fail:
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
		errbuf_set(err, errlen, "store: out of memory");
		goto fail;
	}
	st->kind = B_S3;
	if ((st->kt = keytmpl_parse(KEYTMPL_DEFAULT, prefix, "", 0, e.msg,
	    sizeof(e.msg))) == NULL) {
		errbuf_set(err, errlen, "store: %s", e.msg);
		goto fail;
	}
	if ((st->s3 = s3_init(cfg, lg, &e)) == NULL) {
		errbuf_set(err, errlen, "%s", e.msg);
		goto fail;
	}
	n = strlen(cfg->bucket) + strlen(prefix) + 7;
	if ((st->desc = malloc(n)) == NULL) {
		errbuf_set(err, errlen, "store: out of memory");
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

int
store_set_layout(struct store *st, const char *tmpl, int gzip, char *err,
    size_t errlen)
{
	struct keytmpl *kt;
	char msg[512];

	if ((kt = keytmpl_parse(tmpl != NULL ? tmpl : KEYTMPL_DEFAULT,
	    st->prefix, gzip ? ".gz" : "", st->kind == B_DIR, msg,
	    sizeof(msg))) == NULL) {
		errbuf_set(err, errlen, "key template: %s", msg);
		return (-1);
	}
	keytmpl_free(st->kt);
	st->kt = kt;
	st->gzip = gzip != 0;
	return (0);
}

/* A folder listing: the key so far, and where to report. */
struct walk {
	const struct keytmpl *kt;
	store_hour_cb *cb;
	void *ctx;
	const char *root;
	char key[KEYTMPL_MAX_KEY + 2];
	size_t keylen;
	char *err;
	size_t errlen;
};

/*
 * List the directory ${dfd} (consumed) holding keys that start with
 * w->key: files if ${depth} is 0, else subdirectories, ${depth} levels
 * further down.  0, or -1 with the message set.
 */
static int
walk_dir(struct walk *w, int dfd, int depth)
{
	struct dirent *de;
	struct stat sb;
	amp_hour h;
	DIR *d;
	int e;

	if ((d = fdopendir(dfd)) == NULL) {
		e = errno;
		close(dfd);
		goto fail;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name), save = w->keylen;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    w->keylen + n + 1 >= sizeof(w->key)) {
			errno = 0;
			continue;
		}
		memcpy(w->key + w->keylen, de->d_name, n);
		if (depth > 0) {
			int sub;

			if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
				errno = 0;
				continue;
			}
			sub = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				w->key[w->keylen + n] = '/';
				w->keylen += n + 1;
				if (walk_dir(w, sub, depth - 1) != 0) {
					closedir(d);
					return (-1);
				}
				w->keylen = save;
			}
		} else if (de->d_type != DT_DIR &&
		    keytmpl_match(w->kt, w->key, w->keylen + n, &h) == 0 &&
		    fstatat(dirfd(d), de->d_name, &sb, 0) == 0 &&
		    S_ISREG(sb.st_mode)) {
			struct store_object obj = { .size =
			    (uint64_t)sb.st_size };

			w->cb(w->ctx, h, &obj);
		}
		errno = 0;
	}
	e = errno;
	closedir(d);
	if (e == 0)
		return (0);
fail:
	w->key[w->keylen] = '\0';
	errbuf_set(w->err, w->errlen, "store: cannot list %s/%s: %s", w->root,
	    w->key, ERRSTR(e));
	return (-1);
}

static enum store_status
dir_list(struct store *st, store_hour_cb *cb, void *ctx, char *err,
    size_t errlen)
{
	const char *lp = keytmpl_list_prefix(st->kt), *slash;
	struct walk w = { .kt = st->kt, .cb = cb, .ctx = ctx,
	    .root = st->root, .err = err, .errlen = errlen };
	char *dir;
	size_t dn;
	int dfd, depth;

	/* Start in the directory of the constant prefix. */
	slash = strrchr(lp, '/');
	w.keylen = slash != NULL ? (size_t)(slash - lp) + 1 : 0;
	if (w.keylen >= sizeof(w.key)) {
		errbuf_set(err, errlen, "store: key prefix too long");
		return (STORE_FAIL);
	}
	memcpy(w.key, lp, w.keylen);
	depth = keytmpl_slashes(st->kt);
	for (size_t i = 0; i < w.keylen; i++)
		depth -= lp[i] == '/';
	dn = strlen(st->root) + w.keylen + 2;
	if ((dir = malloc(dn)) == NULL) {
		errbuf_set(err, errlen, "store: out of memory");
		return (STORE_FAIL);
	}
	snprintf(dir, dn, "%s/%.*s", st->root, (int)w.keylen, w.key);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		int e = errno;

		if (e == ENOENT) {
			free(dir);
			return (STORE_OK);
		}
		errbuf_set(err, errlen, "store: cannot list %s: %s", dir,
		    ERRSTR(e));
		free(dir);
		return (STORE_FAIL);
	}
	free(dir);
	return (walk_dir(&w, dfd, depth) == 0 ? STORE_OK : STORE_FAIL);
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* Sort, then drop every prefix that starts with another one (in sorted
 * order the strings that start with p directly follow p). */
static void
prefixes_prune(struct strvec *p)
{
	size_t keep = 0;

	if (p->n > 1)
		qsort(p->v, p->n, sizeof(*p->v), cmp_str);
	for (size_t i = 0; i < p->n; i++) {
		if (keep > 0 && strncmp(p->v[i], p->v[keep - 1],
		    strlen(p->v[keep - 1])) == 0) {
			free(p->v[i]);
			continue;
		}
		p->v[keep++] = p->v[i];
	}
	p->n = keep;
}

/* The first hour of the month after ${h}'s. */
static amp_hour
next_month(amp_hour h)
{
	int y, m, d, hh;
	amp_hour r;

	hour_to_ymdh(h, &y, &m, &d, &hh);
	if (m == 12) {
		y++;
		m = 1;
	} else {
		m++;
	}
	return (hour_from_ymdh(y, m, 1, 0, &r) == 0 ? r : HOUR_MAX + 1);
}

/*
 * What to list for ${sp}: cut the spans at month boundaries, join the
 * pieces of each month into one from its first hour to its last, and
 * take the common key prefix of each; sort and prune.  Scattered hours
 * cost one request per month, not one each.  More than
 * STORE_MAX_LISTINGS months: the template's whole prefix instead.  0, or
 * -1 on ENOMEM.
 */
static int
plan_listing(const struct store *st, const struct store_span *sp, size_t n,
    struct strvec *out)
{
	struct {
		amp_hour first, last, end; /* end: the next month's first hour */
	} mo[STORE_MAX_LISTINGS];
	char buf[KEYTMPL_MAX_KEY + 1];
	size_t m = 0, k;

	for (size_t i = 0; i < n; i++) {
		amp_hour b;

		for (amp_hour a = sp[i].first; a <= sp[i].last; a = b + 1) {
			amp_hour end = next_month(a);

			b = end - 1 < sp[i].last ? end - 1 : sp[i].last;
			for (k = 0; k < m && mo[k].end != end; k++)
				;
			if (k == m) {
				if (m == STORE_MAX_LISTINGS)
					return (strvec_add(out,
					    keytmpl_list_prefix(st->kt)));
				mo[m].first = a;
				mo[m].last = b;
				mo[m++].end = end;
			}
			if (a < mo[k].first)
				mo[k].first = a;
			if (b > mo[k].last)
				mo[k].last = b;
		}
	}
	for (k = 0; k < m; k++)
		if (keytmpl_span_prefix(st->kt, mo[k].first, mo[k].last, buf,
		    sizeof(buf)) < 0 || strvec_add(out, buf))
			return (-1);
	prefixes_prune(out);
	return (0);
}

/* The S3 listings of one store_list() call, shared by its threads. */
struct lister {
	const struct store *st;
	const struct strvec *pfx; /* the listing prefixes */
	store_hour_cb *cb;
	void *ctx;
	pthread_mutex_t mu;     /* the fields below, and every call of cb */
	size_t next;            /* the next prefix to list */
	enum store_status s;    /* the first failure; a fatal one wins */
	char err[512];
};

static int
list_one(void *arg, const char *key, const struct s3_object *o)
{
	struct lister *l = arg;
	struct store_object obj = { .size = o->size };
	amp_hour h;

	if (keytmpl_match(l->st->kt, key, strlen(key), &h) == 0) {
		memcpy(obj.etag, o->etag, sizeof(obj.etag));
		pthread_mutex_lock(&l->mu);
		l->cb(l->ctx, h, &obj);
		pthread_mutex_unlock(&l->mu);
	}
	return (0);
}

/* A listing thread: list prefixes until none is left or one failed. */
static void *
list_main(void *arg)
{
	struct lister *l = arg;
	struct s3_error e;
	enum store_status s;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&l->mu);
		i = l->s == STORE_OK && l->next < l->pfx->n ? l->next++ :
		    l->pfx->n;
		pthread_mutex_unlock(&l->mu);
		if (i == l->pfx->n)
			return (NULL);
		s = from_s3(s3_list(l->st->s3, l->pfx->v[i], list_one, l,
		    &e));
		if (s == STORE_OK)
			continue;
		pthread_mutex_lock(&l->mu);
		if (l->s == STORE_OK || (s == STORE_FATAL &&
		    l->s != STORE_FATAL)) {
			l->s = s;
			snprintf(l->err, sizeof(l->err), "%s", e.msg);
		}
		pthread_mutex_unlock(&l->mu);
	}
}

enum store_status
store_list(struct store *st, const struct store_span *spans, size_t n,
    store_hour_cb *cb, void *ctx, char *err, size_t errlen)
{
	struct strvec pfx = STRVEC_INIT;
	struct lister l = { .st = st, .pfx = &pfx, .cb = cb, .ctx = ctx,
	    .s = STORE_OK };
	pthread_t th[STORE_LIST_THREADS - 1];
	size_t nth = 0;

	if (n == 0)
		return (STORE_OK);
	if (st->kind == B_DIR)
		return (dir_list(st, cb, ctx, err, errlen));
	if (plan_listing(st, spans, n, &pfx)) {
		strvec_free(&pfx);
		errbuf_set(err, errlen, "store: out of memory planning the "
		    "listing");
		return (STORE_FAIL);
	}
	if ((errno = pthread_mutex_init(&l.mu, NULL)) != 0) {
		strvec_free(&pfx);
		errbuf_set(err, errlen, "store: %s", ERRSTR(errno));
		return (STORE_FAIL);
	}
	/* This thread lists too; if a thread cannot start, fewer do. */
	while (nth + 1 < STORE_LIST_THREADS && nth + 1 < pfx.n &&
	    pthread_create(&th[nth], NULL, list_main, &l) == 0)
		nth++;
	(void)list_main(&l);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&l.mu);
	strvec_free(&pfx);
	if (l.s != STORE_OK)
		errbuf_set(err, errlen, "%s", l.err);
	return (l.s);
}

/* Copy the whole of ${sfd} (from its first byte, whatever its offset)
 * into ${af}.  0 or -1 (${err} set). */
static int
copy_into(int sfd, struct afile *af, char *err, size_t errlen)
{
	char *buf;
	off_t off = 0;
	ssize_t r;
	int rc = -1;

	if ((buf = malloc(COPY_BUF)) == NULL)
		return (errbuf_set(err, errlen, "store: out of memory"));
	for (;; off += r) {
		r = pread(sfd, buf, COPY_BUF, off);
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r < 0) {
			errbuf_set(err, errlen, "store: cannot read: %s",
			    ERRSTR(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (afile_write(af, buf, (size_t)r, err, errlen) != 0)
			goto out;
	}
	rc = 0;
out:
	free(buf);
	return (rc);
}

/*
 * The folder's object ${key} becomes the open file ${sfd}: a hard link to
 * it when both are on one file system (no byte copied; the caller deletes
 * the local name once the put is confirmed, which leaves the folder the
 * only name), else a copy; either way committed by atomicfile.
 */
static enum store_status
dir_put(struct store *st, const char *key, int sfd, char *err,
    size_t errlen)
{
	struct afile *af = NULL;
	char *dst = NULL, *dir = NULL;
	size_t n;
	int rc = -1;

	n = strlen(st->root) + strlen(key) + 2;
	if ((dst = malloc(n)) == NULL || (dir = malloc(n)) == NULL) {
		errbuf_set(err, errlen, "store: out of memory");
		goto out;
	}
	snprintf(dst, n, "%s/%s", st->root, key);
	snprintf(dir, n, "%.*s", (int)(strrchr(dst, '/') - dst), dst);
	if (mkdirs(dir, localdir_dir_mode(st->file_mode)) != 0) {
		errbuf_set(err, errlen, "store: %s: %s", dir, ERRSTR(errno));
		goto out;
	}
	if ((af = afile_link(dst, sfd, err, errlen)) == NULL) {
		if (errno != EXDEV && errno != EPERM && errno != EMLINK &&
		    errno != ENOTSUP && errno != EOPNOTSUPP)
			goto out;
		if ((af = afile_create(dst, st->file_mode, 0, err, errlen)) ==
		    NULL)
			goto out;
		if (copy_into(sfd, af, err, errlen) != 0) {
			afile_abort(af);
			goto out;
		}
	}
	rc = afile_commit(af, err, errlen);
out:
	free(dst);
	free(dir);
	return (rc == 0 ? STORE_OK : STORE_FAIL);
}

/* ${hour}'s key into ${key} (KEYTMPL_MAX_KEY + 1 bytes): 0, or -1. */
static int
hour_key(const struct store *st, amp_hour hour, char *key, char *err,
    size_t errlen)
{
	if (keytmpl_format(st->kt, hour, key, KEYTMPL_MAX_KEY + 1) < 0)
		return (errbuf_set(err, errlen, "store: key too long"));
	return (0);
}

enum store_status
store_put(struct store *st, amp_hour hour, int fd, char *err, size_t errlen)
{
	char key[KEYTMPL_MAX_KEY + 1];
	struct s3_error e;
	enum store_status s;

	if (hour_key(st, hour, key, err, errlen) != 0)
		return (STORE_FAIL);
	if (st->kind == B_DIR)
		return (dir_put(st, key, fd, err, errlen));
	if ((s = from_s3(s3_put_file(st->s3, key, fd,
	    st->gzip ? CT_GZIP : CT_JSONL, &e))) != STORE_OK)
		errbuf_set(err, errlen, "%s", e.msg);
	return (s);
}

/* A folder store: the file of ${key} against ${fd}, byte for byte. */
static enum store_status
dir_same(struct store *st, const char *key, int fd, uint64_t size,
    int *same, char *err, size_t errlen)
{
	char *path, *a = NULL, *b = NULL;
	uint64_t off = 0;
	struct stat sb;
	int ofd = -1, rc = -1;
	size_t n = strlen(st->root) + strlen(key) + 2;

	*same = 0;
	if ((path = malloc(n)) == NULL || (a = malloc(COPY_BUF)) == NULL ||
	    (b = malloc(COPY_BUF)) == NULL) {
		errbuf_set(err, errlen, "store: out of memory");
		goto out;
	}
	snprintf(path, n, "%s/%s", st->root, key);
	if ((ofd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = errno == ENOENT ? 0 : errbuf_set(err, errlen, "store: %s: "
		    "%s", path, ERRSTR(errno));
		goto out;
	}
	if (fstat(ofd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != size) {
		rc = 0;
		goto out;
	}
	while (off < size) {
		size_t want = size - off < COPY_BUF ? (size_t)(size - off) :
		    COPY_BUF;
		ssize_t x = pread(fd, a, want, (off_t)off);
		ssize_t y = pread(ofd, b, want, (off_t)off);

		if (x < 0 || y < 0) {
			errbuf_set(err, errlen, "store: cannot compare with %s: "
			    "%s", path, ERRSTR(errno));
			goto out;
		}
		if (x != y || x == 0 || memcmp(a, b, (size_t)x) != 0) {
			rc = 0;
			goto out;
		}
		off += (uint64_t)x;
	}
	*same = 1;
	rc = 0;
out:
	if (ofd >= 0)
		close(ofd);
	free(path);
	free(a);
	free(b);
	return (rc == 0 ? STORE_OK : STORE_FAIL);
}

enum store_status
store_same(struct store *st, amp_hour hour, int fd, uint64_t size,
    const struct store_object *known, int *same, char *err, size_t errlen)
{
	char key[KEYTMPL_MAX_KEY + 1];
	struct s3_object obj, *kp = NULL;
	struct s3_error e;
	enum store_status s;

	*same = 0;
	if (hour_key(st, hour, key, err, errlen) != 0)
		return (STORE_FAIL);
	if (st->kind == B_DIR)
		return (dir_same(st, key, fd, size, same, err, errlen));
	if (known != NULL) {
		obj.size = known->size;
		memcpy(obj.etag, known->etag, sizeof(obj.etag));
		kp = &obj;
	}
	if ((s = from_s3(s3_same(st->s3, key, fd, size, kp, same, &e))) !=
	    STORE_OK)
		errbuf_set(err, errlen, "%s", e.msg);
	return (s);
}

void
store_on_slowdown(struct store *st, s3_slowdown_fn *fn, void *arg)
{
	if (st->kind == B_S3)
		s3_on_slowdown(st->s3, fn, arg);
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
	keytmpl_free(st->kt);
	free(st->prefix);
	free(st->desc);
	free(st->root);
	free(st);
}
