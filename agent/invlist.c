/*
 * The inventory's item list (see inventory.h): what every probe adds to,
 * checked and bounded on the way in. Its own file, below both the scan
 * (inventory.c) and the probes (javaprobe.c), which call each other's
 * only one way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/util.h"

#include "inventory.h"

/* ---- text ------------------------------------------------------------- */

/*
 * Length of the character at p (of len bytes) when it is valid UTF-8 and
 * not a control character, else 0: the rules of flt_is_text, tab and
 * newline refused too.
 */
static size_t text_char(const unsigned char *p, size_t len)
{
	if (p[0] < 0x80)
		return p[0] < 0x20 || p[0] == 0x7f ? 0 : 1;
	return flt_utf8_seq(p, len);
}

/* A malloc'd copy of s fit for the wire: bad bytes become '?', cut at a
 * character boundary to at most max bytes. */
static char *text_dup(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t len = strlen((const char *)p), i = 0, o = 0;
	char *out = flt_xmalloc((len < max ? len : max) + 1);

	while (i < len) {
		size_t n = text_char(p + i, len - i);

		if (o + (n ? n : 1) > max)
			break;
		if (n == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, p + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}

/* ---- the list --------------------------------------------------------- */

void agent_inv_list_free(agent_inv_list_t *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		flotilla__inventory_item__free_unpacked(l->items[i], NULL);
	free(l->items);
	for (size_t i = 0; i < l->n_errors; i++)
		free(l->errors[i]);
	free(l->errors);
	memset(l, 0, sizeof(*l));
}

void agent_inv_error(agent_inv_list_t *l, const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX], *e;
	va_list ap;

	if (l->n_errors >= AGENT_INV_MAX_ERRORS) {
		l->errors_dropped++;
		return;
	}
	if (!l->errors)
		l->errors =
			flt_xcalloc(AGENT_INV_MAX_ERRORS, sizeof(*l->errors));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = text_dup(msg, sizeof(msg) - 1);
	/* The same archive reached from two roots fails the same way. */
	for (size_t i = 0; i < l->n_errors; i++) {
		if (strcmp(l->errors[i], e) == 0) {
			free(e);
			return;
		}
	}
	l->errors[l->n_errors++] = e;
}

int agent_inv_add(agent_inv_list_t *l, const Flotilla__InventoryItem *t)
{
	Flotilla__InventoryItem *it;

	if (l->n >= AGENT_INV_MAX_ITEMS) {
		if (l->items_dropped++ == 0)
			agent_inv_error(l,
					"inventory: more than %d items; the "
					"rest not listed",
					AGENT_INV_MAX_ITEMS);
		return -ENOSPC;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->items = flt_xrealloc(l->items, l->cap * sizeof(*l->items));
	}
	it = flt_xmalloc(sizeof(*it));
	flotilla__inventory_item__init(it);
	it->kind = t->kind;
	it->name = text_dup(t->name, AGENT_INV_FIELD_MAX);
	it->version = text_dup(t->version, AGENT_INV_FIELD_MAX);
	it->group = text_dup(t->group, AGENT_INV_FIELD_MAX);
	it->path = text_dup(t->path, AGENT_INV_PATH_MAX);
	it->source = text_dup(t->source, AGENT_INV_FIELD_MAX);
	it->jndi_lookup = t->jndi_lookup;
	it->arch = text_dup(t->arch, AGENT_INV_FIELD_MAX);
	l->items[l->n++] = it;
	return 0;
}
