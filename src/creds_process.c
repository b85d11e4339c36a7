/*
 * creds_process: a profile's credential_process, run without a shell (see
 * creds_internal.h).
 *
 * DESIGN
 * - argv comes from creds_split_argv() (POSIX shell words, no expansion),
 *   the program is found on PATH by posix_spawnp(), as the CLI's
 *   subprocess does.
 * - The child gets stdin from /dev/null, stdout into a pipe, amp2s3's
 *   stderr (the CLI passes it through too, so that the program can say
 *   why it failed), no other descriptor (closefrom), default signal
 *   dispositions and an empty signal mask, and the environment the caller
 *   gives (the command layer leaves its own secrets out of it).
 * - The parent reads stdout in poll() slices of 100 ms, so that a cancel
 *   or the timeout is seen within that; past the timeout, the output
 *   bound or a cancel the child is killed (SIGKILL) and reaped.  The exit
 *   status must be 0.  The output buffer is wiped when freed.
 * - The caller holds no lock of its own that the child could need; the
 *   pipe is O_CLOEXEC so that a child spawned by another thread at the
 *   same moment does not inherit it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cancel.h"
#include "creds_internal.h"
#include "errbuf.h"

#define SLICE_MS 100

/* Reap ${pid}, killing it first when ${kill_it}; its wait status. */
static int
reap(pid_t pid, int kill_it)
{
	int st = 0;

	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return (st);
}

/*
 * Start ${argv} with stdin /dev/null, stdout the pipe's write end ${wfd},
 * no other descriptor, default signals and an empty mask.  Returns 0 with
 * *${pid} set, or -1 with ${err} set.
 */
static int
spawn(char **argv, char *const *env, int wfd, pid_t *pid, char *err,
    size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0, r;
	sigset_t none, defs;

	if ((r = posix_spawn_file_actions_init(&fa)) != 0)
		goto err;
	fa_ok = 1;
	if ((r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
	    O_RDONLY, 0)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, wfd, 1)) != 0)
		goto err;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	if ((r = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
		goto err;
#endif
	if ((r = posix_spawnattr_init(&attr)) != 0)
		goto err;
	attr_ok = 1;
	sigemptyset(&none);
	sigemptyset(&defs);
	sigaddset(&defs, SIGPIPE);
	sigaddset(&defs, SIGINT);
	sigaddset(&defs, SIGTERM);
	sigaddset(&defs, SIGHUP);
	sigaddset(&defs, SIGQUIT);
	if ((r = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (r = posix_spawnattr_setsigdefault(&attr, &defs)) != 0 ||
	    (r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (r = posix_spawnp(pid, argv[0], &fa, &attr, argv, env)) != 0)
		goto err;
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return (0);
err:
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	return (errbuf_set(err, errlen, "credential_process: cannot run %s: "
	    "%s", argv[0], ERRSTR(r)));
}

/*
 * Read the child's output from ${fd} into ${buf} (*${len} bytes so far)
 * until EOF.  Past ${deadline}, CREDS_BODY_MAX bytes or a cancel the
 * child is killed and reaped: -1 with ${err} set.
 */
static int
read_output(int fd, pid_t pid, int64_t deadline, long timeout_ms,
    struct cancel *cancel, char *buf, size_t *len, char *err,
    size_t errlen)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t left;
	ssize_t got;
	int r;

	for (;;) {
		if (cancel_requested(cancel)) {
			reap(pid, 1);
			return (errbuf_set(err, errlen, "credential_process: "
			    "cancelled"));
		}
		if ((left = deadline - cancel_clock_ms()) <= 0) {
			reap(pid, 1);
			return (errbuf_set(err, errlen, "credential_process: "
			    "no answer within %ld ms (killed)", timeout_ms));
		}
		pfd.revents = 0;
		r = poll(&pfd, 1, left < SLICE_MS ? (int)left : SLICE_MS);
		if (r <= 0)
			continue;       /* EINTR, or a slice passed */
		got = read(fd, buf + *len, CREDS_BODY_MAX + 1 - *len);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return (0);     /* EOF (or an error: the status decides) */
		*len += (size_t)got;
		if (*len > CREDS_BODY_MAX) {
			reap(pid, 1);
			return (errbuf_set(err, errlen, "credential_process: "
			    "more than %d bytes of output (killed)",
			    CREDS_BODY_MAX));
		}
	}
}

/*
 * The child closed its output: it should exit now, within the same
 * ${deadline} (else it is killed).  Returns 0 if it exited with status 0,
 * else -1 with ${err} set.  The child is reaped either way.
 */
static int
wait_exit(pid_t pid, int64_t deadline, struct cancel *cancel, char *err,
    size_t errlen)
{
	pid_t w;
	int st;

	while ((w = waitpid(pid, &st, WNOHANG)) != pid) {
		if (w < 0 && errno != EINTR) {
			reap(pid, 1);
			return (errbuf_set(err, errlen, "credential_process: "
			    "waitpid: %s", ERRSTR(errno)));
		}
		if (cancel_clock_ms() >= deadline ||
		    cancel_sleep(cancel, 10) != 0) {
			reap(pid, 1);
			return (errbuf_set(err, errlen, "credential_process: "
			    "did not exit after closing its output (killed)"));
		}
	}
	if (WIFSIGNALED(st))
		return (errbuf_set(err, errlen, "credential_process: killed by "
		    "signal %d", WTERMSIG(st)));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return (errbuf_set(err, errlen, "credential_process: exit "
		    "status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1));
	return (0);
}

int
creds_process_run(const char *cmd, char *const *env, long timeout_ms,
    struct cancel *cancel, struct creds_value *out, char *err,
    size_t errlen)
{
	static char *const empty_env[] = { NULL };
	char **argv = NULL, *buf = NULL;
	int p[2] = { -1, -1 }, rc = -1;
	size_t len = 0;
	pid_t pid;
	int64_t deadline;

	memset(out, 0, sizeof(*out));
	if (timeout_ms <= 0)
		timeout_ms = 60000;
	if (creds_split_argv(cmd, &argv, err, errlen) != 0)
		return (-1);
	if ((buf = creds_wipe_malloc(CREDS_BODY_MAX + 1)) == NULL) {
		errbuf_set(err, errlen, "credential_process: out of memory");
		goto out;
	}
	if (pipe2(p, O_CLOEXEC) != 0) {
		errbuf_set(err, errlen, "credential_process: pipe: %s",
		    ERRSTR(errno));
		goto out;
	}
	if (spawn(argv, env ? env : empty_env, p[1], &pid, err, errlen) != 0)
		goto out;
	close(p[1]);
	p[1] = -1;
	deadline = cancel_clock_ms() + timeout_ms;
	if (read_output(p[0], pid, deadline, timeout_ms, cancel, buf, &len,
	    err, errlen) != 0 ||
	    wait_exit(pid, deadline, cancel, err, errlen) != 0)
		goto out;
	rc = creds_parse_json(CREDS_DOC_PROCESS, buf, len, out, err, errlen);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	creds_wipe_free(buf);
	creds_argv_free(argv);
	if (rc != 0)
		creds_value_wipe(out);
	return (rc);
}
