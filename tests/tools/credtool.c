/*
 * credtool: the creds module on a command line, for the integration tests
 * (tests/integration/test_creds_chain.py).
 *
 *   credtool [--loop SECONDS] [--threads N] [--invalidate-at MS]
 *
 * Options come from the environment by the AWS names
 * (creds_options_from(), as config.c will do), plus:
 *   CREDTOOL_CONTAINER_ORIGIN    replaces http://169.254.170.2
 *   CREDTOOL_IMDS_TIMEOUT_MS, CREDTOOL_HTTP_TIMEOUT_MS,
 *   CREDTOOL_PROCESS_TIMEOUT_MS  timeouts
 *   CREDTOOL_LOG=debug           the module's log lines on stderr
 * The credential_process child gets this process's environment less the
 * names amp2s3's config.c withholds (AMP_API_KEY, AMP_SECRET_KEY,
 * AWS_PYTHON_USER_*).
 *
 * Prints (never a secret):
 *   source NAME / detail TEXT / region REGION|-
 *   key ACCESS_KEY expires EPOCH_MS|never gen N token yes|no
 * With --loop, N threads (default 4) call creds_get() for SECONDS, then:
 *   use ACCESS_KEY gen N expires MS first MS last MS count N
 *                           one line per set handed out
 *   stale N                 sets handed out at or after their expiry
 *   errors N                creds_get() failures
 *   refreshes N             creds_refreshes()
 * --invalidate-at MS: MS after the start every thread reports the set it
 * holds as refused (creds_invalidate()) at the same moment (a barrier);
 * prints "invalidate RC" once.
 *
 * Exit: 0; 2 creds_open() failed (its line on stderr); 1 errors in the
 * loop; 64 usage.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "creds.h"
#include "log.h"

extern char **environ;

#define MAX_GENS 4096

struct seen {
	char ak[CREDS_KEY_MAX];
	uint64_t gen;
	int64_t expires, first, last;
	long count;
};

struct worker {
	pthread_t t;
	struct creds *c;
	int64_t end_ms, invalidate_ms;
	pthread_barrier_t *barrier;
	atomic_int *inv_printed;
	struct seen *seen;  /* indexed by generation */
	long stale, errors;
	int inv_rc;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static const char *
lookup(void *ctx, const char *name)
{
	(void)ctx;
	return (getenv(name));
}

/* environ less what config.c withholds from a credential_process. */
static char **
child_env(void)
{
	size_t n = 0, i;
	char **out;

	while (environ[n] != NULL)
		n++;
	if ((out = calloc(n + 1, sizeof(char *))) == NULL)
		return (NULL);
	for (i = 0, n = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "AMP_API_KEY=", 12) != 0 &&
		    strncmp(environ[i], "AMP_SECRET_KEY=", 15) != 0 &&
		    strncmp(environ[i], "AWS_PYTHON_USER_", 16) != 0)
			out[n++] = environ[i];
	return (out);
}

static long
env_long(const char *name)
{
	const char *v = getenv(name);

	return (v != NULL ? strtol(v, NULL, 10) : 0);
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	struct creds_value v;
	struct timespec pace = { 0, 1000000L };
	int64_t t;
	int invalidated = 0;

	while ((t = now_ms()) < w->end_ms) {
		if (!invalidated && w->invalidate_ms > 0 &&
		    t >= w->invalidate_ms) {
			uint64_t g = 0;

			for (g = MAX_GENS - 1; g > 0 && w->seen[g].count == 0;
			    g--)
				;
			pthread_barrier_wait(w->barrier);
			w->inv_rc = creds_invalidate(w->c, g);
			invalidated = 1;
		}
		if (creds_get(w->c, &v) != 0) {
			w->errors++;
		} else {
			struct seen *s;

			t = now_ms();
			if (v.expires_ms != 0 && t >= v.expires_ms)
				w->stale++;
			if (v.generation < MAX_GENS) {
				s = &w->seen[v.generation];
				if (s->count++ == 0) {
					snprintf(s->ak, sizeof(s->ak), "%s",
					    v.access_key);
					s->gen = v.generation;
					s->expires = v.expires_ms;
					s->first = t;
				}
				s->last = t;
			}
		}
		creds_value_wipe(&v);
		nanosleep(&pace, NULL);
	}
	return (NULL);
}

int
main(int argc, char **argv)
{
	struct creds_options o;
	struct creds_value v;
	struct creds *c;
	struct logger *lg = NULL;
	char err[2048], **cenv = NULL;
	double loop_s = 0;
	long threads = 4, inv_ms = 0, errors = 0, stale = 0;
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc)
			loop_s = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--invalidate-at") == 0 &&
		    i + 1 < argc)
			inv_ms = strtol(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: credtool [--loop SECONDS] "
			    "[--threads N] [--invalidate-at MS]\n");
			return (64);
		}
	}
	if (threads < 1 || threads > 64)
		threads = 4;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	creds_options_from(&o, lookup, NULL);
	o.child_env = cenv = child_env();
	o.container_origin = getenv("CREDTOOL_CONTAINER_ORIGIN");
	o.imds_timeout_ms = env_long("CREDTOOL_IMDS_TIMEOUT_MS");
	o.http_timeout_ms = env_long("CREDTOOL_HTTP_TIMEOUT_MS");
	o.process_timeout_ms = env_long("CREDTOOL_PROCESS_TIMEOUT_MS");
	if (getenv("CREDTOOL_LOG") != NULL)
		lg = log_open(LOG_DEBUG, LOG_TEXT, NULL);
	if ((c = creds_open(&o, lg, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "credtool: %s\n", err);
		free(cenv);
		log_close(lg);
		curl_global_cleanup();
		return (2);
	}
	printf("source %s\ndetail %s\nregion %s\n", creds_source(c),
	    creds_detail(c), creds_region(c) ? creds_region(c) : "-");
	if (creds_get(c, &v) != 0) {
		fprintf(stderr, "credtool: creds_get failed\n");
		rc = 1;
	} else {
		if (v.expires_ms != 0)
			printf("key %s expires %" PRId64 " gen %" PRIu64
			    " token %s\n", v.access_key, v.expires_ms,
			    v.generation, v.token[0] ? "yes" : "no");
		else
			printf("key %s expires never gen %" PRIu64
			    " token %s\n", v.access_key, v.generation,
			    v.token[0] ? "yes" : "no");
	}
	creds_value_wipe(&v);
	fflush(stdout);
	if (loop_s > 0 && rc == 0) {
		struct worker *w = calloc((size_t)threads, sizeof(*w));
		pthread_barrier_t barrier;
		atomic_int printed = 0;
		int64_t start = now_ms();
		uint64_t g;
		long t;

		if (w == NULL)
			return (1);
		pthread_barrier_init(&barrier, NULL, (unsigned)threads);
		for (t = 0; t < threads; t++) {
			w[t].c = c;
			w[t].end_ms = start + (int64_t)(loop_s * 1000);
			w[t].invalidate_ms = inv_ms > 0 ? start + inv_ms : 0;
			w[t].barrier = &barrier;
			w[t].inv_printed = &printed;
			w[t].seen = calloc(MAX_GENS, sizeof(struct seen));
			if (w[t].seen == NULL)
				return (1);
			pthread_create(&w[t].t, NULL, work, &w[t]);
		}
		for (t = 0; t < threads; t++)
			pthread_join(w[t].t, NULL);
		pthread_barrier_destroy(&barrier);
		for (g = 1; g < MAX_GENS; g++) {
			struct seen m = { .first = INT64_MAX };

			for (t = 0; t < threads; t++) {
				struct seen *s = &w[t].seen[g];

				if (s->count == 0)
					continue;
				if (m.count == 0) {
					memcpy(m.ak, s->ak, sizeof(m.ak));
					m.gen = s->gen;
					m.expires = s->expires;
				}
				m.count += s->count;
				if (s->first < m.first)
					m.first = s->first;
				if (s->last > m.last)
					m.last = s->last;
			}
			if (m.count > 0)
				printf("use %s gen %" PRIu64 " expires %" PRId64
				    " first %" PRId64 " last %" PRId64
				    " count %ld\n", m.ak, m.gen, m.expires,
				    m.first, m.last, m.count);
		}
		for (t = 0; t < threads; t++) {
			stale += w[t].stale;
			errors += w[t].errors;
			free(w[t].seen);
		}
		if (inv_ms > 0)
			printf("invalidate %d\n", w[0].inv_rc);
		printf("stale %ld\nerrors %ld\n", stale, errors);
		free(w);
		if (errors > 0)
			rc = 1;
	}
	printf("refreshes %" PRIu64 "\n", creds_refreshes(c));
	creds_free(c);
	free(cenv);
	log_close(lg);
	curl_global_cleanup();
	return (rc);
}
