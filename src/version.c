/* version: what this binary is and what it was linked with. */
#include <curl/curl.h>
#include <expat.h>
#include <openssl/opensslv.h>
#include <yajl/yajl_version.h>
#include <zip.h>
#include <zlib.h>

#include "version.h"

void
version_print(FILE *f)
{
	curl_version_info_data *ci = curl_version_info(CURLVERSION_NOW);
	int y = yajl_version();

	fprintf(f, "amp2s3 %s\n", AMP2S3_VERSION);
	fprintf(f, "libcurl %s (%s)\n", ci->version,
	    ci->ssl_version ? ci->ssl_version : "no TLS");
	fprintf(f, "zlib %s\n", zlibVersion());
	fprintf(f, "yajl %d.%d.%d\n", y / 10000, y / 100 % 100, y % 100);
	fprintf(f, "libzip %s\n", zip_libzip_version());
	fprintf(f, "expat %s\n", XML_ExpatVersion());
	fprintf(f, "openssl %s\n", OPENSSL_VERSION_TEXT);
}

const char *
version_user_agent(void)
{
	return ("amp2s3/" AMP2S3_VERSION);
}
