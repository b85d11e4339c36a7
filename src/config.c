/*
 * config: flags > environment > `.env`, from one table.
 *
 * Each row of OPTS names a setting's long flag, short flag, environment
 * variables (first set wins, "A|B"), kind and default.  Parsing runs in
 * three steps: argv into per-row strings, `.env` into a key/value list,
 * then each row resolved (flag, else environment, else `.env`, else
 * default) and converted into struct config.  Secret rows have no flag.
 * The AWS credential chain's variables (creds.h) are looked up the same
 * way, environment then `.env`, into cfg->aws (config_aws.c); the hints
 * that name settings live in config_hint.c.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"
#include "envfile.h"
#include "errbuf.h"
#include "keytmpl.h"
#include "secret.h"
#include "version.h"

/* A row's kind: how its text is checked, and the C type of its field. */
enum kind {
	K_STR,     /* char *, copied */
	K_INT,     /* int, min..max */
	K_LONG,    /* long, min..max */
	K_I64,     /* int64_t, min..max */
	K_MB,      /* uint64_t bytes, given in MB, min..max */
	K_BYTES,   /* uint64_t bytes, min..max */
	K_MODE,    /* unsigned file mode, octal: 0600 plus group/other r/w */
	K_BOOL,    /* int 0/1: 1 0 yes no true false */
	K_TRI,     /* int -1/0/1: auto, or as K_BOOL */
	K_HOUR,    /* amp_hour, YYYYMMDDTHH */
	K_LEVEL,   /* enum log_level */
	K_FORMAT,  /* enum log_format */
	K_REGION,  /* api_url, from us|eu unless set */
	K_SHARD,   /* shard_index/shard_count from K/N */
	K_SHARDS,  /* shard_count N, the index from the job's environment */
	K_ENVFILE  /* the .env file's name: read before the rows */
};

struct opt {
	const char *lng;   /* long flag without "--", NULL: env only */
	char shrt;         /* short flag or 0 */
	const char *env;   /* "NAME|NAME2", NULL: flag only */
	enum kind kind;
	const char *def;   /* default as text, NULL: none */
	long min, max;     /* K_INT, K_LONG, K_I64, K_MB, K_BYTES bounds */
	size_t off;        /* offset into struct config */
	const char *arg;   /* argument name for --help */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define NO 0, 0

static const struct opt OPTS[] = {
	{ "start-date", 0, NULL, K_HOUR, NULL, NO, OFF(start), "YYYYMMDDTHH",
	  "first hour (UTC, inclusive)" },
	{ "end-date", 0, NULL, K_HOUR, NULL, NO, OFF(end), "YYYYMMDDTHH",
	  "last hour (UTC, inclusive)" },
	{ "lookback-days", 0, "AMP_LOOKBACK_DAYS", K_INT, "1", 1, 36500,
	  OFF(lookback_days), "N", "default range: N days back from the end" },
	{ "lag-hours", 0, "AMP_LAG_HOURS", K_INT, "12", 0, 8760,
	  OFF(lag_hours), "N", "default end: N hours before now" },
	{ "api-url", 0, "AMP_API_URL", K_STR, NULL, NO, OFF(api_url), "URL",
	  "Export API endpoint (overrides --region)" },
	{ "region", 0, "AMP_REGION", K_REGION, "us", NO, OFF(api_url),
	  "us|eu", "Amplitude data region" },
	{ NULL, 0, "AMP_API_KEY", K_STR, NULL, NO, OFF(api_key), NULL, NULL },
	{ NULL, 0, "AMP_SECRET_KEY", K_STR, NULL, NO, OFF(secret_key), NULL,
	  NULL },
	{ "ca-bundle", 0, "AMP2S3_CA_BUNDLE|AWS_CA_BUNDLE", K_STR, NULL, NO,
	  OFF(ca_bundle), "FILE", "extra CA certificates (PEM)" },
	{ "fetch-workers", 'j', "AMP_FETCH_WORKERS", K_INT, "4", 1, 64,
	  OFF(fetch_workers), "N", "concurrent export requests, at most" },
	{ "fixed-concurrency", 0, "AMP2S3_FIXED_CONCURRENCY", K_BOOL, "0", NO,
	  OFF(fixed_concurrency), NULL, "exactly -j/-u at once, never fewer" },
	{ "max-window-hours", 0, "AMP_MAX_WINDOW_HOURS", K_INT, "24", 1, 8760,
	  OFF(max_window_hours), "N", "hours per export request, at most" },
	{ "max-attempts", 0, "AMP_MAX_ATTEMPTS", K_INT, "8", 1, 1000,
	  OFF(max_attempts), "N", "tries per request before giving up" },
	{ "retry-base-ms", 0, "AMP_RETRY_BASE_MS", K_I64, "1000", 1, 3600000,
	  OFF(retry_base_ms), "MS", "first retry delay (doubles each try)" },
	{ "retry-max-ms", 0, "AMP_RETRY_MAX_MS", K_I64, "60000", 1, 3600000,
	  OFF(retry_max_ms), "MS", "longest retry delay" },
	{ "connect-timeout", 0, "AMP_CONNECT_TIMEOUT", K_LONG, "30", 1, 3600,
	  OFF(connect_timeout_s), "S", "connect timeout, seconds" },
	{ "stall-timeout", 0, "AMP_STALL_TIMEOUT", K_LONG, "120", 1, 86400,
	  OFF(stall_timeout_s), "S", "window in which to judge a transfer" },
	{ "min-speed", 0, "AMP_MIN_SPEED", K_BYTES, "4096", 1, 1073741824,
	  OFF(min_speed), "BYTES", "least bytes/s over that window" },
	{ "max-hour-mb", 0, "AMP_MAX_HOUR_MB", K_MB, "65536", 0, 1048576,
	  OFF(max_hour_bytes), "MB", "refuse larger hours (0: no cap)" },
	{ "data-dir", 0, "AMP_DATA_DIR", K_STR, "data", NO, OFF(data_dir),
	  "DIR", "local hour files" },
	{ "file-mode", 0, "AMP2S3_FILE_MODE", K_MODE, "0600", NO,
	  OFF(file_mode), "MODE", "hour files' mode (dirs: x where r)" },
	{ "wait-lock", 0, NULL, K_BOOL, "0", NO, OFF(wait_lock), NULL,
	  "wait for another run's lock (else exit 4)" },
	{ "dev", 0, NULL, K_BOOL, "0", NO, OFF(dev), NULL,
	  "use the folder s3_dev/ instead of S3" },
	{ "dev-dir", 0, "AMP_DEV_DIR", K_STR, "s3_dev", NO, OFF(dev_dir),
	  "DIR", "folder used by --dev" },
	{ "s3-prefix", 0, "AWS_S3_PREFIX", K_STR, "python-import/", NO,
	  OFF(s3_prefix), "PREFIX", "key prefix in the bucket" },
	{ "key-template", 0, "AMP2S3_KEY_TEMPLATE", K_STR, KEYTMPL_DEFAULT, NO,
	  OFF(key_template), "TMPL", "object key layout" },
	{ "gzip", 0, "AMP2S3_GZIP", K_BOOL, "0", NO, OFF(gzip), NULL,
	  "keep hours as .jsonl.gz (gzip as served)" },
	{ "no-validate", 0, "AMP2S3_NO_VALIDATE", K_BOOL, "0", NO,
	  OFF(no_validate), NULL, "--gzip: copy, do not inflate or check" },
	{ "bucket", 0, "AWS_BUCKET_NAME", K_STR, NULL, NO, OFF(bucket), "NAME",
	  "S3 bucket" },
	{ "aws-region", 0, "AWS_REGION|AWS_DEFAULT_REGION", K_STR, NULL,
	  NO, OFF(aws_region), "REGION", "S3 region (else the profile's, "
	  "else us-east-1)" },
	{ "s3-endpoint", 0, "AWS_ENDPOINT_URL_S3|AWS_ENDPOINT_URL", K_STR,
	  NULL, NO, OFF(s3_endpoint), "URL", "S3-compatible endpoint" },
	{ "sse", 0, "AMP2S3_SSE", K_STR, NULL, NO, OFF(sse), "AES256|aws:kms",
	  "server-side encryption of uploads" },
	{ "sse-kms-key-id", 0, "AMP2S3_SSE_KMS_KEY_ID", K_STR, NULL, NO,
	  OFF(sse_kms_key_id), "ID", "--sse aws:kms: this KMS key" },
	{ "sse-bucket-key", 0, "AMP2S3_SSE_BUCKET_KEY", K_BOOL, "0", NO,
	  OFF(sse_bucket_key), NULL, "--sse aws:kms: use an S3 Bucket Key" },
	{ "storage-class", 0, "AMP2S3_STORAGE_CLASS", K_STR, NULL, NO,
	  OFF(storage_class), "CLASS", "storage class of uploads" },
	{ "path-style", 0, "AMP2S3_PATH_STYLE", K_TRI, "auto", NO,
	  OFF(path_style), NULL, "path-style URLs (auto: IP, localhost)" },
	{ "upload-workers", 'u', "AMP_UPLOAD_WORKERS", K_INT, "4", 1, 64,
	  OFF(upload_workers), "N", "concurrent uploads, at most" },
	{ "multipart-threshold-mb", 0, "AMP_MULTIPART_THRESHOLD_MB", K_MB, "64",
	  1, 5242880, OFF(multipart_threshold), "MB",
	  "upload larger files in parts" },
	{ "part-size-mb", 0, "AMP_PART_SIZE_MB", K_MB, "16", 5, 5120,
	  OFF(part_size), "MB", "multipart part size (S3 minimum 5)" },
	/* Test knob: parts below S3's minimum, for servers that take them
	 * (s3rver), so that tests need no file of 10 MB or more. */
	{ NULL, 0, "AMP2S3_S3_PART_SIZE_MB", K_MB, NULL, 1, 5120,
	  OFF(part_size), NULL, NULL },
	{ NULL, 0, "AMP2S3_S3_MAX_KEYS", K_INT, "0", 0, 1000, OFF(s3_max_keys),
	  NULL, NULL },
	{ "log-level", 0, "AMP_LOG_LEVEL", K_LEVEL, "info", NO, OFF(log_level),
	  "LEVEL", "debug, info, warn, error or off" },
	{ "log-format", 0, "AMP_LOG_FORMAT", K_FORMAT, "text", NO,
	  OFF(log_format), "text|json", "log line format" },
	{ "log-file", 0, "AMP_LOG_FILE", K_STR, NULL, NO, OFF(log_file),
	  "PATH", "append logs here instead of stderr" },
	{ "progress", 0, "AMP_PROGRESS", K_TRI, "auto", NO, OFF(progress),
	  NULL, "live progress line (auto: on a TTY)" },
	{ "progress-interval", 0, "AMP_PROGRESS_INTERVAL", K_INT, "60", 0,
	  86400, OFF(progress_interval_s), "S",
	  "no live line: a progress record every S s (0: none)" },
	{ "refresh", 0, NULL, K_BOOL, "0", NO, OFF(refresh), NULL,
	  "fetch, all: export every hour again, replace what differs" },
	{ "dry-run", 0, NULL, K_BOOL, "0", NO, OFF(dry_run), NULL,
	  "print the plan; request, write, upload, delete nothing" },
	{ "json", 0, NULL, K_BOOL, "0", NO, OFF(json), NULL,
	  "status, --dry-run: print JSON" },
	{ "color", 0, "AMP2S3_COLOR", K_TRI, "auto", NO, OFF(color), NULL,
	  "status: colour the grid" },
	{ "metrics-file", 0, "AMP2S3_METRICS_FILE", K_STR, NULL, NO,
	  OFF(metrics_file), "PATH", "write Prometheus metrics here at the end" },
	{ "shard", 0, "AMP2S3_SHARD", K_SHARD, NULL, NO, OFF(shard_index),
	  "K/N", "only hours of shard K of N (whole UTC days)" },
	{ "shards", 0, "AMP2S3_SHARDS", K_SHARDS, NULL, 1, 100000,
	  OFF(shard_count), "N", "N shards, K from the job index "
	  "(env)" },
	{ "env-file", 0, "AMP_ENV_FILE", K_ENVFILE, ".env", NO, 0, "PATH",
	  "read settings from this file" },
};
#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))

static const char US_URL[] = "https://amplitude.com/api/2/export";
static const char EU_URL[] = "https://analytics.eu.amplitude.com/api/2/export";

static int
dotenv_add(void *ctx, const char *key, const char *value)
{
	struct dotenv *de = ctx;
	char **nkv;

	if (de->n + 2 > de->cap) {
		size_t ncap = de->cap ? de->cap * 2 : 32;
		if ((nkv = realloc(de->kv, ncap * sizeof(char *))) == NULL)
			return (-1);
		de->kv = nkv;
		de->cap = ncap;
	}
	if ((de->kv[de->n] = strdup(key)) == NULL)
		return (-1);
	if ((de->kv[de->n + 1] = strdup(value)) == NULL) {
		free(de->kv[de->n]);
		return (-1);
	}
	de->n += 2;
	return (0);
}

const char *
config_dotenv_get(const struct dotenv *de, const char *key, size_t klen)
{
	const char *v = NULL;

	/* Later assignments win: scan everything. */
	for (size_t i = 0; i < de->n; i += 2)
		if (strlen(de->kv[i]) == klen &&
		    memcmp(de->kv[i], key, klen) == 0)
			v = de->kv[i + 1];
	return (v);
}

static void
dotenv_free(struct dotenv *de)
{
	for (size_t i = 0; i < de->n; i++)
		secret_free(de->kv[i]);
	free(de->kv);
}

/* Resolve an "A|B" list of environment names: environment first, then
 * `.env`, each in list order.  Returns the value or NULL. */
static const char *
lookup_env(const char *names, const struct dotenv *de)
{
	const char *p, *bar;
	char name[128];

	for (int pass = 0; pass < 2; pass++) {
		for (p = names; p && *p; p = bar ? bar + 1 : NULL) {
			size_t len;
			const char *v;

			bar = strchr(p, '|');
			len = bar ? (size_t)(bar - p) : strlen(p);
			if (len >= sizeof(name))
				continue;
			memcpy(name, p, len);
			name[len] = '\0';
			v = pass == 0 ? getenv(name) : config_dotenv_get(de, name, len);
			if (v != NULL && *v != '\0')
				return (v);
		}
	}
	return (NULL);
}

static int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return (-1);
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return (-1);
	*out = v;
	return (0);
}

/* The name of a row for messages: "--flag" or the first env name. */
static void
opt_name(const struct opt *o, char *buf, size_t len)
{
	if (o->lng)
		snprintf(buf, len, "--%s", o->lng);
	else
		snprintf(buf, len, "%.*s", (int)strcspn(o->env, "|"), o->env);
}

/* A boolean's text: 1 or 0, -1 if it is none. */
static int
parse_bool(const char *v)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 ||
	    strcmp(v, "true") == 0)
		return (1);
	if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "false") == 0)
		return (0);
	return (-1);
}

/* K_INT, K_LONG, K_I64, K_MB: a whole number in the row's bounds. */
static int
set_number(void *field, const struct opt *o, const char *name,
    const char *v, char *err, size_t errlen)
{
	long l;

	if (parse_long(v, o->min, o->max, &l))
		return (errbuf_set(err, errlen, "%s: expected %s from %ld to %ld",
		    name, o->kind == K_MB ? "megabytes" : o->kind == K_BYTES ?
		    "bytes" : "a whole number", o->min, o->max));
	switch (o->kind) {
	case K_INT:
		*(int *)field = (int)l;
		break;
	case K_LONG:
		*(long *)field = l;
		break;
	case K_I64:
		*(int64_t *)field = l;
		break;
	case K_BYTES:
		*(uint64_t *)field = (uint64_t)l;
		break;
	default: /* K_MB */
		*(uint64_t *)field = (uint64_t)l << 20;
		break;
	}
	return (0);
}

/* K_SHARD: "K/N". */
static int
set_shard(struct config *cfg, const char *name, const char *v, char *err,
    size_t errlen)
{
	const char *slash = strchr(v, '/');
	char kbuf[16];
	long k, n;

	if (slash == NULL || (size_t)(slash - v) >= sizeof(kbuf))
		return (errbuf_set(err, errlen, "%s: expected K/N, e.g. 0/4",
		    name));
	memcpy(kbuf, v, (size_t)(slash - v));
	kbuf[slash - v] = '\0';
	if (parse_long(slash + 1, 1, 100000, &n) ||
	    parse_long(kbuf, 0, n - 1, &k))
		return (errbuf_set(err, errlen, "%s: expected K/N with 0 <= K "
		    "< N, e.g. 0/4", name));
	cfg->shard_index = (int)k;
	cfg->shard_count = (int)n;
	return (0);
}

/* K_SHARDS: N, the index from the orchestrator's job index. */
static int
set_shards(struct config *cfg, const char *name, const char *v, char *err,
    size_t errlen)
{
	const char *idx = getenv("JOB_COMPLETION_INDEX");
	long k, n;

	if (idx == NULL || *idx == '\0')
		idx = getenv("AWS_BATCH_JOB_ARRAY_INDEX");
	if (parse_long(v, 1, 100000, &n))
		return (errbuf_set(err, errlen, "%s: expected a number of shards "
		    "from 1 to 100000", name));
	if (idx == NULL || *idx == '\0')
		return (errbuf_set(err, errlen, "%s: needs the shard index in "
		    "JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX (or use "
		    "--shard K/N)", name));
	if (parse_long(idx, 0, n - 1, &k))
		return (errbuf_set(err, errlen, "%s: shard index '%.12s' is not "
		    "in 0..%ld", name, idx, n - 1));
	cfg->shard_index = (int)k;
	cfg->shard_count = (int)n;
	return (0);
}

/* K_REGION: the Export API's URL for us|eu, unless one was given. */
static int
set_region(struct config *cfg, const char *name, const char *v, char *err,
    size_t errlen)
{
	if (strcmp(v, "us") != 0 && strcmp(v, "eu") != 0)
		return (errbuf_set(err, errlen, "%s: expected us or eu", name));
	if (cfg->api_url == NULL && (cfg->api_url = strdup(strcmp(v, "eu") ==
	    0 ? EU_URL : US_URL)) == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	return (0);
}

/*
 * K_MODE: an octal file mode that keeps the owner's read and write and
 * adds at most read/write for the group and others (no execute, no
 * special bits): 0600, 0640, 0660, 0644 ...
 */
static int
set_mode(unsigned *field, const char *name, const char *v, char *err,
    size_t errlen)
{
	unsigned long m;
	char *end;

	errno = 0;
	m = strtoul(v, &end, 8);
	if (*v == '\0' || *end != '\0' || errno != 0 || !isdigit((unsigned
	    char)*v) || m > 0777 || (m & 0600) != 0600 || (m & 0111) != 0)
		return (errbuf_set(err, errlen, "%s: expected an octal mode "
		    "from 0600 to 0666 without execute bits, e.g. 0640", name));
	*field = (unsigned)m;
	return (0);
}

/* Store the text ${v} of row ${o} into its field of ${cfg}. */
static int
set_value(struct config *cfg, const struct opt *o, const char *v, char *err,
    size_t errlen)
{
	void *field = (char *)cfg + o->off;
	char name[64];
	int b;

	opt_name(o, name, sizeof(name));
	switch (o->kind) {
	case K_ENVFILE:
		return (0); /* read before the rows */
	case K_STR:
		if ((*(char **)field = strdup(v)) == NULL)
			return (errbuf_set(err, errlen, "out of memory"));
		return (0);
	case K_INT:
	case K_LONG:
	case K_I64:
	case K_MB:
	case K_BYTES:
		return (set_number(field, o, name, v, err, errlen));
	case K_MODE:
		return (set_mode(field, name, v, err, errlen));
	case K_BOOL:
	case K_TRI:
		if (o->kind == K_TRI && strcmp(v, "auto") == 0)
			b = -1;
		else if ((b = parse_bool(v)) < 0)
			return (errbuf_set(err, errlen, o->kind == K_TRI ?
			    "%s: expected auto, yes or no" : "%s: expected 1 or "
			    "0 (yes/no, true/false)", name));
		*(int *)field = b;
		return (0);
	case K_HOUR:
		if (hour_parse_api(v, (amp_hour *)field))
			return (errbuf_set(err, errlen, "%s: '%.20s' is not a "
			    "valid hour YYYYMMDDTHH (UTC), e.g. 20251110T00",
			    name, v));
		return (0);
	case K_SHARD:
		return (set_shard(cfg, name, v, err, errlen));
	case K_SHARDS:
		return (set_shards(cfg, name, v, err, errlen));
	case K_LEVEL:
		if (log_parse_level(v, &cfg->log_level))
			return (errbuf_set(err, errlen, "%s: expected debug, "
			    "info, warn, error or off", name));
		return (0);
	case K_FORMAT:
		if (log_parse_format(v, &cfg->log_format))
			return (errbuf_set(err, errlen, "%s: expected text or "
			    "json", name));
		return (0);
	case K_REGION:
		return (set_region(cfg, name, v, err, errlen));
	}
	return (errbuf_set(err, errlen, "internal: bad option kind"));
}

/* One row of --help, fitted to 80 columns: help (and default) after the
 * flag, the environment variable on its own line when it does not fit. */
static void
usage_row(FILE *f, const struct opt *o)
{
	char left[64], line[256], envs[64] = "";
	int len;

	if (o->shrt)
		snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shrt, o->lng,
		    o->arg ? " " : "", o->arg ? o->arg : "");
	else
		snprintf(left, sizeof(left), "    --%s%s%s", o->lng,
		    o->arg ? " " : "", o->arg ? o->arg : "");
	len = snprintf(line, sizeof(line), "  %-30s %s", left, o->help);
	if (o->def && o->kind != K_BOOL && o->kind != K_ENVFILE &&
	    len < (int)sizeof(line))
		len += snprintf(line + len, sizeof(line) - (size_t)len, " [%s]",
		    o->def);
	if (o->env)
		snprintf(envs, sizeof(envs), "$%.*s",
		    (int)strcspn(o->env, "|"), o->env);
	if (envs[0] && len + 1 + (int)strlen(envs) <= 79)
		fprintf(f, "%s %s\n", line, envs);
	else if (envs[0])
		fprintf(f, "%s\n  %-30s %s\n", line, "", envs);
	else
		fprintf(f, "%s\n", line);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: amp2s3 fetch|sync|all|status [options]\n"
	    "\n"
	    "  fetch  download the missing hours of the range into the data "
	    "directory\n"
	    "  sync   upload local hours the store lacks, then delete them "
	    "locally\n"
	    "  all    both, pipelined\n"
	    "  status show which hours are stored, empty, local or missing\n"
	    "\noptions (flag > environment > .env):\n");
	for (size_t i = 0; i < NOPTS; i++)
		if (OPTS[i].lng != NULL)
			usage_row(f, &OPTS[i]);
	fprintf(f,
	    "  %-30s %s\n  %-30s %s\n"
	    "\nsecrets come from the environment or .env only: AMP_API_KEY, "
	    "AMP_SECRET_KEY.\nS3 credentials: the AWS chain (see amp2s3(1)): "
	    "static keys\nAWS_PYTHON_USER_ACCESS_KEY and "
	    "AWS_PYTHON_USER_SECRET_KEY (or AWS_ACCESS_KEY_ID\nand "
	    "AWS_SECRET_ACCESS_KEY), AWS_SESSION_TOKEN; web identity; "
	    "AWS_PROFILE;\ncontainer credentials; instance metadata.\n"
	    "exit: 0 ok, 1 some hours failed, 2 usage/config, 3 auth refused, "
	    "4 locked,\n      5 local I/O error, 130/143 interrupted\n",
	    "-h, --help", "this text", "-V, --version", "version and libraries");
}

static const struct opt *
find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (OPTS[i].lng && strlen(OPTS[i].lng) == len &&
		    memcmp(OPTS[i].lng, name, len) == 0)
			return (&OPTS[i]);
	return (NULL);
}

static const struct opt *
find_short(char c)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (OPTS[i].shrt == c)
			return (&OPTS[i]);
	return (NULL);
}

/* How argv was read: each row's flag value, and the command. */
struct args {
	const char *flagval[NOPTS];
	const char *cmd;
};

/*
 * The value of a long flag ${a} ("--name[=value]") of row *${o}, taking
 * the next argument from ${argv} at *${i} if need be.  NULL with ${err}
 * set on a usage error.
 */
static const char *
long_flag(const char *a, int argc, char **argv, int *i,
    const struct opt **o, char *err, size_t errlen)
{
	const char *eq = strchr(a + 2, '=');
	size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

	if ((*o = find_long(a + 2, len)) == NULL) {
		errbuf_set(err, errlen, "unknown option '--%.*s' (see --help)",
		    (int)(len > 40 ? 40 : len), a + 2);
		return (NULL);
	}
	if ((*o)->kind == K_BOOL && eq == NULL)
		return ("1");
	if ((*o)->kind == K_TRI && eq == NULL)
		return ("yes");
	if ((*o)->kind == K_BOOL) {
		errbuf_set(err, errlen, "--%s takes no value", (*o)->lng);
		return (NULL);
	}
	if (eq)
		return (eq + 1);
	if (*i + 1 < argc)
		return (argv[++*i]);
	errbuf_set(err, errlen, "--%s needs a value", (*o)->lng);
	return (NULL);
}

/* The value of a short flag ${a} ("-x[value]"), as long_flag(). */
static const char *
short_flag(const char *a, int argc, char **argv, int *i,
    const struct opt **o, char *err, size_t errlen)
{
	if ((*o = find_short(a[1])) == NULL) {
		errbuf_set(err, errlen, "unknown option '-%c' (see --help)",
		    a[1]);
		return (NULL);
	}
	if (a[2] != '\0')
		return (a + 2);
	if (*i + 1 < argc)
		return (argv[++*i]);
	errbuf_set(err, errlen, "-%c needs a value", a[1]);
	return (NULL);
}

/*
 * Step 1: argv into ${args}.  Returns 0; 1 if --help or --version was
 * handled; -1 on a usage error (${err} set).
 */
static int
read_argv(struct args *args, int argc, char **argv, char *err,
    size_t errlen)
{
	memset(args, 0, sizeof(*args));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		const struct opt *o;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return (1);
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			version_print(stdout);
			return (1);
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (args->cmd != NULL)
				return (errbuf_set(err, errlen,
				    "unexpected argument '%.40s'", a));
			args->cmd = a;
			continue;
		}
		val = a[1] == '-' ? long_flag(a, argc, argv, &i, &o, err,
		    errlen) : short_flag(a, argc, argv, &i, &o, err, errlen);
		if (val == NULL)
			return (-1);
		args->flagval[o - OPTS] = val;
	}
	return (0);
}

/* Step 2: the command.  0 or -1. */
static int
set_command(struct config *cfg, const char *cmd, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum command cmd;
	} CMDS[] = { { "fetch", CMD_FETCH }, { "sync", CMD_SYNC },
	    { "all", CMD_ALL }, { "status", CMD_STATUS } };

	if (cmd == NULL)
		return (errbuf_set(err, errlen, "missing command: fetch, sync, "
		    "all or status (see --help)"));
	for (size_t i = 0; i < sizeof(CMDS) / sizeof(CMDS[0]); i++) {
		if (strcmp(cmd, CMDS[i].name) == 0) {
			cfg->cmd = CMDS[i].cmd;
			return (0);
		}
	}
	return (errbuf_set(err, errlen, "unknown command '%.40s': expected "
	    "fetch, sync, all or status", cmd));
}

/*
 * Step 3: the `.env` file (--env-file, $AMP_ENV_FILE, else ".env", which
 * alone may be missing) into ${de}; its name into cfg->env_file_used and
 * whether others may read it.  0 or -1.
 */
static int
read_dotenv(struct config *cfg, const struct args *args, struct dotenv *de,
    char *err, size_t errlen)
{
	const char *envfile = NULL;
	char msg[512];
	struct stat sb;
	int r, explicit_env;

	for (size_t i = 0; i < NOPTS; i++)
		if (OPTS[i].kind == K_ENVFILE)
			envfile = args->flagval[i];
	if (envfile == NULL)
		envfile = getenv("AMP_ENV_FILE");
	explicit_env = envfile != NULL && *envfile != '\0';
	if (!explicit_env)
		envfile = ".env";
	if ((r = envfile_load(envfile, dotenv_add, de, msg, sizeof(msg))) < 0)
		return (errbuf_set(err, errlen, "%s", msg));
	if (r == 1 && explicit_env)
		/* A named file that is missing is a typo that would run
		 * with the wrong settings. */
		return (errbuf_set(err, errlen, "env file %.300s does not exist",
		    envfile));
	if (r == 1)
		return (0);
	if ((cfg->env_file_used = strdup(envfile)) == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	if (stat(envfile, &sb) == 0 && (sb.st_mode & 077))
		cfg->env_file_open_mode = (int)(sb.st_mode & 0777);
	return (0);
}

/*
 * Step 4: every row: its flag, else its environment variables, else the
 * `.env` file, else its default.  *${have_start}, *${have_end}: the
 * range's ends were given.  0 or -1.
 */
static int
resolve_rows(struct config *cfg, const struct args *args,
    const struct dotenv *de, int *have_start, int *have_end, char *err,
    size_t errlen)
{
	*have_start = *have_end = 0;
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &OPTS[i];
		const char *v = args->flagval[i];

		if (v == NULL && o->env)
			v = lookup_env(o->env, de);
		if (v == NULL)
			v = o->def;
		if (v == NULL)
			continue;
		if (o->kind == K_HOUR && o->off == OFF(start))
			*have_start = 1;
		else if (o->kind == K_HOUR)
			*have_end = 1;
		if (set_value(cfg, o, v, err, errlen))
			return (-1);
	}
	return (0);
}

/* Step 5: the range, from the rows or the defaults.  0 or -1. */
static int
resolve_range(struct config *cfg, amp_hour now, int have_start,
    int have_end, char *err, size_t errlen)
{
	char s[HOUR_API_LEN], e[HOUR_API_LEN];

	if (!have_end)
		cfg->end = now - cfg->lag_hours;
	if (!have_start)
		cfg->start = cfg->end - 24 * (amp_hour)cfg->lookback_days;
	if (cfg->end < cfg->start) {
		hour_format_api(cfg->start, s);
		hour_format_api(cfg->end, e);
		return (errbuf_set(err, errlen, "end %s is before start %s", e,
		    s));
	}
	if (cfg->start < HOUR_MIN || cfg->end > HOUR_MAX)
		return (errbuf_set(err, errlen, "the range must lie within "
		    "1970-01-01T00 .. 9999-12-31T23"));
	return (0);
}

/* The encryption and storage-class rows, checked now rather than by the
 * first upload.  0 or -1. */
static int
check_object_settings(const struct config *cfg, char *err, size_t errlen)
{
	int kms = cfg->sse != NULL && strcmp(cfg->sse, "aws:kms") == 0;

	if (cfg->sse != NULL && !kms && strcmp(cfg->sse, "AES256") != 0)
		return (errbuf_set(err, errlen, "--sse: expected AES256 or "
		    "aws:kms"));
	if (cfg->sse_kms_key_id != NULL && !kms)
		return (errbuf_set(err, errlen, "--sse-kms-key-id needs --sse "
		    "aws:kms"));
	if (cfg->sse_bucket_key && !kms)
		return (errbuf_set(err, errlen, "--sse-bucket-key needs --sse "
		    "aws:kms"));
	if (cfg->sse_kms_key_id != NULL &&
	    strspn(cfg->sse_kms_key_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
	    "klmnopqrstuvwxyz0123456789-_/:.") != strlen(cfg->sse_kms_key_id))
		return (errbuf_set(err, errlen, "--sse-kms-key-id: expected a "
		    "KMS key id, alias or ARN"));
	if (cfg->storage_class != NULL &&
	    !s3_storage_class_valid(cfg->storage_class))
		return (errbuf_set(err, errlen, "--storage-class: expected one "
		    "of %s", S3_STORAGE_CLASSES));
	return (0);
}

/* Step 6: checks across rows, and what each command needs.  0 or -1. */
static int
cross_check(struct config *cfg, char *err, size_t errlen)
{
	char msg[512];
	amp_hour daily_end;

	if (cfg->retry_max_ms < cfg->retry_base_ms)
		cfg->retry_max_ms = cfg->retry_base_ms;
	if (cfg->shard_count == 0)
		cfg->shard_count = 1;
	if (cfg->no_validate && !cfg->gzip)
		return (errbuf_set(err, errlen, "--no-validate needs --gzip "
		    "(JSONL output is always inflated and checked)"));
	if (keytmpl_check(cfg->key_template, cfg->s3_prefix, cfg->gzip,
	    cfg->dev, msg, sizeof(msg)))
		return (errbuf_set(err, errlen, "--key-template: %s", msg));
	if (cfg->refresh && cfg->cmd != CMD_FETCH && cfg->cmd != CMD_ALL)
		return (errbuf_set(err, errlen, "--refresh goes with fetch or all "
		    "(it exports the range again)"));
	if (cfg->dry_run && cfg->cmd == CMD_STATUS)
		return (errbuf_set(err, errlen, "--dry-run goes with fetch, sync "
		    "or all (status changes nothing anyway)"));
	(void)hour_from_ymdh(2014, 11, 12, 0, &daily_end);
	if ((cfg->cmd == CMD_FETCH || cfg->cmd == CMD_ALL) &&
	    cfg->start < daily_end)
		return (errbuf_set(err, errlen, "hours before 2014-11-12 are "
		    "exported by day, not by hour: start at 20141112T00 or "
		    "later"));
	if ((cfg->cmd == CMD_FETCH || cfg->cmd == CMD_ALL) &&
	    (cfg->api_key == NULL || cfg->secret_key == NULL))
		return (errbuf_set(err, errlen, "AMP_API_KEY and AMP_SECRET_KEY "
		    "must be set (environment or %s)", cfg->env_file_used ?
		    cfg->env_file_used : ".env"));
	if (config_need_store(cfg) && !cfg->dev && cfg->bucket == NULL)
		return (errbuf_set(err, errlen, "AWS_BUCKET_NAME must be set (or "
		    "use --dev)"));
	return (check_object_settings(cfg, err, errlen));
}

int
config_load(struct config *cfg, int argc, char **argv, amp_hour now,
    char *err, size_t errlen)
{
	struct args args;
	struct dotenv de = { NULL, 0, 0 };
	int have_start, have_end, rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((rc = read_argv(&args, argc, argv, err, errlen)) != 0)
		return (rc);
	rc = -1;
	if (set_command(cfg, args.cmd, err, errlen) == 0 &&
	    read_dotenv(cfg, &args, &de, err, errlen) == 0 &&
	    resolve_rows(cfg, &args, &de, &have_start, &have_end, err,
	    errlen) == 0 &&
	    resolve_range(cfg, now, have_start, have_end, err, errlen) == 0 &&
	    cross_check(cfg, err, errlen) == 0 &&
	    (!config_need_store(cfg) || cfg->dev ||
	    config_resolve_aws(cfg, &de, err, errlen) == 0))
		rc = 0;
	dotenv_free(&de);
	return (rc);
}

int
config_need_store(const struct config *cfg)
{
	if (cfg->cmd == CMD_SYNC || cfg->cmd == CMD_ALL)
		return (1);
	return (cfg->dev || cfg->bucket != NULL);
}

void
config_free(struct config *cfg)
{
	free(cfg->api_url);
	secret_free(cfg->api_key);
	secret_free(cfg->secret_key);
	free(cfg->ca_bundle);
	free(cfg->data_dir);
	free(cfg->dev_dir);
	free(cfg->s3_prefix);
	free(cfg->bucket);
	free(cfg->aws_region);
	free(cfg->s3_endpoint);
	free(cfg->sse);
	free(cfg->sse_kms_key_id);
	free(cfg->storage_class);
	if (cfg->aws_strings != NULL)
		secret_wipe(cfg->aws_strings, cfg->aws_strings_len);
	free(cfg->aws_strings);
	free(cfg->child_env);
	free(cfg->log_file);
	free(cfg->env_file_used);
	free(cfg->metrics_file);
	free(cfg->key_template);
	memset(cfg, 0, sizeof(*cfg));
}
