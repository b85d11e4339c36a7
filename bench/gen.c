/*
 * gen.c: deterministic synthetic Amplitude events (see gen.h).
 *
 * The entropy is chosen to compress like real event data: two random
 * UUIDs per event (uuid, $insert_id), a user drawn from a pool of 50,000
 * (whose device, amplitude id, platform and properties follow from the
 * user), a handful of vocabularies, and timestamps that advance through
 * the hour.  At gzip level 6 an event of about 1 KB compresses to about
 * 200 bytes.
 */
#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct rng {
	uint64_t s;
};

static uint64_t
rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return mix64(r->s);
}

static uint32_t
rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rng_next(r) % n);
}

/* A small appender: the caller guarantees GEN_EVENT_MAX bytes of room. */
struct out {
	char *p;
};

static void
put(struct out *o, const char *s)
{
	size_t n = strlen(s);
	memcpy(o->p, s, n);
	o->p += n;
}

static void
putu(struct out *o, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o->p++ = tmp[--n];
}

static void
putu_pad(struct out *o, uint64_t v, int width)
{
	char tmp[24];
	int n = 0;
	while (n < width || v) {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	}
	while (n)
		*o->p++ = tmp[--n];
}

static void
put_uuid(struct out *o, uint64_t a, uint64_t b)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t by[16];
	for (int i = 0; i < 8; i++) {
		by[i] = (uint8_t)(a >> (8 * i));
		by[8 + i] = (uint8_t)(b >> (8 * i));
	}
	by[6] = (uint8_t)((by[6] & 0x0f) | 0x40);
	by[8] = (uint8_t)((by[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o->p++ = '-';
		*o->p++ = hex[by[i] >> 4];
		*o->p++ = hex[by[i] & 15];
	}
}

/* "YYYY-MM-DD HH:MM:SS.ffffff" for ${us} microseconds since the epoch. */
static void
put_ts(struct out *o, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	putu_pad(o, (uint64_t)tm.tm_year + 1900, 4);
	*o->p++ = '-';
	putu_pad(o, (uint64_t)tm.tm_mon + 1, 2);
	*o->p++ = '-';
	putu_pad(o, (uint64_t)tm.tm_mday, 2);
	*o->p++ = ' ';
	putu_pad(o, (uint64_t)tm.tm_hour, 2);
	*o->p++ = ':';
	putu_pad(o, (uint64_t)tm.tm_min, 2);
	*o->p++ = ':';
	putu_pad(o, (uint64_t)tm.tm_sec, 2);
	*o->p++ = '.';
	putu_pad(o, (uint64_t)(us % 1000000), 6);
}

static void
put_str_field(struct out *o, const char *key, const char *val)
{
	*o->p++ = '"';
	put(o, key);
	put(o, "\":\"");
	put(o, val);
	*o->p++ = '"';
}

static const char *const EVENT_TYPES[] = {
	"session_start", "session_end", "page_view", "button_click",
	"add_to_cart", "remove_from_cart", "checkout_started",
	"checkout_completed", "search", "video_play", "video_pause",
	"signup", "login", "logout", "share", "notification_open",
	"settings_changed", "error_shown", "[Amplitude] Page Viewed",
	"[Amplitude] Element Clicked",
};
#define NTYPES (sizeof EVENT_TYPES / sizeof EVENT_TYPES[0])

static const char *const PLATFORMS[] = { "Web", "iOS", "Android" };
static const char *const OS_NAMES[] = { "Chrome", "ios", "android",
	"Firefox", "Safari", "Edge" };
static const char *const DEVICES[] = { "Apple iPhone", "Samsung Galaxy S23",
	"Google Pixel 8", "Mac", "Windows", "Linux", "Apple iPad" };
static const char *const COUNTRIES[][3] = {
	{ "United Kingdom", "England", "London" },
	{ "United States", "California", "San Francisco" },
	{ "Germany", "Berlin", "Berlin" },
	{ "France", "Ile-de-France", "Paris" },
	{ "Switzerland", "Zurich", "Z\xc3\xbcrich" },
	{ "Japan", "Tokyo", "T\xc5\x8dky\xc5\x8d" },
	{ "Brazil", "Sao Paulo", "S\xc3\xa3o Paulo" },
	{ "India", "Karnataka", "Bengaluru" },
};
#define NCOUNTRIES (sizeof COUNTRIES / sizeof COUNTRIES[0])
static const char *const LANGS[] = { "English", "German", "French",
	"Japanese", "Portuguese", "Hindi" };
static const char *const REFERRERS[] = { "https://www.google.com/",
	"https://news.ycombinator.com/", "https://t.co/", "direct",
	"https://www.bing.com/", "https://duckduckgo.com/" };
static const char *const PLANS[] = { "free", "starter", "growth",
	"enterprise" };
#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

size_t
gen_event(const struct gen_params *p, int64_t hour, uint64_t i, char *buf)
{
	struct rng r = { mix64(p->seed ^ mix64((uint64_t)hour ^ mix64(i))) };
	struct out o = { buf };
	uint64_t e = p->events_per_hour ? p->events_per_hour : 1;
	/* Upload times spread evenly over the hour, jittered, increasing. */
	int64_t slot = (int64_t)(3600000000ULL / e);
	int64_t up_us = hour * 1000000 + (int64_t)i * slot +
	    (slot > 1 ? (int64_t)rng_below(&r, (uint32_t)(slot > 0x7fffffff ?
	    0x7fffffff : slot)) : 0);
	int64_t ev_us = up_us - (int64_t)rng_below(&r, 300000000);
	uint32_t user = rng_below(&r, 50000);
	struct rng ur = { mix64(p->seed ^ 0x5eed ^ user) };
	uint64_t dev_a = rng_next(&ur), dev_b = rng_next(&ur);
	uint32_t plat = rng_below(&ur, N(PLATFORMS));
	uint32_t osn = rng_below(&ur, N(OS_NAMES));
	uint32_t dev = rng_below(&ur, N(DEVICES));
	uint32_t ctry = rng_below(&ur, NCOUNTRIES);
	uint32_t lang = rng_below(&ur, N(LANGS));
	uint32_t plan = rng_below(&ur, N(PLANS));
	uint32_t cohort = rng_below(&ur, 40);
	uint32_t ip = (uint32_t)rng_next(&ur);
	uint32_t osv = rng_below(&ur, 8) + 10;
	uint32_t smon = rng_below(&ur, 12) + 1, sday = rng_below(&ur, 28) + 1;
	uint32_t exp1 = rng_below(&ur, 30), exp2 = rng_below(&ur, 30);
	uint32_t ver = rng_below(&ur, 20);
	int64_t session_ms = ev_us / 1000 - (int64_t)rng_below(&r, 1800000);

	put(&o, "{\"uuid\":\"");
	put_uuid(&o, rng_next(&r), rng_next(&r));
	put(&o, "\",\"$insert_id\":\"");
	put_uuid(&o, rng_next(&r), rng_next(&r));
	put(&o, "\",");
	put_str_field(&o, "event_type", EVENT_TYPES[rng_below(&r, NTYPES)]);
	put(&o, ",\"event_time\":\"");
	put_ts(&o, ev_us);
	put(&o, "\",\"server_upload_time\":\"");
	put_ts(&o, up_us);
	put(&o, "\",\"client_event_time\":\"");
	put_ts(&o, ev_us - 1500);
	put(&o, "\",\"client_upload_time\":\"");
	put_ts(&o, up_us - 2300);
	put(&o, "\",\"processed_time\":\"");
	put_ts(&o, up_us + 41000);
	put(&o, "\",\"server_received_time\":\"");
	put_ts(&o, up_us - 120);
	put(&o, "\",\"user_id\":\"user-");
	putu_pad(&o, user, 6);
	put(&o, "\",\"device_id\":\"");
	put_uuid(&o, dev_a, dev_b);
	put(&o, "\",\"amplitude_id\":");
	putu(&o, 100000000000ULL + user * 7919ULL);
	put(&o, ",\"session_id\":");
	putu(&o, (uint64_t)session_ms);
	put(&o, ",\"event_id\":");
	putu(&o, rng_below(&r, 5000));
	put(&o, ",\"app\":");
	putu(&o, p->project);
	put(&o, ",");
	put_str_field(&o, "platform", PLATFORMS[plat]);
	put(&o, ",");
	put_str_field(&o, "os_name", OS_NAMES[osn]);
	put(&o, ",\"os_version\":\"");
	putu(&o, osv);
	put(&o, "\",");
	put_str_field(&o, "device_family", DEVICES[dev]);
	put(&o, ",");
	put_str_field(&o, "country", COUNTRIES[ctry][0]);
	put(&o, ",");
	put_str_field(&o, "region", COUNTRIES[ctry][1]);
	put(&o, ",");
	put_str_field(&o, "city", COUNTRIES[ctry][2]);
	put(&o, ",");
	put_str_field(&o, "language", LANGS[lang]);
	put(&o, ",\"ip_address\":\"");
	putu(&o, ip >> 24);
	*o.p++ = '.';
	putu(&o, (ip >> 16) & 255);
	*o.p++ = '.';
	putu(&o, (ip >> 8) & 255);
	*o.p++ = '.';
	putu(&o, ip & 255);
	put(&o, "\",\"library\":\"amplitude-ts/2.5.1\",\"version_name\":\"4.");
	putu(&o, ver);
	put(&o, ".0\",\"start_version\":\"3.");
	putu(&o, ver / 3);
	put(&o, ".1\",\"event_properties\":{\"page\":\"/p/");
	putu(&o, rng_below(&r, 2000));
	put(&o, "\",");
	put_str_field(&o, "referrer", REFERRERS[rng_below(&r, N(REFERRERS))]);
	put(&o, ",\"duration_ms\":");
	putu(&o, rng_below(&r, 120000));
	put(&o, ",\"items\":[");
	putu(&o, rng_below(&r, 10000));
	*o.p++ = ',';
	putu(&o, rng_below(&r, 10000));
	*o.p++ = ',';
	putu(&o, rng_below(&r, 10000));
	put(&o, "],\"value\":");
	putu(&o, rng_below(&r, 500));
	*o.p++ = '.';
	putu_pad(&o, rng_below(&r, 100), 2);
	put(&o, ",\"flag\":");
	put(&o, rng_below(&r, 2) ? "true" : "false");
	put(&o, ",\"note\":null},\"user_properties\":{");
	put_str_field(&o, "plan", PLANS[plan]);
	put(&o, ",\"cohort\":\"c");
	putu(&o, cohort);
	put(&o, "\",\"signup_date\":\"2023-");
	putu_pad(&o, smon, 2);
	*o.p++ = '-';
	putu_pad(&o, sday, 2);
	put(&o, "\",\"experiments\":[\"exp-");
	putu(&o, exp1);
	put(&o, "\",\"exp-");
	putu(&o, exp2);
	put(&o, "\"]},\"groups\":{},\"group_properties\":{},"
	    "\"data\":{\"path\":\"/2/httpapi\",\"user_properties_updated\":"
	    "false},\"is_attribution_event\":false,\"sample_rate\":null}\n");
	return (size_t)(o.p - buf);
}

void
gen_part_range(const struct gen_params *p, uint32_t part, uint64_t *first,
    uint64_t *end)
{
	uint32_t k = p->parts ? p->parts : 1;
	*first = p->events_per_hour * part / k;
	*end = p->events_per_hour * (part + 1) / k;
}

int
gen_part_gz(const struct gen_params *p, int64_t hour, uint32_t part,
    uint8_t **out, size_t *outlen, uint64_t *rawlen)
{
	enum { INBUF = 256 * 1024 };
	z_stream z;
	uint64_t i, end, raw = 0;
	char *in = NULL;
	uint8_t *buf = NULL;
	size_t cap, used = 0, fill = 0;
	int rc = -1;

	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, p->level, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	gen_part_range(p, part, &i, &end);
	cap = (size_t)((end - i) * 260 + 4096);
	if ((in = malloc(INBUF)) == NULL || (buf = malloc(cap)) == NULL)
		goto done;
	for (;;) {
		int last = i >= end;
		while (!last && fill + GEN_EVENT_MAX <= INBUF && i < end)
			fill += gen_event(p, hour, i++, in + fill);
		last = i >= end;
		raw += fill;
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)fill;
		for (;;) {
			int zr;
			if (cap - used < 65536) {
				uint8_t *nb = realloc(buf, cap * 2);
				if (nb == NULL)
					goto done;
				buf = nb;
				cap *= 2;
			}
			z.next_out = buf + used;
			z.avail_out = (uInt)(cap - used > 0x40000000 ?
			    0x40000000 : cap - used);
			size_t before = z.avail_out;
			zr = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
			used += before - z.avail_out;
			if (zr == Z_STREAM_END)
				break;
			if (zr != Z_OK && zr != Z_BUF_ERROR)
				goto done;
			if (!last && z.avail_in == 0)
				break;
		}
		fill = 0;
		if (last)
			break;
	}
	*out = buf;
	*outlen = used;
	*rawlen = raw;
	buf = NULL;
	rc = 0;
done:
	deflateEnd(&z);
	free(in);
	free(buf);
	return rc;
}

int
gen_parse_hour(const char *s, int64_t *t)
{
	struct tm tm;
	int v[4];
	if (strlen(s) != 11 || s[8] != 'T')
		return -1;
	for (int k = 0; k < 11; k++)
		if (k != 8 && (s[k] < '0' || s[k] > '9'))
			return -1;
	if (sscanf(s, "%4d%2d%2dT%2d", &v[0], &v[1], &v[2], &v[3]) != 4)
		return -1;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	*t = (int64_t)timegm(&tm);
	/* Reject dates that timegm normalised (Feb 30 ...). */
	{
		time_t tt = (time_t)*t;
		struct tm back;
		gmtime_r(&tt, &back);
		if (back.tm_mday != v[2] || back.tm_mon != v[1] - 1)
			return -1;
	}
	return 0;
}

void
gen_format_hour(int64_t t, char buf[12])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(buf, 12, "%04u%02u%02uT%02u",
	    (unsigned)(tm.tm_year + 1900) % 10000u,
	    (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
	    (unsigned)tm.tm_hour % 100u);
}

double
gen_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
