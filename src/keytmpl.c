/*
 * keytmpl: object key layout, hour <-> key (see keytmpl.h).
 *
 * The template is parsed once into tokens: literal runs ({prefix} is
 * substituted into them at parse time, the suffix appended) and fixed-width
 * fields.  Formatting writes the tokens out; matching walks them over the
 * key (literals byte for byte, fields as digits), builds the hour, and
 * accepts the key only if formatting that hour gives the key back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "keytmpl.h"

enum tok_kind { T_LIT, T_DATE, T_HOUR, T_YEAR, T_MONTH, T_DAY };

struct tok {
	enum tok_kind kind;
	char *lit;      /* T_LIT */
	size_t len;     /* T_LIT: bytes; fields: width */
};

struct keytmpl {
	struct tok *tok;
	size_t ntok;
	char *list_prefix;
	int slashes;
	size_t keylen;  /* every key has this length */
};

static const struct {
	const char *name;
	enum tok_kind kind;
	size_t width;
} FIELDS[] = {
	{ "date", T_DATE, 10 }, { "hour", T_HOUR, 2 }, { "year", T_YEAR, 4 },
	{ "month", T_MONTH, 2 }, { "day", T_DAY, 2 },
};
#define NFIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

void
keytmpl_free(struct keytmpl *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->ntok; i++)
		free(t->tok[i].lit);
	free(t->tok);
	free(t->list_prefix);
	free(t);
}

/* Append ${n} bytes of literal text (merged into a last literal). */
static int
add_lit(struct keytmpl *t, const char *s, size_t n)
{
	struct tok *last = t->ntok > 0 ? &t->tok[t->ntok - 1] : NULL;
	char *p;

	if (n == 0)
		return (0);
	if (last == NULL || last->kind != T_LIT) {
		struct tok *nt = realloc(t->tok, (t->ntok + 1) * sizeof(*nt));
		if (nt == NULL)
			return (-1);
		t->tok = nt;
		last = &t->tok[t->ntok++];
		last->kind = T_LIT;
		last->lit = NULL;
		last->len = 0;
	}
	if ((p = realloc(last->lit, last->len + n + 1)) == NULL)
		return (-1);
	memcpy(p + last->len, s, n);
	last->len += n;
	p[last->len] = '\0';
	last->lit = p;
	return (0);
}

static int
add_field(struct keytmpl *t, enum tok_kind kind, size_t width)
{
	struct tok *nt = realloc(t->tok, (t->ntok + 1) * sizeof(*nt));

	if (nt == NULL)
		return (-1);
	t->tok = nt;
	t->tok[t->ntok++] = (struct tok){ .kind = kind, .lit = NULL,
	    .len = width };
	return (0);
}

/* ${name} (at most 24 bytes of it) as printable text in ${buf}. */
static const char *
shown(const char *name, size_t n, char *buf, size_t len)
{
	return (errbuf_escape(name, n < 24 ? n : 24, buf, len));
}

/* Path checks for a folder store, on one formatted key. */
static int
check_dir_key(const char *key, char *err, size_t errlen)
{
	const char *seg = key, *slash;

	if (key[0] == '/') {
		errbuf_set(err, errlen, "a key must not start with '/' for a "
		    "folder store");
		return (-1);
	}
	for (;;) {
		size_t n;

		slash = strchr(seg, '/');
		n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.')) {
			errbuf_set(err, errlen, "key '%.200s' has an empty, '.' or "
			    "'..' path segment, which a folder store "
			    "cannot hold", key);
			return (-1);
		}
		if (slash == NULL)
			return (0);
		seg = slash + 1;
	}
}

#define PLACEHOLDERS "(placeholders are {prefix} {date} {hour} {year} " \
    "{month} {day})"

/* The placeholder "{...}" of ${len} bytes at ${name} into ${t}; *${seen}
 * gains its field's bit.  0 or -1 (${err} set). */
static int
add_placeholder(struct keytmpl *t, const char *name, size_t len,
    const char *prefix, unsigned *seen, char *err, size_t errlen)
{
	char nb[128];
	size_t i;

	if (len == 6 && memcmp(name, "prefix", 6) == 0)
		return (add_lit(t, prefix, strlen(prefix)) ?
		    errbuf_set(err, errlen, "out of memory") : 0);
	for (i = 0; i < NFIELDS; i++)
		if (strlen(FIELDS[i].name) == len &&
		    memcmp(FIELDS[i].name, name, len) == 0)
			break;
	if (i == NFIELDS)
		return (errbuf_set(err, errlen, "unknown placeholder {%s} "
		    PLACEHOLDERS, shown(name, len, nb, sizeof(nb))));
	if (add_field(t, FIELDS[i].kind, FIELDS[i].width))
		return (errbuf_set(err, errlen, "out of memory"));
	*seen |= 1u << FIELDS[i].kind;
	return (0);
}

/* Step 1: ${tmpl} into ${t}'s tokens; *${seen}: the fields named.  0 or
 * -1 (${err} set). */
static int
tokenize(struct keytmpl *t, const char *tmpl, const char *prefix,
    unsigned *seen, char *err, size_t errlen)
{
	const char *p, *close;
	size_t len;

	for (p = tmpl; *p != '\0';) {
		if (*p == '}')
			return (errbuf_set(err, errlen, "stray '}' at offset %zu "
			    PLACEHOLDERS, (size_t)(p - tmpl)));
		if (*p != '{') {
			len = strcspn(p, "{}");
			if (add_lit(t, p, len))
				return (errbuf_set(err, errlen,
				    "out of memory"));
			p += len;
			continue;
		}
		if ((close = strchr(p + 1, '}')) == NULL ||
		    memchr(p + 1, '{', (size_t)(close - p - 1)) != NULL)
			return (errbuf_set(err, errlen, "unclosed '{' at offset "
			    "%zu", (size_t)(p - tmpl)));
		if (add_placeholder(t, p + 1, (size_t)(close - p - 1), prefix,
		    seen, err, errlen))
			return (-1);
		p = close + 1;
	}
	return (0);
}

/* Step 2: the template names the hour, and its key (before the suffix)
 * does not end in ".gz" or '/'.  0 or -1. */
static int
check_shape(const struct keytmpl *t, const char *tmpl, unsigned seen,
    char *err, size_t errlen)
{
	const struct tok *last;

	if (!(seen & (1u << T_HOUR)) || !((seen & (1u << T_DATE)) ||
	    ((seen & (1u << T_YEAR)) && (seen & (1u << T_MONTH)) &&
	    (seen & (1u << T_DAY)))))
		return (errbuf_set(err, errlen, "'%.200s' does not name the "
		    "hour: it needs {hour} and either {date} or {year}, "
		    "{month} and {day}", tmpl));
	last = &t->tok[t->ntok - 1]; /* a field at least: ntok >= 1 */
	if (last->kind == T_LIT && last->len >= 3 &&
	    memcmp(last->lit + last->len - 3, ".gz", 3) == 0)
		return (errbuf_set(err, errlen, "'%.200s' ends in .gz: leave it "
		    "out, gzip output appends .gz to the key", tmpl));
	if (last->kind == T_LIT && last->lit[last->len - 1] == '/')
		return (errbuf_set(err, errlen, "'%.200s' ends with '/': the key "
		    "must name an object, e.g. .../part.jsonl", tmpl));
	return (0);
}

/* Step 3: what follows from the tokens: the constant prefix, the
 * slashes, the key length.  0 or -1. */
static int
derive(struct keytmpl *t, char *err, size_t errlen)
{
	t->list_prefix = strdup(t->tok[0].kind == T_LIT ? t->tok[0].lit : "");
	if (t->list_prefix == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	for (size_t i = 0; i < t->ntok; i++) {
		t->keylen += t->tok[i].len;
		if (t->tok[i].kind == T_LIT)
			for (size_t k = 0; k < t->tok[i].len; k++)
				t->slashes += t->tok[i].lit[k] == '/';
	}
	if (t->keylen > KEYTMPL_MAX_KEY)
		return (errbuf_set(err, errlen, "keys would be %zu bytes long; "
		    "S3 allows %d", t->keylen, KEYTMPL_MAX_KEY));
	return (0);
}

/* Step 4: a key, formatted, holds no control character, and (${for_dir})
 * is a safe relative path.  0 or -1. */
static int
check_keys(const struct keytmpl *t, int for_dir, char *err, size_t errlen)
{
	char *key;
	int rc = -1, n;

	if ((key = malloc(t->keylen + 1)) == NULL)
		return (errbuf_set(err, errlen, "out of memory"));
	if ((n = keytmpl_format(t, HOUR_MIN, key, t->keylen + 1)) < 0) {
		errbuf_set(err, errlen, "internal: key length");
		goto out;
	}
	for (size_t i = 0; key[i] != '\0'; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c < 0x20 || c == 0x7f) {
			errbuf_set(err, errlen, "the key holds a control "
			    "character (byte %zu)", i);
			goto out;
		}
	}
	if (for_dir && check_dir_key(key, err, errlen))
		goto out;
	if (for_dir && t->slashes > KEYTMPL_MAX_DIR_DEPTH) {
		errbuf_set(err, errlen, "keys are %d directories deep; a folder "
		    "store allows %d", t->slashes,
		    KEYTMPL_MAX_DIR_DEPTH);
		goto out;
	}
	rc = 0;
out:
	free(key);
	return (rc);
}

struct keytmpl *
keytmpl_parse(const char *tmpl, const char *prefix, const char *suffix,
    int for_dir, char *err, size_t errlen)
{
	struct keytmpl *t;
	unsigned seen = 0;

	if (tmpl == NULL || tmpl[0] == '\0') {
		errbuf_set(err, errlen, "the template is empty");
		return (NULL);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return (NULL);
	}
	if (tokenize(t, tmpl, prefix != NULL ? prefix : "", &seen, err,
	    errlen) != 0 ||
	    check_shape(t, tmpl, seen, err, errlen) != 0)
		goto fail;
	if (add_lit(t, suffix != NULL ? suffix : "", suffix != NULL ?
	    strlen(suffix) : 0)) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	if (derive(t, err, errlen) != 0 ||
	    check_keys(t, for_dir, err, errlen) != 0)
		goto fail;
	return (t);
fail:
	keytmpl_free(t);
	return (NULL);
}

int
keytmpl_check(const char *tmpl, const char *prefix, int gzip, int for_dir,
    char *err, size_t errlen)
{
	struct keytmpl *t;

	if ((t = keytmpl_parse(tmpl, prefix, gzip ? ".gz" : "", for_dir, err,
	    errlen)) == NULL)
		return (-1);
	keytmpl_free(t);
	return (0);
}

/* ${v} as exactly ${w} decimal digits at ${p}. */
static void
put_num(char *p, int v, size_t w)
{
	for (size_t i = w; i > 0; i--) {
		p[i - 1] = (char)('0' + v % 10);
		v /= 10;
	}
}

int
keytmpl_format(const struct keytmpl *t, amp_hour hour, char *buf,
    size_t len)
{
	int y, mo, d, h;
	char *p = buf;

	if (len < t->keylen + 1) {
		if (len > 0)
			buf[0] = '\0';
		return (-1);
	}
	hour_to_ymdh(hour, &y, &mo, &d, &h);
	for (size_t i = 0; i < t->ntok; i++) {
		const struct tok *k = &t->tok[i];

		switch (k->kind) {
		case T_LIT:
			memcpy(p, k->lit, k->len);
			break;
		case T_DATE:
			put_num(p, y, 4);
			p[4] = '-';
			put_num(p + 5, mo, 2);
			p[7] = '-';
			put_num(p + 8, d, 2);
			break;
		case T_YEAR:
			put_num(p, y, 4);
			break;
		case T_MONTH:
			put_num(p, mo, 2);
			break;
		case T_DAY:
			put_num(p, d, 2);
			break;
		case T_HOUR:
			put_num(p, h, 2);
			break;
		}
		p += k->len;
	}
	*p = '\0';
	return ((int)t->keylen);
}

/* Exactly ${w} digits at ${s}: their value, or -1. */
static int
get_num(const char *s, size_t w)
{
	int v = 0;

	for (size_t i = 0; i < w; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	return (v);
}

int
keytmpl_match(const struct keytmpl *t, const char *key, size_t len,
    amp_hour *out)
{
	char back[KEYTMPL_MAX_KEY + 1];
	int y = -1, mo = -1, d = -1, h = -1;
	size_t pos = 0;
	amp_hour hr;

	if (len != t->keylen)
		return (-1);
	for (size_t i = 0; i < t->ntok; i++) {
		const struct tok *k = &t->tok[i];
		const char *s = key + pos;

		switch (k->kind) {
		case T_LIT:
			if (memcmp(s, k->lit, k->len) != 0)
				return (-1);
			break;
		case T_DATE:
			if (s[4] != '-' || s[7] != '-')
				return (-1);
			y = get_num(s, 4);
			mo = get_num(s + 5, 2);
			d = get_num(s + 8, 2);
			break;
		case T_YEAR:
			y = get_num(s, 4);
			break;
		case T_MONTH:
			mo = get_num(s, 2);
			break;
		case T_DAY:
			d = get_num(s, 2);
			break;
		case T_HOUR:
			h = get_num(s, 2);
			break;
		}
		pos += k->len;
	}
	if (y < 0 || mo < 0 || d < 0 || h < 0 ||
	    hour_from_ymdh(y, mo, d, h, &hr) != 0)
		return (-1);
	/* Repeated fields must agree: the key must be the hour's key. */
	if (keytmpl_format(t, hr, back, sizeof(back)) < 0 ||
	    memcmp(back, key, len) != 0)
		return (-1);
	*out = hr;
	return (0);
}

const char *
keytmpl_list_prefix(const struct keytmpl *t)
{
	return (t->list_prefix);
}

int
keytmpl_span_prefix(const struct keytmpl *t, amp_hour first, amp_hour last,
    char *buf, size_t len)
{
	char key[KEYTMPL_MAX_KEY + 1];
	size_t n, floor = strlen(t->list_prefix);

	if (first > last || keytmpl_format(t, first, buf, len) < 0)
		return (-1);
	n = t->keylen;
	for (amp_hour h = first + 1; h <= last && n > floor; h++) {
		size_t i = floor;

		(void)keytmpl_format(t, h, key, sizeof(key));
		while (i < n && key[i] == buf[i])
			i++;
		n = i;
	}
	buf[n] = '\0';
	return ((int)n);
}

int
keytmpl_slashes(const struct keytmpl *t)
{
	return (t->slashes);
}
