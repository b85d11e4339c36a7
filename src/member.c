/*
 * member: strict parser of Export API zip member names (see member.h).
 *
 * The name is matched left to right; numbers are parsed with an overflow
 * check; the calendar check is hour_from_ymdh's.
 */
#include <string.h>

#include "member.h"

/*
 * Parse the run of decimal digits at s[*pos..len) into *${v}: 1..${maxd}
 * digits, no overflow.  Returns the number of digits and advances *${pos},
 * or returns 0 (no digit, too many, overflow).
 */
static size_t
digits(const char *s, size_t len, size_t *pos, size_t maxd, uint64_t *v)
{
	size_t i = *pos, n = 0;
	uint64_t x = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');

		if (n == maxd || x > (UINT64_MAX - d) / 10)
			return (0);
		x = x * 10 + d;
		i++;
		n++;
	}
	if (n == 0)
		return (0);
	*pos = i;
	*v = x;
	return (n);
}

/* Exactly ${n} digits at s[*pos..len) (a longer run fails). */
static int
fixed(const char *s, size_t len, size_t *pos, size_t n, uint64_t *v)
{
	size_t p = *pos;

	if (digits(s, len, &p, n, v) != n)
		return (-1);
	*pos = p;
	return (0);
}

/* The literal ${lit} at s[*pos..len). */
static int
lit(const char *s, size_t len, size_t *pos, const char *l)
{
	size_t n = strlen(l);

	if (len - *pos < n || memcmp(s + *pos, l, n) != 0)
		return (-1);
	*pos += n;
	return (0);
}

int
member_parse(const char *name, size_t len, struct member_name *out)
{
	size_t pos = 0, p1, n1, p2, n2;
	uint64_t proj, proj2, y, mo, d, h, part;
	amp_hour hr;

	p1 = pos;
	if ((n1 = digits(name, len, &pos, 20, &proj)) == 0)
		return (-1);
	if (lit(name, len, &pos, "/"))
		return (-1);
	p2 = pos;
	if ((n2 = digits(name, len, &pos, 20, &proj2)) == 0)
		return (-1);
	if (n1 != n2 || memcmp(name + p1, name + p2, n1) != 0)
		return (-1);
	if (lit(name, len, &pos, "_") ||
	    fixed(name, len, &pos, 4, &y) || lit(name, len, &pos, "-") ||
	    fixed(name, len, &pos, 2, &mo) || lit(name, len, &pos, "-") ||
	    fixed(name, len, &pos, 2, &d) || lit(name, len, &pos, "_"))
		return (-1);
	if (digits(name, len, &pos, 2, &h) == 0 || h > 23)
		return (-1);
	if (lit(name, len, &pos, "#"))
		return (-1);
	if (digits(name, len, &pos, 20, &part) == 0)
		return (-1);
	if (lit(name, len, &pos, ".json.gz") || pos != len)
		return (-1);
	if (hour_from_ymdh((int)y, (int)mo, (int)d, (int)h, &hr))
		return (-1);
	out->project = proj;
	out->hour = hr;
	out->part = part;
	return (0);
}
