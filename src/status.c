/* status: draw a coverage map as a day-by-hour grid or as JSON. */
#include <stdio.h>
#include <string.h>

#include "status.h"

static const char SYM[] = { '-', 'L', '.', '#', ' ', 'C' };
static const char *const COLOR[] = { "\033[31m", "\033[33m", "\033[90m",
	"\033[32m", "", "\033[35m" };

/* 1 if hour ${x} is in [start, end] and not another shard's. */
static int
shown(amp_hour x, amp_hour start, amp_hour end, const uint8_t *cells)
{
	return (x >= start && x <= end && cells[x - start] != CELL_OTHER);
}

/* 1 if day ${d} holds at least one shown hour. */
static int
day_shown(amp_hour d, amp_hour start, amp_hour end, const uint8_t *cells)
{
	for (int h = 0; h < 24; h++)
		if (shown(d + h, start, end, cells))
			return (1);
	return (0);
}

/* JSON string body for a string that holds no quote or control byte
 * except what we escape here. */
static void
json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void
count(const uint8_t *cells, size_t n, struct status_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		t->hours += cells[i] != CELL_OTHER;
		switch (cells[i]) {
		case CELL_STORED:
			t->stored++;
			break;
		case CELL_EMPTY:
			t->stored++; /* complete: in the store or local */
			t->empty++;
			break;
		case CELL_LOCAL:
			t->local++;
			break;
		case CELL_CONFLICT:
			t->conflict++;
			break;
		case CELL_OTHER:
			break;
		default:
			t->missing++;
		}
	}
}

/* A JSON array of the hours whose cell is ${which}. */
static void
hours_json(FILE *out, amp_hour start, amp_hour end, const uint8_t *cells,
    enum status_cell which)
{
	char a[HOUR_API_LEN];
	int first = 1;

	fputc('[', out);
	for (amp_hour x = start; x <= end; x++) {
		if (cells[x - start] != which)
			continue;
		hour_format_api(x, a);
		fprintf(out, "%s\"%s\"", first ? "" : ",", a);
		first = 0;
	}
	fputc(']', out);
}

static int
print_json(FILE *out, amp_hour start, amp_hour end, const uint8_t *cells,
    const char *where, const char *shard, const struct status_totals *t)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN], date[11];
	amp_hour day0 = start - ((start % 24) + 24) % 24;
	int first = 1;

	hour_format_api(start, a);
	hour_format_api(end, b);
	fprintf(out, "{\"start\":\"%s\",\"end\":\"%s\",\"source\":", a, b);
	json_str(out, where);
	if (shard != NULL) {
		fputs(",\"shard\":", out);
		json_str(out, shard);
	}
	fprintf(out, ",\"hours\":%llu,\"complete\":%llu,\"empty\":%llu,"
	    "\"local_only\":%llu,\"missing\":%llu,\"conflict\":%llu,"
	    "\"days\":[", (unsigned long long)t->hours,
	    (unsigned long long)t->stored, (unsigned long long)t->empty,
	    (unsigned long long)t->local, (unsigned long long)t->missing,
	    (unsigned long long)t->conflict);
	for (amp_hour d = day0; d <= end; d += 24) {
		char row[25];
		if (!day_shown(d, start, end, cells))
			continue;
		for (int h = 0; h < 24; h++) {
			amp_hour x = d + h;
			row[h] = shown(x, start, end, cells) ?
			    SYM[cells[x - start]] : ' ';
		}
		row[24] = '\0';
		hour_format_date(d, date);
		fprintf(out, "%s{\"date\":\"%s\",\"cells\":\"%s\"}",
		    first ? "" : ",", date, row);
		first = 0;
	}
	fputs("],\"missing_hours\":", out);
	hours_json(out, start, end, cells, CELL_MISSING);
	fputs(",\"conflict_hours\":", out);
	hours_json(out, start, end, cells, CELL_CONFLICT);
	fputs("}\n", out);
	return (0);
}

int
status_print(FILE *out, amp_hour start, amp_hour end,
    const uint8_t *cells, const char *where, const char *shard, int json,
    int color, struct status_totals *t)
{
	char a[HOUR_API_LEN], b[HOUR_API_LEN], date[11];
	amp_hour day0 = start - ((start % 24) + 24) % 24;

	count(cells, (size_t)(end - start + 1), t);
	if (json)
		print_json(out, start, end, cells, where, shard, t);
	else {
		hour_format_api(start, a);
		hour_format_api(end, b);
		fprintf(out, "coverage %s..%s%s%s (%llu hours) in %s\n", a, b,
		    shard != NULL ? ", shard " : "", shard != NULL ? shard : "",
		    (unsigned long long)t->hours, where);
		fprintf(out, "%-11s", "UTC");
		/* One column per hour: a label every third hour. */
		for (int h = 0; h < 24; h += 3)
			fprintf(out, h < 21 ? "%02d " : "%02d", h);
		fputc('\n', out);
		for (amp_hour d = day0; d <= end; d += 24) {
			int done = 0, span = 0;
			if (!day_shown(d, start, end, cells))
				continue;
			hour_format_date(d, date);
			fprintf(out, "%-11s", date);
			for (int h = 0; h < 24; h++) {
				amp_hour x = d + h;
				if (!shown(x, start, end, cells)) {
					fputc(' ', out);
					continue;
				}
				span++;
				enum status_cell c = cells[x - start];
				done += c != CELL_MISSING && c != CELL_CONFLICT;
				if (color)
					fprintf(out, "%s%c\033[0m", COLOR[c],
					    SYM[c]);
				else
					fputc(SYM[c], out);
			}
			fprintf(out, "  %2d/%d\n", done, span);
		}
		fprintf(out, "legend: %c %s  %c %s (0 bytes)  %c %s  %c %s",
		    SYM[CELL_STORED], "stored", SYM[CELL_EMPTY], "empty",
		    SYM[CELL_LOCAL], "local only (not uploaded)",
		    SYM[CELL_MISSING], "missing");
		if (t->conflict)
			fprintf(out, "  %c %s", SYM[CELL_CONFLICT], "conflict "
			    "(local and stored sizes differ; both kept)");
		fprintf(out, "\ntotals: %llu complete (%llu empty), %llu "
		    "local only, %llu missing, ", (unsigned long long)t->stored,
		    (unsigned long long)t->empty,
		    (unsigned long long)t->local,
		    (unsigned long long)t->missing);
		if (t->conflict)
			fprintf(out, "%llu in conflict, ",
			    (unsigned long long)t->conflict);
		fprintf(out, "of %llu hours\n", (unsigned long long)t->hours);
	}
	return (fflush(out) == 0 && !ferror(out) ? 0 : -1);
}
