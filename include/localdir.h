#ifndef AMP2S3_LOCALDIR_H
#define AMP2S3_LOCALDIR_H
/*
 * localdir: the data directory — its lock, its leftovers, its hours.
 *
 * A complete hour is a regular file named exactly YYYY-MM-DD_HH.jsonl, or
 * with --gzip (${gz} below) exactly YYYY-MM-DD_HH.jsonl.gz; each mode sees
 * only its own names, so a .jsonl file is not a .jsonl.gz hour nor the
 * other way round (a data directory holding both is left alone: the
 * other mode's files are neither counted, uploaded nor deleted).  An
 * empty hour is an empty file in both modes (0 bytes, not an empty gzip
 * member).  Hour files are made by atomicfile (whole or absent); anything
 * named AFILE_TMP_PREFIX "*" is a temporary of some run (ours or a killed
 * one) and is removed by localdir_clean() under the lock.  The lock is an
 * flock(2) on DIR/.amp2s3.lock held for the life of the process.
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"

struct cancel;

/*
 * localdir_dir_mode(file_mode): the mode of a directory holding files of
 * mode ${file_mode}: the same, plus execute wherever it grants read
 * (0600 -> 0700, 0640 -> 0750), and always the owner's rwx.
 */
unsigned localdir_dir_mode(unsigned file_mode);

/*
 * localdir_lock(dir, file_mode, wait, cancel, fd, err, errlen): create
 * ${dir} (and its missing parents) with localdir_dir_mode(${file_mode})
 * if missing and take its lock, blocking if ${wait}; the lock file is
 * created with ${file_mode} and never opened through a symlink.  A
 * blocked wait that is interrupted by a signal (EINTR) gives up if
 * ${cancel} was triggered (${cancel} may be NULL).  Returns 0 with the
 * lock's file descriptor in *${fd} (keep it open), 1 if another process
 * holds it and ${wait} is 0, 2 if cancelled, -1 on error (message in
 * ${err}).  Modes are less the umask.
 */
int localdir_lock(const char *dir, unsigned file_mode, int wait,
    struct cancel *cancel, int *fd, char *err, size_t errlen);

/* localdir_clean(dir, removed): unlink every temporary (AFILE_TMP_PREFIX)
 * in ${dir}; *${removed} counts them.  Returns 0 or -1 (errno set). */
int localdir_clean(const char *dir, int *removed);

typedef void localdir_hour_cb(void *ctx, amp_hour hour, uint64_t size);

/* localdir_suffix(gz): ".jsonl", or ".jsonl.gz" if ${gz}. */
const char *localdir_suffix(int gz);

/* localdir_scan(dir, gz, cb, ctx): call ${cb} for every complete hour file
 * of the mode ${gz}.  Returns 0 or -1 (errno set). */
int localdir_scan(const char *dir, int gz, localdir_hour_cb *cb, void *ctx);

/* localdir_path(dir, gz, hour, buf, len): "${dir}/YYYY-MM-DD_HH.jsonl"
 * (".jsonl.gz" if ${gz}).  Returns 0, or -1 if it does not fit. */
int localdir_path(const char *dir, int gz, amp_hour hour, char *buf,
    size_t len);

/*
 * localdir_write_empty(dir, gz, mode, first, n, err, errlen): make the
 * files (format ${gz}, file mode ${mode}) of the ${n} hours from ${first}
 * exist and be empty, in one atomicfile commit (all or none of the new
 * ones).  Existing complete files are left alone.  Returns 0, or -1 with
 * the reason in ${err}.
 */
int localdir_write_empty(const char *dir, int gz, unsigned mode,
    amp_hour first, int n, char *err, size_t errlen);

#endif
