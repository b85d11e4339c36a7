/*
 * s3tool: a tiny command line over s3.h, for the integration tests.
 *
 *   s3tool list PREFIX               one "SIZE<TAB>KEY<TAB>ETAG" line per key
 *   s3tool put KEY FILE [TYPE]       upload (multipart above the threshold)
 *   s3tool same KEY FILE [listed|SIZE:ETAG]
 *                                    "same" or "different" (s3_same; with
 *                                    "listed", the object as a listing of
 *                                    KEY saw it is given; with SIZE:ETAG,
 *                                    that object; else none)
 *   s3tool head KEY                  "SIZE<TAB>ETAG<TAB>SHA256" (exit 1 and
 *                                    "404" if there is no such object)
 *   s3tool delete KEY
 *   s3tool put-many KEYPREFIX FILE COUNT THREADS
 *                                    COUNT uploads of FILE as KEYPREFIX<i>
 *                                    from THREADS threads sharing one client
 *
 * Configured from the environment: S3TEST_ENDPOINT, S3TEST_BUCKET,
 * S3TEST_REGION, the AWS credential chain's variables (creds.h; static
 * keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * instance metadata only if AWS_EC2_METADATA_DISABLED is "false"),
 * S3TEST_MAX_KEYS, S3TEST_MULTIPART_THRESHOLD and
 * S3TEST_PART_SIZE (bytes), S3TEST_MAX_ATTEMPTS, S3TEST_PATH_STYLE
 * (0, 1, or -1 auto), S3TEST_STALL_S (seconds below 1 byte/s before a
 * transfer is abandoned), S3TEST_LOG_LEVEL.
 *
 * Exit: 0 done, 1 failed, 2 usage, 3 fatal (credentials, region, bucket).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "creds.h"
#include "log.h"
#include "s3.h"

struct many {
	struct s3 *s3;
	const char *prefix, *file;
	int count;
	atomic_int next;
	atomic_int worst;  /* highest exit code seen */
};

static uint64_t
env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return (v != NULL && v[0] != '\0' ? strtoull(v, NULL, 10) : def);
}

static int
exit_code(enum s3_status s)
{
	return (s == S3_OK ? 0 : s == S3_FATAL ? 3 : 1);
}

/* s3_put_file() of the file named ${path}. */
static enum s3_status
put_path(struct s3 *s3, const char *key, const char *path, const char *ctype,
    struct s3_error *e)
{
	enum s3_status st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(e->msg, sizeof(e->msg), "cannot open %s", path);
		return (S3_IO);
	}
	st = s3_put_file(s3, key, fd, ctype, e);
	close(fd);
	return (st);
}

static int
print_key(void *ctx, const char *key, const struct s3_object *obj)
{
	(void)ctx;
	printf("%" PRIu64 "\t%s\t%s\n", obj->size, key, obj->etag);
	return (0);
}

/* The listing of exactly ${key}: its object, if any. */
struct one {
	const char *key;
	struct s3_object obj;
	int found;
};

static int
find_one(void *ctx, const char *key, const struct s3_object *obj)
{
	struct one *o = ctx;

	if (strcmp(key, o->key) == 0) {
		o->obj = *obj;
		o->found = 1;
	}
	return (0);
}

static int
cmd_same(struct s3 *s3, const char *key, const char *path, const char *known,
    struct s3_error *e)
{
	struct one o = { .key = key };
	const char *colon;
	struct stat sb;
	int fd, same = 0, rc = 0;

	if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &sb) != 0) {
		perror(path);
		return (1);
	}
	if (known != NULL && strcmp(known, "listed") == 0)
		rc = exit_code(s3_list(s3, key, find_one, &o, e));
	else if (known != NULL && (colon = strchr(known, ':')) != NULL) {
		o.obj.size = strtoull(known, NULL, 10);
		snprintf(o.obj.etag, sizeof(o.obj.etag), "%s", colon + 1);
		o.found = 1;
	}
	if (rc != 0)
		goto out;
	rc = exit_code(s3_same(s3, key, fd, (uint64_t)sb.st_size,
	    o.found ? &o.obj : NULL, &same, e));
	if (rc == 0)
		printf("%s\n", same ? "same" : "different");
out:
	close(fd);
	return (rc);
}

static int
cmd_head(struct s3 *s3, const char *key, struct s3_error *e)
{
	struct s3_object obj;
	char sha[65];
	int rc = exit_code(s3_head(s3, key, &obj, sha, e));

	if (rc == 0)
		printf("%" PRIu64 "\t%s\t%s\n", obj.size, obj.etag, sha);
	else if (e->http_status == 404)
		printf("404\n");
	return (rc);
}

static void *
many_main(void *arg)
{
	struct many *m = arg;
	struct s3_error e;
	char key[1100];
	int i, rc, w;

	while ((i = atomic_fetch_add(&m->next, 1)) < m->count) {
		snprintf(key, sizeof(key), "%s%d", m->prefix, i);
		if ((rc = exit_code(put_path(m->s3, key, m->file,
		    "application/octet-stream", &e))) != 0) {
			fprintf(stderr, "%s\n", e.msg);
			w = atomic_load(&m->worst);
			while (rc > w &&
			    !atomic_compare_exchange_weak(&m->worst, &w, rc))
				;
		}
	}
	return (NULL);
}

static int
put_many(struct s3 *s3, char **argv)
{
	struct many m = { .s3 = s3, .prefix = argv[0], .file = argv[1] };
	pthread_t th[64];
	int i, n = atoi(argv[3]);

	m.count = atoi(argv[2]);
	atomic_init(&m.next, 0);
	atomic_init(&m.worst, 0);
	if (n < 1 || n > 64 || m.count < 0)
		return (2);
	for (i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, many_main, &m) != 0)
			break;
	n = i;
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return (atomic_load(&m.worst));
}

static const char *
lookup(void *ctx, const char *name)
{
	(void)ctx;
	return (getenv(name));
}

int
main(int argc, char **argv)
{
	struct creds_options co;
	struct creds *creds = NULL;
	struct config_hint hint = { NULL, NULL };
	char cerr[1024];
	const char *imds;
	struct s3_config cfg;
	struct s3_error e;
	struct logger *lg = NULL;
	struct s3 *s3 = NULL;
	enum log_level lv = LOG_WARN;
	const char *cmd = argc > 1 ? argv[1] : "";
	int rc = 2;

	if (!((strcmp(cmd, "list") == 0 && argc == 3) ||
	    (strcmp(cmd, "put") == 0 && (argc == 4 || argc == 5)) ||
	    (strcmp(cmd, "delete") == 0 && argc == 3) ||
	    (strcmp(cmd, "same") == 0 && (argc == 4 || argc == 5)) ||
	    (strcmp(cmd, "head") == 0 && argc == 3) ||
	    (strcmp(cmd, "put-many") == 0 && argc == 6))) {
		fprintf(stderr, "usage: s3tool list PREFIX | put KEY FILE "
		    "[TYPE] | delete KEY | put-many KEYPREFIX FILE COUNT "
		    "THREADS\n");
		return (2);
	}
	if (getenv("S3TEST_LOG_LEVEL") != NULL &&
	    log_parse_level(getenv("S3TEST_LOG_LEVEL"), &lv) != 0)
		lv = LOG_WARN;
	if ((lg = log_open(lv, LOG_TEXT, NULL)) == NULL)
		return (1);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_close(lg);
		return (1);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.endpoint = getenv("S3TEST_ENDPOINT");
	cfg.bucket = getenv("S3TEST_BUCKET");
	cfg.region = getenv("S3TEST_REGION") ? getenv("S3TEST_REGION") :
	    "eu-west-2";
	creds_options_from(&co, lookup, NULL);
	imds = getenv("AWS_EC2_METADATA_DISABLED");
	co.imds_disabled = imds == NULL || strcmp(imds, "false") != 0;
	if ((creds = creds_open(&co, lg, NULL, cerr, sizeof(cerr))) == NULL) {
		fprintf(stderr, "%s\n", cerr);
		rc = 2;
		goto out;
	}
	hint.creds = creds;
	cfg.creds = creds;
	cfg.path_style = (int)strtol(getenv("S3TEST_PATH_STYLE") ?
	    getenv("S3TEST_PATH_STYLE") : "-1", NULL, 10);
	cfg.max_keys = (int)env_u64("S3TEST_MAX_KEYS", 0);
	cfg.multipart_threshold = env_u64("S3TEST_MULTIPART_THRESHOLD",
	    (uint64_t)64 << 20);
	cfg.part_size = env_u64("S3TEST_PART_SIZE", (uint64_t)16 << 20);
	cfg.max_attempts = (int)env_u64("S3TEST_MAX_ATTEMPTS", 4);
	cfg.connect_timeout_ms = 5000;
	cfg.stall_timeout_s = (long)env_u64("S3TEST_STALL_S", 30);
	cfg.min_speed = 1;
	cfg.hint = config_s3_hint; /* the hints amp2s3 gives */
	cfg.hint_ctx = &hint;

	if ((s3 = s3_init(&cfg, lg, &e)) == NULL) {
		fprintf(stderr, "%s\n", e.msg);
		rc = 3;
		goto out;
	}
	if (strcmp(cmd, "list") == 0)
		rc = exit_code(s3_list(s3, argv[2], print_key, NULL, &e));
	else if (strcmp(cmd, "put") == 0)
		rc = exit_code(put_path(s3, argv[2], argv[3], argc == 5 ?
		    argv[4] : "application/octet-stream", &e));
	else if (strcmp(cmd, "same") == 0)
		rc = cmd_same(s3, argv[2], argv[3], argc == 5 ? argv[4] : NULL,
		    &e);
	else if (strcmp(cmd, "head") == 0)
		rc = cmd_head(s3, argv[2], &e);
	else if (strcmp(cmd, "delete") == 0)
		rc = exit_code(s3_delete(s3, argv[2], &e));
	else {
		rc = put_many(s3, argv + 2);
		goto out;
	}
	if (rc != 0)
		fprintf(stderr, "%s\n", e.msg);
out:
	fflush(stdout);
	s3_free(s3);
	creds_free(creds);
	curl_global_cleanup();
	log_close(lg);
	return (rc);
}
