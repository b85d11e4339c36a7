#ifndef AMP2S3_CONFIG_INTERNAL_H
#define AMP2S3_CONFIG_INTERNAL_H
/*
 * config_internal: what the files of the config module share (config.c
 * the option table and its resolution, config_aws.c the AWS credential
 * chain's settings).  Not for other modules.
 */
#include <stddef.h>

#include "config.h"

/* Key/value pairs read from `.env`. */
struct dotenv {
	char **kv; /* key, value, key, value, ... */
	size_t n, cap;
};

/* config_dotenv_get(de, key, klen): the last value given to the ${klen}
 * bytes at ${key} in ${de}, or NULL.  Owned by ${de}. */
const char *config_dotenv_get(const struct dotenv *de, const char *key,
    size_t klen);

/*
 * config_resolve_aws(cfg, de, err, errlen): the credential chain's
 * options into cfg->aws (S3 only), environment then ${de}; their strings
 * copied into one block (cfg->aws_strings) that config_free() wipes;
 * cfg->child_env.  0, or -1 with one line in ${err} (a static key without
 * its secret, a web identity token file without a role, no memory).
 */
int config_resolve_aws(struct config *cfg, const struct dotenv *de,
    char *err, size_t errlen);

#endif
