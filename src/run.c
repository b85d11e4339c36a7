/*
 * run: one fetch, sync or all, from listing to summary.
 *
 * DESIGN
 * - Threads: the caller's (main) thread lists the data directory and the
 *   store (run_list.c), then starts the upload pool (sync, all, and fetch
 *   --refresh), the fetch pool (fetch, all) and one planner thread that
 *   cuts the hours to fetch into windows and feeds them to the fetch
 *   pool's bounded queue.  Meanwhile the main thread queues the hours
 *   already on disk for the upload pool, each with what the listing said
 *   of it.
 * - Pipelining (all): each fetch worker hands an hour to the upload queue
 *   the moment the hour's file is complete, so uploads run while fetching
 *   goes on.  With --refresh every hour of the range is exported again
 *   and handed over with its stored object, for the upload pool to keep
 *   or replace (upload.h).
 * - Shutdown: planner joined, fetch pool joined (it ends by itself once
 *   every window is finished), then the upload queue is closed and the
 *   upload pool joined.  A cancel (signal, auth, disk) closes every queue.
 * - --dry-run: the same listing and plan, printed instead (run_plan.c).
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
#include "log.h"
#include "plan.h"
#include "progress.h"
#include "run.h"
#include "run_internal.h"
#include "runctl.h"
#include "store.h"
#include "upload.h"

int
run_refreshes(const struct config *cfg, amp_hour h)
{
	return (cfg->refresh && cfg->cmd != CMD_SYNC && h >= cfg->start &&
	    h <= cfg->end && plan_shard_of(h, cfg->shard_count) ==
	    cfg->shard_index);
}

struct upload_item
run_item(const struct listing *l, amp_hour h, enum upload_mode mode)
{
	const struct hsize *r = run_find(&l->remote, h);
	struct upload_item it = { .hour = h, .mode = mode };

	if (r != NULL) {
		it.stored = 1;
		it.obj = r->obj;
	}
	return (it);
}

/* What the fetch pool hands over in `all` and with --refresh. */
struct handoff {
	struct upload_pool *up;
	const struct listing *l;
	enum upload_mode mode;
};

/* Fetch pool callback: queue the finished hour with its stored object. */
static void
hour_to_upload(void *ctx, amp_hour h)
{
	const struct handoff *ho = ctx;
	struct upload_item it = run_item(ho->l, h, ho->mode);

	(void)upload_submit(ho->up, &it);
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

/* The summary's line about --refresh. */
static void
summary_refresh(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, int rc)
{
	if (!cfg->refresh)
		return;
	log_msg(lg, rc == 0 ? LOG_INFO : LOG_WARN, "refresh: %" PRIu64
	    " hours compared with the store: %" PRIu64 " unchanged, %"
	    PRIu64 " %s; %" PRIu64 " new", runctl_counter(ctl,
	    RUN_HOURS_CHECKED), runctl_counter(ctl, RUN_HOURS_UNCHANGED),
	    cfg->cmd == CMD_ALL ? runctl_counter(ctl, RUN_HOURS_REPLACED) :
	    runctl_counter(ctl, RUN_HOURS_CHANGED), cfg->cmd == CMD_ALL ?
	    "replaced" : "differ (kept in the data directory)",
	    runctl_counter(ctl, RUN_HOURS_NEW));
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
	if (runctl_counter(ctl, RUN_HOURS_CONFLICT) > 0 && !cfg->refresh)
		log_warn(lg, "hours in conflict keep their local copy; "
		    "`--refresh` exports them again and replaces the stored "
		    "objects that differ");
	summary_refresh(cfg, lg, ctl, rc);
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
		    (do_upload && run_find(&l->local, h) != NULL))
			stored++;
	}
	log_info(lg, "%zu hours on disk, %zu of this run's hours in %s",
	    l->local.n, stored, store ? store_describe(store) : "(no store)");
}

struct upload_opts
run_upload_opts(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, struct store *store)
{
	struct upload_opts uo = {
		.store = store, .data_dir = cfg->data_dir,
		.gzip = cfg->gzip,
		.workers = cfg->upload_workers,
		.fixed_concurrency = cfg->fixed_concurrency,
		.queue_cap = 2 * cfg->upload_workers + 2 * cfg->fetch_workers,
		.lg = lg, .ctl = ctl, .dry = cfg->dry_run,
	};

	return (uo);
}

int
run_coverage(const struct config *cfg, struct logger *lg,
    const struct listing *l, struct coverage *cov, size_t *already)
{
	size_t todo;

	if (coverage_init(cov, cfg->start, cfg->end)) {
		log_error(lg, "the range is too large to plan");
		return (EXIT_USAGE);
	}
	/* --refresh: every hour again, whatever is on disk or stored. */
	for (size_t i = 0; !cfg->refresh && i < l->local.n; i++)
		coverage_mark(cov, l->local.v[i].h, PLAN_LOCAL);
	for (size_t i = 0; !cfg->refresh && i < l->remote.n; i++)
		coverage_mark(cov, l->remote.v[i].h, PLAN_REMOTE);
	coverage_shard(cov, cfg->shard_index, cfg->shard_count);
	todo = coverage_count(cov, PLAN_ALL, 0);
	*already = cov->n - todo - coverage_count(cov, PLAN_ALL, PLAN_OTHER);
	if (cfg->shard_count > 1)
		log_info(lg, "shard %d/%d: %zu hours of the range are other "
		    "shards'", cfg->shard_index, cfg->shard_count,
		    coverage_count(cov, PLAN_ALL, PLAN_OTHER));
	log_info(lg, "range %zu hours: %zu complete, %zu to fetch%s", cov->n,
	    *already, todo, cfg->refresh ? " (--refresh: every hour again)" :
	    "");
	return (0);
}

static struct fetch_pool *
start_fetch(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct upload_pool *up, struct handoff *ho)
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
		.on_hour_ctx = ho,
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

void
run_queue_local(const struct config *cfg, struct upload_pool *up,
    const struct listing *l)
{
	for (size_t i = 0; i < l->local.n; i++) {
		amp_hour h = l->local.v[i].h;
		struct upload_item it;

		if (run_refreshes(cfg, h))
			continue;
		it = run_item(l, h, UPLOAD_SYNC);
		if (upload_submit(up, &it))
			break;
	}
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
	struct handoff ho = { .l = &l, .mode = !cfg->refresh ? UPLOAD_SYNC :
	    cfg->cmd == CMD_ALL ? UPLOAD_REFRESH : UPLOAD_CHECK };
	struct upload_opts uo;
	int do_fetch = cfg->cmd != CMD_SYNC, do_upload = cfg->cmd != CMD_FETCH;
	int planner_started = 0, rc;
	size_t already = 0;
	double peak;

	/* 1. What is there. */
	if ((rc = run_list(cfg, lg, store, do_fetch, do_upload, &l)) != 0)
		goto done;
	report_listing(cfg, lg, store, &l);
	if (cfg->dry_run) {
		rc = run_dry(cfg, lg, ctl, store, &l);
		goto done;
	}
	pg = start_progress(cfg, lg, ctl);
	rc = EXIT_PARTIAL;

	/* 2. The upload side (fetch --refresh: only compares). */
	if (do_upload || (cfg->refresh && store != NULL)) {
		uo = run_upload_opts(cfg, lg, ctl, store);
		if ((up = ho.up = upload_start(&uo)) == NULL)
			goto done;
	}

	/* 3. The fetch side. */
	if (do_fetch) {
		if ((rc = run_coverage(cfg, lg, &l, &cov, &already)) != 0)
			goto done;
		runctl_set_total_hours(ctl, coverage_count(&cov, PLAN_ALL, 0));
		rc = EXIT_PARTIAL;
		if ((fp = pl.fp = start_fetch(cfg, lg, ctl, up, &ho)) == NULL)
			goto done;
		planner_started = start_planner(&pl, ctl) == 0;
	}

	/* 4. Meanwhile: queue the hours already on disk for upload. */
	if (do_upload)
		run_queue_local(cfg, up, &l);

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
	run_listing_free(&l);
	return (rc);
}
