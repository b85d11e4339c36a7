/*
 * run_plan: --dry-run — the listing and the plan of a command, printed
 * instead of carried out.
 *
 * The plan is what the command would do: the windows the planner would
 * request (cut exactly as it would cut them when the run starts), and for
 * every local hour the upload pool's verdict (upload, delete because the
 * store provably holds its bytes, or conflict), found by the pool itself
 * in its dry mode, which reads (the store's objects where a proof needs
 * them, the local files) but writes, uploads and deletes nothing.  No
 * export request is sent.  With --refresh, the hours of the range that
 * would be exported again and compared.
 *
 * DESIGN: the upload pool's workers report verdicts from their threads;
 * ${mu} guards the list they go into.  It is read only after the pool
 * was joined.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "config.h"
#include "errbuf.h"
#include "localdir.h"
#include "log.h"
#include "run.h"
#include "run_internal.h"
#include "runctl.h"

/* One local hour's verdict. */
struct vrec {
	amp_hour h;
	enum upload_verdict v;
	uint64_t local, stored;
};

/* The plan of a dry run. */
struct plan {
	pthread_mutex_t mu;       /* v, n, cap, oom */
	struct vrec *v;
	size_t n, cap;
	int oom;
	struct window *win;       /* the windows to request */
	size_t nwin, fetch_hours;
	size_t refresh_stored, refresh_new;
};

static void
on_verdict(void *ctx, const struct upload_item *it, enum upload_verdict v,
    uint64_t local_size)
{
	struct plan *pl = ctx;

	pthread_mutex_lock(&pl->mu);
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? 2 * pl->cap : 64;
		struct vrec *nv = realloc(pl->v, cap * sizeof(*nv));

		if (nv == NULL) {
			pl->oom = 1;
			pthread_mutex_unlock(&pl->mu);
			return;
		}
		pl->v = nv;
		pl->cap = cap;
	}
	pl->v[pl->n++] = (struct vrec){ it->hour, v, local_size,
	    it->stored ? it->obj.size : 0 };
	pthread_mutex_unlock(&pl->mu);
}

static int
cmp_vrec(const void *a, const void *b)
{
	const struct vrec *x = a, *y = b;

	return ((x->h > y->h) - (x->h < y->h));
}

/* The windows the planner would request, as it would cut them. */
static int
plan_windows(const struct config *cfg, struct logger *lg,
    const struct listing *l, struct plan *pl)
{
	struct coverage cov = { 0 };
	struct window w;
	size_t pos = 0, already, cap = 0;
	int size, rc;

	if ((rc = run_coverage(cfg, lg, l, &cov, &already)) != 0)
		return (rc);
	pl->fetch_hours = coverage_count(&cov, PLAN_ALL, 0);
	size = plan_window_size(pl->fetch_hours, cfg->fetch_workers,
	    cfg->max_window_hours);
	while (plan_next(&cov, &pos, size, &w)) {
		if (pl->nwin == cap) {
			struct window *nw;

			cap = cap ? 2 * cap : 64;
			if ((nw = realloc(pl->win, cap * sizeof(*nw))) == NULL) {
				coverage_free(&cov);
				log_error(lg, "out of memory planning");
				return (EXIT_IO);
			}
			pl->win = nw;
		}
		pl->win[pl->nwin++] = w;
	}
	coverage_free(&cov);
	return (0);
}

/* The verdict of every local hour, from the upload pool in dry mode. */
static int
plan_local(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct store *store, const struct listing *l, struct plan *pl)
{
	struct upload_opts uo = run_upload_opts(cfg, lg, ctl, store);
	struct upload_pool *up;

	uo.dry = 1;
	uo.verdict = on_verdict;
	uo.verdict_ctx = pl;
	if ((up = upload_start(&uo)) == NULL)
		return (EXIT_IO);
	run_queue_local(cfg, up, l);
	upload_close(up);
	upload_join(up);
	if (pl->oom) {
		log_error(lg, "out of memory planning");
		return (EXIT_IO);
	}
	if (pl->n > 1)
		qsort(pl->v, pl->n, sizeof(*pl->v), cmp_vrec);
	return (runctl_cancelled(ctl) ? EXIT_PARTIAL : 0);
}

/* --refresh: the stored and the new hours of the range it exports. */
static void
plan_refresh(const struct config *cfg, const struct listing *l,
    struct plan *pl)
{
	for (amp_hour h = cfg->start; cfg->refresh && h <= cfg->end; h++) {
		if (!run_refreshes(cfg, h))
			continue;
		if (run_find(&l->remote, h) != NULL)
			pl->refresh_stored++;
		else
			pl->refresh_new++;
	}
}

static size_t
count_of(const struct plan *pl, int (*pred)(enum upload_verdict))
{
	size_t n = 0;

	for (size_t i = 0; i < pl->n; i++)
		n += pred(pl->v[i].v);
	return (n);
}

static int
is_upload(enum upload_verdict v)
{
	return (v == UPLOAD_NOT_STORED);
}

static int
is_delete(enum upload_verdict v)
{
	return (v == UPLOAD_SAME);
}

static int
is_conflict(enum upload_verdict v)
{
	return (v != UPLOAD_NOT_STORED && v != UPLOAD_SAME);
}

static const char *
why_of(enum upload_verdict v)
{
	return (v == UPLOAD_OTHER_SIZE ? "other size" : v == UPLOAD_OTHER_BYTES
	    ? "same size, other bytes" : "cannot be compared");
}

static const char *
command_name(const struct config *cfg)
{
	return (cfg->cmd == CMD_FETCH ? "fetch" : cfg->cmd == CMD_SYNC ?
	    "sync" : "all");
}

static void
print_text(const struct config *cfg, const struct store *store,
    const struct plan *pl)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN], f[HOUR_FILE_LEN], path[4096];

	hour_format_api(cfg->start, a);
	hour_format_api(cfg->end, b);
	printf("dry run: %s %s..%s%s, store %s, data directory %s/\n",
	    command_name(cfg), a, b, cfg->refresh ? " --refresh" : "",
	    store_describe(store), cfg->data_dir);
	if (cfg->cmd != CMD_SYNC)
		printf("fetch: %zu hours in %zu windows\n", pl->fetch_hours,
		    pl->nwin);
	for (size_t i = 0; i < pl->nwin; i++) {
		hour_format_api(pl->win[i].first, a);
		hour_format_api(pl->win[i].first + pl->win[i].n - 1, b);
		printf("  %s..%s (%d hours)\n", a, b, pl->win[i].n);
	}
	if (cfg->cmd == CMD_FETCH)
		goto refresh;
	printf("upload: %zu local hours the store lacks\n",
	    count_of(pl, is_upload));
	for (size_t i = 0; i < pl->n; i++) {
		if (!is_upload(pl->v[i].v))
			continue;
		hour_format_file(pl->v[i].h, f);
		printf("  %s (%" PRIu64 " bytes)\n", f, pl->v[i].local);
	}
	printf("delete: %zu local copies the store holds with the same "
	    "bytes\n", count_of(pl, is_delete));
	for (size_t i = 0; i < pl->n; i++) {
		if (!is_delete(pl->v[i].v) || localdir_path(cfg->data_dir,
		    cfg->gzip, pl->v[i].h, path, sizeof(path)))
			continue;
		printf("  %s\n", path);
	}
	printf("conflict: %zu local hours whose stored object differs (both "
	    "kept)\n", count_of(pl, is_conflict));
	for (size_t i = 0; i < pl->n; i++) {
		if (!is_conflict(pl->v[i].v))
			continue;
		hour_format_file(pl->v[i].h, f);
		printf("  %s: local %" PRIu64 " bytes, stored %" PRIu64
		    " bytes (%s)\n", f, pl->v[i].local, pl->v[i].stored,
		    why_of(pl->v[i].v));
	}
refresh:
	if (cfg->refresh)
		printf("refresh: %zu stored hours exported again and compared "
		    "(%s where they differ), %zu not stored\n",
		    pl->refresh_stored, cfg->cmd == CMD_ALL ? "replaced" :
		    "kept in the data directory", pl->refresh_new);
	printf("nothing was requested, written, uploaded or deleted "
	    "(--dry-run)\n");
}

/* yajl_gen helpers: a string, a number. */
static void
gs(yajl_gen g, const char *s)
{
	(void)yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void
gn(yajl_gen g, uint64_t v)
{
	(void)yajl_gen_integer(g, (long long)v);
}

static void
json_windows(yajl_gen g, const struct plan *pl)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN];

	gs(g, "fetch");
	yajl_gen_map_open(g);
	gs(g, "hours");
	gn(g, pl->fetch_hours);
	gs(g, "windows");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < pl->nwin; i++) {
		hour_format_api(pl->win[i].first, a);
		hour_format_api(pl->win[i].first + pl->win[i].n - 1, b);
		yajl_gen_map_open(g);
		gs(g, "start");
		gs(g, a);
		gs(g, "end");
		gs(g, b);
		gs(g, "hours");
		gn(g, (uint64_t)pl->win[i].n);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

/* The local hours of the verdicts ${pred} picks, under ${name}. */
static void
json_hours(yajl_gen g, const char *name, const struct plan *pl,
    int (*pred)(enum upload_verdict))
{
	char a[HOUR_API_LEN];

	gs(g, name);
	yajl_gen_array_open(g);
	for (size_t i = 0; i < pl->n; i++) {
		if (!pred(pl->v[i].v))
			continue;
		hour_format_api(pl->v[i].h, a);
		yajl_gen_map_open(g);
		gs(g, "hour");
		gs(g, a);
		gs(g, "local_bytes");
		gn(g, pl->v[i].local);
		if (pl->v[i].v != UPLOAD_NOT_STORED) {
			gs(g, "stored_bytes");
			gn(g, pl->v[i].stored);
		}
		if (is_conflict(pl->v[i].v)) {
			gs(g, "why");
			gs(g, why_of(pl->v[i].v));
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static int
print_json(const struct config *cfg, const struct store *store,
    const struct plan *pl)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN];
	const unsigned char *buf;
	size_t len;
	yajl_gen g;
	int rc;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return (-1);
	hour_format_api(cfg->start, a);
	hour_format_api(cfg->end, b);
	yajl_gen_map_open(g);
	gs(g, "dry_run");
	yajl_gen_bool(g, 1);
	gs(g, "command");
	gs(g, command_name(cfg));
	gs(g, "refresh");
	yajl_gen_bool(g, cfg->refresh);
	gs(g, "start");
	gs(g, a);
	gs(g, "end");
	gs(g, b);
	gs(g, "store");
	gs(g, store_describe(store));
	if (cfg->cmd != CMD_SYNC)
		json_windows(g, pl);
	json_hours(g, "upload", pl, is_upload);
	json_hours(g, "delete", pl, is_delete);
	json_hours(g, "conflict", pl, is_conflict);
	if (cfg->refresh) {
		gs(g, "refresh_stored");
		gn(g, pl->refresh_stored);
		gs(g, "refresh_new");
		gn(g, pl->refresh_new);
	}
	yajl_gen_map_close(g);
	rc = yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok &&
	    fwrite(buf, 1, len, stdout) == len && fputc('\n', stdout) != EOF ?
	    0 : -1;
	yajl_gen_free(g);
	return (rc);
}

int
run_dry(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct store *store, const struct listing *l)
{
	struct plan pl = { .n = 0 };
	int rc = 0;

	if ((rc = pthread_mutex_init(&pl.mu, NULL)) != 0) {
		log_error(lg, "pthread_mutex_init: %s", ERRSTR(rc));
		return (EXIT_IO);
	}
	if (cfg->cmd != CMD_SYNC)
		rc = plan_windows(cfg, lg, l, &pl);
	if (rc == 0 && cfg->cmd != CMD_FETCH)
		rc = plan_local(cfg, lg, ctl, store, l, &pl);
	plan_refresh(cfg, l, &pl);
	if (rc == 0) {
		if (cfg->json)
			rc = print_json(cfg, store, &pl);
		else
			print_text(cfg, store, &pl);
		if (rc != 0 || fflush(stdout) != 0 || ferror(stdout)) {
			log_error(lg, "cannot write to standard output");
			rc = EXIT_IO;
		}
	}
	pthread_mutex_destroy(&pl.mu);
	free(pl.v);
	free(pl.win);
	return (rc);
}
