/*
 * creds: the credential chain and its refresh (see creds.h).
 *
 * DESIGN
 * - creds_open() walks the sources once, in the SDKs' order, and keeps
 *   the first that yields a set, with everything needed to ask it again
 *   (owned copies: endpoint, role, token file, command, environment).
 *   A source that is configured but fails ends the walk with its error;
 *   one that is not configured (or IMDS not answering) adds a reason to
 *   the "tried" line.
 * - One mutex guards the current set, its generation, the refresh state
 *   and the counters; one condition variable wakes the threads waiting
 *   for a refresh.  The refresh itself (network, a child process) runs
 *   with the mutex released, in the one thread that set `refreshing`;
 *   the others either copy the still-usable set and go on, or wait on
 *   the condition.  The refresher always clears `refreshing` and
 *   broadcasts, success or not, so no waiter is left behind; fetches are
 *   bounded by their own timeouts and the cancel flag.
 * - Generations: every new set gets generation + 1.  creds_invalidate()
 *   marks the current generation refused (forced_gen); a report naming an
 *   older generation is stale and ignored, so N workers refused at once
 *   cause one refresh.
 * - Failed refresh: retried no sooner than creds_retry_after_ms(L); in
 *   between, callers get the current set while it is usable (before
 *   E - M and not refused) and -1 otherwise.  No refresh runs within
 *   200 ms of the previous one unless the set was refused, so a source
 *   that hands out sets already about to expire cannot make every call a
 *   request.
 * - Secrets live in `cur` (and the owned tokens/environment); replaced
 *   sets and everything freed are wiped.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cancel.h"
#include "creds_internal.h"
#include "errbuf.h"
#include "log.h"

#define MIN_REFRESH_GAP_MS 200
#define DEFAULT_HTTP_TIMEOUT_MS 10000
#define DEFAULT_IMDS_TIMEOUT_MS 1000
#define DEFAULT_PROCESS_TIMEOUT_MS 60000
#define CONTAINER_ORIGIN "http://169.254.170.2"
#define IMDS_ENDPOINT "http://169.254.169.254"
#define TRIED_MAX 1536

static const char *const src_names[] = { "static", "web-identity",
	"profile", "process", "container", "imds" };

struct creds {
	enum creds_kind src;
	int can_refresh;
	char detail[160];
	char *region;

	/* What a refresh needs (owned). */
	char *sts_endpoint, *role_arn, *session, *token_file;
	char *process_cmd;
	char **child_env;
	long process_timeout_ms;
	char *container_url, *container_token, *container_token_file;
	char *imds_endpoint;
	char *ca_bundle;
	struct creds_http http;      /* STS, container */
	struct creds_http imds_http;
	struct cancel *cancel;
	struct logger *lg;

	pthread_mutex_t mu;          /* everything below */
	pthread_cond_t cv;           /* a refresh finished */
	struct creds_value cur;
	int64_t obtained_ms;
	int refreshing;
	uint64_t forced_gen;         /* == cur.generation: refused */
	int64_t next_try_ms;         /* after a failed refresh */
	uint64_t refreshes;
};

int64_t
creds_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int
set(const char *s)
{
	return (s != NULL && s[0] != '\0');
}

/* Append "; what" to the tried line. */
static void
tried_add(char *tried, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
tried_add(char *tried, const char *fmt, ...)
{
	size_t n = strlen(tried);
	va_list ap;

	if (n > 0 && n + 2 < TRIED_MAX) {
		memcpy(tried + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(tried + n, TRIED_MAX - n, fmt, ap);
	va_end(ap);
}

/* ${path}, with a leading "~/" replaced by ${home}; malloc'd or NULL. */
static char *
expand_path(const char *path, const char *home, const char *dflt)
{
	char *out;
	size_t n;

	if (!set(path)) {
		if (!set(home))
			return (NULL);
		n = strlen(home) + strlen(dflt) + 2;
		if ((out = malloc(n)) != NULL)
			snprintf(out, n, "%s/%s", home, dflt);
		return (out);
	}
	if (path[0] == '~' && path[1] == '/' && set(home)) {
		n = strlen(home) + strlen(path);
		if ((out = malloc(n)) != NULL)
			snprintf(out, n, "%s%s", home, path + 1);
		return (out);
	}
	return (strdup(path));
}

void
creds_options_from(struct creds_options *o, creds_lookup_fn *get, void *ctx)
{
	const char *v;

	memset(o, 0, sizeof(*o));
	o->access_key = get(ctx, "AWS_ACCESS_KEY_ID");
	o->secret_key = get(ctx, "AWS_SECRET_ACCESS_KEY");
	o->session_token = get(ctx, "AWS_SESSION_TOKEN");
	o->web_identity_token_file = get(ctx, "AWS_WEB_IDENTITY_TOKEN_FILE");
	o->role_arn = get(ctx, "AWS_ROLE_ARN");
	o->role_session_name = get(ctx, "AWS_ROLE_SESSION_NAME");
	o->sts_endpoint = get(ctx, "AWS_ENDPOINT_URL_STS");
	if (!set(o->sts_endpoint))
		o->sts_endpoint = get(ctx, "AWS_ENDPOINT_URL");
	o->region = get(ctx, "AWS_REGION");
	if (!set(o->region))
		o->region = get(ctx, "AWS_DEFAULT_REGION");
	o->profile = get(ctx, "AWS_PROFILE");
	o->shared_credentials_file = get(ctx, "AWS_SHARED_CREDENTIALS_FILE");
	o->config_file = get(ctx, "AWS_CONFIG_FILE");
	o->home = get(ctx, "HOME");
	o->container_relative_uri = get(ctx,
	    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	o->container_full_uri = get(ctx, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	o->container_token = get(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	o->container_token_file = get(ctx,
	    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	v = get(ctx, "AWS_EC2_METADATA_DISABLED");
	o->imds_disabled = v != NULL && strcasecmp(v, "true") == 0;
	o->imds_endpoint = get(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	o->ca_bundle = get(ctx, "AWS_CA_BUNDLE");
}

/* Ask the source for a new set (no lock held). */
static int
fetch(struct creds *c, struct creds_value *out, char *err, size_t errlen)
{
	char role[160];

	switch (c->src) {
	case CREDS_WEB_IDENTITY:
		return (creds_sts_fetch(&c->http, c->sts_endpoint, c->role_arn,
		    c->session, c->token_file, out, err, errlen));
	case CREDS_PROCESS:
		return (creds_process_run(c->process_cmd, c->child_env,
		    c->process_timeout_ms, c->cancel, out, err, errlen));
	case CREDS_CONTAINER:
		return (creds_container_fetch(&c->http, c->container_url,
		    c->container_token, c->container_token_file, out, err,
		    errlen));
	case CREDS_IMDS:
		/* The role's name stays the one creds_open() logged. */
		return (creds_imds_fetch(&c->imds_http, c->imds_endpoint, role,
		    sizeof(role), out, err, errlen));
	default:
		return (errbuf_set(err, errlen, "%s credentials do not "
		    "refresh", src_names[c->src]));
	}
}

/* Copy the environment for credential_process (owned, wiped at free). */
static int
copy_env(struct creds *c, char *const *env)
{
	size_t n = 0, i;

	if (env == NULL)
		return (0);
	while (env[n] != NULL)
		n++;
	if ((c->child_env = calloc(n + 1, sizeof(char *))) == NULL)
		return (-1);
	for (i = 0; i < n; i++)
		if ((c->child_env[i] = strdup(env[i])) == NULL)
			return (-1);
	return (0);
}

/* The STS endpoint: explicit, else regional, else global. */
static char *
sts_url(const char *endpoint, const char *region)
{
	char buf[256];

	if (set(endpoint))
		return (strdup(endpoint));
	if (set(region) && strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789"
	    "-") == strlen(region) && strlen(region) < 64) {
		snprintf(buf, sizeof(buf), "https://sts.%s.amazonaws.com%s",
		    region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
		return (strdup(buf));
	}
	return (strdup("https://sts.amazonaws.com"));
}

/* Static keys as a set (copied into c->cur). */
static int
take_static(struct creds *c, const char *ak, const char *sk, const char *tok,
    const char *what, char *err, size_t errlen)
{
	char why[200];

	if (strlen(ak) >= sizeof(c->cur.access_key) ||
	    strlen(sk) >= sizeof(c->cur.secret_key) ||
	    (tok != NULL && strlen(tok) >= sizeof(c->cur.token)))
		return (errbuf_set(err, errlen, "%s: a key or token is too "
		    "long", what));
	snprintf(c->cur.access_key, sizeof(c->cur.access_key), "%s", ak);
	snprintf(c->cur.secret_key, sizeof(c->cur.secret_key), "%s", sk);
	snprintf(c->cur.token, sizeof(c->cur.token), "%s", tok ? tok : "");
	c->cur.expires_ms = 0;
	if (creds_check_value(&c->cur, why, sizeof(why)) != 0) {
		creds_value_wipe(&c->cur);
		return (errbuf_set(err, errlen, "%s: %s", what, why));
	}
	return (0);
}

/* Keys of one half of a profile: 1 taken, 0 none, -1 error. */
static int
profile_keys(struct creds *c, const char *ak, const char *sk,
    const char *tok, const char *file, const char *name, char *err,
    size_t errlen)
{
	char what[256];

	if (!set(ak) && !set(sk))
		return (0);
	snprintf(what, sizeof(what), "profile %s in %s", name, file);
	if (!set(ak) || !set(sk))
		return (errbuf_set(err, errlen, "%s: %s without %s", what,
		    set(ak) ? "aws_access_key_id" : "aws_secret_access_key",
		    set(ak) ? "aws_secret_access_key" : "aws_access_key_id"));
	if (take_static(c, ak, sk, tok, what, err, errlen) != 0)
		return (-1);
	return (1);
}

/* Note in ${t} the files a profile was looked for in. */
static void
tried_files(struct creds_tried *t, const char *cred_path,
    const char *cfg_path)
{
	snprintf(t->credentials_file, sizeof(t->credentials_file), "%s",
	    cred_path ? cred_path : "");
	snprintf(t->config_file, sizeof(t->config_file), "%s",
	    cfg_path ? cfg_path : "");
}

/* The shared files' profile, loaded once for steps 2 (region) and 3. */
struct profile_ctx {
	struct creds_profile prof;
	char *cred_path, *cfg_path;
	const char *name;
	int loaded;             /* 0: perr says why not */
	char perr[512];
};

static int
oom(char *err, size_t errlen)
{
	return (errbuf_set(err, errlen, "credentials: out of memory"));
}

/* A chosen source whose first fetch decides: 1 fetched, -1 error. */
static int
chosen(struct creds *c, int can_refresh, char *err, size_t errlen)
{
	if (fetch(c, &c->cur, err, errlen) != 0)
		return (-1);
	c->can_refresh = can_refresh < 0 ? c->cur.expires_ms != 0 :
	    can_refresh;
	return (1);
}

/* Load the profile named by ${o} into ${p}; -1 only when out of memory. */
static int
profile_open(struct profile_ctx *p, struct creds *c,
    const struct creds_options *o, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->name = set(o->profile) ? o->profile : "default";
	p->cred_path = expand_path(o->shared_credentials_file, o->home,
	    ".aws/credentials");
	p->cfg_path = expand_path(o->config_file, o->home, ".aws/config");
	if (creds_profile_load(p->cred_path, p->cfg_path, p->name, &p->prof,
	    p->perr, sizeof(p->perr)) == 0) {
		p->loaded = 1;
		if (set(p->prof.region) &&
		    (c->region = strdup(p->prof.region)) == NULL)
			return (oom(err, errlen));
	}
	return (0);
}

static void
profile_close(struct profile_ctx *p)
{
	creds_profile_clear(&p->prof);
	free(p->cred_path);
	free(p->cfg_path);
	explicit_bzero(p->perr, sizeof(p->perr));
}

/* Step 2, web identity: 1 chosen, 0 not configured, -1 error. */
static int
try_web_identity(struct creds *c, const struct creds_options *o,
    char *tried, char *err, size_t errlen)
{
	char sess[64];

	if (!set(o->web_identity_token_file)) {
		tried_add(tried, "web identity: no token file");
		return (0);
	}
	if (!set(o->role_arn))
		return (errbuf_set(err, errlen, "web identity: a token file "
		    "but no role ARN"));
	if (set(o->role_session_name))
		snprintf(sess, sizeof(sess), "%s", o->role_session_name);
	else
		snprintf(sess, sizeof(sess), "amp2s3-%lld",
		    (long long)(creds_now_ms() / 1000));
	c->src = CREDS_WEB_IDENTITY;
	if ((c->sts_endpoint = sts_url(o->sts_endpoint, set(o->region) ?
	    o->region : c->region)) == NULL ||
	    (c->role_arn = strdup(o->role_arn)) == NULL ||
	    (c->session = strdup(sess)) == NULL ||
	    (c->token_file = strdup(o->web_identity_token_file)) == NULL)
		return (oom(err, errlen));
	snprintf(c->detail, sizeof(c->detail), "%s", o->role_arn);
	return (chosen(c, 1, err, errlen));
}

/* Step 3, the profile's keys or credential_process: 1, 0, -1 as above. */
static int
try_profile(struct creds *c, const struct creds_options *o,
    struct profile_ctx *p, char *tried, struct creds_tried *t, char *err,
    size_t errlen)
{
	const char *cred = p->cred_path, *cfg = p->cfg_path;
	int r;

	if (!p->loaded)
		return (errbuf_set(err, errlen, "%s", p->perr));
	if (!p->prof.found) {
		if (set(o->profile))
			return (errbuf_set(err, errlen, "profile %s is in "
			    "neither %s nor %s", p->name, cred ? cred :
			    "(none)", cfg ? cfg : "(none)"));
		tried_add(tried, "profile %s: not in %s, %s", p->name,
		    cred ? cred : "(no HOME)", cfg ? cfg : "(no HOME)");
		tried_files(t, cred, cfg);
		return (0);
	}
	if (p->prof.unsupported[0] != '\0')
		return (errbuf_set(err, errlen, "profile %s uses %s, which "
		    "amp2s3 does not support (use keys, credential_process, "
		    "or a role from the environment)", p->name,
		    p->prof.unsupported));
	snprintf(c->detail, sizeof(c->detail), "%s", p->name);
	c->src = CREDS_PROFILE;
	if ((r = profile_keys(c, p->prof.cf_access, p->prof.cf_secret,
	    p->prof.cf_token, cred, p->name, err, errlen)) != 0)
		return (r);
	if (set(p->prof.process)) {
		c->src = CREDS_PROCESS;
		if ((c->process_cmd = strdup(p->prof.process)) == NULL ||
		    copy_env(c, o->child_env) != 0)
			return (oom(err, errlen));
		return (chosen(c, -1, err, errlen));
	}
	if ((r = profile_keys(c, p->prof.cfg_access, p->prof.cfg_secret,
	    p->prof.cfg_token, cfg, p->name, err, errlen)) != 0)
		return (r);
	tried_add(tried, "profile %s: no credentials in it", p->name);
	tried_files(t, cred, cfg);
	t->profile_found = 1;
	return (0);
}

/* Step 4, the container endpoint: 1, 0, -1 as above. */
static int
try_container(struct creds *c, const struct creds_options *o, char *tried,
    char *err, size_t errlen)
{
	const char *origin = set(o->container_origin) ? o->container_origin :
	    CONTAINER_ORIGIN;
	size_t n;

	if (!set(o->container_relative_uri) && !set(o->container_full_uri)) {
		tried_add(tried, "container: no URI");
		return (0);
	}
	c->src = CREDS_CONTAINER;
	if (set(o->container_relative_uri)) {
		n = strlen(origin) + strlen(o->container_relative_uri) + 2;
		if ((c->container_url = malloc(n)) == NULL)
			return (oom(err, errlen));
		snprintf(c->container_url, n, "%s%s%s", origin,
		    o->container_relative_uri[0] == '/' ? "" : "/",
		    o->container_relative_uri);
	} else {
		if (creds_full_uri_check(o->container_full_uri, err,
		    errlen) != 0)
			return (-1);
		if ((c->container_url = strdup(o->container_full_uri)) == NULL)
			return (oom(err, errlen));
	}
	if ((set(o->container_token) && (c->container_token =
	    strdup(o->container_token)) == NULL) ||
	    (set(o->container_token_file) && (c->container_token_file =
	    strdup(o->container_token_file)) == NULL))
		return (oom(err, errlen));
	return (chosen(c, 1, err, errlen));
}

/* Step 5, instance metadata: 1, 0 (unreachable or disabled), -1. */
static int
try_imds(struct creds *c, const struct creds_options *o, char *tried,
    struct creds_tried *t, char *err, size_t errlen)
{
	char why[512], role[160];
	int rc = 1;

	if (o->imds_disabled) {
		tried_add(tried, "instance metadata: disabled");
		return (0);
	}
	c->src = CREDS_IMDS;
	if ((c->imds_endpoint = strdup(set(o->imds_endpoint) ?
	    o->imds_endpoint : IMDS_ENDPOINT)) == NULL)
		return (oom(err, errlen));
	if (creds_imds_fetch(&c->imds_http, c->imds_endpoint, role,
	    sizeof(role), &c->cur, why, sizeof(why)) != 0) {
		if (cancel_requested(c->cancel)) {
			rc = errbuf_set(err, errlen, "%s", why);
		} else {
			tried_add(tried, "%s", why);
			snprintf(t->imds, sizeof(t->imds), "%s", why);
			rc = 0;
		}
	} else {
		snprintf(c->detail, sizeof(c->detail), "%s", role);
		c->can_refresh = 1;
	}
	explicit_bzero(why, sizeof(why));
	return (rc);
}

/*
 * Steps 2..5 of the chain, each tried in turn until one chooses.  Returns
 * 1 with a source chosen and c->cur filled, 0 if none (reasons in
 * ${tried}, and by kind in ${t}), -1 on a hard error.
 */
static int
resolve(struct creds *c, const struct creds_options *o, char *tried,
    struct creds_tried *t, char *err, size_t errlen)
{
	struct profile_ctx p;
	int rc;

	if ((rc = profile_open(&p, c, o, err, errlen)) == 0 &&
	    (rc = try_web_identity(c, o, tried, err, errlen)) == 0 &&
	    (rc = try_profile(c, o, &p, tried, t, err, errlen)) == 0 &&
	    (rc = try_container(c, o, tried, err, errlen)) == 0)
		rc = try_imds(c, o, tried, t, err, errlen);
	profile_close(&p);
	return (rc);
}

struct creds *
creds_open(const struct creds_options *o, struct logger *lg,
    struct creds_tried *t, char *err, size_t errlen)
{
	struct creds_tried tmp;
	struct creds *c;
	char tried[TRIED_MAX];
	int r, mu_ok = 0, cv_ok = 0;

	tried[0] = '\0';
	if (t == NULL)
		t = &tmp;
	memset(t, 0, sizeof(*t));
	snprintf(t->profile, sizeof(t->profile), "%s", set(o->profile) ?
	    o->profile : "default");
	t->profile_named = set(o->profile);
	t->imds_disabled = o->imds_disabled != 0;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		errbuf_set(err, errlen, "credentials: out of memory");
		return (NULL);
	}
	c->lg = lg;
	c->cancel = o->cancel;
	c->process_timeout_ms = o->process_timeout_ms > 0 ?
	    o->process_timeout_ms : DEFAULT_PROCESS_TIMEOUT_MS;
	if (set(o->ca_bundle) && (c->ca_bundle = strdup(o->ca_bundle)) ==
	    NULL) {
		errbuf_set(err, errlen, "credentials: out of memory");
		goto err;
	}
	c->http.ca_bundle = c->ca_bundle;
	c->http.timeout_ms = o->http_timeout_ms > 0 ? o->http_timeout_ms :
	    DEFAULT_HTTP_TIMEOUT_MS;
	c->http.connect_timeout_ms = c->http.timeout_ms;
	c->http.cancel = o->cancel;
	c->imds_http = c->http;
	c->imds_http.timeout_ms = o->imds_timeout_ms > 0 ?
	    o->imds_timeout_ms : DEFAULT_IMDS_TIMEOUT_MS;
	c->imds_http.connect_timeout_ms = c->imds_http.timeout_ms;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		errbuf_set(err, errlen, "credentials: pthread_mutex_init "
		    "failed");
		goto err;
	}
	mu_ok = 1;
	if (pthread_cond_init(&c->cv, NULL) != 0) {
		errbuf_set(err, errlen, "credentials: pthread_cond_init "
		    "failed");
		goto err;
	}
	cv_ok = 1;

	/* 1. Static keys. */
	if (set(o->access_key) || set(o->secret_key)) {
		if (!set(o->access_key) || !set(o->secret_key)) {
			errbuf_set(err, errlen, "static keys: %s without %s",
			    set(o->access_key) ? "an access key" :
			    "a secret key", set(o->access_key) ?
			    "a secret key" : "an access key");
			goto err;
		}
		c->src = CREDS_STATIC;
		if (take_static(c, o->access_key, o->secret_key,
		    o->session_token, "static keys", err, errlen) != 0)
			goto err;
		/* The profile's region may still matter. */
		r = 1;
	} else {
		tried_add(tried, "static keys: not set");
		r = resolve(c, o, tried, t, err, errlen);
		if (r < 0)
			goto err;
		if (r == 0) {
			t->no_source = 1;
			errbuf_set(err, errlen, "no AWS credentials found "
			    "(tried: %s)", tried);
			goto err;
		}
	}
	if (c->src == CREDS_STATIC && c->region == NULL) {
		struct creds_profile prof;
		char *cp, *fp, perr[256];

		cp = expand_path(o->shared_credentials_file, o->home,
		    ".aws/credentials");
		fp = expand_path(o->config_file, o->home, ".aws/config");
		if (creds_profile_load(cp, fp, set(o->profile) ? o->profile :
		    "default", &prof, perr, sizeof(perr)) == 0) {
			if (set(prof.region))
				c->region = strdup(prof.region);
			creds_profile_clear(&prof);
		}
		free(cp);
		free(fp);
	}
	c->cur.generation = 1;
	c->obtained_ms = creds_now_ms();
	if (lg != NULL)
		log_debug(lg, "credentials from %s%s%s%s", src_names[c->src],
		    c->detail[0] ? " (" : "", c->detail,
		    c->detail[0] ? ")" : "");
	return (c);
err:
	if (!mu_ok || !cv_ok) {
		if (mu_ok)
			pthread_mutex_destroy(&c->mu);
		/* creds_free() would destroy what was never made. */
		creds_value_wipe(&c->cur);
		free(c->ca_bundle);
		free(c);
		return (NULL);
	}
	creds_free(c);
	return (NULL);
}

/* Copy the current set; under c->mu. */
static void
copy_out(struct creds *c, struct creds_value *out)
{
	memcpy(out, &c->cur, sizeof(*out));
}

int
creds_get(struct creds *c, struct creds_value *out)
{
	struct creds_value next;
	char err[512];
	int64_t now, life, adv, man;
	int forced, usable, due, r;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (!c->can_refresh) {
			copy_out(c, out);
			pthread_mutex_unlock(&c->mu);
			return (0);
		}
		now = creds_now_ms();
		life = c->cur.expires_ms - c->obtained_ms;
		adv = creds_margin_advisory_ms(life);
		man = creds_margin_mandatory_ms(life);
		forced = c->forced_gen == c->cur.generation;
		usable = !forced && now < c->cur.expires_ms - man;
		due = forced || (now >= c->cur.expires_ms - adv &&
		    now >= c->obtained_ms + MIN_REFRESH_GAP_MS);
		if (!due || (usable && (c->refreshing ||
		    now < c->next_try_ms || cancel_requested(c->cancel)))) {
			copy_out(c, out);
			pthread_mutex_unlock(&c->mu);
			return (0);
		}
		if (c->refreshing) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		if (now < c->next_try_ms || cancel_requested(c->cancel)) {
			/* Refused or past E - M, and the last try failed. */
			pthread_mutex_unlock(&c->mu);
			creds_value_wipe(out);
			return (-1);
		}
		break;
	}
	/* This thread refreshes. */
	c->refreshing = 1;
	pthread_mutex_unlock(&c->mu);

	r = fetch(c, &next, err, sizeof(err));

	pthread_mutex_lock(&c->mu);
	c->refreshing = 0;
	now = creds_now_ms();
	if (r == 0) {
		next.generation = c->cur.generation + 1;
		creds_value_wipe(&c->cur);
		memcpy(&c->cur, &next, sizeof(next));
		c->obtained_ms = now;
		c->next_try_ms = 0;
		c->refreshes++;
		if (c->lg != NULL)
			log_debug(c->lg, "credentials refreshed from %s, "
			    "valid for %" PRId64 " ms", src_names[c->src],
			    next.expires_ms - now);
	} else {
		c->next_try_ms = now + creds_retry_after_ms(life);
		if (c->lg != NULL)
			log_warn(c->lg, "refreshing credentials from %s "
			    "failed: %s", src_names[c->src], err);
	}
	creds_value_wipe(&next);
	pthread_cond_broadcast(&c->cv);
	forced = c->forced_gen == c->cur.generation;
	usable = !forced && now < c->cur.expires_ms -
	    creds_margin_mandatory_ms(c->cur.expires_ms - c->obtained_ms);
	if (r == 0 || usable) {
		copy_out(c, out);
		pthread_mutex_unlock(&c->mu);
		return (0);
	}
	pthread_mutex_unlock(&c->mu);
	creds_value_wipe(out);
	return (-1);
}

int
creds_invalidate(struct creds *c, uint64_t generation)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = c->can_refresh ? 0 : -1;
	if (c->can_refresh && generation == c->cur.generation &&
	    c->forced_gen != generation) {
		c->forced_gen = generation;
		c->next_try_ms = 0;  /* refresh now, even after a failure */
	}
	pthread_mutex_unlock(&c->mu);
	return (rc);
}

const char *
creds_source(const struct creds *c)
{
	return (src_names[c->src]);
}

enum creds_kind
creds_kind(const struct creds *c)
{
	return (c->src);
}

const char *
creds_detail(const struct creds *c)
{
	return (c->detail);
}

const char *
creds_region(const struct creds *c)
{
	return (c->region);
}

uint64_t
creds_refreshes(struct creds *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->refreshes;
	pthread_mutex_unlock(&c->mu);
	return (n);
}

void
creds_free(struct creds *c)
{
	size_t i;

	if (c == NULL)
		return;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	creds_value_wipe(&c->cur);
	free(c->region);
	free(c->sts_endpoint);
	free(c->role_arn);
	free(c->session);
	free(c->token_file);
	creds_strwipe(c->process_cmd);
	if (c->child_env != NULL) {
		for (i = 0; c->child_env[i] != NULL; i++)
			creds_strwipe(c->child_env[i]);
		free(c->child_env);
	}
	free(c->container_url);
	creds_strwipe(c->container_token);
	free(c->container_token_file);
	free(c->imds_endpoint);
	free(c->ca_bundle);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
