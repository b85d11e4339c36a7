/* metrics: Prometheus textfile output, written atomically (atomicfile). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomicfile.h"
#include "errbuf.h"
#include "metrics.h"
#include "runctl.h"

#define LAST_OK "amp2s3_last_success_timestamp_seconds"

/* The previous file's last-success timestamp, or 0.  A symlink put in
 * its place is not followed (the new file replaces the link itself). */
static int64_t
previous_success(const char *path)
{
	char line[256];
	int64_t v = 0;
	FILE *f;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return (0);
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return (0);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = sizeof(LAST_OK) - 1;
		if (strncmp(line, LAST_OK, n) == 0 && line[n] == ' ') {
			v = strtoll(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return (v < 0 ? 0 : v);
}

static void
counter(FILE *f, const char *name, const char *help, const char *type,
    uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help,
	    name, type, name, v);
}

/* The run's counters as one gauge each. */
static const struct {
	const char *name, *help;
	enum run_counter c;
} GAUGES[] = {
	{ "amp2s3_hours_fetched", "Hours fetched with events in the last "
	  "run.", RUN_HOURS_DATA },
	{ "amp2s3_hours_empty", "Hours fetched empty in the last run.",
	  RUN_HOURS_EMPTY },
	{ "amp2s3_hours_failed", "Hours given up on in the last run.",
	  RUN_HOURS_FAILED },
	{ "amp2s3_hours_uploaded", "Hours stored in the last run.",
	  RUN_UPLOADS },
	{ "amp2s3_uploads_failed", "Uploads failed in the last run.",
	  RUN_UPLOAD_FAILED },
	{ "amp2s3_local_removed", "Local hours found already stored and "
	  "removed in the last run.", RUN_LOCAL_REMOVED },
	{ "amp2s3_hours_conflict", "Local hours whose stored object has "
	  "other bytes, both kept, in the last run.", RUN_HOURS_CONFLICT },
	{ "amp2s3_hours_checked", "Local hours compared with their stored "
	  "object in the last run.", RUN_HOURS_CHECKED },
	{ "amp2s3_hours_unchanged", "Refresh runs: hours exported again and "
	  "found equal to their stored object in the last run.",
	  RUN_HOURS_UNCHANGED },
	{ "amp2s3_hours_replaced", "Refresh runs: stored objects replaced by a "
	  "new export that differed, in the last run.", RUN_HOURS_REPLACED },
	{ "amp2s3_hours_new", "Refresh runs: hours exported again that the store "
	  "lacked, in the last run.", RUN_HOURS_NEW },
	{ "amp2s3_hours_changed", "Refresh runs of fetch: exports kept in the data "
	  "directory because they differ from the stored object, in the last "
	  "run.", RUN_HOURS_CHANGED },
	{ "amp2s3_bytes_downloaded", "Export answer bytes in the last run.",
	  RUN_BYTES_ZIP },
	{ "amp2s3_answers_reread", "Export answers that could not be "
	  "unpacked while downloading (member order, zip layout) and were "
	  "read again from the complete file, in the last run.", RUN_REREAD },
	{ "amp2s3_bytes_written", "JSONL bytes written in the last run.",
	  RUN_BYTES_OUT },
	{ "amp2s3_bytes_uploaded", "Bytes stored in the last run.",
	  RUN_UPLOAD_BYTES },
	{ "amp2s3_events", "Events written in the last run.", RUN_EVENTS },
	{ "amp2s3_requests", "Export requests in the last run.",
	  RUN_REQUESTS },
	{ "amp2s3_window_splits", "Windows split in halves (504/400) in the "
	  "last run.", RUN_SPLITS },
	{ "amp2s3_fetch_limit_decreases", "Times the fetch pool lowered its "
	  "concurrency limit (429) in the last run.", RUN_FETCH_LIMIT_DOWN },
	{ "amp2s3_fetch_limit_increases", "Times the fetch pool raised its "
	  "concurrency limit in the last run.", RUN_FETCH_LIMIT_UP },
	{ "amp2s3_upload_limit_decreases", "Times the upload pool lowered its "
	  "concurrency limit (S3 SlowDown) in the last run.",
	  RUN_UPLOAD_LIMIT_DOWN },
	{ "amp2s3_upload_limit_increases", "Times the upload pool raised its "
	  "concurrency limit in the last run.", RUN_UPLOAD_LIMIT_UP },
};

/* The run's gauges, as they were at its end. */
static const struct {
	const char *name, *help;
	enum run_gauge g;
} LEVELS[] = {
	{ "amp2s3_fetch_concurrency_limit", "Export requests the fetch pool "
	  "allowed at once at the end of the last run (0: no fetch).",
	  RUN_FETCH_LIMIT },
	{ "amp2s3_fetch_concurrency_ceiling", "The most export requests at "
	  "once (-j) in the last run (0: no fetch).", RUN_FETCH_CEILING },
	{ "amp2s3_upload_concurrency_limit", "Uploads the upload pool allowed "
	  "at once at the end of the last run (0: no upload).",
	  RUN_UPLOAD_LIMIT },
	{ "amp2s3_upload_concurrency_ceiling", "The most uploads at once (-u) "
	  "in the last run (0: no upload).", RUN_UPLOAD_CEILING },
};

/* The whole file's text into ${f}. */
static void
render(FILE *f, struct runctl *ctl, int exit_code, int64_t started_s,
    int64_t last_ok)
{
	for (size_t i = 0; i < sizeof(GAUGES) / sizeof(GAUGES[0]); i++)
		counter(f, GAUGES[i].name, GAUGES[i].help, "gauge",
		    runctl_counter(ctl, GAUGES[i].c));
	for (size_t i = 0; i < sizeof(LEVELS) / sizeof(LEVELS[0]); i++)
		counter(f, LEVELS[i].name, LEVELS[i].help, "gauge",
		    (uint64_t)runctl_gauge(ctl, LEVELS[i].g));
	fprintf(f, "# HELP amp2s3_retries Export requests repeated in the last "
	    "run, by the HTTP status that caused them (0: transport error).\n"
	    "# TYPE amp2s3_retries gauge\n");
	fprintf(f, "amp2s3_retries{code=\"0\"} %" PRIu64 "\n",
	    runctl_retries_by(ctl, 0));
	for (int c = 100; c < RUNCTL_MAX_CODE; c++) {
		uint64_t v = runctl_retries_by(ctl, c);
		if (v)
			fprintf(f, "amp2s3_retries{code=\"%d\"} %" PRIu64 "\n",
			    c, v);
	}
	fprintf(f, "# HELP amp2s3_run_duration_seconds Wall time of the last "
	    "run.\n# TYPE amp2s3_run_duration_seconds gauge\n"
	    "amp2s3_run_duration_seconds %.3f\n",
	    (double)runctl_elapsed_ms(ctl) / 1000.0);
	counter(f, "amp2s3_exit_code", "Exit code of the last run.", "gauge",
	    (uint64_t)exit_code);
	counter(f, "amp2s3_last_run_timestamp_seconds", "When the last run "
	    "started (Unix time).", "gauge", (uint64_t)started_s);
	counter(f, LAST_OK, "When a run last ended with exit code 0 (Unix "
	    "time; 0: never).", "gauge", (uint64_t)last_ok);
}

int
metrics_write(const char *path, struct runctl *ctl, int exit_code,
    int64_t started_s, int64_t now_s, char *err, size_t errlen)
{
	struct afile *af;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if ((f = open_memstream(&text, &len)) == NULL)
		return (errbuf_set(err, errlen, "cannot write metrics: %s",
		    ERRSTR(errno)));
	render(f, ctl, exit_code, started_s, exit_code == 0 ? now_s :
	    previous_success(path));
	if (fclose(f) != 0) {
		free(text);
		return (errbuf_set(err, errlen, "cannot write metrics: %s",
		    ERRSTR(errno)));
	}
	/* Readable by the collector, which often runs as another user. */
	if ((af = afile_create(path, 0644, 0, err, errlen)) == NULL) {
		free(text);
		return (-1);
	}
	if (afile_write(af, text, len, err, errlen) != 0) {
		afile_abort(af);
		free(text);
		return (-1);
	}
	free(text);
	rc = afile_commit(af, err, errlen);
	return (rc);
}
