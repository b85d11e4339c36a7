#ifndef AMP2S3_VERSION_H
#define AMP2S3_VERSION_H
#include <stdio.h>

#define AMP2S3_VERSION "0.1.0"

/* version_print(f): "amp2s3 X.Y.Z" and the versions of the libraries in
 * use, one line each. */
void version_print(FILE *f);

/* version_user_agent(): "amp2s3/X.Y.Z". */
const char *version_user_agent(void);

#endif
