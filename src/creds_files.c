/*
 * creds_files: one profile of the AWS shared credentials and config files
 * (see creds_internal.h), read with libinih the way botocore reads them
 * with Python's RawConfigParser: "[NAME]" in the credentials file,
 * "[profile NAME]" (and "[default]") in the config file, keys compared
 * without regard to case, values kept as written (no quotes removed, no
 * inline comments: ';' and '#' only start a comment at the start of a
 * line), a key given twice in a section an error.  Values from the
 * credentials file win over the config file's.
 *
 * libinih's options are process-wide variables (Debian builds it with
 * run-time options): they are set once, through pthread_once, to allow
 * lines of 32 KiB (session tokens are long; the default 200 would cut
 * them) and no inline comments.  Nothing else in amp2s3 uses libinih.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "creds_internal.h"
#include "errbuf.h"

#define LINE_MAX_BYTES (32 * 1024)

static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static void
ini_setup(void)
{
	ini_max_line = LINE_MAX_BYTES + 3;
	ini_allow_inline_comments = false;
	ini_allow_multiline = true;
	ini_allow_bom = true;
	ini_allow_no_value = false;
}

enum pkey { K_ACCESS, K_SECRET, K_TOKEN, K_LEGACY_TOKEN, K_PROCESS,
	K_REGION, K_N };

struct pctx {
	const char *name;   /* profile */
	int config;         /* reading the config file */
	int found;
	char *val[K_N];
	char sect[K_N][80]; /* the section each value came from */
	char unsupported[48];
	const char *why;    /* a fixed reason for a refused line */
};

static int
section_matches(const struct pctx *x, const char *section)
{
	size_t n;

	if (!x->config)
		return (strcmp(section, x->name) == 0);
	if (strcmp(x->name, "default") == 0 && strcmp(section, "default") == 0)
		return (1);
	if (strncmp(section, "profile", 7) != 0 ||
	    (section[7] != ' ' && section[7] != '\t'))
		return (0);
	section += 7;
	n = strspn(section, " \t");
	return (strcmp(section + n, x->name) == 0);
}

static int
on_pair(void *v, const char *section, const char *name, const char *value)
{
	static const char *const keys[K_N] = { "aws_access_key_id",
	    "aws_secret_access_key", "aws_session_token",
	    "aws_security_token", "credential_process", "region" };
	static const char *const unsupported[] = { "role_arn",
	    "source_profile", "credential_source", "sso_start_url",
	    "sso_session", "sso_account_id", "sso_role_name",
	    "web_identity_token_file", "mfa_serial" };
	struct pctx *x = v;
	size_t i;
	char *copy;

	if (!section_matches(x, section))
		return (1);
	x->found = 1;
	for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (strcasecmp(name, unsupported[i]) == 0 &&
		    x->unsupported[0] == '\0')
			snprintf(x->unsupported, sizeof(x->unsupported), "%s",
			    unsupported[i]);
	for (i = 0; i < K_N; i++)
		if (strcasecmp(name, keys[i]) == 0)
			break;
	if (i == K_N)
		return (1);
	if (x->val[i] != NULL && strcmp(x->sect[i], section) == 0) {
		x->why = "a key given twice, or continued on the next line";
		return (0);
	}
	if ((copy = strdup(value)) == NULL) {
		x->why = "out of memory";
		return (0);
	}
	creds_strwipe(x->val[i]);
	x->val[i] = copy;
	snprintf(x->sect[i], sizeof(x->sect[i]), "%s", section);
	return (1);
}

/* Parse ${path} into ${x}; a missing file is no error. */
static int
parse_one(const char *path, struct pctx *x, char *err, size_t errlen)
{
	FILE *f;
	int r;

	if (path == NULL)
		return (0);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return (0);
		return (errbuf_set(err, errlen, "cannot read %s: %s", path,
		    ERRSTR(errno)));
	}
	r = ini_parse_file(f, on_pair, x);
	fclose(f);
	if (r == -2)
		return (errbuf_set(err, errlen, "%s: out of memory", path));
	if (r != 0)
		return (errbuf_set(err, errlen, "%s: line %d: %s", path, r,
		    x->why != NULL ? x->why : "not a valid line (or longer "
		    "than 32 KiB)"));
	return (0);
}

static void
pctx_clear(struct pctx *x)
{
	int i;

	for (i = 0; i < K_N; i++) {
		creds_strwipe(x->val[i]);
		x->val[i] = NULL;
	}
}

/* Move the session token (or the legacy name) out of ${x}. */
static char *
take_token(struct pctx *x)
{
	char *t = x->val[K_TOKEN];

	if (t != NULL) {
		x->val[K_TOKEN] = NULL;
		return (t);
	}
	t = x->val[K_LEGACY_TOKEN];
	x->val[K_LEGACY_TOKEN] = NULL;
	return (t);
}

int
creds_profile_load(const char *cred_path, const char *cfg_path,
    const char *name, struct creds_profile *p, char *err, size_t errlen)
{
	struct pctx cf, cfg;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	memset(&cf, 0, sizeof(cf));
	memset(&cfg, 0, sizeof(cfg));
	pthread_once(&ini_once, ini_setup);
	cf.name = cfg.name = name;
	cfg.config = 1;
	if (parse_one(cred_path, &cf, err, errlen) != 0 ||
	    parse_one(cfg_path, &cfg, err, errlen) != 0)
		goto out;
	p->found = cf.found || cfg.found;
	p->cf_access = cf.val[K_ACCESS], cf.val[K_ACCESS] = NULL;
	p->cf_secret = cf.val[K_SECRET], cf.val[K_SECRET] = NULL;
	p->cf_token = take_token(&cf);
	p->cfg_access = cfg.val[K_ACCESS], cfg.val[K_ACCESS] = NULL;
	p->cfg_secret = cfg.val[K_SECRET], cfg.val[K_SECRET] = NULL;
	p->cfg_token = take_token(&cfg);
	if (cf.val[K_PROCESS] != NULL)
		p->process = cf.val[K_PROCESS], cf.val[K_PROCESS] = NULL;
	else
		p->process = cfg.val[K_PROCESS], cfg.val[K_PROCESS] = NULL;
	if (cf.val[K_REGION] != NULL)
		p->region = cf.val[K_REGION], cf.val[K_REGION] = NULL;
	else
		p->region = cfg.val[K_REGION], cfg.val[K_REGION] = NULL;
	snprintf(p->unsupported, sizeof(p->unsupported), "%s",
	    cf.unsupported[0] != '\0' ? cf.unsupported : cfg.unsupported);
	rc = 0;
out:
	pctx_clear(&cf);
	pctx_clear(&cfg);
	if (rc != 0)
		creds_profile_clear(p);
	return (rc);
}

void
creds_profile_clear(struct creds_profile *p)
{
	creds_strwipe(p->region);
	creds_strwipe(p->cf_access);
	creds_strwipe(p->cf_secret);
	creds_strwipe(p->cf_token);
	creds_strwipe(p->cfg_access);
	creds_strwipe(p->cfg_secret);
	creds_strwipe(p->cfg_token);
	creds_strwipe(p->process);
	memset(p, 0, sizeof(*p));
}
