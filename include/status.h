#ifndef AMP2S3_STATUS_H
#define AMP2S3_STATUS_H
/*
 * status: coverage of a range at a glance, with no export request.
 *
 * Every hour of [start, end] is one of: in the store (with data), in the
 * store and empty (0 bytes), only local (a complete file not yet
 * uploaded), in conflict (a local file and a stored object of another
 * size: both kept, to be repaired by a re-export), or missing.
 * status_print() draws one row per UTC day with 24 cells, coloured when
 * ${color}, or writes one JSON object when ${json}.
 */
#include <stdint.h>
#include <stdio.h>

#include "hour.h"

enum status_cell { CELL_MISSING, CELL_LOCAL, CELL_EMPTY, CELL_STORED,
	CELL_OTHER, /* another shard's hour: not shown, not counted */
	CELL_CONFLICT };

struct status_totals {
	uint64_t hours, stored, empty, local, missing, conflict;
};

/*
 * status_print(out, start, end, cells, where, shard, json, color, totals):
 * print the grid for the ${end} - ${start} + 1 cells (one per hour, index
 * 0 = ${start}); ${where} describes the sources; ${shard} ("K/N", or NULL
 * when not sharded) is named in the header.  Days whose every cell is
 * CELL_OTHER are left out, and CELL_OTHER cells count nowhere (shards are
 * whole UTC days).  Fills *${totals}.  Returns 0 or -1 (write error).
 */
int status_print(FILE *out, amp_hour start, amp_hour end,
    const uint8_t *cells, const char *where, const char *shard, int json,
    int color, struct status_totals *totals);

#endif
