/*
 * atomicfile: temporary, fsync, rename, directory fsync (see
 * atomicfile.h).
 *
 * The paths are the caller's (data directory, store folder, metrics file)
 * and are used as given: open(2), rename(2) and unlink(2) on whole paths,
 * which is also what lets a fuzz target check every path this module
 * touches (fuzz/fuzz_unpack.c wraps those three at link time).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sync_file_range */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "errbuf.h"

#define AFILE_TRIES 16                      /* names drawn on EEXIST */
#define AFILE_WB_STEP ((uint64_t)8 << 20)   /* writeback every 8 MiB */

struct afile {
	char *path;             /* the final name */
	char *tmp;              /* the temporary name */
	int fd;                 /* open for writing, or -1 */
	int flags;              /* AFILE_* */
	int synced;             /* fsynced since the last write */
	uint64_t size;          /* bytes in the file */
	uint64_t wb;            /* bytes handed to writeback */
};

/* Where ${path} lives: a new string ("." for a bare name). */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return (strdup("."));
	if (slash == path)
		return (strdup("/"));
	return (strndup(path, (size_t)(slash - path)));
}

/* Draw the next temporary name for f->path into f->tmp. */
static void
draw_name(struct afile *f)
{
	const char *slash = strrchr(f->path, '/');
	size_t dl = slash != NULL ? (size_t)(slash - f->path) + 1 : 0;
	size_t cap = strlen(f->path) + sizeof(AFILE_TMP_PREFIX) + 48;
	unsigned long long r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		struct timespec ts;

		(void)clock_gettime(CLOCK_REALTIME, &ts);
		r ^= (unsigned long long)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^
		    (unsigned long long)(uintptr_t)f ^ (unsigned long long)ts.tv_sec;
	}
	snprintf(f->tmp, cap, "%.*s" AFILE_TMP_PREFIX "%s.%ld.%016llx",
	    (int)dl, f->path, f->path + dl, (long)getpid(), r);
}

/* A handle for ${path}, its temporary name not drawn yet. */
static struct afile *
handle_new(const char *path, int flags, char *err, size_t errlen)
{
	struct afile *f;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->path = strdup(path)) == NULL ||
	    (f->tmp = malloc(strlen(path) + sizeof(AFILE_TMP_PREFIX) + 48)) ==
	    NULL) {
		if (f != NULL)
			free(f->path);
		free(f);
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	f->fd = -1;
	f->flags = flags;
	return (f);
}

static void
handle_free(struct afile *f)
{
	free(f->path);
	free(f->tmp);
	free(f);
}

struct afile *
afile_create(const char *path, unsigned mode, int flags, char *err,
    size_t errlen)
{
	struct afile *f;
	int e = 0;

	if ((f = handle_new(path, flags, err, errlen)) == NULL)
		return (NULL);
	for (int t = 0; t < AFILE_TRIES; t++) {
		draw_name(f);
		f->fd = open(f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, (mode_t)mode);
		if (f->fd >= 0)
			return (f);
		if ((e = errno) != EEXIST && e != EINTR)
			break;
	}
	errbuf_set(err, errlen, "cannot create %s: %s", f->tmp, ERRSTR(e));
	handle_free(f);
	errno = e;
	return (NULL);
}

struct afile *
afile_link(const char *path, int src_fd, char *err, size_t errlen)
{
	char proc[64];
	struct afile *f;
	int e = 0;

	if ((f = handle_new(path, 0, err, errlen)) == NULL)
		return (NULL);
	/* Link the open file itself, not whatever its name now points to. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src_fd);
	for (int t = 0; t < AFILE_TRIES; t++) {
		draw_name(f);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp,
		    AT_SYMLINK_FOLLOW) == 0)
			return (f);
		if ((e = errno) != EEXIST && e != EINTR)
			break;
	}
	if (e == ENOENT && access("/proc/self/fd", F_OK) != 0)
		e = ENOTSUP; /* no /proc: the caller copies */
	errbuf_set(err, errlen, "cannot link %s: %s", f->tmp, ERRSTR(e));
	handle_free(f);
	errno = e;
	return (NULL);
}

int
afile_fd(const struct afile *f)
{
	return (f->fd);
}

const char *
afile_tmp(const struct afile *f)
{
	return (f->tmp);
}

uint64_t
afile_size(const struct afile *f)
{
	return (f->size);
}

int
afile_write(struct afile *f, const void *p, size_t n, char *err,
    size_t errlen)
{
	size_t off = 0;
	ssize_t w;

	while (off < n) {
		w = write(f->fd, (const unsigned char *)p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return (errbuf_set(err, errlen, "cannot write %s: %s",
			    f->tmp, ERRSTR(errno)));
		off += (size_t)w;
	}
	f->size += n;
	f->synced = 0;
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
	if ((f->flags & AFILE_WRITEBACK) && f->size - f->wb >= AFILE_WB_STEP) {
		(void)sync_file_range(f->fd, (off_t)f->wb,
		    (off_t)(f->size - f->wb), SYNC_FILE_RANGE_WRITE);
		f->wb = f->size;
	}
#endif
	return (0);
}

int
afile_truncate(struct afile *f, uint64_t off, char *err, size_t errlen)
{
	if (ftruncate(f->fd, (off_t)off) != 0 ||
	    lseek(f->fd, (off_t)off, SEEK_SET) < 0)
		return (errbuf_set(err, errlen, "cannot truncate %s: %s",
		    f->tmp, ERRSTR(errno)));
	f->size = off;
	if (f->wb > off)
		f->wb = off;
	f->synced = 0;
	return (0);
}

/* ${fd} of ${f} is fsynced: drop its clean pages if asked to. */
static void
fsynced(struct afile *f, int fd)
{
	f->synced = 1;
#ifdef POSIX_FADV_DONTNEED
	if (f->flags & AFILE_DROP_CACHE)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#else
	(void)fd;
#endif
}

int
afile_close(struct afile *f, int sync, char *err, size_t errlen)
{
	int fd = f->fd, rc = 0;

	if (fd < 0)
		return (0);
	f->fd = -1;
	if (sync) {
		if (fsync(fd) != 0)
			rc = errbuf_set(err, errlen, "cannot fsync %s: %s",
			    f->tmp, ERRSTR(errno));
		else
			fsynced(f, fd);
	} else {
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
		if ((f->flags & AFILE_WRITEBACK) && f->size > f->wb)
			(void)sync_file_range(fd, (off_t)f->wb, 0,
			    SYNC_FILE_RANGE_WRITE);
#endif
	}
	if (close(fd) != 0 && rc == 0)
		rc = errbuf_set(err, errlen, "cannot close %s: %s", f->tmp,
		    ERRSTR(errno));
	return (rc);
}

/* Make ${f}'s data durable: close it fsynced, or fsync the temporary a
 * close left unsynced.  0 or -1. */
static int
make_durable(struct afile *f, char *err, size_t errlen)
{
	int fd, rc = 0;

	if (f->fd >= 0)
		return (afile_close(f, 1, err, errlen));
	if (f->synced)
		return (0);
	if ((fd = open(f->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return (errbuf_set(err, errlen, "cannot fsync %s: %s", f->tmp,
		    ERRSTR(errno)));
	if (fsync(fd) != 0)
		rc = errbuf_set(err, errlen, "cannot fsync %s: %s", f->tmp,
		    ERRSTR(errno));
	else
		fsynced(f, fd);
	(void)close(fd);
	return (rc);
}

/* fsync the directory ${dir}.  0 or -1. */
static int
sync_dir(const char *dir, char *err, size_t errlen)
{
	int fd, rc = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return (errbuf_set(err, errlen, "cannot open %s: %s", dir,
		    ERRSTR(errno)));
	if (fsync(fd) != 0)
		rc = errbuf_set(err, errlen, "cannot fsync %s: %s", dir,
		    ERRSTR(errno));
	(void)close(fd);
	return (rc);
}

/* fsync the directory of every handle at ${v}, each directory once. */
static int
sync_dirs(struct afile **v, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		char *d = dir_of(v[i]->path);
		int seen = 0, rc;

		if (d == NULL)
			return (errbuf_set(err, errlen, "out of memory"));
		for (size_t j = 0; j < i && !seen; j++) {
			char *dj = dir_of(v[j]->path);

			seen = dj != NULL && strcmp(d, dj) == 0;
			free(dj);
		}
		rc = seen ? 0 : sync_dir(d, err, errlen);
		free(d);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

int
afile_commit_all(struct afile **v, size_t n, char *err, size_t errlen)
{
	size_t renamed = 0;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		if (make_durable(v[i], err, errlen) != 0)
			goto out;
	for (; renamed < n; renamed++) {
		if (rename(v[renamed]->tmp, v[renamed]->path) != 0) {
			errbuf_set(err, errlen, "cannot rename %s to %s: %s",
			    v[renamed]->tmp, v[renamed]->path, ERRSTR(errno));
			goto out;
		}
	}
	rc = sync_dirs(v, n, err, errlen);
out:
	for (size_t i = 0; i < n; i++) {
		if (rc != 0)
			(void)unlink(i < renamed ? v[i]->path : v[i]->tmp);
		if (v[i]->fd >= 0)
			(void)close(v[i]->fd);
		handle_free(v[i]);
	}
	return (rc);
}

int
afile_commit(struct afile *f, char *err, size_t errlen)
{
	return (afile_commit_all(&f, 1, err, errlen));
}

void
afile_abort(struct afile *f)
{
	if (f == NULL)
		return;
	if (f->fd >= 0)
		(void)close(f->fd);
	(void)unlink(f->tmp);
	handle_free(f);
}
