/*
 * Unit tests: atomicfile.  fsync(2) and rename(2) are wrapped at link
 * time (Makefile: UNIT_LDFLAGS_test_atomicfile), so that a failure can be
 * injected at the Nth call: the rollback policy is checked for every point
 * a commit can fail at, and by a property test over random commits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "unit.h"

int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);

static int fsync_calls, fail_fsync_at;   /* 1-based; 0: never */
static int rename_calls, fail_rename_at;

int
__wrap_fsync(int fd)
{
	if (++fsync_calls == fail_fsync_at) {
		errno = EIO;
		return (-1);
	}
	return (__real_fsync(fd));
}

int
__wrap_rename(const char *from, const char *to)
{
	if (++rename_calls == fail_rename_at) {
		errno = EXDEV;
		return (-1);
	}
	return (__real_rename(from, to));
}

static void
inject(int fsync_at, int rename_at)
{
	fsync_calls = rename_calls = 0;
	fail_fsync_at = fsync_at;
	fail_rename_at = rename_at;
}

static char *
tmpdir(void)
{
	char *d = strdup("/tmp/test_afile.XXXXXX");

	if (d == NULL || mkdtemp(d) == NULL)
		abort();
	return (d);
}

/* Entries of ${d}: *${tmps} of them temporaries. */
static int
count_dir(const char *d, int *tmps)
{
	struct dirent *de;
	DIR *dd = opendir(d);
	int n = 0;

	*tmps = 0;
	if (dd == NULL)
		return (-1);
	while ((de = readdir(dd)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (strncmp(de->d_name, AFILE_TMP_PREFIX,
		    strlen(AFILE_TMP_PREFIX)) == 0)
			(*tmps)++;
	}
	closedir(dd);
	return (n);
}

static void
rm_all(char *d)
{
	struct dirent *de;
	DIR *dd = opendir(d);
	char p[512];

	while (dd != NULL && (de = readdir(dd)) != NULL) {
		snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
		(void)unlink(p);
	}
	if (dd != NULL)
		closedir(dd);
	(void)rmdir(d);
	free(d);
}

static char *
path_in(const char *d, const char *name)
{
	char *p = malloc(512);

	if (p == NULL)
		abort();
	snprintf(p, 512, "%s/%s", d, name);
	return (p);
}

/* The content of ${p} equals ${want}. */
static int
has(const char *p, const char *want)
{
	char buf[256];
	ssize_t n;
	int fd = open(p, O_RDONLY);

	if (fd < 0)
		return (0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return (n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0);
}

static struct afile *
made(const char *path, const char *content)
{
	char err[256];
	struct afile *f = afile_create(path, 0640, AFILE_WRITEBACK |
	    AFILE_DROP_CACHE, err, sizeof(err));

	if (f == NULL)
		abort();
	if (afile_write(f, content, strlen(content), err, sizeof(err)) != 0)
		abort();
	return (f);
}

static void
test_commit_and_abort(void)
{
	char *d = tmpdir(), *p = path_in(d, "a.jsonl"), err[256];
	struct afile *f;
	struct stat sb;
	int t;

	inject(0, 0);
	umask(022);
	f = made(p, "hello\n");
	CHECK(strncmp(strrchr(afile_tmp(f), '/') + 1, ".tmp-a.jsonl.", 13) == 0);
	CHECK_EQ_INT(afile_size(f), 6);
	CHECK_EQ_INT(count_dir(d, &t), 1);
	CHECK_EQ_INT(t, 1);
	CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	CHECK(has(p, "hello\n"));
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0640);
	CHECK_EQ_INT(count_dir(d, &t), 1);
	CHECK_EQ_INT(t, 0);
	/* file fsync + directory fsync */
	CHECK_EQ_INT(fsync_calls, 2);

	/* A commit replaces; an abort leaves the old file alone. */
	f = made(p, "two\n");
	CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	CHECK(has(p, "two\n"));
	f = made(p, "three\n");
	afile_abort(f);
	CHECK(has(p, "two\n"));
	CHECK_EQ_INT(count_dir(d, &t), 1);
	CHECK_EQ_INT(t, 0);
	afile_abort(NULL);
	free(p);
	rm_all(d);
}

static void
test_truncate_and_close(void)
{
	char *d = tmpdir(), *p = path_in(d, "b"), err[256];
	struct afile *f = made(p, "0123456789");

	inject(0, 0);
	CHECK_EQ_INT(afile_truncate(f, 4, err, sizeof(err)), 0);
	CHECK_EQ_INT(afile_write(f, "x", 1, err, sizeof(err)), 0);
	CHECK_EQ_INT(afile_size(f), 5);
	/* Closed without fsync: the commit fsyncs it (reopened). */
	CHECK_EQ_INT(afile_close(f, 0, err, sizeof(err)), 0);
	CHECK_EQ_INT(afile_fd(f), -1);
	CHECK_EQ_INT(fsync_calls, 0);
	CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	CHECK_EQ_INT(fsync_calls, 2);
	CHECK(has(p, "0123x"));
	/* Closed with fsync: the commit only fsyncs the directory. */
	f = made(p, "y");
	inject(0, 0);
	CHECK_EQ_INT(afile_close(f, 1, err, sizeof(err)), 0);
	CHECK_EQ_INT(fsync_calls, 1);
	CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	CHECK_EQ_INT(fsync_calls, 2);
	CHECK(has(p, "y"));
	free(p);
	rm_all(d);
}

/* Three files, a failure injected at each fsync (3 files + 1 directory)
 * and at each rename: none of the three names is left, nor any
 * temporary, and the message names what failed. */
static void
test_group_rollback(void)
{
	static const char *names[3] = { "h0", "h1", "h2" };
	char *d = tmpdir(), err[256];
	int t;

	for (int point = 1; point <= 7; point++) {
		struct afile *v[3];
		char *p[3];

		for (int i = 0; i < 3; i++) {
			p[i] = path_in(d, names[i]);
			v[i] = made(p[i], names[i]);
		}
		/* v[1] is closed unsynced: its fsync comes at commit. */
		CHECK_EQ_INT(afile_close(v[1], 0, err, sizeof(err)), 0);
		if (point <= 4)
			inject(point, 0);
		else
			inject(0, point - 4);
		err[0] = '\0';
		CHECK_EQ_INT(afile_commit_all(v, 3, err, sizeof(err)), -1);
		CHECK(strstr(err, point <= 4 ? "cannot fsync" :
		    "cannot rename") != NULL);
		CHECK_EQ_INT(count_dir(d, &t), 0);
		for (int i = 0; i < 3; i++)
			free(p[i]);
	}
	inject(0, 0);
	rm_all(d);
}

/* A hard link to an open file: no copy, same inode; the source stays. */
static void
test_link(void)
{
	char *d = tmpdir(), *src = path_in(d, "src"), *dst = path_in(d, "dst");
	char err[256];
	struct stat a, b;
	struct afile *f;
	int fd, t;

	inject(0, 0);
	f = made(src, "data");
	CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	CHECK((fd = open(src, O_RDONLY)) >= 0);
	f = afile_link(dst, fd, err, sizeof(err));
	CHECK(f != NULL);
	if (f != NULL) {
		CHECK_EQ_INT(afile_fd(f), -1);
		CHECK_EQ_INT(afile_commit(f, err, sizeof(err)), 0);
	}
	CHECK(stat(src, &a) == 0 && stat(dst, &b) == 0 && a.st_ino == b.st_ino);
	CHECK(has(dst, "data"));
	close(fd);
	/* A descriptor that is no file: refused, nothing left behind. */
	CHECK(afile_link(dst, 9999, err, sizeof(err)) == NULL);
	CHECK_EQ_INT(count_dir(d, &t), 2);
	CHECK_EQ_INT(t, 0);
	free(src);
	free(dst);
	rm_all(d);
}

/* Property: for random groups of files (some replacing files of an
 * earlier round) and a random failure point (or none), a commit that
 * succeeds leaves every file with its new content; one that fails before
 * its first rename leaves every final name as it was; a failed rename
 * removes the names renamed before it and leaves the others as they were;
 * a failed directory fsync leaves none of the names; no temporary is ever
 * left. */
static void
test_property(void)
{
	char *d = tmpdir(), err[256];
	char old[6][32];            /* content before the round; "" absent */
	unsigned seed = 12345;
	int t;

	memset(old, 0, sizeof(old));
	for (int round = 0; round < 400; round++) {
		struct afile *v[6];
		char *p[6], content[6][32];
		int n, nf = 0, fail_f = 0, fail_r = 0, rc, present = 0;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (int)((seed >> 16) % 6);
		for (int i = 0; i < n; i++) {
			char name[16];

			snprintf(name, sizeof(name), "f%d", i);
			p[i] = path_in(d, name);
			snprintf(content[i], sizeof(content[i]), "r%d-%d\n",
			    round, i);
			v[i] = made(p[i], content[i]);
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 20) & 3) {
				int sync = (seed >> 22) & 1;

				(void)afile_close(v[i], sync, err, sizeof(err));
				nf += !sync;
			} else {
				nf++;
			}
		}
		seed = seed * 1103515245u + 12345u;
		switch ((seed >> 16) % 4) {
		case 0:
			break;
		case 1:
		case 2:
			fail_f = 1 + (int)((seed >> 18) % (unsigned)(nf + 1));
			break;
		default:
			fail_r = 1 + (int)((seed >> 18) % (unsigned)n);
			break;
		}
		inject(fail_f, fail_r);
		rc = afile_commit_all(v, (size_t)n, err, sizeof(err));
		CHECK_EQ_INT(rc, fail_f || fail_r ? -1 : 0);
		for (int i = 0; i < n; i++) {
			const char *want;

			if (rc == 0)
				want = content[i];
			else if (fail_f > 0 && fail_f <= nf)
				want = old[i];          /* before any rename */
			else if (fail_f > nf)
				want = "";              /* directory fsync */
			else
				want = i < fail_r - 1 ? "" : old[i];
			if (want[0] != '\0')
				CHECK(has(p[i], want));
			else
				CHECK(access(p[i], F_OK) != 0);
			if (want != old[i])
				snprintf(old[i], sizeof(old[i]), "%.31s", want);
			free(p[i]);
		}
		for (int i = 0; i < 6; i++)
			present += old[i][0] != '\0';
		CHECK_EQ_INT(count_dir(d, &t), present);
		CHECK_EQ_INT(t, 0);
		inject(0, 0);
		if (((seed >> 24) & 7) == 0) {
			rm_all(d);
			d = tmpdir();
			memset(old, 0, sizeof(old));
		}
	}
	rm_all(d);
}

UNIT_MAIN("atomicfile",
    TEST(test_commit_and_abort),
    TEST(test_truncate_and_close),
    TEST(test_group_rollback),
    TEST(test_link),
    TEST(test_property))
