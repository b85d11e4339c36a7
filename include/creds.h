#ifndef AMP2S3_CREDS_H
#define AMP2S3_CREDS_H
/*
 * creds: AWS credentials resolved the way the AWS SDKs and CLI resolve
 * them, and kept fresh while a run lasts.
 *
 * Sources, in this order (the first one that is configured decides; a
 * configured source that fails is an error, it does not fall through):
 *   1. "static"        access key + secret (+ session token) given by the
 *                      caller; never refreshed.
 *   2. "web-identity"  token file + role ARN -> STS AssumeRoleWithWebIdentity
 *                      (unsigned), the token file re-read at every refresh.
 *   3. "profile"       the shared credentials file and config file
 *                      ([NAME] / [profile NAME]): static keys (+ session
 *                      token) from the credentials file, else the
 *                      profile's credential_process, else static keys
 *                      from the config file.  credential_process
 *                      ("process") runs without a shell (argv split as
 *                      POSIX shell words: quotes and backslashes, no
 *                      expansion), with a timeout and a bounded output,
 *                      and is run again to refresh when it gave an
 *                      Expiration.
 *   4. "container"     ECS / EKS Pod Identity: relative URI on
 *                      169.254.170.2, or a full URI (http only to
 *                      loopback, 169.254.170.2, 169.254.170.23 or
 *                      fd00:ec2::23; https to any host), with an
 *                      authorization token (the token file, re-read at
 *                      every refresh, wins over the token).
 *   5. "imds"          EC2 instance metadata, IMDSv2 only: PUT a session
 *                      token, GET the role, GET its credentials; 1 s
 *                      timeouts and one attempt, so that a machine
 *                      without IMDS is not slowed down.
 * An explicitly named profile (opts->profile non-NULL) that is in neither
 * file is an error, as in the CLI.  IMDS not answering is not an error:
 * it only means no source was found.
 *
 * Refresh rule.  A temporary set obtained at time O and expiring at E
 * has the lifetime L = E - O.  From E - A on (A, the advisory margin =
 * min(5 min, L / 4)) the next creds_get() refreshes it, in one thread
 * only, while the others keep using the current set.  From E - M on (M,
 * the mandatory margin = min(1 min, L / 10)) the current set is no longer
 * handed out: callers wait for the refresh.  A failed refresh is retried
 * after min(A / 4, 10 s), never in a loop; once E - M has passed with
 * every refresh failing, creds_get() fails.  So with the usual lifetime
 * of an hour the set is renewed 5 minutes ahead (the SDKs renew 5 to 15
 * minutes ahead) and a 2-second lifetime is renewed after 1.5 s.
 *
 * Secrets (secret keys, session tokens, authorization and web identity
 * tokens) are never logged and never put in an error message; the
 * module's own copies are wiped (explicit_bzero) when replaced or freed.
 * The module reads no environment variable: everything comes in struct
 * creds_options (creds_options_from() fills it from the AWS names).
 *
 * Thread-safety: creds_get(), creds_invalidate(), creds_source() and
 * creds_region() may be called from any number of threads at once.
 * creds_open() and creds_free() are not concurrent with anything else on
 * the same handle.  The caller runs curl_global_init() before
 * creds_open() and curl_global_cleanup() after creds_free().
 */
#include <stddef.h>
#include <stdint.h>

struct cancel;
struct logger;

/* Sizes of the fields of struct creds_value, NUL included. */
#define CREDS_KEY_MAX 129
#define CREDS_SECRET_MAX 129
#define CREDS_TOKEN_MAX 8192

/*
 * Everything the chain needs.  Strings are borrowed by creds_open() (it
 * copies what it keeps); NULL or "" means "not set".  Each field names the
 * AWS variable that config.c fills it from (creds_options_from() does it
 * from any lookup function).
 */
struct creds_options {
	/* 1. static (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	 * AWS_SESSION_TOKEN; config.c also takes the original tool's names
	 * and reads all three from one place) */
	const char *access_key;
	const char *secret_key;
	const char *session_token;

	/* 2. web identity */
	const char *web_identity_token_file; /* AWS_WEB_IDENTITY_TOKEN_FILE */
	const char *role_arn;                /* AWS_ROLE_ARN */
	const char *role_session_name;       /* AWS_ROLE_SESSION_NAME; NULL:
	                                        "amp2s3-<epoch seconds>" */
	const char *sts_endpoint;            /* AWS_ENDPOINT_URL_STS, else
	                                        AWS_ENDPOINT_URL; NULL:
	                                        https://sts.REGION.amazonaws.com
	                                        (https://sts.amazonaws.com
	                                        without a region) */
	const char *region;                  /* AWS_REGION, AWS_DEFAULT_REGION
	                                        (or --aws-region): the regional
	                                        STS endpoint; NULL: the
	                                        profile's region */

	/* 3. shared files */
	const char *profile;                 /* AWS_PROFILE; NULL: "default"
	                                        (and then a missing profile is
	                                        not an error) */
	const char *shared_credentials_file; /* AWS_SHARED_CREDENTIALS_FILE;
	                                        NULL: HOME/.aws/credentials */
	const char *config_file;             /* AWS_CONFIG_FILE; NULL:
	                                        HOME/.aws/config */
	const char *home;                    /* HOME; NULL: no default files */
	char *const *child_env;              /* the environment of a
	                                        credential_process child, as
	                                        given (the caller leaves its
	                                        own secrets out).  NULL: an
	                                        empty environment */
	long process_timeout_ms;             /* 0: 60000 */

	/* 4. container */
	const char *container_relative_uri;  /* AWS_CONTAINER_CREDENTIALS_
	                                        RELATIVE_URI */
	const char *container_full_uri;      /* AWS_CONTAINER_CREDENTIALS_
	                                        FULL_URI */
	const char *container_token;         /* AWS_CONTAINER_AUTHORIZATION_
	                                        TOKEN */
	const char *container_token_file;    /* AWS_CONTAINER_AUTHORIZATION_
	                                        TOKEN_FILE (wins) */
	const char *container_origin;        /* tests only: replaces
	                                        "http://169.254.170.2" for the
	                                        relative URI; config.c leaves
	                                        it NULL */

	/* 5. instance metadata */
	int imds_disabled;                   /* AWS_EC2_METADATA_DISABLED=true */
	const char *imds_endpoint;           /* AWS_EC2_METADATA_SERVICE_
	                                        ENDPOINT; NULL:
	                                        http://169.254.169.254 */
	long imds_timeout_ms;                /* per request; 0: 1000 */

	/* transport, for STS, container and IMDS */
	const char *ca_bundle;               /* AWS_CA_BUNDLE; NULL: system */
	long http_timeout_ms;                /* STS and container, per
	                                        request; 0: 10000 */
	struct cancel *cancel;               /* the run's (cancel.h); may be
	                                        NULL.  Ends transfers, retry
	                                        pauses and a running
	                                        credential_process */
};

/* The sources, in the chain's order (creds_kind()). */
enum creds_kind {
	CREDS_STATIC,       /* "static" */
	CREDS_WEB_IDENTITY, /* "web-identity" */
	CREDS_PROFILE,      /* "profile": keys from the shared files */
	CREDS_PROCESS,      /* "process": a profile's credential_process */
	CREDS_CONTAINER,    /* "container" */
	CREDS_IMDS          /* "imds" */
};

/*
 * What creds_open() tried when no source gave credentials, by kind, for
 * the caller to name its own settings in the message (the module names
 * none).  Filled only when no_source is 1.
 */
struct creds_tried {
	int no_source;             /* 1: no source is configured (and IMDS
	                              gave nothing); 0: another failure */
	char profile[128];         /* the profile looked for */
	int profile_named;         /* opts->profile was set */
	char credentials_file[512]; /* the files looked in; "" without */
	char config_file[512];     /*   HOME and without the option */
	int profile_found;         /* it is in a file but holds no keys */
	int imds_disabled;         /* opts->imds_disabled */
	char imds[512];            /* why IMDS gave none, when not disabled */
};

/* One set of credentials, in caller-owned storage. */
struct creds_value {
	char access_key[CREDS_KEY_MAX];
	char secret_key[CREDS_SECRET_MAX];
	char token[CREDS_TOKEN_MAX];  /* "" without a session token */
	int64_t expires_ms;           /* epoch milliseconds; 0: never */
	uint64_t generation;          /* for creds_invalidate(); starts at 1 */
};

struct creds;

/*
 * creds_lookup_fn(ctx, name): the value of the variable ${name}, or NULL.
 * The string must stay valid as long as the options filled from it are
 * used.
 */
typedef const char *creds_lookup_fn(void *ctx, const char *name);

/*
 * creds_options_from(opts, get, ctx): fill ${opts} (zeroed first) from the
 * AWS variable names listed in struct creds_options, looked up by ${get}
 * (AWS's names only: the caller adds its own); AWS_EC2_METADATA_DISABLED
 * "true" (any case) disables IMDS; AWS_REGION before AWS_DEFAULT_REGION;
 * AWS_ENDPOINT_URL_STS before AWS_ENDPOINT_URL; AWS_CA_BUNDLE.
 * child_env, cancel, the timeouts and container_origin are left for the
 * caller.
 */
void creds_options_from(struct creds_options *opts, creds_lookup_fn *get,
    void *ctx);

/*
 * creds_open(opts, lg, tried, err, errlen): resolve the chain once
 * (blocking: it may run STS, container or IMDS requests or a
 * credential_process).  Returns a handle holding the first set, or NULL
 * with one line in ${err}: either the configured source that failed and
 * why, or, when no source yields credentials, "no AWS credentials found
 * (tried: static keys: not set; web identity: ...; profile default: ...;
 * container: ...; instance metadata: ...)", every source tried with the
 * reason it gave none; ${tried} (may be NULL) then says the same by kind
 * (tried->no_source = 1).  Neither ever holds a secret.  ${lg} (may be
 * NULL) gets debug lines and a warning when a refresh fails; it must
 * outlive the handle.
 */
struct creds *creds_open(const struct creds_options *opts,
    struct logger *lg, struct creds_tried *tried, char *err, size_t errlen);

/*
 * creds_get(c, out): copy the current set into ${out}, refreshing first
 * (see the refresh rule above) when it is due.  Exactly one thread
 * refreshes at a time; the others get the current set while it is still
 * within its validity, and wait for the refresh only past E - M (or after
 * creds_invalidate()).  Returns 0, or -1 if no valid set can be had (every
 * refresh failed and the set is past E - M, or cancelled); ${out} is then
 * wiped.  The caller wipes ${out} (creds_value_wipe()) when done.
 */
int creds_get(struct creds *c, struct creds_value *out);

/*
 * creds_invalidate(c, generation): S3 refused a request signed with the
 * set of ${generation} (ExpiredToken, or InvalidToken for a set thought
 * valid).  If that set is still the current one it is marked unusable:
 * the next creds_get() refreshes at once (one refresh, however many
 * workers report the same generation) and the others wait for it.  A
 * report about an older generation does nothing (someone already
 * refreshed).  Returns 0 if a retry with the next creds_get() makes
 * sense, -1 if the source never refreshes (static keys, a profile's keys,
 * a credential_process without Expiration): the refusal is final.
 */
int creds_invalidate(struct creds *c, uint64_t generation);

/* creds_source(c): the source's name ("static", "web-identity",
 * "profile", "process", "container", "imds"), for an info log.  Static
 * string; never a secret. */
const char *creds_source(const struct creds *c);

/* creds_kind(c): the source, as an enum (for hints that depend on it). */
enum creds_kind creds_kind(const struct creds *c);

/* creds_detail(c): a printable detail for the info log (the profile
 * name, the role ARN, the instance role, the container URI's host), or
 * "".  Owned by ${c}; never a secret. */
const char *creds_detail(const struct creds *c);

/* creds_region(c): the region of the profile in the config file, or NULL.
 * Owned by ${c}. */
const char *creds_region(const struct creds *c);

/* creds_refreshes(c): how many refreshes succeeded so far (tests). */
uint64_t creds_refreshes(struct creds *c);

/* creds_value_wipe(v): explicit_bzero the whole value. */
void creds_value_wipe(struct creds_value *v);

/* creds_free(c): wipe and free.  NULL is a no-op. */
void creds_free(struct creds *c);

#endif
