/* metrics: Prometheus textfile output, written atomically. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "runctl.h"

#define LAST_OK "amp2s3_last_success_timestamp_seconds"

/* The previous file's last-success timestamp, or 0. */
static int64_t
previous_success(const char *path)
{
	char line[256];
	int64_t v = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return (0);
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

int
metrics_write(const char *path, struct runctl *ctl, int exit_code,
    int64_t started_s, int64_t now_s, char *err, size_t errlen)
{
	struct run_stats *s = &ctl->st;
	char tmp[4096];
	int64_t last_ok;
	FILE *f;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "metrics file path too long");
		return (-1);
	}
	last_ok = exit_code == 0 ? now_s : previous_success(path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
	    0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "cannot write metrics %s: %s", tmp,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return (-1);
	}
	counter(f, "amp2s3_hours_fetched", "Hours fetched with events in the "
	    "last run.", "gauge", atomic_load(&s->hours_data));
	counter(f, "amp2s3_hours_empty", "Hours fetched empty in the last run.",
	    "gauge", atomic_load(&s->hours_empty));
	counter(f, "amp2s3_hours_failed", "Hours given up on in the last run.",
	    "gauge", atomic_load(&s->hours_failed));
	counter(f, "amp2s3_hours_uploaded", "Hours stored in the last run.",
	    "gauge", atomic_load(&s->uploads));
	counter(f, "amp2s3_uploads_failed", "Uploads failed in the last run.",
	    "gauge", atomic_load(&s->upload_failed));
	counter(f, "amp2s3_local_removed", "Local hours found already stored "
	    "and removed in the last run.", "gauge",
	    atomic_load(&s->local_removed));
	counter(f, "amp2s3_bytes_downloaded", "Export answer bytes in the last "
	    "run.", "gauge", atomic_load(&s->bytes_zip));
	counter(f, "amp2s3_answers_reread", "Export answers that could not "
	    "be unpacked while downloading (member order, zip layout) and were "
	    "read again from the complete file, in the last run.", "gauge",
	    atomic_load(&s->reread));
	counter(f, "amp2s3_bytes_written", "JSONL bytes written in the last "
	    "run.", "gauge", atomic_load(&s->bytes_out));
	counter(f, "amp2s3_bytes_uploaded", "Bytes stored in the last run.",
	    "gauge", atomic_load(&s->upload_bytes));
	counter(f, "amp2s3_events", "Events written in the last run.", "gauge",
	    atomic_load(&s->events));
	counter(f, "amp2s3_requests", "Export requests in the last run.",
	    "gauge", atomic_load(&s->requests));
	counter(f, "amp2s3_window_splits", "Windows split in halves (504/400) "
	    "in the last run.", "gauge", atomic_load(&s->splits));
	fprintf(f, "# HELP amp2s3_retries Export requests repeated in the last "
	    "run, by the HTTP status that caused them (0: transport error).\n"
	    "# TYPE amp2s3_retries gauge\n");
	fprintf(f, "amp2s3_retries{code=\"0\"} %" PRIu64 "\n",
	    (uint64_t)atomic_load(&s->retry_by_code[0]));
	for (int c = 100; c < 600; c++) {
		uint64_t v = atomic_load(&s->retry_by_code[c]);
		if (v)
			fprintf(f, "amp2s3_retries{code=\"%d\"} %" PRIu64 "\n",
			    c, v);
	}
	fprintf(f, "# HELP amp2s3_run_duration_seconds Wall time of the last "
	    "run.\n# TYPE amp2s3_run_duration_seconds gauge\n"
	    "amp2s3_run_duration_seconds %.3f\n",
	    (double)(runctl_now_ms() - ctl->t0_ms) / 1000.0);
	counter(f, "amp2s3_exit_code", "Exit code of the last run.", "gauge",
	    (uint64_t)exit_code);
	counter(f, "amp2s3_last_run_timestamp_seconds", "When the last run "
	    "started (Unix time).", "gauge", (uint64_t)started_s);
	counter(f, LAST_OK, "When a run last ended with exit code 0 (Unix "
	    "time; 0: never).", "gauge", (uint64_t)last_ok);
	if (fflush(f) || ferror(f) || fsync(fileno(f))) {
		snprintf(err, errlen, "cannot write metrics %s: %s", tmp,
		    strerror(errno));
		fclose(f);
		unlink(tmp);
		return (-1);
	}
	if (fclose(f) || rename(tmp, path)) {
		snprintf(err, errlen, "cannot write metrics %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		return (-1);
	}
	return (0);
}
