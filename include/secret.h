#ifndef AMP2S3_SECRET_H
#define AMP2S3_SECRET_H
/*
 * secret: how credentials are forgotten.  A secret's memory is wiped with
 * explicit_bzero(3) (which the compiler may not remove) before it is
 * freed or goes out of scope.
 *
 * Thread-safety: no state.
 */
#include <stddef.h>

/* secret_wipe(p, n): overwrite the ${n} bytes at ${p} with zeros. */
void secret_wipe(void *p, size_t n);

/* secret_free(s): wipe the string ${s}, then free it.  NULL is a no-op. */
void secret_free(char *s);

#endif
