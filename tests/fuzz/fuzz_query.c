/*
 * libFuzzer harness for inventory queries, which operators send as text:
 * the parser, its canonical form (which must parse again to the same
 * form), and matching against a small host of every item kind.
 *
 *   build-fuzz/tests/fuzz/fuzz_query -max_total_time=30
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *attr(void *arg, const char *key)
{
	(void)arg;
	if (strcmp(key, "node.name") == 0)
		return "web-1";
	if (strcmp(key, "label.zone") == 0)
		return "eu-west";
	return NULL;
}

static Flotilla__InventoryItem item(Flotilla__InventoryKind kind,
				    const char *name, const char *version,
				    const char *group)
{
	Flotilla__InventoryItem it = FLOTILLA__INVENTORY_ITEM__INIT;
	it.kind = kind;
	it.name = (char *)name;
	it.version = (char *)version;
	it.group = (char *)group;
	return it;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;

	Flotilla__InventoryItem items[] = {
		item(FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA,
		     "log4j-core", "2.14.1", "org.apache.logging.log4j"),
		item(FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_MANAGED,
		     "log4j-core", "2.17.1", ""),
		item(FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_DPKG, "openssl",
		     "3.0.11-1~deb12u2", ""),
		item(FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA, "x", "",
		     ""),
	};
	Flotilla__InventoryItem *ptrs[] = { &items[0], &items[1], &items[2],
					    &items[3] };
	flt_query_host_t h = { .id = "id",
			       .name = "web-1",
			       .attr = attr,
			       .items = ptrs,
			       .n_items = 4 };
	flt_query_t *q, *again;
	flt_error_t err;
	if (flt_query_parse(text, NULL, &q, &err) == 0) {
		size_t hits[4], n = 0;
		flt_query_match(q, &h, hits, &n);
		if (n > 4)
			abort();
		const char *canon = flt_query_string(q);
		/* Spacing and quoting may take a query past the parser's
		 * limit on what it reads (4096 bytes): nothing to check. */
		if (strlen(canon) > 4096) {
			flt_query_free(q);
			free(text);
			return 0;
		}
		if (flt_query_parse(canon, NULL, &again, &err) != 0)
			abort(); /* the canonical form must parse */
		if (strcmp(flt_query_string(again), canon) != 0)
			abort(); /* and be a fixed point */
		flt_query_free(again);
		flt_query_free(q);
	}
	free(text);
	return 0;
}
