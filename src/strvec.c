/*
 * strvec: see strvec.h.
 */
#include <stdlib.h>
#include <string.h>

#include "strvec.h"

int
strvec_add(struct strvec *sv, const char *s)
{
	char *dup;

	if ((dup = strdup(s)) == NULL)
		return (-1);
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? 2 * sv->cap : 16;
		char **v = realloc(sv->v, cap * sizeof(*v));

		if (v == NULL) {
			free(dup);
			return (-1);
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = dup;
	return (0);
}

int
strvec_has(const struct strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (1);
	return (0);
}

void
strvec_free(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	*sv = (struct strvec)STRVEC_INIT;
}
