#ifndef AMP2S3_STATUS_H
#define AMP2S3_STATUS_H
/*
 * status: coverage of a range at a glance, with no export request.
 *
 * Every hour of [start, end] is one of: in the store (with data), in the
 * store and empty (0 bytes), only local (a complete file not yet
 * uploaded), or missing.  status_print() draws one row per UTC day with 24
 * cells, coloured when ${color}, or writes one JSON object when ${json}.
 */
#include <stdint.h>
#include <stdio.h>

#include "hour.h"

enum status_cell { CELL_MISSING, CELL_LOCAL, CELL_EMPTY, CELL_STORED };

struct status_totals {
	uint64_t hours, stored, empty, local, missing;
};

/*
 * status_print(out, start, end, cells, where, json, color, totals): print
 * the grid for the ${end} - ${start} + 1 cells (one per hour, index 0 =
 * ${start}); ${where} describes the sources.  Fills *${totals}.  Returns
 * 0 or -1 (write error).
 */
int status_print(FILE *out, amp_hour start, amp_hour end,
    const uint8_t *cells, const char *where, int json, int color,
    struct status_totals *totals);

#endif
