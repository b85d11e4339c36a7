#ifndef AMP2S3_STRVEC_H
#define AMP2S3_STRVEC_H
/*
 * strvec: a growable array of strings it owns.  The one way to collect
 * an unknown number of strings (listing prefixes, continuation tokens).
 *
 * Ownership: struct strvec is the caller's; STRVEC_INIT is an empty one.
 * The strings v[0..n-1] belong to it: the caller may read and reorder
 * them, and may free one it drops from v (then n is the caller's to
 * lower); strvec_free() frees the rest.
 *
 * Thread-safety: none; one thread at a time.
 */
#include <stddef.h>

struct strvec {
	char **v;
	size_t n, cap;
};

#define STRVEC_INIT { NULL, 0, 0 }

/* strvec_add(sv, s): append a copy of ${s} to ${sv}.  0, or -1 with errno
 * ENOMEM and ${sv} unchanged. */
int strvec_add(struct strvec *sv, const char *s);

/* strvec_has(sv, s): 1 if ${sv} holds a string equal to ${s}, else 0
 * (a linear search: for short vectors). */
int strvec_has(const struct strvec *sv, const char *s);

/* strvec_free(sv): free the strings of ${sv} and its array; ${sv} is
 * empty again (STRVEC_INIT). */
void strvec_free(struct strvec *sv);

#endif
