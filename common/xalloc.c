/* Allocation of small fixed sizes: abort on OOM (see util.h). No other
 * dependency, so that the static shim can use it too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/util.h"

static void oom(void)
{
	fputs("flotilla: out of memory\n", stderr);
	abort();
}

void *flt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *flt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *flt_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *flt_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}
