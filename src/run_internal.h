#ifndef AMP2S3_RUN_INTERNAL_H
#define AMP2S3_RUN_INTERNAL_H
/*
 * run_internal: what the files of the run module share (see run.h).
 * run.c carries a command out; run_list.c lists the data directory and
 * the store, and draws `status`; run_plan.c prints what a command would
 * do (--dry-run).
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"
#include "plan.h"
#include "store.h"
#include "upload.h"

struct config;
struct logger;
struct runctl;

/* Zip-bomb guards: JSON events compress about 5-20x; a member inflating
 * 1000x its size, or a single line of 64 MiB, is not an export; nor is
 * an answer of more than 100,000 members (a few per hour in practice),
 * which bounds what reading one costs in memory. */
#define RUN_MAX_RATIO 1000
#define RUN_MAX_LINE ((size_t)64 << 20)
#define RUN_MAX_MEMBERS 100000
#define PLAN_ALL (PLAN_LOCAL | PLAN_REMOTE | PLAN_OTHER)

/* Hours with their objects (a local hour: its size, no ETag), sorted by
 * hour once filled. */
struct hourset {
	struct hsize {
		amp_hour h;
		struct store_object obj;
	} *v;
	size_t n, cap;
	int oom;
};

/* What a run starts from: the hours on disk and those in the store. */
struct listing {
	struct hourset local, remote;
};

/* run_list.c */

/* run_find(s, h): the entry of ${h} in the sorted set ${s}, or NULL. */
const struct hsize *run_find(const struct hourset *s, amp_hour h);

/*
 * run_list(cfg, lg, store, range, with_local, l): fill ${l} with the
 * complete hours of the data directory, then (${store} not NULL) the
 * store's hours of the range (${range}) and of the local hours
 * (${with_local}), both sorted.  Returns 0 or the exit code of the
 * failure (logged).  The caller frees ${l} with run_listing_free().
 */
int run_list(const struct config *cfg, struct logger *lg,
    struct store *store, int range, int with_local, struct listing *l);
void run_listing_free(struct listing *l);

/* run.c */

/* run_refreshes(cfg, h): 1 if --refresh exports ${h} again (an hour of
 * the range and of this shard). */
int run_refreshes(const struct config *cfg, amp_hour h);

/* run_item(l, h, mode): the upload item of ${h}, with its stored object
 * if the listing ${l} has one. */
struct upload_item run_item(const struct listing *l, amp_hour h,
    enum upload_mode mode);

/*
 * run_coverage(cfg, lg, l, cov, already): the hours of the range to
 * fetch — neither on disk nor stored, or every one with --refresh — in
 * ${cov}; *${already}: hours complete.  0 or the exit code (logged).
 */
int run_coverage(const struct config *cfg, struct logger *lg,
    const struct listing *l, struct coverage *cov, size_t *already);

/* run_queue_local(cfg, up, l): queue the hours on disk for the upload
 * pool ${up}, in SYNC mode (those --refresh exports again are left to
 * their new export). */
void run_queue_local(const struct config *cfg, struct upload_pool *up,
    const struct listing *l);

/* run_upload_opts(cfg, lg, ctl, store): the upload pool's options. */
struct upload_opts run_upload_opts(const struct config *cfg,
    struct logger *lg, struct runctl *ctl, struct store *store);

/* run_plan.c */

/* run_dry(cfg, lg, ctl, store, l): print what the command would do (to
 * stdout; JSON with --json), changing nothing.  The exit code. */
int run_dry(const struct config *cfg, struct logger *lg, struct runctl *ctl,
    struct store *store, const struct listing *l);

#endif
