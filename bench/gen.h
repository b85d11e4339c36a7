#ifndef BENCH_GEN_H
#define BENCH_GEN_H
/*
 * gen: the benchmarks' deterministic synthetic Amplitude events.
 *
 * One data set is fixed by (seed, project, events per hour, parts per hour,
 * gzip level): every event is a pure function of (seed, hour, index), so the
 * bench server, limits.c and any later run see byte-identical data.  Events
 * are one JSON object per line, about 1 KB, with the fields the Export API
 * documents; server_upload_time lies inside the hour and grows with the
 * index.  Part k of an hour holds events [k*E/K, (k+1)*E/K).
 *
 * Thread-safety: every function is reentrant (no hidden state).
 */
#include <stddef.h>
#include <stdint.h>

struct gen_params {
	uint64_t seed;
	uint64_t project;
	uint64_t events_per_hour;
	uint32_t parts;     /* parts (gzip members) per hour, >= 1 */
	int level;          /* gzip level 1..9 */
};

/* The longest line gen_event() writes, newline included. */
#define GEN_EVENT_MAX 2048

/*
 * gen_event(p, hour, i, buf): write event ${i} of the hour starting at
 * ${hour} (seconds since the epoch, a multiple of 3600) into ${buf}, which
 * holds at least GEN_EVENT_MAX bytes, newline included.  Returns its length.
 */
size_t gen_event(const struct gen_params *p, int64_t hour, uint64_t i,
    char *buf);

/* gen_part_range(p, part, &first, &end): the event indices of ${part}. */
void gen_part_range(const struct gen_params *p, uint32_t part,
    uint64_t *first, uint64_t *end);

/*
 * gen_part_gz(p, hour, part, &out, &outlen, &rawlen): one part as a gzip
 * member (mtime 0, so deterministic), built in a streaming way: memory is
 * the compressed size plus a small buffer.  *${out} is malloc'ed (caller
 * frees).  *${rawlen} gets the uncompressed (JSONL) length.  Returns 0 or
 * -1 (out of memory / zlib error).
 */
int gen_part_gz(const struct gen_params *p, int64_t hour, uint32_t part,
    uint8_t **out, size_t *outlen, uint64_t *rawlen);

/* gen_parse_hour("YYYYMMDDTHH", &t): 0, or -1 if malformed. */
int gen_parse_hour(const char *s, int64_t *t);

/* gen_format_hour(t, buf): "YYYYMMDDTHH" into ${buf} (12 bytes). */
void gen_format_hour(int64_t t, char buf[12]);

/* gen_now(): a monotonic clock in seconds. */
double gen_now(void);

#endif
