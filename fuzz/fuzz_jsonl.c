/*
 * fuzz_jsonl: the streaming JSONL validator that unpack runs on every
 * inflated byte, fed the same stream whole and in small pieces.
 *
 * Input: byte 0 chooses the piece sizes (a seed), byte 1 the line limit
 * (0: none, else 1..255 bytes); the rest is the stream.  Properties:
 *   - the verdict (status of the first failing call, or of
 *     jsonl_finish), the line count and the need-newline flag do not
 *     depend on how the stream was cut — except that a line both too
 *     long and invalid may be reported as either, depending on which
 *     the validator saw first;
 *   - on success the line count is the number of newlines, plus one if
 *     the last line lacked its newline (which need_nl then reports);
 *   - an error message is one line of printable ASCII;
 *   - after jsonl_reset the handle validates a good line again.
 */
#include <string.h>

#include "fuzz.h"
#include "jsonl.h"

struct verdict {
	enum jsonl_status st;
	uint64_t lines;
	int need_nl;
};

/* Validate ${len} bytes at ${p} with pieces drawn from ${seed} (0: all at
 * once). */
static struct verdict
run(const unsigned char *p, size_t len, size_t max_line, unsigned seed)
{
	struct verdict v = { JSONL_OK, 0, 0 };
	struct jsonl *j;
	size_t off = 0, n;
	uint32_t x = seed * 2654435761u + 1;

	FUZZ_CHECK((j = jsonl_new(max_line)) != NULL);
	while (off < len && v.st == JSONL_OK) {
		if (seed == 0) {
			n = len;
		} else {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			n = 1 + x % 7;
			if (n > len - off)
				n = len - off;
		}
		v.st = jsonl_feed(j, p + off, n);
		off += n;
	}
	if (v.st == JSONL_OK)
		v.st = jsonl_finish(j, &v.need_nl);
	v.lines = jsonl_lines(j);
	FUZZ_CHECK(fuzz_printable(jsonl_error(j)));
	FUZZ_CHECK((v.st == JSONL_OK) == (jsonl_error(j)[0] == '\0'));
	if (v.st != JSONL_OK) {
		/* Usable again after a reset. */
		int nl;

		jsonl_reset(j);
		if (max_line == 0 || max_line >= 19) {
			FUZZ_CHECK(jsonl_feed(j, "{\"a\":[1,2.5e3,\"x\"]}\n",
			    20) == JSONL_OK);
			FUZZ_CHECK(jsonl_finish(j, &nl) == JSONL_OK &&
			    nl == 0);
		}
	}
	jsonl_free(j);
	return (v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verdict a, b;
	size_t max_line, i, nls = 0;

	if (size < 2)
		return (0);
	max_line = data[1];
	a = run(data + 2, size - 2, max_line, 0);
	b = run(data + 2, size - 2, max_line, (unsigned)data[0] + 1);
	FUZZ_CHECK(a.lines == b.lines && a.need_nl == b.need_nl);
	FUZZ_CHECK(a.st == b.st ||
	    ((a.st == JSONL_LONG || a.st == JSONL_BAD) &&
	    (b.st == JSONL_LONG || b.st == JSONL_BAD)));
	if (a.st == JSONL_OK) {
		for (i = 2; i < size; i++)
			nls += data[i] == '\n';
		FUZZ_CHECK(a.lines == nls + (uint64_t)a.need_nl);
		FUZZ_CHECK(a.need_nl == (size > 2 && data[size - 1] != '\n'));
	}
	return (0);
}
