#ifndef AMP2S3_MEMBER_H
#define AMP2S3_MEMBER_H
/*
 * member: the names of the Export API's zip members, parsed strictly.
 *
 *   "<project>/<project>_<YYYY-MM-DD>_<H>#<part>.json.gz"
 *
 * project all digits and equal in both places, H 0..23 (one or two
 * digits), part a decimal number.  The name is matched on its raw bytes
 * with their length, so a NUL, a control byte, a "../" or a second
 * directory simply fails to match; a name is never used as a path.
 *
 * Thread-safety: pure.
 */
#include <stddef.h>
#include <stdint.h>

#include "hour.h"

struct member_name {
	uint64_t project;
	amp_hour hour;
	uint64_t part;
};

/*
 * member_parse(name, len, out): parse the ${len} bytes at ${name} (which
 * may hold NULs or anything else).  Returns 0 with *${out} set, or -1.
 */
int member_parse(const char *name, size_t len, struct member_name *out);

#endif
