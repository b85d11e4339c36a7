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
#include "errbuf.h"
#include "fetch.h"
#include "localdir.h"
#include "log.h"
#include "plan.h"
#include "progress.h"
#include "run.h"
#include "runctl.h"
#include "status.h"
#include "store.h"
#include "upload.h"

/* Zip-bomb guards: JSON events compress about 5-20x; a member inflating
 * 1000x its size, or a single line of 64 MiB, is not an export; nor is
 * an answer of more than 100,000 members (a few per hour in practice),
 * which bounds what reading one costs in memory. */
#define RUN_MAX_RATIO 1000
#define RUN_MAX_LINE ((size_t)64 << 20)
#define RUN_MAX_MEMBERS 100000
#define PLAN_ALL (PLAN_LOCAL | PLAN_REMOTE | PLAN_OTHER)

/* Hours with their sizes, sorted by hour once filled. */
struct hourset {
	struct hsize {
		amp_hour h;
		uint64_t size;
	} *v;
	size_t n, cap;
	int oom;
};

static void
hourset_add(void *ctx, amp_hour h, uint64_t size)
{
	struct hourset *s = ctx;

	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		struct hsize *nv = realloc(s->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			s->oom = 1;
			return;
		}
		s->v = nv;
		s->cap = ncap;
	}
	s->v[s->n++] = (struct hsize){ h, size };
}

static int
cmp_hour(const void *a, const void *b)
{
	amp_hour x = *(const amp_hour *)a, y = *(const amp_hour *)b;

	return ((x > y) - (x < y));
}

/* The entry of ${h}, or NULL. */
static const struct hsize *
hourset_find(const struct hourset *s, amp_hour h)
{
	return (s->n > 0 ? bsearch(&h, s->v, s->n, sizeof(*s->v),
	    cmp_hour) : NULL);
}

static void
hourset_sort(struct hourset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_hour);
}

/* What a run starts from: the hours on disk and those in the store. */
struct listing {
	struct hourset local, remote;
};

static void
listing_free(struct listing *l)
{
	free(l->local.v);
	free(l->remote.v);
}

/*
 * The store spans a run asks about: the range (${range}) and the runs of
 * consecutive local hours (${with_local}).  *${n} set; NULL if no memory.
 */
static struct store_span *
spans_of(const struct config *cfg, const struct hourset *local, int range,
    int with_local, size_t *n)
{
	struct store_span *sp;

	*n = 0;
	if ((sp = malloc((local->n + 1) * sizeof(*sp))) == NULL)
		return (NULL);
	if (range)
		sp[(*n)++] = (struct store_span){ cfg->start, cfg->end };
	for (size_t i = 0; with_local && i < local->n; i++) {
		if (i > 0 && local->v[i].h == local->v[i - 1].h + 1)
			sp[*n - 1].last = local->v[i].h;
		else
			sp[(*n)++] = (struct store_span){ local->v[i].h,
			    local->v[i].h };
	}
	return (sp);
}

/*
 * list_hours(cfg, lg, store, range, with_local, l): fill ${l} with the
 * complete hours of the data directory, then (${store} not NULL) the
 * store's hours of the range (${range}) and of the local hours
 * (${with_local}), both sorted.  Returns 0 or the exit code of the
 * failure (logged).  The caller frees ${l}.
 */
static int
list_hours(const struct config *cfg, struct logger *lg, struct store *store,
    int range, int with_local, struct listing *l)
{
	struct store_span *spans;
	enum store_status s;
	char err[600];
	size_t n;

	memset(l, 0, sizeof(*l));
	if (localdir_scan(cfg->data_dir, cfg->gzip, hourset_add, &l->local) &&
	    errno != ENOENT) {
		log_error(lg, "cannot read data directory %s: %s",
		    cfg->data_dir, ERRSTR(errno));
		return (EXIT_IO);
	}
	hourset_sort(&l->local);
	if (store == NULL)
		return (l->local.oom ? EXIT_IO : 0);
	if (store_set_layout(store, cfg->key_template, cfg->gzip, err,
	    sizeof(err))) {
		log_error(lg, "%s", err);
		return (EXIT_USAGE);
	}
	if ((spans = spans_of(cfg, &l->local, range, with_local, &n)) ==
	    NULL || l->local.oom) {
		free(spans);
		log_error(lg, "out of memory listing hours");
		return (EXIT_IO);
	}
	s = store_list(store, spans, n, hourset_add, &l->remote, err,
	    sizeof(err));
	free(spans);
	if (s != STORE_OK) {
		log_error(lg, "%s", err);
		return (s == STORE_FATAL ? EXIT_AUTH : EXIT_PARTIAL);
	}
	if (l->remote.oom) {
		log_error(lg, "out of memory listing hours");
		return (EXIT_IO);
	}
	hourset_sort(&l->remote);
	return (0);
}

struct planner {
	const struct config *cfg;
	struct coverage *cov;
	struct fetch_pool *fp;
	struct logger *lg;
	pthread_t th;
};

/*
 * The planner thread: cut the missing hours into windows, each sized for
 * the requests the fetch pool allows at once when it is cut (its limit:
 * the ceiling -j until the first answers, then what the API let it
 * reach), so the windows cut after the first answers are cut for the
 * workers the API allows, not for -j.  Those cut before them are sized
 * for -j: all of a range that -j windows cover, since every worker wants
 * one at once.  fetch_submit() blocks on the pool's bounded queue, so
 * windows are cut at most 2 x -j ahead of the workers.
 */
static void *
planner_main(void *arg)
{
	struct planner *pl = arg;
	size_t pos = 0, missing, nwin = 0;
	struct window w;
	int size, last = 0, limit;

	missing = coverage_count(pl->cov, PLAN_ALL, 0);
	log_debug(pl->lg, "planner: %zu missing hours", missing);
	for (;;) {
		limit = fetch_limit(pl->fp);
		size = plan_window_size(missing, limit,
		    pl->cfg->max_window_hours);
		if (size != last)
			log_debug(pl->lg, "planner: windows of up to %d hours "
			    "(%d requests at once)", size, limit);
		last = size;
		if (!plan_next(pl->cov, &pos, size, &w) ||
		    fetch_submit(pl->fp, &w))
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

/* 1 if every window of the run that ended got a 404 that was not the
 * Export API's own, and none succeeded: the URL is wrong. */
static int
only_foreign_404s(struct runctl *ctl)
{
	uint64_t nf = runctl_counter(ctl, RUN_HOURS_NOT_FOUND);

	return (nf > 0 && nf == runctl_counter(ctl, RUN_HOURS_FAILED) &&
	    runctl_counter(ctl, RUN_HOURS_DATA) == 0 &&
	    runctl_counter(ctl, RUN_HOURS_EMPTY) == 0);
}

static int
exit_code(struct runctl *ctl)
{
	switch (runctl_stop_reason(ctl)) {
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
	if (only_foreign_404s(ctl))
		return (EXIT_USAGE);
	if (runctl_counter(ctl, RUN_HOURS_FAILED) ||
	    runctl_counter(ctl, RUN_UPLOAD_FAILED) ||
	    runctl_counter(ctl, RUN_HOURS_CONFLICT))
		return (EXIT_PARTIAL);
	return (EXIT_OK);
}

/* "concurrency 4 of 16, 5 decreases, 2 increases" for a pool whose
 * gauges and counters are ${limit}, ${ceiling}, ${down} and ${up}. */
static void
concurrency_text(const struct config *cfg, struct runctl *ctl,
    enum run_gauge limit, enum run_gauge ceiling, enum run_counter down,
    enum run_counter up, char *buf, size_t len)
{
	if (cfg->fixed_concurrency)
		snprintf(buf, len, "concurrency %" PRId64 " (fixed)",
		    runctl_gauge(ctl, ceiling));
	else
		snprintf(buf, len, "concurrency %" PRId64 " of %" PRId64 ", %"
		    PRIu64 " decreases, %" PRIu64 " increases",
		    runctl_gauge(ctl, limit), runctl_gauge(ctl, ceiling),
		    runctl_counter(ctl, down), runctl_counter(ctl, up));
}

/* The summary; ${peak}: the peak download rate in bytes/s. */
static void
summary(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    size_t already, int rc, double peak)
{
	double secs = (double)runctl_elapsed_ms(ctl) / 1000.0;
	char fc[128], uc[128];

	concurrency_text(cfg, ctl, RUN_FETCH_LIMIT, RUN_FETCH_CEILING,
	    RUN_FETCH_LIMIT_DOWN, RUN_FETCH_LIMIT_UP, fc, sizeof(fc));
	concurrency_text(cfg, ctl, RUN_UPLOAD_LIMIT, RUN_UPLOAD_CEILING,
	    RUN_UPLOAD_LIMIT_DOWN, RUN_UPLOAD_LIMIT_UP, uc, sizeof(uc));

	if (rc == EXIT_USAGE && only_foreign_404s(ctl))
		log_error(lg, "every export request got a 404 that is not the "
		    "Export API's own answer: check --api-url (AMP_API_URL) "
		    "or --region");
	if (cfg->cmd != CMD_SYNC)
		log_msg(lg, rc == 0 ? LOG_INFO : LOG_WARN,
		    "fetch: %" PRIu64 " hours with data, %" PRIu64 " empty, %"
		    PRIu64 " failed, %zu already complete; %" PRIu64
		    " events, %.1f MB written, %.1f MB downloaded (peak %.1f "
		    "MB/s); %" PRIu64 " requests, %" PRIu64 " retries, %" PRIu64
		    " splits; %s; %.2f s", runctl_counter(ctl, RUN_HOURS_DATA),
		    runctl_counter(ctl, RUN_HOURS_EMPTY),
		    runctl_counter(ctl, RUN_HOURS_FAILED), already,
		    runctl_counter(ctl, RUN_EVENTS),
		    (double)runctl_counter(ctl, RUN_BYTES_OUT) / 1e6,
		    (double)runctl_counter(ctl, RUN_BYTES_ZIP) / 1e6,
		    peak / 1e6, runctl_counter(ctl, RUN_REQUESTS),
		    runctl_counter(ctl, RUN_RETRIES),
		    runctl_counter(ctl, RUN_SPLITS), fc, secs);
	if (cfg->cmd != CMD_FETCH)
		log_msg(lg, rc == 0 ? LOG_INFO : LOG_WARN,
		    "sync: %" PRIu64 " hours uploaded (%.1f MB), %" PRIu64
		    " failed, %" PRIu64 " local files already stored and "
		    "removed, %" PRIu64 " in conflict (kept); %s; %.2f s",
		    runctl_counter(ctl, RUN_UPLOADS),
		    (double)runctl_counter(ctl, RUN_UPLOAD_BYTES) / 1e6,
		    runctl_counter(ctl, RUN_UPLOAD_FAILED),
		    runctl_counter(ctl, RUN_LOCAL_REMOVED),
		    runctl_counter(ctl, RUN_HOURS_CONFLICT), uc, secs);
}

/* The cell of hour index ${i} of the range for `status`. */
static uint8_t
status_cell(const struct config *cfg, const struct listing *l,
    const struct store *store, size_t i)
{
	amp_hour h = cfg->start + (amp_hour)i;
	const struct hsize *r = hourset_find(&l->remote, h);
	const struct hsize *loc = hourset_find(&l->local, h);

	if (plan_shard_of(h, cfg->shard_count) != cfg->shard_index)
		return (CELL_OTHER);
	if (r != NULL && loc != NULL && r->size != loc->size)
		return (CELL_CONFLICT);
	if (r != NULL)
		return (r->size > 0 ? CELL_STORED : CELL_EMPTY);
	if (loc == NULL)
		return (CELL_MISSING);
	if (store != NULL)
		return (CELL_LOCAL);
	return (loc->size == 0 ? CELL_EMPTY : CELL_STORED);
}

/* Draw the grid of ${cells} on stdout.  The exit code. */
static int
status_draw(const struct config *cfg, struct logger *lg,
    const struct store *store, const uint8_t *cells)
{
	struct status_totals t;
	char where[1200], shardbuf[24];
	const char *shard = NULL;       /* "K/N" when sharded */
	int color;

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
		return (EXIT_IO);
	}
	return (t.missing == 0 && t.conflict == 0 ? EXIT_OK : EXIT_PARTIAL);
}

int
run_status(const struct config *cfg, struct logger *lg, struct store *store)
{
	struct listing l;
	uint8_t *cells = NULL;
	int rc;
	size_t n;

	if ((uint64_t)(cfg->end - cfg->start) >= (uint64_t)200 * 366 * 24) {
		log_error(lg, "the range is too large to show");
		return (EXIT_USAGE);
	}
	n = (size_t)(cfg->end - cfg->start) + 1;
	if ((rc = list_hours(cfg, lg, store, 1, 0, &l)) != 0)
		goto done;
	if ((cells = malloc(n)) == NULL) {
		log_error(lg, "out of memory");
		rc = EXIT_IO;
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		cells[i] = status_cell(cfg, &l, store, i);
	rc = status_draw(cfg, lg, store, cells);
done:
	free(cells);
	listing_free(&l);
	return (rc);
}

/* Log how many of this run's hours are already on disk and stored. */
static void
report_listing(const struct config *cfg, struct logger *lg,
    const struct store *store, const struct listing *l)
{
	int do_fetch = cfg->cmd != CMD_SYNC, do_upload = cfg->cmd != CMD_FETCH;
	size_t stored = 0;

	for (size_t i = 0; i < l->remote.n; i++) {
		amp_hour h = l->remote.v[i].h;
		if ((do_fetch && h >= cfg->start && h <= cfg->end) ||
		    (do_upload && hourset_find(&l->local, h) != NULL))
			stored++;
	}
	log_info(lg, "%zu hours on disk, %zu of this run's hours in %s",
	    l->local.n, stored, store ? store_describe(store) : "(no store)");
}

/* A local hour of ${local} bytes whose stored object has ${stored}: keep
 * both (neither is known to be the right one; a re-export decides). */
static void
report_conflict(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, amp_hour h, uint64_t local, uint64_t stored)
{
	char name[HOUR_API_LEN];

	hour_format_api(h, name);
	runctl_count(ctl, RUN_HOURS_CONFLICT, 1);
	log_warn(lg, "hour %s: the stored object has %" PRIu64 " bytes, the "
	    "local file in %s %" PRIu64 ": conflict, both kept (neither "
	    "deleted nor uploaded over the other)", name, stored,
	    cfg->data_dir, local);
}

/*
 * The upload side: delete the local hours the store already has with
 * the same size, keep those it has with another (conflicts); what is
 * left of l->local are the uploads, in hour order.
 */
static void
prune_stored(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct listing *l)
{
	const struct hsize *r;
	size_t keep = 0;
	char path[4096];

	for (size_t i = 0; i < l->local.n; i++) {
		amp_hour h = l->local.v[i].h;

		if ((r = hourset_find(&l->remote, h)) == NULL) {
			l->local.v[keep++] = l->local.v[i];
			continue;
		}
		if (r->size != l->local.v[i].size) {
			report_conflict(cfg, lg, ctl, h, l->local.v[i].size,
			    r->size);
			continue;
		}
		if (localdir_path(cfg->data_dir, cfg->gzip, h, path,
		    sizeof(path)) == 0 && unlink(path) == 0) {
			runctl_count(ctl, RUN_LOCAL_REMOVED, 1);
			log_debug(lg, "%s is already stored: removed", path);
		}
	}
	l->local.n = keep;
}

static struct upload_pool *
start_uploads(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, struct store *store)
{
	struct upload_opts uo = {
		.store = store, .data_dir = cfg->data_dir,
		.gzip = cfg->gzip,
		.workers = cfg->upload_workers,
		.fixed_concurrency = cfg->fixed_concurrency,
		.queue_cap = 2 * cfg->upload_workers + 2 * cfg->fetch_workers,
		.lg = lg, .ctl = ctl,
	};

	return (upload_start(&uo));
}

/*
 * The coverage of the range: the hours on disk (before prune_stored()
 * removed those the store has, which are therefore stored), the hours in
 * the store, and other shards' hours.  *${already}: hours complete.
 * Returns 0 or the exit code (logged).
 */
static int
plan_coverage(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, const struct listing *l, struct coverage *cov,
    size_t *already)
{
	uint64_t todo;

	if (coverage_init(cov, cfg->start, cfg->end)) {
		log_error(lg, "the range is too large to plan");
		return (EXIT_USAGE);
	}
	for (size_t i = 0; i < l->local.n; i++)
		coverage_mark(cov, l->local.v[i].h, PLAN_LOCAL);
	for (size_t i = 0; i < l->remote.n; i++)
		coverage_mark(cov, l->remote.v[i].h, PLAN_REMOTE);
	coverage_shard(cov, cfg->shard_index, cfg->shard_count);
	todo = coverage_count(cov, PLAN_ALL, 0);
	runctl_set_total_hours(ctl, todo);
	*already = cov->n - todo - coverage_count(cov, PLAN_ALL, PLAN_OTHER);
	if (cfg->shard_count > 1)
		log_info(lg, "shard %d/%d: %zu hours of the range are other "
		    "shards'", cfg->shard_index, cfg->shard_count,
		    coverage_count(cov, PLAN_ALL, PLAN_OTHER));
	log_info(lg, "range %zu hours: %zu complete, %" PRIu64 " to fetch",
	    cov->n, *already, todo);
	return (0);
}

static struct fetch_pool *
start_fetch(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct upload_pool *up)
{
	struct fetch_opts fo = {
		.api_url = cfg->api_url, .api_key = cfg->api_key,
		.secret_key = cfg->secret_key,
		.ca_bundle = cfg->ca_bundle, .data_dir = cfg->data_dir,
		.auth_hint = config_api_auth_hint(),
		.workers = cfg->fetch_workers,
		.fixed_concurrency = cfg->fixed_concurrency,
		.queue_cap = 2 * cfg->fetch_workers,
		.max_attempts = cfg->max_attempts,
		.retry_base_ms = cfg->retry_base_ms,
		.retry_max_ms = cfg->retry_max_ms,
		.connect_timeout_s = cfg->connect_timeout_s,
		.stall_timeout_s = cfg->stall_timeout_s,
		.min_speed = cfg->min_speed,
		.unpack = { .max_hour_bytes = cfg->max_hour_bytes,
		    .max_ratio = RUN_MAX_RATIO,
		    .max_line = RUN_MAX_LINE,
		    .max_members = RUN_MAX_MEMBERS,
		    /* `all` to S3 reads each hour back within seconds (hash,
		     * send); otherwise the hour is linked into --dev's
		     * folder or left for a later sync: no reason to keep it
		     * cached. */
		    .keep_cache = up != NULL && !cfg->dev,
		    .file_mode = cfg->file_mode },
		.format = !cfg->gzip ? UNPACK_FMT_JSONL :
		    cfg->no_validate ? UNPACK_FMT_GZIP_RAW : UNPACK_FMT_GZIP,
		.lg = lg, .ctl = ctl,
		.on_hour = up ? hour_to_upload : NULL,
		.on_hour_ctx = up,
	};

	return (fetch_start(&fo));
}

/* The progress line or records of a run of ${cfg} (NULL: none). */
static struct progress *
start_progress(const struct config *cfg, struct logger *lg,
    struct runctl *ctl)
{
	struct progress_opts po = {
		.lg = lg, .ctl = ctl,
		.fetch = cfg->cmd != CMD_SYNC, .upload = cfg->cmd != CMD_FETCH,
		/* --progress=yes cannot draw where there is no terminal. */
		.live = log_is_tty(lg) && cfg->progress != 0,
		.interval_s = cfg->progress_interval_s,
	};

	return (progress_start(&po));
}

/* Start the planner thread over ${pl}.  0, or -1 (cancelled, logged). */
static int
start_planner(struct planner *pl, struct runctl *ctl)
{
	int rc;

	if ((rc = pthread_create(&pl->th, NULL, planner_main, pl)) != 0) {
		log_error(pl->lg, "pthread_create: %s", ERRSTR(rc));
		runctl_cancel(ctl, STOP_IO);
		fetch_plan_done(pl->fp);
		return (-1);
	}
	return (0);
}

int
run_command(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct store *store)
{
	struct listing l;
	struct coverage cov = { 0 };
	struct fetch_pool *fp = NULL;
	struct upload_pool *up = NULL;
	struct progress *pg = NULL;
	struct planner pl = { .cfg = cfg, .cov = &cov, .lg = lg };
	int do_fetch = cfg->cmd != CMD_SYNC, do_upload = cfg->cmd != CMD_FETCH;
	int planner_started = 0, rc;
	size_t already = 0;
	double peak;

	/* 1. What is there. */
	if ((rc = list_hours(cfg, lg, store, do_fetch, do_upload, &l)) != 0)
		goto done;
	report_listing(cfg, lg, store, &l);
	pg = start_progress(cfg, lg, ctl);
	rc = EXIT_PARTIAL;

	/* 2. The upload side. */
	if (do_upload) {
		prune_stored(cfg, lg, ctl, &l);
		if ((up = start_uploads(cfg, lg, ctl, store)) == NULL)
			goto done;
	}

	/* 3. The fetch side. */
	if (do_fetch) {
		if ((rc = plan_coverage(cfg, lg, ctl, &l, &cov, &already)) != 0)
			goto done;
		rc = EXIT_PARTIAL;
		if ((fp = pl.fp = start_fetch(cfg, lg, ctl, up)) == NULL)
			goto done;
		planner_started = start_planner(&pl, ctl) == 0;
	}

	/* 4. Meanwhile: queue the hours already on disk for upload. */
	for (size_t i = 0; up != NULL && i < l.local.n; i++)
		if (upload_submit(up, l.local.v[i].h))
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
	peak = progress_stop(pg);
	pg = NULL;
	rc = exit_code(ctl);
	summary(cfg, lg, ctl, already, rc, peak);
done:
	if (fp) {
		runctl_cancel(ctl, STOP_IO);
		fetch_join(fp);
	}
	if (up) {
		runctl_cancel(ctl, STOP_IO);
		upload_join(up);
	}
	(void)progress_stop(pg);
	coverage_free(&cov);
	listing_free(&l);
	return (rc);
}
