#ifndef AMP2S3_FUZZ_H
#define AMP2S3_FUZZ_H
/*
 * fuzz: what every libFuzzer target of amp2s3 shares.
 *
 * Each fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput() (and may define
 * LLVMFuzzerInitialize()).  A target checks properties of the code under
 * test with FUZZ_CHECK: a violated property aborts, so libFuzzer reports
 * the input as a crash and saves it, exactly as for a sanitizer finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* fuzz_fail(file, line, what): report a violated property and abort(). */
static inline void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: property violated: %s\n", file, line, what);
	abort();
}

/* FUZZ_CHECK(expr): abort (a crash for libFuzzer) unless ${expr} holds. */
#define FUZZ_CHECK(expr)                                                   \
	do {                                                               \
		if (!(expr))                                               \
			fuzz_fail(__FILE__, __LINE__, #expr);              \
	} while (0)

/* fuzz_printable(s): 1 if ${s} holds only printable ASCII (one line). */
static inline int
fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return (0);
	return (1);
}

/* fuzz_one_line(s): 1 if ${s} holds no control byte (no CR, LF, ESC,
 * DEL...); bytes >= 0x80 (UTF-8) are allowed. */
static inline int
fuzz_one_line(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return (0);
	return (1);
}

#endif
