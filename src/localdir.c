/*
 * localdir: lock, clean and scan the data directory.
 *
 * Hour files appear only through atomicfile (a fully written and fsynced
 * temporary renamed), so a directory entry with an hour's name is a
 * complete hour.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomicfile.h"
#include "cancel.h"
#include "errbuf.h"
#include "localdir.h"

static const char HOUR_SUFFIX[] = ".jsonl";
static const char HOUR_SUFFIX_GZ[] = ".jsonl.gz";

const char *
localdir_suffix(int gz)
{
	return (gz ? HOUR_SUFFIX_GZ : HOUR_SUFFIX);
}

unsigned
localdir_dir_mode(unsigned file_mode)
{
	return ((file_mode & 0777) | 0700 | ((file_mode & 0444) >> 2));
}

static int
mkdir_p(const char *dir, unsigned mode)
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
		if (mkdir(path, (mode_t)mode) && errno != EEXIST)
			return (-1);
		*p = '/';
	}
	if (mkdir(path, (mode_t)mode) && errno != EEXIST)
		return (-1);
	return (0);
}

int
localdir_lock(const char *dir, unsigned file_mode, int wait,
    struct cancel *cancel, int *fd, char *err, size_t errlen)
{
	char path[4096];
	int f;

	if (mkdir_p(dir, localdir_dir_mode(file_mode)))
		return (errbuf_set(err, errlen, "cannot create data directory "
		    "%s: %s", dir, ERRSTR(errno)));
	if (snprintf(path, sizeof(path), "%s/.amp2s3.lock", dir) >=
	    (int)sizeof(path))
		return (errbuf_set(err, errlen, "data directory path too "
		    "long"));
	if ((f = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    (mode_t)file_mode)) < 0)
		return (errbuf_set(err, errlen, "cannot open lock %s: %s", path,
		    ERRSTR(errno)));
	while ((cancel_requested(cancel) && (errno = EINTR)) ||
	    flock(f, LOCK_EX | (wait ? 0 : LOCK_NB))) {
		if (errno == EINTR && cancel_requested(cancel)) {
			close(f);
			errbuf_set(err, errlen, "interrupted while waiting for "
			    "%s", path);
			return (2);
		}
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			close(f);
			errbuf_set(err, errlen, "another amp2s3 run holds %s",
			    path);
			return (1);
		}
		errbuf_set(err, errlen, "cannot lock %s: %s", path,
		    ERRSTR(errno));
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
		if (strncmp(de->d_name, AFILE_TMP_PREFIX,
		    sizeof(AFILE_TMP_PREFIX) - 1) != 0)
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
localdir_write_empty(const char *dir, int gz, unsigned mode, amp_hour first,
    int n, char *err, size_t errlen)
{
	struct afile **v;
	char path[4096];
	size_t k = 0;
	int rc = -1;

	if (n < 1)
		return (0);
	if ((v = calloc((size_t)n, sizeof(*v))) == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	for (int i = 0; i < n; i++) {
		if (localdir_path(dir, gz, first + i, path, sizeof(path))) {
			errbuf_set(err, errlen, "path too long in %s", dir);
			goto out;
		}
		if (access(path, F_OK) == 0)
			continue;
		if ((v[k] = afile_create(path, mode, 0, err, errlen)) == NULL)
			goto out;
		k++;
	}
	rc = afile_commit_all(v, k, err, errlen);
	k = 0;
out:
	for (size_t i = 0; i < k; i++)
		afile_abort(v[i]);
	free(v);
	return (rc);
}
