/*
 * run_list: what a run starts from — the complete hours of the data
 * directory and the store's hours it covers — and `status`, which shows
 * them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "errbuf.h"
#include "localdir.h"
#include "log.h"
#include "run.h"
#include "run_internal.h"
#include "status.h"

static struct hsize *
hourset_next(struct hourset *s)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		struct hsize *nv = realloc(s->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			s->oom = 1;
			return (NULL);
		}
		s->v = nv;
		s->cap = ncap;
	}
	return (&s->v[s->n++]);
}

/* localdir_scan's callback: a local hour and its size. */
static void
add_local(void *ctx, amp_hour h, uint64_t size)
{
	struct hsize *e = hourset_next(ctx);

	if (e != NULL)
		*e = (struct hsize){ .h = h, .obj = { .size = size } };
}

/* store_list's callback: a stored hour and its object. */
static void
add_stored(void *ctx, amp_hour h, const struct store_object *obj)
{
	struct hsize *e = hourset_next(ctx);

	if (e != NULL)
		*e = (struct hsize){ .h = h, .obj = *obj };
}

static int
cmp_hour(const void *a, const void *b)
{
	amp_hour x = *(const amp_hour *)a, y = *(const amp_hour *)b;

	return ((x > y) - (x < y));
}

const struct hsize *
run_find(const struct hourset *s, amp_hour h)
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

void
run_listing_free(struct listing *l)
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

int
run_list(const struct config *cfg, struct logger *lg, struct store *store,
    int range, int with_local, struct listing *l)
{
	struct store_span *spans;
	enum store_status s;
	char err[600];
	size_t n;

	memset(l, 0, sizeof(*l));
	if (localdir_scan(cfg->data_dir, cfg->gzip, add_local, &l->local) &&
	    errno != ENOENT) {
		log_error(lg, "cannot read data directory %s: %s",
		    cfg->data_dir, ERRSTR(errno));
		return (EXIT_IO);
	}
	hourset_sort(&l->local);
	if (l->local.oom) {
		log_error(lg, "out of memory listing hours");
		return (EXIT_IO);
	}
	if (store == NULL)
		return (0);
	if (store_set_layout(store, cfg->key_template, cfg->gzip, err,
	    sizeof(err))) {
		log_error(lg, "%s", err);
		return (EXIT_USAGE);
	}
	if ((spans = spans_of(cfg, &l->local, range, with_local, &n)) ==
	    NULL) {
		log_error(lg, "out of memory listing hours");
		return (EXIT_IO);
	}
	s = store_list(store, spans, n, add_stored, &l->remote, err,
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

/* The cell of hour index ${i} of the range for `status`. */
static uint8_t
status_cell(const struct config *cfg, const struct listing *l,
    const struct store *store, size_t i)
{
	amp_hour h = cfg->start + (amp_hour)i;
	const struct hsize *r = run_find(&l->remote, h);
	const struct hsize *loc = run_find(&l->local, h);

	if (plan_shard_of(h, cfg->shard_count) != cfg->shard_index)
		return (CELL_OTHER);
	if (r != NULL && loc != NULL && r->obj.size != loc->obj.size)
		return (CELL_CONFLICT);
	if (r != NULL)
		return (r->obj.size > 0 ? CELL_STORED : CELL_EMPTY);
	if (loc == NULL)
		return (CELL_MISSING);
	if (store != NULL)
		return (CELL_LOCAL);
	return (loc->obj.size == 0 ? CELL_EMPTY : CELL_STORED);
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
	if ((rc = run_list(cfg, lg, store, 1, 0, &l)) != 0)
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
	run_listing_free(&l);
	return (rc);
}

