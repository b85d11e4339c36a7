#ifndef AMP2S3_CONFIG_H
#define AMP2S3_CONFIG_H
/*
 * config: the run's settings from flags, the environment and a `.env`
 * file, in that order of precedence, validated once.
 *
 * Every setting has at most one flag and one environment name; the table
 * in config.c is the single source of both the parser and --help.
 * Secrets (API key and secret, AWS keys, session token) come only from the
 * environment or `.env`, never from flags, and are never printed.  The
 * AWS credential chain's variables (AWS's own names: AWS_PROFILE,
 * AWS_ROLE_ARN, ...) are read the same way, environment then `.env`, into
 * cfg->aws for creds_open().
 */
#include <stdint.h>

#include "creds.h"
#include "hour.h"
#include "log.h"
#include "s3.h"

enum command { CMD_FETCH, CMD_SYNC, CMD_ALL, CMD_STATUS };

struct config {
	enum command cmd;
	amp_hour start, end;    /* inclusive; resolved (defaults applied) */
	int lookback_days;
	int lag_hours;

	/* Export API */
	char *api_url;          /* full endpoint URL */
	char *api_key;          /* secret */
	char *secret_key;       /* secret */
	char *ca_bundle;        /* NULL: system CAs */
	int fetch_workers;
	int fixed_concurrency;  /* -j and -u exactly: no adaptive limit */
	int max_window_hours;
	int max_attempts;
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	long connect_timeout_s;
	long stall_timeout_s;
	uint64_t min_speed;     /* bytes/s a transfer must average (stall.h) */
	uint64_t max_hour_bytes; /* 0: no cap */

	/* local side */
	char *data_dir;
	unsigned file_mode;     /* hour files (0600; directories: x where r) */
	int wait_lock;

	/* store */
	int dev;
	char *dev_dir;          /* s3_dev */
	char *s3_prefix;        /* "python-import/" */
	char *key_template;     /* keytmpl.h; "{prefix}{date}_{hour}.jsonl" */
	int gzip;               /* hours as .jsonl.gz (gzip as served) */
	int no_validate;        /* --gzip: copy members without inflating */
	char *bucket;
	char *aws_region;       /* NULL: not set (the profile's, else
	                           us-east-1: main.c decides) */
	char *s3_endpoint;      /* NULL: AWS */
	struct creds_options aws; /* the credential chain's settings, when
	                           the store is S3; .cancel is left to the
	                           caller.  Strings point into aws_strings,
	                           region and ca_bundle into the rows */
	char *aws_strings;      /* secret; wiped by config_free() */
	size_t aws_strings_len;
	char **child_env;       /* aws.child_env: environ less amp2s3's
	                           own secrets (the strings are environ's) */
	char *sse;              /* NULL, "AES256" or "aws:kms" */
	char *sse_kms_key_id;   /* with aws:kms; NULL: the bucket's */
	int sse_bucket_key;     /* with aws:kms */
	char *storage_class;    /* NULL: the bucket's default */
	int path_style;         /* -1 auto */
	int upload_workers;
	uint64_t multipart_threshold;
	uint64_t part_size;     /* >= 5 MiB, but for a test knob */
	int s3_max_keys;        /* test knob */

	/* logging */
	enum log_level log_level;
	enum log_format log_format;
	char *log_file;
	int progress;           /* -1 auto (TTY), 0 off, 1 on */
	int progress_interval_s; /* without a live line: a record every S s */
	int refresh;            /* fetch, all: export every hour again */
	int dry_run;            /* print the plan, change nothing */
	int json;               /* status, --dry-run: JSON output */
	int color;              /* status: -1 auto (TTY), 0, 1 */
	char *metrics_file;     /* Prometheus textfile, NULL: none */
	int shard_index;        /* this process's shard, 0..shard_count-1 */
	int shard_count;        /* 1: no sharding */

	/* the .env file used, and whether others may read it (warned) */
	char *env_file_used;
	int env_file_open_mode;
};

/*
 * config_load(cfg, argc, argv, now, err, errlen): fill ${cfg} from
 * ${argv}, the environment and the `.env` file (--env-file, default
 * ".env"), with ${now} as the current hour for default dates.  Returns 0;
 * 1 if --help or --version was handled (text printed on stdout); -1 on a
 * usage or configuration error, with one line in ${err}.  On any return
 * config_free() must be called.
 */
int config_load(struct config *cfg, int argc, char **argv, amp_hour now,
    char *err, size_t errlen);

/* config_need_store(cfg): non-zero if the command needs the S3 settings. */
int config_need_store(const struct config *cfg);

/*
 * The hints that name the settings (config_hint.c): the clients report
 * what was refused, this layer says what to change.
 *
 * config_api_auth_hint(): what to check when the Export API refuses the
 * credentials (401/403).  A constant string.
 *
 * config_s3_hint(ctx, why, region, buf, len): an s3_hint_fn, ${ctx} a
 * struct config_hint — what to check when S3 refuses a request for the
 * reason ${why} (${region}: the region S3 named for the bucket, "" if
 * none), for the source the credentials came from and the settings used.
 *
 * config_creds_missing(t, buf, len): the one line for creds_open()
 * finding no source (${t}->no_source): every source tried, by the
 * variables that would have configured it.
 */
struct config_hint {
	const struct config *cfg;  /* may be NULL (tools) */
	const struct creds *creds; /* may be NULL */
};
const char *config_api_auth_hint(void);
void config_s3_hint(void *ctx, enum s3_refusal why, const char *region,
    char *buf, size_t len);
void config_creds_missing(const struct creds_tried *t, char *buf,
    size_t len);

/* config_free(cfg): free every string of ${cfg}, wiping secrets first. */
void config_free(struct config *cfg);

#endif
