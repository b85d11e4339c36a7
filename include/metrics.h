#ifndef AMP2S3_METRICS_H
#define AMP2S3_METRICS_H
/*
 * metrics: the run's counters in Prometheus text format, for
 * node_exporter's textfile collector.
 *
 * metrics_write() writes the whole file under a temporary name in the same
 * directory and renames it, so the collector never reads half a file.
 * amp2s3_last_success_timestamp_seconds survives failed runs: it is read
 * back from the previous file and kept unless this run succeeded.
 */
#include <stddef.h>
#include <stdint.h>

struct runctl;

/*
 * metrics_write(path, ctl, exit_code, started_s, now_s, err, errlen):
 * write the metrics of the run described by ${ctl}.  Returns 0 or -1 with
 * a one-line reason in ${err}.
 */
int metrics_write(const char *path, struct runctl *ctl, int exit_code,
    int64_t started_s, int64_t now_s, char *err, size_t errlen);

#endif
