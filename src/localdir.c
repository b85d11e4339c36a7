/*
 * localdir: lock, clean and scan the data directory.
 *
 * Hour files appear only by rename(2) of a fully written and fsynced
 * temporary, so a directory entry with an hour's name is a complete hour.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "localdir.h"

static const char HOUR_SUFFIX[] = ".jsonl";
static const char HOUR_SUFFIX_GZ[] = ".jsonl.gz";

const char *
localdir_suffix(int gz)
{
	return (gz ? HOUR_SUFFIX_GZ : HOUR_SUFFIX);
}

static int
mkdir_p(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return (-1);
		*p = '/';
	}
	if (mkdir(path, 0755) && errno != EEXIST)
		return (-1);
	return (0);
}

int
localdir_lock(const char *dir, int wait, const atomic_int *cancel, int *fd,
    char *err, size_t errlen)
{
	char path[4096];
	int f;

	if (mkdir_p(dir)) {
		snprintf(err, errlen, "cannot create data directory %s: %s",
		    dir, strerror(errno));
		return (-1);
	}
	if (snprintf(path, sizeof(path), "%s/.amp2s3.lock", dir) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "data directory path too long");
		return (-1);
	}
	if ((f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		snprintf(err, errlen, "cannot open lock %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	while ((cancel && atomic_load(cancel) && (errno = EINTR)) ||
	    flock(f, LOCK_EX | (wait ? 0 : LOCK_NB))) {
		if (errno == EINTR && cancel && atomic_load(cancel)) {
			close(f);
			snprintf(err, errlen, "interrupted while waiting for "
			    "%s", path);
			return (2);
		}
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			close(f);
			snprintf(err, errlen, "another amp2s3 run holds %s "
			    "(use --wait-lock to wait for it)", path);
			return (1);
		}
		snprintf(err, errlen, "cannot lock %s: %s", path,
		    strerror(errno));
		close(f);
		return (-1);
	}
	*fd = f;
	return (0);
}

int
localdir_clean(const char *dir, int *removed)
{
	DIR *d;
	struct dirent *de;
	int rc = 0;

	*removed = 0;
	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, LOCALDIR_TMP_PREFIX,
		    sizeof(LOCALDIR_TMP_PREFIX) - 1) != 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			(*removed)++;
		else if (errno != ENOENT)
			rc = -1;
	}
	closedir(d);
	return (rc);
}

int
localdir_scan(const char *dir, int gz, localdir_hour_cb *cb, void *ctx)
{
	const char *suffix = localdir_suffix(gz);
	size_t slen = strlen(suffix);
	DIR *d;
	struct dirent *de;

	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		struct stat sb;
		amp_hour h;

		if (len != HOUR_FILE_LEN - 1 + slen ||
		    strcmp(de->d_name + HOUR_FILE_LEN - 1, suffix) != 0 ||
		    hour_parse_file(de->d_name, HOUR_FILE_LEN - 1, &h))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(sb.st_mode))
			continue;
		cb(ctx, h, (uint64_t)sb.st_size);
	}
	closedir(d);
	return (0);
}

int
localdir_path(const char *dir, int gz, amp_hour hour, char *buf, size_t len)
{
	char name[HOUR_FILE_LEN];

	hour_format_file(hour, name);
	if (snprintf(buf, len, "%s/%s%s", dir, name, localdir_suffix(gz)) >=
	    (int)len)
		return (-1);
	return (0);
}

int
localdir_sync(const char *dir)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return (-1);
	rc = fsync(fd);
	close(fd);
	return (rc);
}

int
localdir_write_empty(const char *dir, int gz, amp_hour hour, char *err,
    size_t errlen)
{
	static atomic_uint seq;
	char path[4096], tmp[4096], name[HOUR_FILE_LEN];
	int fd;

	hour_format_file(hour, name);
	if (localdir_path(dir, gz, hour, path, sizeof(path)) ||
	    snprintf(tmp, sizeof(tmp), "%s/" LOCALDIR_TMP_PREFIX "%s%s.%ld.%u",
	    dir, name, localdir_suffix(gz), (long)getpid(),
	    atomic_fetch_add(&seq, 1)) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "path too long in %s", dir);
		return (-1);
	}
	if (access(path, F_OK) == 0)
		return (0);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
		goto fail;
	if (fsync(fd)) {
		close(fd);
		unlink(tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path)) {
		unlink(tmp);
		goto fail;
	}
	return (0);
fail:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	return (-1);
}
