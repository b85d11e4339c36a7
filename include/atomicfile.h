#ifndef AMP2S3_ATOMICFILE_H
#define AMP2S3_ATOMICFILE_H
/*
 * atomicfile: a file that appears whole under its final name, or not at
 * all — the one implementation of the promise every hour file, --dev
 * object, empty hour and metrics file rests on.  It is the only module
 * that renames files.
 *
 * A file is written under a temporary name in its final directory,
 *     <dir>/.tmp-<final name>.<pid>.<16 hex random digits>
 * (AFILE_TMP_PREFIX: the data directory's scan removes such leftovers of
 * killed runs, see localdir.h), created O_EXCL | O_NOFOLLOW | O_CLOEXEC
 * (another name is drawn on EEXIST), then closed and fsynced, renamed
 * over the final name, and the directory is fsynced.  A commit of several
 * files (a window's hours) renames them all, then fsyncs each directory
 * once.
 *
 * Failure policy, the same for every caller:
 *   - any failure before the first rename (create, write, fsync) removes
 *     every temporary of the handle(s): the final names are untouched;
 *   - a failed rename, or a failed directory fsync after the renames,
 *     removes every temporary left and every final name this commit had
 *     already renamed: a commit that fails leaves none of its names.  (A
 *     commit replaces: a final name that existed before is gone after a
 *     failed directory fsync.  Callers keep their source until a commit
 *     succeeded: an upload's local hour, for example.)
 *   - afile_abort() removes the temporary.
 * Every failure leaves one line naming the path and the error in the
 * caller's buffer.
 *
 * Options (${flags}): AFILE_WRITEBACK starts the kernel's writeback of
 * every 8 MiB written (sync_file_range), so that the fsync which ends the
 * file waits for little; AFILE_DROP_CACHE drops the file's pages from the
 * page cache once they are fsynced (a spool file read again at most once,
 * much later).  Both are only advice.
 *
 * Thread-safety: a handle belongs to one thread at a time (it may be
 * handed to another, e.g. a committer); independent handles may be used
 * at once.  No state outside the handles.
 */
#include <stddef.h>
#include <stdint.h>

#define AFILE_TMP_PREFIX ".tmp-"

enum {
	AFILE_WRITEBACK = 1,
	AFILE_DROP_CACHE = 2
};

struct afile;

/*
 * afile_create(path, mode, flags, err, errlen): start the file that will
 * be ${path}: its temporary is created empty (mode ${mode}, less the
 * umask) and open for reading and writing.  Returns the handle, or NULL
 * with the reason in ${err}.
 */
struct afile *afile_create(const char *path, unsigned mode, int flags,
    char *err, size_t errlen);

/*
 * afile_link(path, src_fd, err, errlen): start the file that will be
 * ${path} as a new hard link to the open file ${src_fd} (no byte copied;
 * it shares ${src_fd}'s data and mode).  Returns the handle (closed:
 * afile_fd() is -1, nothing to write), or NULL with errno set — EXDEV,
 * EPERM, EMLINK, ENOTSUP or EOPNOTSUPP when the file system cannot link
 * it (the caller then copies into afile_create()), another errno with
 * the reason in ${err}.
 */
struct afile *afile_link(const char *path, int src_fd, char *err,
    size_t errlen);

/* afile_fd(f): the temporary's descriptor while open for writing, or -1.
 * afile_tmp(f): the temporary's path. */
int afile_fd(const struct afile *f);
const char *afile_tmp(const struct afile *f);

/* afile_size(f): bytes in the file (written, less truncations). */
uint64_t afile_size(const struct afile *f);

/* afile_write(f, p, n, err, errlen): append the ${n} bytes at ${p}.
 * 0, or -1 (the handle stays; abort or commit it). */
int afile_write(struct afile *f, const void *p, size_t n, char *err,
    size_t errlen);

/* afile_truncate(f, off, err, errlen): cut the file to its first ${off}
 * bytes and write on from there.  0 or -1. */
int afile_truncate(struct afile *f, uint64_t off, char *err,
    size_t errlen);

/*
 * afile_close(f, sync, err, errlen): done writing.  With ${sync}, fsync
 * now (spread a window's fsyncs over its download); without, the commit
 * will (the writeback of the tail is started now under AFILE_WRITEBACK).
 * The descriptor is closed either way; the temporary stays until commit
 * or abort.  0 or -1.
 */
int afile_close(struct afile *f, int sync, char *err, size_t errlen);

/*
 * afile_commit(f, err, errlen): make ${f} its final name (see the policy
 * above), closing and fsyncing it first if need be.  Frees ${f} either
 * way.  0 or -1.
 */
int afile_commit(struct afile *f, char *err, size_t errlen);

/*
 * afile_commit_all(v, n, err, errlen): commit the ${n} handles at ${v}
 * together: every one fsynced, then every one renamed (in order), then
 * each directory fsynced once; all of them, or (policy above) none.
 * Frees every handle either way.  0 or -1.
 */
int afile_commit_all(struct afile **v, size_t n, char *err,
    size_t errlen);

/* afile_abort(f): remove the temporary and free ${f}.  NULL: no-op. */
void afile_abort(struct afile *f);

#endif
