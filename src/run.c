/*
 * run: list, plan, fetch and upload, summarise.
 *
 * DESIGN
 * - Threads: the caller's (main) thread lists the data directory and the
 *   store, then starts the upload pool (sync, all), the fetch pool (fetch,
 *   all) and one planner thread that cuts the missing hours into windows
 *   and feeds them to the fetch pool's bounded queue.  Meanwhile the main
 *   thread queues the hours already on disk that the store lacks.
 * - Pipelining (all): each fetch worker hands an hour to the upload queue
 *   the moment the hour's file is complete, so uploads run while fetching
 *   goes on.
 * - Shutdown: planner joined, fetch pool joined (it ends by itself once
 *   every window is finished), then the upload queue is closed and the
 *   upload pool joined.  A cancel (signal, auth, disk) closes every queue.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fetch.h"
#include "localdir.h"
#include "log.h"
#include "plan.h"
#include "run.h"
#include "runctl.h"
#include "status.h"
#include "store.h"
#include "upload.h"

/* Zip-bomb guards: JSON events compress about 5-20x; a member inflating
 * 1000x its size, or a single line of 64 MiB, is not an export. */
#define RUN_MAX_RATIO 1000
#define RUN_MAX_LINE ((size_t)64 << 20)
#define PLAN_ALL (PLAN_LOCAL | PLAN_REMOTE | PLAN_OTHER)

struct hourset {
	amp_hour *h;
	size_t n, cap;
	int oom;
};

static void
hourset_add(void *ctx, amp_hour h, uint64_t size)
{
	struct hourset *s = ctx;

	(void)size;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		amp_hour *nh = realloc(s->h, ncap * sizeof(*nh));
		if (nh == NULL) {
			s->oom = 1;
			return;
		}
		s->h = nh;
		s->cap = ncap;
	}
	s->h[s->n++] = h;
}

static int
cmp_hour(const void *a, const void *b)
{
	amp_hour x = *(const amp_hour *)a, y = *(const amp_hour *)b;

	return ((x > y) - (x < y));
}

static int
hourset_has(const struct hourset *s, amp_hour h)
{
	return (s->n > 0 &&
	    bsearch(&h, s->h, s->n, sizeof(*s->h), cmp_hour) != NULL);
}

struct planner {
	const struct config *cfg;
	struct coverage *cov;
	struct fetch_pool *fp;
	struct logger *lg;
	pthread_t th;
};

static void *
planner_main(void *arg)
{
	struct planner *pl = arg;
	size_t pos = 0, missing, nwin = 0;
	struct window w;
	int size;

	missing = coverage_count(pl->cov, PLAN_ALL, 0);
	size = plan_window_size(missing, pl->cfg->fetch_workers,
	    pl->cfg->max_window_hours);
	log_debug(pl->lg, "planner: %zu missing hours, windows of up to %d "
	    "hours", missing, size);
	while (plan_next(pl->cov, &pos, size, &w)) {
		if (fetch_submit(pl->fp, &w))
			break;
		nwin++;
	}
	log_debug(pl->lg, "planner: %zu windows queued", nwin);
	fetch_plan_done(pl->fp);
	return (NULL);
}

/* Fetch pool callback in `all`: queue the finished hour for upload. */
static void
hour_to_upload(void *ctx, amp_hour h)
{
	(void)upload_submit(ctx, h);
}

static int
exit_code(struct runctl *ctl)
{
	switch (atomic_load(&ctl->stop)) {
	case STOP_AUTH:
		return (EXIT_AUTH);
	case STOP_IO:
		return (EXIT_IO);
	case STOP_SIGINT:
		return (EXIT_SIGINT);
	case STOP_SIGTERM:
		return (EXIT_SIGTERM);
	default:
		break;
	}
	if (atomic_load(&ctl->st.hours_failed) ||
	    atomic_load(&ctl->st.upload_failed))
		return (EXIT_PARTIAL);
	return (EXIT_OK);
}

static void
summary(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    size_t already, int rc)
{
	struct run_stats *s = &ctl->st;
	double secs = (double)(runctl_now_ms() - ctl->t0_ms) / 1000.0;

	log_progress(lg, NULL);
	if (cfg->cmd != CMD_SYNC)
		log_msg(lg, rc == 0 ? LOG_INFO : LOG_WARN,
		    "fetch: %" PRIu64 " hours with data, %" PRIu64 " empty, %"
		    PRIu64 " failed, %zu already complete; %" PRIu64
		    " events, %.1f MB written, %.1f MB downloaded; %"
		    PRIu64 " requests, %" PRIu64 " retries, %" PRIu64
		    " splits; %.2f s", atomic_load(&s->hours_data),
		    atomic_load(&s->hours_empty),
		    atomic_load(&s->hours_failed), already,
		    atomic_load(&s->events),
		    (double)atomic_load(&s->bytes_out) / 1e6,
		    (double)atomic_load(&s->bytes_zip) / 1e6,
		    atomic_load(&s->requests), atomic_load(&s->retries),
		    atomic_load(&s->splits), secs);
	if (cfg->cmd != CMD_FETCH)
		log_msg(lg, rc == 0 ? LOG_INFO : LOG_WARN,
		    "sync: %" PRIu64 " hours uploaded (%.1f MB), %" PRIu64
		    " failed, %" PRIu64 " local files already stored and "
		    "removed; %.2f s", atomic_load(&s->uploads),
		    (double)atomic_load(&s->upload_bytes) / 1e6,
		    atomic_load(&s->upload_failed),
		    atomic_load(&s->local_removed), secs);
}

/* Per-hour sizes for `status`: index = hour - start, -1 = absent. */
struct sizemap {
	amp_hour start;
	size_t n;
	int64_t *size;
};

static void
sizemap_add(void *ctx, amp_hour h, uint64_t size)
{
	struct sizemap *m = ctx;

	if (h >= m->start && (uint64_t)(h - m->start) < m->n)
		m->size[h - m->start] = (int64_t)size;
}

int
run_status(const struct config *cfg, struct logger *lg, struct store *store)
{
	struct sizemap loc = { 0 }, rem = { 0 };
	struct status_totals t;
	uint8_t *cells = NULL;
	char err[600], where[1200], shardbuf[24];
	const char *shard = NULL;       /* "K/N" when sharded */
	int rc = EXIT_PARTIAL, color;
	size_t n;

	if ((uint64_t)(cfg->end - cfg->start) >= (uint64_t)200 * 366 * 24) {
		log_error(lg, "the range is too large to show");
		return (EXIT_USAGE);
	}
	n = (size_t)(cfg->end - cfg->start) + 1;
	loc.start = rem.start = cfg->start;
	loc.n = rem.n = n;
	if ((loc.size = malloc(n * sizeof(int64_t))) == NULL ||
	    (rem.size = malloc(n * sizeof(int64_t))) == NULL ||
	    (cells = malloc(n)) == NULL) {
		log_error(lg, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		loc.size[i] = rem.size[i] = -1;
	if (localdir_scan(cfg->data_dir, cfg->gzip, sizemap_add, &loc) &&
	    errno != ENOENT) {
		log_error(lg, "cannot read data directory %s: %s",
		    cfg->data_dir, strerror(errno));
		rc = EXIT_IO;
		goto done;
	}
	if (store && store_set_layout(store, cfg->key_template, cfg->gzip,
	    err, sizeof(err))) {
		log_error(lg, "%s", err);
		rc = EXIT_USAGE;
		goto done;
	}
	if (store) {
		struct store_span all = { cfg->start, cfg->end };
		enum store_status s = store_list(store, &all, 1, sizemap_add,
		    &rem, err, sizeof(err));
		if (s != STORE_OK) {
			log_error(lg, "%s", err);
			rc = s == STORE_FATAL ? EXIT_AUTH : EXIT_PARTIAL;
			goto done;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (rem.size[i] > 0)
			cells[i] = CELL_STORED;
		else if (rem.size[i] == 0)
			cells[i] = CELL_EMPTY;
		else if (loc.size[i] >= 0)
			cells[i] = store ? CELL_LOCAL :
			    (loc.size[i] == 0 ? CELL_EMPTY : CELL_STORED);
		else
			cells[i] = CELL_MISSING;
		if (plan_shard_of(cfg->start + (amp_hour)i, cfg->shard_count) !=
		    cfg->shard_index)
			cells[i] = CELL_OTHER;
	}
	if (cfg->shard_count > 1) {
		snprintf(shardbuf, sizeof(shardbuf), "%d/%d", cfg->shard_index,
		    cfg->shard_count);
		shard = shardbuf;
	}
	snprintf(where, sizeof(where), "%s%s%s/", store ?
	    store_describe(store) : "", store ? " + " : "", cfg->data_dir);
	color = cfg->color == -1 ? isatty(STDOUT_FILENO) &&
	    getenv("NO_COLOR") == NULL : cfg->color;
	if (status_print(stdout, cfg->start, cfg->end, cells, where, shard,
	    cfg->json, color, &t)) {
		log_error(lg, "cannot write to standard output");
		rc = EXIT_IO;
		goto done;
	}
	rc = t.missing == 0 ? EXIT_OK : EXIT_PARTIAL;
done:
	free(loc.size);
	free(rem.size);
	free(cells);
	return (rc);
}

int
run_command(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct store *store)
{
	struct hourset local = { 0 }, remote = { 0 };
	struct coverage cov = { 0 };
	struct fetch_pool *fp = NULL;
	struct upload_pool *up = NULL;
	struct planner pl;
	int do_fetch = cfg->cmd != CMD_SYNC, do_upload = cfg->cmd != CMD_FETCH;
	int planner_started = 0, rc = EXIT_PARTIAL;
	struct store_span *spans = NULL;
	size_t already = 0, nspans = 0, stored = 0;
	char err[600];

	/* 1. What is there. */
	if (localdir_scan(cfg->data_dir, cfg->gzip, hourset_add, &local)) {
		log_error(lg, "cannot read data directory %s: %s",
		    cfg->data_dir, strerror(errno));
		rc = EXIT_IO;
		goto done;
	}
	if (store && store_set_layout(store, cfg->key_template, cfg->gzip,
	    err, sizeof(err))) {
		log_error(lg, "%s", err);
		rc = EXIT_USAGE;
		goto done;
	}
	if (local.oom) {
		log_error(lg, "out of memory listing hours");
		goto done;
	}
	if (local.n)
		qsort(local.h, local.n, sizeof(*local.h), cmp_hour);
	if (store) {
		/* Ask the store only about the hours this run covers. */
		if ((spans = malloc((local.n + 1) * sizeof(*spans))) == NULL) {
			log_error(lg, "out of memory listing hours");
			goto done;
		}
		if (do_fetch)
			spans[nspans++] = (struct store_span){ cfg->start,
			    cfg->end };
		for (size_t i = 0; do_upload && i < local.n; i++) {
			if (i > 0 && local.h[i] == local.h[i - 1] + 1)
				spans[nspans - 1].last = local.h[i];
			else
				spans[nspans++] = (struct store_span){
				    local.h[i], local.h[i] };
		}
		enum store_status s = store_list(store, spans, nspans,
		    hourset_add, &remote, err, sizeof(err));
		if (s != STORE_OK) {
			log_error(lg, "%s", err);
			rc = s == STORE_FATAL ? EXIT_AUTH : EXIT_PARTIAL;
			goto done;
		}
	}
	if (remote.oom) {
		log_error(lg, "out of memory listing hours");
		goto done;
	}
	if (remote.n)
		qsort(remote.h, remote.n, sizeof(*remote.h), cmp_hour);
	for (size_t i = 0; i < remote.n; i++)
		if ((do_fetch && remote.h[i] >= cfg->start &&
		    remote.h[i] <= cfg->end) ||
		    (do_upload && hourset_has(&local, remote.h[i])))
			stored++;
	log_info(lg, "%zu hours on disk, %zu of this run's hours in %s",
	    local.n, stored, store ? store_describe(store) : "(no store)");

	/* 2. The upload side: local hours the store already has go away. */
	if (do_upload) {
		struct upload_opts uo = {
			.store = store, .data_dir = cfg->data_dir,
			.gzip = cfg->gzip,
			.workers = cfg->upload_workers,
			.queue_cap = 2 * cfg->upload_workers + 2 *
			    cfg->fetch_workers,
			.lg = lg, .ctl = ctl,
		};
		size_t keep = 0;

		for (size_t i = 0; i < local.n; i++) {
			char path[4096];
			if (!hourset_has(&remote, local.h[i])) {
				local.h[keep++] = local.h[i];
				continue;
			}
			if (localdir_path(cfg->data_dir, cfg->gzip, local.h[i],
			    path, sizeof(path)) == 0 && unlink(path) == 0) {
				atomic_fetch_add(&ctl->st.local_removed, 1);
				log_debug(lg, "%s is already stored: removed",
				    path);
			}
		}
		/* The remaining local hours are uploads, in hour order. */
		local.n = keep;
		if ((up = upload_start(&uo)) == NULL)
			goto done;
	}

	/* 3. The fetch side. */
	if (do_fetch) {
		struct fetch_opts fo = {
			.api_url = cfg->api_url, .api_key = cfg->api_key,
			.secret_key = cfg->secret_key,
			.ca_bundle = cfg->ca_bundle, .data_dir = cfg->data_dir,
			.workers = cfg->fetch_workers,
			.queue_cap = 2 * cfg->fetch_workers,
			.max_attempts = cfg->max_attempts,
			.retry_base_ms = cfg->retry_base_ms,
			.retry_max_ms = cfg->retry_max_ms,
			.connect_timeout_s = cfg->connect_timeout_s,
			.stall_timeout_s = cfg->stall_timeout_s,
			.unpack = { .max_hour_bytes = cfg->max_hour_bytes,
			    .max_ratio = RUN_MAX_RATIO,
			    .max_line = RUN_MAX_LINE,
			    /* `all` to S3 reads each hour back within
			     * seconds (hash, send); otherwise the hour is
			     * linked into --dev's folder or left for a
			     * later sync: no reason to keep it cached. */
			    .keep_cache = up != NULL && !cfg->dev },
			.format = !cfg->gzip ? UNPACK_FMT_JSONL :
			    cfg->no_validate ? UNPACK_FMT_GZIP_RAW :
			    UNPACK_FMT_GZIP,
			.lg = lg, .ctl = ctl,
			.on_hour = up ? hour_to_upload : NULL,
			.on_hour_ctx = up,
		};

		if (coverage_init(&cov, cfg->start, cfg->end)) {
			log_error(lg, "the range is too large to plan");
			rc = EXIT_USAGE;
			goto done;
		}
		/* Local hours marked before step 2 pruned them: the pruned
		 * ones are in the store, so mark both sets. */
		for (size_t i = 0; i < local.n; i++)
			coverage_mark(&cov, local.h[i], PLAN_LOCAL);
		for (size_t i = 0; i < remote.n; i++)
			coverage_mark(&cov, remote.h[i], PLAN_REMOTE);
		coverage_shard(&cov, cfg->shard_index, cfg->shard_count);
		ctl->total_hours = coverage_count(&cov, PLAN_ALL, 0);
		already = cov.n - ctl->total_hours -
		    coverage_count(&cov, PLAN_ALL, PLAN_OTHER);
		if (cfg->shard_count > 1)
			log_info(lg, "shard %d/%d: %zu hours of the range are "
			    "other shards'", cfg->shard_index, cfg->shard_count,
			    coverage_count(&cov, PLAN_ALL, PLAN_OTHER));
		log_info(lg, "range %zu hours: %zu complete, %" PRIu64
		    " to fetch", cov.n, already, ctl->total_hours);
		if ((fp = fetch_start(&fo)) == NULL)
			goto done;
		pl.cfg = cfg;
		pl.cov = &cov;
		pl.fp = fp;
		pl.lg = lg;
		if ((errno = pthread_create(&pl.th, NULL, planner_main, &pl))) {
			log_error(lg, "pthread_create: %s", strerror(errno));
			runctl_cancel(ctl, STOP_IO);
			fetch_plan_done(fp);
		} else {
			planner_started = 1;
		}
	}

	/* 4. Meanwhile: queue the hours already on disk for upload. */
	if (up)
		for (size_t i = 0; i < local.n; i++)
			if (upload_submit(up, local.h[i]))
				break;

	/* 5. Wind down in dependency order. */
	if (planner_started)
		pthread_join(pl.th, NULL);
	fetch_join(fp);
	fp = NULL;
	if (up) {
		upload_close(up);
		upload_join(up);
		up = NULL;
	}
	rc = exit_code(ctl);
	summary(cfg, lg, ctl, already, rc);
done:
	if (fp) {
		runctl_cancel(ctl, STOP_IO);
		fetch_join(fp);
	}
	if (up) {
		runctl_cancel(ctl, STOP_IO);
		upload_join(up);
	}
	coverage_free(&cov);
	free(spans);
	free(local.h);
	free(remote.h);
	return (rc);
}
