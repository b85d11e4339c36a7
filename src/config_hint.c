/*
 * config_hint: the hints that name the settings (see config.h).  The S3
 * client reports what was refused (enum s3_refusal) and the creds module
 * where the credentials came from (enum creds_kind) or what it tried
 * (struct creds_tried); only here do they become the flags and variables
 * a user can change.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "creds.h"

#define STATIC_KEYS "AWS_PYTHON_USER_ACCESS_KEY / AWS_ACCESS_KEY_ID"
#define STATIC_SECRETS "AWS_PYTHON_USER_SECRET_KEY / AWS_SECRET_ACCESS_KEY"

const char *
config_api_auth_hint(void)
{
	return ("check AMP_API_KEY and AMP_SECRET_KEY, and the data region "
	    "(--region us|eu, or AMP_API_URL)");
}

/* Where the credentials came from, in the user's words. */
static void
source_words(const struct creds *c, char *buf, size_t len)
{
	const char *d = c != NULL ? creds_detail(c) : "";

	switch (c != NULL ? creds_kind(c) : CREDS_STATIC) {
	case CREDS_STATIC:
		snprintf(buf, len, "the static keys (%s)", STATIC_KEYS);
		break;
	case CREDS_WEB_IDENTITY:
		snprintf(buf, len, "the web identity role %s (AWS_ROLE_ARN, "
		    "AWS_WEB_IDENTITY_TOKEN_FILE)", d);
		break;
	case CREDS_PROFILE:
		snprintf(buf, len, "the keys of profile %s (AWS_PROFILE, "
		    "AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)", d);
		break;
	case CREDS_PROCESS:
		snprintf(buf, len, "the credential_process of profile %s "
		    "(AWS_PROFILE, AWS_CONFIG_FILE)", d);
		break;
	case CREDS_CONTAINER:
		snprintf(buf, len, "the container credentials "
		    "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)");
		break;
	case CREDS_IMDS:
	default:
		snprintf(buf, len, "the instance role %s (instance metadata)",
		    d);
		break;
	}
}

/* S3_REFUSED_SECRET, _KEY_ID, _TOKEN and the rest: the credentials, by
 * where they came from. */
static void
credentials_hint(enum s3_refusal why, const struct creds *c, char *buf,
    size_t len)
{
	enum creds_kind k = c != NULL ? creds_kind(c) : CREDS_STATIC;
	char src[200];

	source_words(c, src, sizeof(src));
	if (k == CREDS_STATIC && why == S3_REFUSED_SECRET)
		snprintf(buf, len, "check %s", STATIC_SECRETS);
	else if (k == CREDS_STATIC && why == S3_REFUSED_KEY_ID)
		snprintf(buf, len, "check %s", STATIC_KEYS);
	else if (k == CREDS_STATIC && why == S3_REFUSED_TOKEN)
		snprintf(buf, len, "check AWS_SESSION_TOKEN (temporary "
		    "credentials expire, and static keys are never renewed: "
		    "use a profile, a role or credential_process)");
	else if ((k == CREDS_PROFILE || k == CREDS_PROCESS) &&
	    why == S3_REFUSED_TOKEN)
		snprintf(buf, len, "the session token from %s is wrong or has "
		    "expired; such credentials are not renewed", src);
	else if (why == S3_REFUSED_TOKEN)
		snprintf(buf, len, "S3 refused even freshly issued credentials "
		    "from %s: check this machine's clock (NTP) and the role",
		    src);
	else if (why == S3_REFUSED_SECRET || why == S3_REFUSED_KEY_ID)
		snprintf(buf, len, "check %s%s", src, k == CREDS_STATIC ||
		    k == CREDS_PROFILE || k == CREDS_PROCESS ? "" : ", and "
		    "that --s3-endpoint is AWS's");
	else
		snprintf(buf, len, "check %s and AWS_REGION", src);
}

/* S3_REFUSED_WRITE: the policy, or a bucket that requires encryption. */
static void
write_hint(const struct config *cfg, char *buf, size_t len)
{
	if (cfg == NULL || cfg->sse == NULL)
		snprintf(buf, len, "the credentials may not write to this "
		    "bucket (s3:PutObject), or the bucket requires server-side "
		    "encryption: try --sse AES256 or --sse aws:kms");
	else if (strcmp(cfg->sse, "aws:kms") == 0)
		snprintf(buf, len, "the credentials may not write to this "
		    "bucket (s3:PutObject, and kms:GenerateDataKey on the key), "
		    "or its policy requires another --sse or "
		    "--sse-kms-key-id");
	else
		snprintf(buf, len, "the credentials may not write to this "
		    "bucket (s3:PutObject), or its policy requires --sse "
		    "aws:kms");
}

void
config_s3_hint(void *ctx, enum s3_refusal why, const char *region,
    char *buf, size_t len)
{
	const struct config_hint *h = ctx;
	const struct creds *c = h != NULL ? h->creds : NULL;
	int named = region != NULL && region[0] != '\0';

	switch (why) {
	case S3_REFUSED_CLOCK:
		snprintf(buf, len, "this machine's clock is off; synchronise "
		    "it (NTP)");
		break;
	case S3_REFUSED_BUCKET:
		snprintf(buf, len, "no such bucket; check AWS_BUCKET_NAME");
		break;
	case S3_REFUSED_REGION:
		if (named)
			snprintf(buf, len, "the bucket is in region %s; set "
			    "AWS_REGION=%s", region, region);
		else
			snprintf(buf, len, "the bucket is in another region; "
			    "check AWS_REGION");
		break;
	case S3_REFUSED_LIST:
		snprintf(buf, len, "the credentials may not list this bucket "
		    "(s3:ListBucket on the prefix)");
		break;
	case S3_REFUSED_READ:
		snprintf(buf, len, "the credentials may not read objects "
		    "(s3:GetObject), which proving a stored hour needs");
		break;
	case S3_REFUSED_WRITE:
		write_hint(h != NULL ? h->cfg : NULL, buf, len);
		break;
	case S3_REFUSED_ENDPOINT:
		snprintf(buf, len, "check --s3-endpoint (AWS_ENDPOINT_URL_S3) "
		    "and --ca-bundle");
		break;
	case S3_REFUSED_SECRET:
	case S3_REFUSED_KEY_ID:
	case S3_REFUSED_TOKEN:
	case S3_REFUSED_NONE:
	case S3_REFUSED_OTHER:
	default:
		credentials_hint(why, c, buf, len);
		break;
	}
}

/* Append "; " and a formatted part to ${buf}. */
static void
part(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
part(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n > 0 && n + 2 < len) {
		memcpy(buf + n, "; ", 3);
		n += 2;
	}
	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

void
config_creds_missing(const struct creds_tried *t, char *buf, size_t len)
{
	char tried[1400] = "";

	part(tried, sizeof(tried), "static keys (%s): not set", STATIC_KEYS);
	part(tried, sizeof(tried), "AWS_WEB_IDENTITY_TOKEN_FILE: not set");
	if (t->credentials_file[0] == '\0' && t->config_file[0] == '\0')
		part(tried, sizeof(tried), "profile %s%s: no HOME, and neither "
		    "AWS_SHARED_CREDENTIALS_FILE nor AWS_CONFIG_FILE set",
		    t->profile, t->profile_named ? " (AWS_PROFILE)" : "");
	else
		part(tried, sizeof(tried), "profile %s%s: %s %s or %s",
		    t->profile, t->profile_named ? " (AWS_PROFILE)" : "",
		    t->profile_found ? "no keys nor credential_process in" :
		    "not in", t->credentials_file[0] ? t->credentials_file :
		    "(no credentials file)", t->config_file[0] ?
		    t->config_file : "(no config file)");
	part(tried, sizeof(tried), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, "
	    "AWS_CONTAINER_CREDENTIALS_FULL_URI: not set");
	if (t->imds_disabled)
		part(tried, sizeof(tried), "instance metadata: disabled by "
		    "AWS_EC2_METADATA_DISABLED");
	else
		part(tried, sizeof(tried), "%s%s (AWS_EC2_METADATA_SERVICE_"
		    "ENDPOINT; AWS_EC2_METADATA_DISABLED=true skips it)",
		    strncmp(t->imds, "instance metadata", 17) == 0 ? "" :
		    "instance metadata: ", t->imds);
	snprintf(buf, len, "no S3 credentials found (tried: %s)", tried);
}
