/* flotilla inventory ...: what the hosts have, as their agents reported it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

/* Words a query may be given in unquoted ("log4j-core '<' 2.17.1"). */
#define QUERY_WORDS_MAX 64

static const char *kind_name(Flotilla__InventoryKind k)
{
	return flt_pb_enum_name(&flotilla__inventory_kind__descriptor, k);
}

/* "org.apache.logging.log4j:log4j-core" for Java items with a group. */
static void item_name(const Flotilla__InventoryItem *it, char *buf, size_t len)
{
	if (it->kind == FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA &&
	    *it->group)
		snprintf(buf, len, "%s:%s", it->group, it->name);
	else
		snprintf(buf, len, "%s", it->name);
}

static const char *item_jndi(const Flotilla__InventoryItem *it)
{
	if (it->kind != FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA)
		return "-";
	return cli_yes(it->jndi_lookup);
}

static const char *plural(unsigned n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The query's words joined by spaces (malloc'd). */
static char *join_words(const char *const *words)
{
	size_t len = 1;
	for (size_t i = 0; i < QUERY_WORDS_MAX && words[i]; i++)
		len += strlen(words[i]) + 1;
	char *s = flt_xmalloc(len), *p = s;
	for (size_t i = 0; i < QUERY_WORDS_MAX && words[i]; i++)
		p += sprintf(p, "%s%s", i ? " " : "", words[i]);
	*p = '\0';
	return s;
}

/* One row per matched item; a host matched by node terms only ("all",
 * "label.zone = eu-1") gets one row without an item. */
static void print_matches(const Flotilla__InventoryQueryResponse *r)
{
	cli_table_t t;
	cli_table_init(&t, 6, "NODE", "KIND", "NAME", "VERSION", "PATH",
		       "JNDI");
	for (size_t i = 0; i < r->n_matches; i++) {
		const Flotilla__InventoryMatch *m = r->matches[i];
		const char *node = *m->node_name ? m->node_name : m->node_id;
		if (m->n_items == 0)
			cli_table_row(&t, node, "", "", "", "", "");
		for (size_t j = 0; j < m->n_items; j++) {
			const Flotilla__InventoryItem *it = m->items[j];
			char name[512];
			item_name(it, name, sizeof(name));
			cli_table_row(&t, node, kind_name(it->kind), name,
				      it->version, it->path, item_jndi(it));
		}
	}
	cli_table_print(&t, "");
}

static int inventory_query(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	Flotilla__InventoryQueryRequest req =
		FLOTILLA__INVENTORY_QUERY_REQUEST__INIT;
	cleanup_pb Flotilla__InventoryQueryResponse *resp = NULL;
	cleanup_free char *query = NULL;
	bool json = false, exit_code = false;
	long limit = 0;
	const char *words[QUERY_WORDS_MAX];
	const flt_flag_t flags[] = {
		{ "limit", FLT_FLAG_INT, &limit, "N",
		  "list at most N hosts (the counts cover every host)", 1,
		  1000000, NULL },
		{ "exit-code", FLT_FLAG_BOOL, &exit_code, NULL,
		  "exit 1 when some host matches (for scripts and CI gates)", 0,
		  0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, QUERY_WORDS_MAX, words);
	if (rc >= 0)
		return rc;
	query = join_words(words);
	req.query = query;
	req.limit = (uint32_t)limit;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_INVENTORY_QUERY,
			   &req.base,
			   &flotilla__inventory_query_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		if (resp->n_matches)
			print_matches(resp);
		cli_printf(
			"%u of %u %s match (%u %s, %u with JndiLookup.class)",
			resp->hosts_matched, resp->hosts_total,
			plural(resp->hosts_total, "host", "hosts"),
			resp->items_matched,
			plural(resp->items_matched, "item", "items"),
			resp->jndi_lookup);
		if (resp->hosts_unknown)
			cli_printf("; %u %s not reported an inventory",
				   resp->hosts_unknown,
				   plural(resp->hosts_unknown, "host has",
					  "hosts have"));
		cli_printf("\n");
		if (resp->n_matches < resp->hosts_matched)
			cli_printf(
				"(%zu of %u matching hosts listed: --limit)\n",
				resp->n_matches, resp->hosts_matched);
		cli_printf("query: %s\n", resp->query);
	}
	return exit_code && resp->hosts_matched ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static bool kind_parse(const char *s, Flotilla__InventoryKind *k)
{
	int v;
	if (flt_pb_enum_value(&flotilla__inventory_kind__descriptor, s, &v) <
		    0 ||
	    v == FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_UNKNOWN)
		return false;
	*k = (Flotilla__InventoryKind)v;
	return true;
}

static void print_items(const Flotilla__Inventory *inv, const char *kind_filter,
			Flotilla__InventoryKind kind)
{
	cli_table_t t;
	cli_table_init(&t, 7, "KIND", "NAME", "VERSION", "ARCH", "PATH",
		       "SOURCE", "JNDI");
	for (size_t i = 0; i < inv->n_items; i++) {
		const Flotilla__InventoryItem *it = inv->items[i];
		char name[512];
		if (kind_filter && it->kind != kind)
			continue;
		item_name(it, name, sizeof(name));
		cli_table_row(&t, kind_name(it->kind), name, it->version,
			      it->arch, it->path, it->source, item_jndi(it));
	}
	cli_table_print(&t, "  ");
}

static void print_inventory(const Flotilla__InventoryGetResponse *r,
			    const char *kind_filter,
			    Flotilla__InventoryKind kind)
{
	const Flotilla__Inventory *inv = r->inventory;
	char when[40], age[32];
	size_t shown = 0;

	cli_kv("Node", "%s (%.8s)", cli_dash(r->node_name), r->node_id);
	if (!inv) {
		cli_kv("Inventory", "not reported yet");
		return;
	}
	flt_format_time(inv->scanned_at_ms, when, sizeof(when));
	cli_age(inv->scanned_at_ms, age, sizeof(age));
	cli_kv("Scanned", "%s (%s)", inv->scanned_at_ms ? when : "-", age);
	cli_kv("Digest", "%s", cli_dash(inv->digest));
	cli_kv("Items", "%zu", inv->n_items);
	cli_kv("Errors", "%zu", inv->n_errors);

	for (size_t i = 0; i < inv->n_items; i++)
		shown += !kind_filter || inv->items[i]->kind == kind;
	cli_printf("\nItems%s%s\n", kind_filter ? " of kind " : "",
		   kind_filter ? kind_filter : "");
	if (!shown)
		cli_printf("  (none)\n");
	else
		print_items(inv, kind_filter, kind);
	if (inv->n_errors) {
		cli_printf("\nErrors\n");
		for (size_t i = 0; i < inv->n_errors; i++)
			cli_printf("  %s\n", FLT_ESC(inv->errors[i]));
	}
}

static int inventory_show(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__InventoryGetRequest req =
		FLOTILLA__INVENTORY_GET_REQUEST__INIT;
	cleanup_pb Flotilla__InventoryGetResponse *resp = NULL;
	Flotilla__InventoryKind kind = 0;
	bool json = false;
	const char *kind_filter = NULL;
	const flt_flag_t flags[] = {
		{ "kind", FLT_FLAG_STRING, &kind_filter, "managed|dpkg|java",
		  "list the items of this kind only", 0, 0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.node);
	if (rc >= 0)
		return rc;
	if (kind_filter && !kind_parse(kind_filter, &kind))
		return cli_usage_fail(cmd,
				      "--kind: \"%s\": expected managed, dpkg "
				      "or java",
				      kind_filter);
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_INVENTORY_GET, &req.base,
			   &flotilla__inventory_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		print_inventory(resp, kind_filter, kind);
	return 0;
}

const cli_cmd_t cli_inventory_cmds[] = {
	{ "inventory", "query", "QUERY [--limit N] [--exit-code] [--json]",
	  "list the hosts whose inventory matches a query", inventory_query },
	{ "inventory", "show", "NODE [--kind managed|dpkg|java] [--json]",
	  "show what one node reported: packages, Java archives, errors",
	  inventory_show },
	{ NULL, NULL, NULL, NULL, NULL },
};
