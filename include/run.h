#ifndef AMP2S3_RUN_H
#define AMP2S3_RUN_H
/*
 * run: one fetch, sync or all, from listing to summary.
 *
 * run_command() lists the data directory and the store, plans, starts the
 * planner thread and the worker pools, waits for them and returns the
 * process exit code (see README: 0, 1, 3, 5, 130, 143).  The caller holds
 * the data directory's lock and owns ${store} (NULL for a fetch without a
 * store).
 */
struct config;
struct logger;
struct runctl;
struct store;

#define EXIT_OK 0
#define EXIT_PARTIAL 1
#define EXIT_USAGE 2
#define EXIT_AUTH 3
#define EXIT_LOCKED 4
#define EXIT_IO 5
#define EXIT_SIGINT 130
#define EXIT_SIGTERM 143

int run_command(const struct config *cfg, struct logger *lg,
    struct runctl *ctl, struct store *store);

/*
 * run_status(cfg, lg, store): print the coverage of the range (stdout) from
 * the data directory and ${store} (may be NULL).  Returns 0 if no hour is
 * missing, 1 if some are, or an error exit code.
 */
int run_status(const struct config *cfg, struct logger *lg,
    struct store *store);

#endif
