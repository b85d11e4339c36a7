/*
 * config_aws: the AWS credential chain's settings (see config.h and
 * creds.h): AWS's variable names, and the original tool's static keys,
 * looked up in the environment and then in `.env` like every setting; the
 * static keys with their session token from one place only; the
 * environment a credential_process child gets.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"
#include "errbuf.h"

extern char **environ;

/* aws_fields(o, f): the addresses of the string fields of ${o} that come
 * from a lookup, into ${f}; their number. */
#define AWS_NFIELDS 17
static size_t
aws_fields(struct creds_options *o, const char **f[AWS_NFIELDS])
{
	const char **all[AWS_NFIELDS] = { &o->access_key, &o->secret_key,
	    &o->session_token, &o->web_identity_token_file, &o->role_arn,
	    &o->role_session_name, &o->sts_endpoint, &o->profile,
	    &o->shared_credentials_file, &o->config_file, &o->home,
	    &o->container_relative_uri, &o->container_full_uri,
	    &o->container_token, &o->container_token_file,
	    &o->container_origin, &o->imds_endpoint };

	memcpy(f, all, sizeof(all));
	return (AWS_NFIELDS);
}

/* The chain's variables: the environment, then `.env` (flags name none
 * of them but the region and the CA bundle, set from their rows). */
static const char *
aws_lookup(void *ctx, const char *name)
{
	const char *v = getenv(name);

	if (v != NULL && *v != '\0')
		return (v);
	v = config_dotenv_get(ctx, name, strlen(name));
	return (v != NULL && *v != '\0' ? v : NULL);
}

/* The value of ${name} in the environment (${layer} 0) or `.env` (1). */
static const char *
layer_get(int layer, const struct dotenv *de, const char *name)
{
	const char *v = layer == 0 ? getenv(name) : config_dotenv_get(de, name,
	    strlen(name));

	return (v != NULL && *v != '\0' ? v : NULL);
}

/*
 * Static keys: the access key, its secret and the session token all from
 * the first of the environment and `.env` that holds a key or a secret,
 * so that a token exported in a shell never joins the keys of `.env`, nor
 * the other way round.  0, or -1 for a key without its secret (or the
 * other way round).
 */
static int
aws_static(struct config *cfg, const struct dotenv *de, char *err,
    size_t errlen)
{
	static const char *const AK[] = { "AWS_PYTHON_USER_ACCESS_KEY",
	    "AWS_ACCESS_KEY_ID" };
	static const char *const SK[] = { "AWS_PYTHON_USER_SECRET_KEY",
	    "AWS_SECRET_ACCESS_KEY" };
	struct creds_options *o = &cfg->aws;
	const char *ak, *sk, *where;

	o->access_key = o->secret_key = o->session_token = NULL;
	for (int layer = 0; layer < 2; layer++) {
		where = layer == 0 ? "the environment" : cfg->env_file_used;
		ak = layer_get(layer, de, AK[0]);
		if (ak == NULL)
			ak = layer_get(layer, de, AK[1]);
		sk = layer_get(layer, de, SK[0]);
		if (sk == NULL)
			sk = layer_get(layer, de, SK[1]);
		if (ak == NULL && sk == NULL)
			continue;
		if (ak == NULL || sk == NULL)
			return (errbuf_set(err, errlen, "%s: %s is set but "
			    "neither %s nor %s", where, ak ? "an S3 access key"
			    : "an S3 secret key", ak ? SK[0] : AK[0], ak ? SK[1] :
			    AK[1]));
		o->access_key = ak;
		o->secret_key = sk;
		o->session_token = layer_get(layer, de, "AWS_SESSION_TOKEN");
		break;
	}
	return (0);
}

/*
 * The environment of a credential_process child: this process's, as the
 * AWS CLI passes its own, less amp2s3's secrets (the Amplitude keys and
 * the original tool's S3 keys, which only amp2s3 reads).  The array is
 * cfg->child_env; its strings are environ's.  0 or -1.
 */
static int
child_env(struct config *cfg)
{
	static const char *const withheld[] = { "AMP_API_KEY=",
	    "AMP_SECRET_KEY=", "AWS_PYTHON_USER_ACCESS_KEY=",
	    "AWS_PYTHON_USER_SECRET_KEY=" };
	size_t n = 0, i, k;

	while (environ[n] != NULL)
		n++;
	if ((cfg->child_env = calloc(n + 1, sizeof(char *))) == NULL)
		return (-1);
	for (i = 0, n = 0; environ[i] != NULL; i++) {
		for (k = 0; k < sizeof(withheld) / sizeof(withheld[0]); k++)
			if (strncmp(environ[i], withheld[k],
			    strlen(withheld[k])) == 0)
				break;
		if (k == sizeof(withheld) / sizeof(withheld[0]))
			cfg->child_env[n++] = environ[i];
	}
	cfg->aws.child_env = cfg->child_env;
	return (0);
}

int
config_resolve_aws(struct config *cfg, const struct dotenv *de, char *err,
    size_t errlen)
{
	const char **f[AWS_NFIELDS];
	size_t n, i, total = 0, off = 0, len;

	creds_options_from(&cfg->aws, aws_lookup, (void *)de);
	if (aws_static(cfg, de, err, errlen) != 0)
		return (-1);
	if (cfg->aws.web_identity_token_file != NULL &&
	    cfg->aws.role_arn == NULL)
		return (errbuf_set(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is "
		    "set but AWS_ROLE_ARN is not"));
	n = aws_fields(&cfg->aws, f);
	for (i = 0; i < n; i++)
		if (*f[i] != NULL)
			total += strlen(*f[i]) + 1;
	if (total > 0 && (cfg->aws_strings = malloc(total)) == NULL) {
		for (i = 0; i < n; i++)
			*f[i] = NULL;
		return (errbuf_set(err, errlen, "out of memory"));
	}
	cfg->aws_strings_len = total;
	for (i = 0; i < n; i++) {
		if (*f[i] == NULL)
			continue;
		len = strlen(*f[i]) + 1;
		memcpy(cfg->aws_strings + off, *f[i], len);
		*f[i] = cfg->aws_strings + off;
		off += len;
	}
	/* The rows that also have flags. */
	cfg->aws.region = cfg->aws_region;
	cfg->aws.ca_bundle = cfg->ca_bundle;
	if (child_env(cfg) != 0)
		return (errbuf_set(err, errlen, "out of memory"));
	return (0);
}
