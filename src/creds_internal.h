#ifndef AMP2S3_CREDS_INTERNAL_H
#define AMP2S3_CREDS_INTERNAL_H
/*
 * creds_internal: what the files of the creds module share (creds.c the
 * chain and refresh, creds_http.c STS / container / IMDS, creds_files.c
 * the shared files, creds_process.c credential_process, creds_parse.c the
 * pure parsers).  Not for other modules; the unit tests and fuzz targets
 * include it for the pure parts.
 *
 * Error convention: functions return 0 on success and -1 with one line in
 * (err, errlen) (errbuf_set), which never holds a secret.
 */
#include <stddef.h>
#include <stdint.h>

#include "creds.h"

struct cancel;

/* The most bytes of an answer or a credential_process output. */
#define CREDS_BODY_MAX (64 * 1024)

/* ---- pure parts (creds_parse.c): no I/O, no global state ---------- */

/* Which JSON document creds_parse_json() reads. */
enum creds_doc {
	CREDS_DOC_IMDS,      /* Code (must be "Success" if present),
	                        AccessKeyId, SecretAccessKey, Token,
	                        Expiration: all required */
	CREDS_DOC_CONTAINER, /* AccessKeyId, SecretAccessKey, Token,
	                        Expiration: all required */
	CREDS_DOC_PROCESS    /* Version (must be 1), AccessKeyId,
	                        SecretAccessKey; SessionToken and Expiration
	                        optional */
};

/*
 * creds_parse_json(kind, buf, len, out, err, errlen): the credentials in
 * the JSON object at ${buf} (${len} bytes, no NUL needed; at most
 * CREDS_BODY_MAX).  Top-level string members are read; nested values
 * are skipped.  Fills ${out} (generation 0, expires_ms 0 when the
 * document has no Expiration) and checks it with creds_check_value().
 * On -1 ${out} is wiped.  The parser's memory is wiped when freed.
 */
int creds_parse_json(enum creds_doc kind, const char *buf, size_t len,
    struct creds_value *out, char *err, size_t errlen);

/*
 * creds_parse_sts(buf, len, out, code, codelen, err, errlen): an STS
 * AssumeRoleWithWebIdentity answer.  Returns 0 with ${out} filled from
 * AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/
 * Credentials; 1 for an ErrorResponse, with its Error/Code in ${code}
 * (printable, truncated) and "STS error CODE" in ${err}; -1 for anything
 * else (malformed XML, missing fields, a field too long).  The parser's
 * memory is wiped when freed.
 */
int creds_parse_sts(const char *buf, size_t len, struct creds_value *out,
    char *code, size_t codelen, char *err, size_t errlen);

/*
 * creds_parse_time(s, ms): an ISO 8601 / RFC 3339 UTC time,
 * "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM|+HHMM]" ('t' and ' ' for
 * 'T', 'z' for 'Z' accepted), into epoch milliseconds.  Returns 0, or -1
 * if ${s} is not such a time (or out of 1970..9999).
 */
int creds_parse_time(const char *s, int64_t *ms);

/* creds_margin_advisory_ms(lifetime_ms): A = min(300000, L / 4), and
 * creds_margin_mandatory_ms(lifetime_ms): M = min(60000, L / 10); both 0
 * for L <= 0 (see the refresh rule in creds.h). */
int64_t creds_margin_advisory_ms(int64_t lifetime_ms);
int64_t creds_margin_mandatory_ms(int64_t lifetime_ms);

/* creds_retry_after_ms(lifetime_ms): the pause after a failed refresh,
 * min(A / 4, 10000), at least 50 ms. */
int64_t creds_retry_after_ms(int64_t lifetime_ms);

/*
 * creds_check_value(v, err, errlen): an access key of 16..128 characters
 * [A-Za-z0-9], a secret of 1..128 printable ASCII characters without
 * space, a token (may be empty) of printable ASCII without space: what can
 * go into an HTTP header and a signature.  0 or -1.
 */
int creds_check_value(const struct creds_value *v, char *err, size_t errlen);

/*
 * creds_split_argv(cmd, argv, err, errlen): split ${cmd} into words as a
 * POSIX shell (and Python's shlex.split, which the AWS CLI uses) would,
 * without any expansion: blanks (space, tab, newline) separate words;
 * '...' is literal; "..." is literal but for \" \\ \$ \` and
 * backslash-newline (removed); outside quotes a backslash quotes the next
 * character (backslash-newline removed).  Returns 0 with *${argv} a
 * malloc'd NULL-terminated vector of at least one word (free with
 * creds_argv_free()), or -1 for an unterminated quote, a trailing
 * backslash, no word, or out of memory.
 */
int creds_split_argv(const char *cmd, char ***argv, char *err,
    size_t errlen);
void creds_argv_free(char **argv);

/*
 * creds_full_uri_check(uri, err, errlen): the container full URI rule of
 * the SDKs: https to any host; http only to a loopback address
 * (127.0.0.0/8, ::1, "localhost"), 169.254.170.2, 169.254.170.23 or
 * fd00:ec2::23.  0 or -1 (the reason names the host, which is no
 * secret).
 */
int creds_full_uri_check(const char *uri, char *err, size_t errlen);

/* Allocation that wipes on free, for the parsers that see secrets
 * (yajl, expat): each block remembers its size. */
void *creds_wipe_malloc(size_t n);
void *creds_wipe_realloc(void *p, size_t n);
void creds_wipe_free(void *p);

/* creds_strwipe(s): explicit_bzero(s, strlen(s)) then free(s); NULL ok. */
void creds_strwipe(char *s);

/* ---- transport (creds_http.c) ------------------------------------- */

struct creds_http {
	const char *ca_bundle;    /* NULL: system CAs */
	long timeout_ms;          /* whole request */
	long connect_timeout_ms;
	struct cancel *cancel;    /* may be NULL */
};

/*
 * creds_sts_fetch(h, endpoint, role_arn, session, token_file, out, err,
 * errlen): read ${token_file} (now: Kubernetes rotates it), POST
 * AssumeRoleWithWebIdentity to ${endpoint}, parse the answer.  Up to 3
 * attempts for transport errors, 5xx, IDPCommunicationError and
 * Throttling.  0 or -1.
 */
int creds_sts_fetch(const struct creds_http *h, const char *endpoint,
    const char *role_arn, const char *session, const char *token_file,
    struct creds_value *out, char *err, size_t errlen);

/*
 * creds_container_fetch(h, url, token, token_file, out, err, errlen):
 * GET ${url} with "Authorization: <token>" (${token_file}'s content, read
 * now, wins over ${token}; none if both NULL).  Up to 3 attempts for
 * transport errors and 5xx.  0 or -1.
 */
int creds_container_fetch(const struct creds_http *h, const char *url,
    const char *token, const char *token_file, struct creds_value *out,
    char *err, size_t errlen);

/*
 * creds_imds_fetch(h, endpoint, role, rolelen, out, err, errlen): IMDSv2
 * (PUT token, GET role, GET credentials), one attempt each.  The role
 * name goes to ${role}.  0 or -1.
 */
int creds_imds_fetch(const struct creds_http *h, const char *endpoint,
    char *role, size_t rolelen, struct creds_value *out, char *err,
    size_t errlen);

/* ---- shared files (creds_files.c) --------------------------------- */

/* What one profile says, merged from both files. */
struct creds_profile {
	int found;               /* the section is in either file */
	char *region;            /* config file's region */
	char *cf_access, *cf_secret, *cf_token;    /* credentials file */
	char *cfg_access, *cfg_secret, *cfg_token; /* config file */
	char *process;           /* credential_process (either file) */
	char unsupported[48];    /* a key this module cannot honour
	                            (role_arn, sso_*, ...), or "" */
};

/*
 * creds_profile_load(cred_path, cfg_path, name, p, err, errlen): read the
 * profile ${name} ("[name]" in ${cred_path}; "[profile name]", and
 * "[default]" for "default", in ${cfg_path}) with libinih.  A missing
 * file is no error (either path may be NULL).  -1 for a file that exists
 * but cannot be read or parsed (the error names the file and line), or a
 * line longer than 32 KiB.  ${p} is cleared first; free with
 * creds_profile_clear().
 */
int creds_profile_load(const char *cred_path, const char *cfg_path,
    const char *name, struct creds_profile *p, char *err, size_t errlen);
void creds_profile_clear(struct creds_profile *p);

/* ---- credential_process (creds_process.c) ------------------------- */

/*
 * creds_process_run(cmd, env, timeout_ms, cancel, out, err, errlen):
 * split ${cmd} (creds_split_argv), posix_spawnp it with stdin /dev/null,
 * stdout a pipe, stderr inherited, the environment ${env} (NULL: an
 * empty one), and no other descriptor; read at most CREDS_BODY_MAX bytes of stdout; kill it
 * (SIGKILL) after ${timeout_ms} or when *${cancel} becomes non-zero; the
 * exit status must be 0; parse the output (CREDS_DOC_PROCESS).  0 or -1.
 */
int creds_process_run(const char *cmd, char *const *env, long timeout_ms,
    struct cancel *cancel, struct creds_value *out, char *err,
    size_t errlen);

/* creds_now_ms(): CLOCK_REALTIME in milliseconds. */
int64_t creds_now_ms(void);

#endif
