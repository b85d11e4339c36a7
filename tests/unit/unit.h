#ifndef AMP2S3_UNIT_H
#define AMP2S3_UNIT_H
/*
 * unit: the smallest test harness that can fail.  Each CHECK counts; a
 * failed CHECK prints file:line and the expression and marks the test
 * failed.  UNIT_MAIN runs the listed tests and prints "N passed, N failed"
 * (tests, not checks), exiting non-zero on any failure or if no check ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_checks_;
static int unit_failed_now_;

#define CHECK(expr)                                                        \
	do {                                                               \
		unit_checks_++;                                            \
		if (!(expr)) {                                             \
			unit_failed_now_ = 1;                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",       \
			    __FILE__, __LINE__, #expr);                    \
		}                                                          \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                 \
	do {                                                               \
		long long ua_ = (long long)(a), ub_ = (long long)(b);      \
		unit_checks_++;                                            \
		if (ua_ != ub_) {                                          \
			unit_failed_now_ = 1;                              \
			fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", \
			    __FILE__, __LINE__, #a, #b, ua_, ub_);         \
		}                                                          \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                 \
	do {                                                               \
		const char *ua_ = (a), *ub_ = (b);                         \
		unit_checks_++;                                            \
		if (ua_ == NULL || ub_ == NULL || strcmp(ua_, ub_) != 0) { \
			unit_failed_now_ = 1;                              \
			fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", \
			    __FILE__, __LINE__, #a, #b, ua_ ? ua_ : "(null)", \
			    ub_ ? ub_ : "(null)");                         \
		}                                                          \
	} while (0)

struct unit_test {
	const char *name;
	void (*fn)(void);
};

static inline int unit_run(const char *suite, const struct unit_test *t,
    size_t n)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		unit_failed_now_ = 0;
		t[i].fn();
		if (unit_failed_now_) {
			failed++;
			fprintf(stderr, "FAIL %s.%s\n", suite, t[i].name);
		} else {
			passed++;
		}
	}
	printf("%s: %d passed, %d failed\n", suite, passed, failed);
	if (unit_checks_ == 0) {
		fprintf(stderr, "%s: no check ran\n", suite);
		return 1;
	}
	return failed != 0;
}

#define TEST(name) { #name, name }
#define UNIT_MAIN(suite, ...)                                              \
	int main(void)                                                     \
	{                                                                  \
		static const struct unit_test tests_[] = { __VA_ARGS__ };  \
		return unit_run(suite, tests_,                             \
		    sizeof(tests_) / sizeof(tests_[0]));                   \
	}

#endif
