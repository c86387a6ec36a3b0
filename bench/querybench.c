/*
 * Inventory query evaluation over a synthetic fleet, in memory.
 *
 *   querybench [--hosts N] [--items M] [--runs R] [--advisories FILE]
 *              [--no-hits] [QUERY...]
 *
 * Builds N hosts of M items each (the default 10,000 x 200): dpkg
 * packages and Java archives with names from a shared pool, openssl on
 * most hosts, log4j-core (one to three copies, assorted versions, with
 * log4j-api) on about 30% of them; each host's items are allocated apart
 * and sorted by name as the coordinator keeps them. Then each query (the
 * default set, or those given) is matched against every host R times, as
 * the coordinator evaluates one, collecting hits unless --no-hits. Prints
 * the median, min and max ms per full-fleet pass and the hosts and items
 * matched, then one JSON line per query.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "flotilla.pb-c.h"
#include "flotilla/flags.h"
#include "flotilla/query.h"
#include "flotilla/util.h"

#include "bench.h"

#define JAVA FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA
#define DPKG FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_DPKG

#ifndef FLT_SOURCE_DIR
#define FLT_SOURCE_DIR "."
#endif

static long n_hosts = 10000, n_items = 200, runs = 15;
static const char *advisories_path =
	FLT_SOURCE_DIR "/share/advisories/log4shell.json";
static bool no_hits;

static const flt_flag_t flags[] = {
	{ "hosts", FLT_FLAG_INT, &n_hosts, "N", "hosts in the fleet", 1,
	  1000000, NULL },
	{ "items", FLT_FLAG_INT, &n_items, "M", "items per host", 10, 100000,
	  NULL },
	{ "runs", FLT_FLAG_INT, &runs, "R", "passes over the fleet per query",
	  1, 10000, NULL },
	{ "advisories", FLT_FLAG_STRING, &advisories_path, "FILE",
	  "advisory file for advisory: terms", 0, 0, NULL },
	{ "no-hits", FLT_FLAG_BOOL, &no_hits, NULL,
	  "match without collecting the matching items", 0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static const char *const default_queries[] = {
	"log4j-core < 2.17.1",
	"advisory:CVE-2021-44228",
	"dpkg:openssl < 3.0.11",
	"log4j-core < 2.17.1 and label.zone = zone-3",
	("(advisory:CVE-2021-44832 or dpkg:openssl < 3.0.11-1~deb12u1) and "
	 "not node.name ~ '^node-1'"),
};

static const char *const log4j_versions[] = {
	"2.0-beta9", "2.3",    "2.3.1",  "2.3.2",  "2.8.2",  "2.11.1",
	"2.12.1",    "2.12.2", "2.12.4", "2.13.3", "2.14.0", "2.14.1",
	"2.15.0",    "2.16.0", "2.17.0", "2.17.1", "2.17.2", "2.20.0",
};

static const char *const openssl_versions[] = {
	"3.0.9-1",           "3.0.11-1~deb12u1", "3.0.11-1~deb12u2",
	"3.0.13-1~deb12u1",  "3.0.15-1~deb12u1", "1.1.1n-0+deb11u5",
	"3.0.2-0ubuntu1.10",
};

static const char *const syllables[] = {
	"lib",    "ssl",    "gnu",    "x",      "core",    "utils",  "java",
	"common", "net",    "data",   "py",     "perl",    "font",   "dev",
	"bin",    "log",    "api",    "spring", "jackson", "guava",  "apache",
	"http",   "client", "server", "z",      "bz",      "xml",    "json",
	"yaml",   "tools",  "gtk",    "qt",     "sys",     "kernel", "db",
};

typedef struct host {
	char name[16];
	const char *zone;
	Flotilla__InventoryItem **items;
	size_t n;
} host_t;

static uint64_t rng_state = 0x9b2a7f3c01d4e5ULL;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t pick(size_t n) { return (size_t)(rng() % n); }

static const char *host_attr(void *arg, const char *key)
{
	const host_t *h = arg;
	if (!strcmp(key, "label.zone"))
		return h->zone;
	if (!strcmp(key, "attr.os_id"))
		return "debian";
	return NULL;
}

/* Names and versions are shared strings (the items are not): a pool of
 * names as many hosts would share them. */
typedef struct pool {
	char **names;
	bool *dpkg;
	size_t n;
} pool_t;

static void pool_init(pool_t *p, size_t n)
{
	p->names = flt_xcalloc(n, sizeof(*p->names));
	p->dpkg = flt_xcalloc(n, sizeof(*p->dpkg));
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		char buf[96] = "";
		size_t k = 2 + pick(3);
		for (size_t j = 0; j < k; j++) {
			if (j)
				strcat(buf, "-");
			strcat(buf, syllables[pick(FLT_ARRAY_SIZE(syllables))]);
		}
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%zu",
			 i % 10);
		p->names[i] = flt_xstrdup(buf);
		p->dpkg[i] = pick(3) != 0;
	}
}

static Flotilla__InventoryItem *item_new(Flotilla__InventoryKind kind,
					 const char *name, const char *version,
					 const char *group)
{
	Flotilla__InventoryItem *it = flt_xmalloc(sizeof(*it));
	flotilla__inventory_item__init(it);
	it->kind = kind;
	it->name = (char *)name;
	it->version = (char *)version;
	if (group)
		it->group = (char *)group;
	return it;
}

static void build_fleet(host_t *hosts, const pool_t *pool, char **versions,
			size_t n_versions, size_t *with_log4j)
{
	*with_log4j = 0;
	for (long i = 0; i < n_hosts; i++) {
		host_t *h = &hosts[i];
		size_t n = 0, cap = (size_t)n_items;

		snprintf(h->name, sizeof(h->name), "node-%ld", i);
		static const char *const zones[] = { "zone-0", "zone-1",
						     "zone-2", "zone-3",
						     "zone-4", "zone-5",
						     "zone-6" };
		h->zone = zones[i % 7];
		h->items = flt_xcalloc(cap, sizeof(*h->items));
		if (pick(10) != 0)
			h->items[n++] =
				item_new(DPKG, "openssl",
					 openssl_versions[pick(FLT_ARRAY_SIZE(
						 openssl_versions))],
					 NULL);
		if (pick(10) < 3) {
			size_t copies = 1 + pick(3);
			for (size_t c = 0; c < copies; c++) {
				const char *v = log4j_versions[pick(
					FLT_ARRAY_SIZE(log4j_versions))];
				h->items[n++] =
					item_new(JAVA, "log4j-core", v,
						 "org.apache.logging.log4j");
				h->items[n++] =
					item_new(JAVA, "log4j-api", v,
						 "org.apache.logging.log4j");
			}
			(*with_log4j)++;
		}
		while (n < cap) {
			size_t k = pick(pool->n);
			h->items[n++] = item_new(
				pool->dpkg[k] ? DPKG : JAVA, pool->names[k],
				versions[pick(n_versions)],
				pool->dpkg[k] ? NULL : "org.example");
		}
		qsort(h->items, n, sizeof(*h->items), flt_query_item_cmp);
		h->n = n;
	}
}

int main(int argc, char **argv)
{
	flt_error_t err;
	flt_advisories_t *adv = NULL;
	int next;

	int rc =
		flt_flags_main(flags, argc, argv, &next, "querybench",
			       "Usage: querybench [OPTIONS]\n\nInventory query "
			       "evaluation over a synthetic fleet.",
			       false);
	if (rc >= 0)
		return rc;
	if (*advisories_path &&
	    flt_advisories_load(advisories_path, &adv, &err) < 0) {
		fprintf(stderr, "querybench: %s\n", err.msg);
		return 1;
	}

	const char *const *queries = default_queries;
	size_t n_queries = FLT_ARRAY_SIZE(default_queries);
	if (next < argc) {
		queries = (const char *const *)argv + next;
		n_queries = (size_t)(argc - next);
	}

	double t0 = bench_now_ms();
	pool_t pool;
	pool_init(&pool, 3000);
	char *versions[400];
	for (size_t i = 0; i < FLT_ARRAY_SIZE(versions); i++) {
		char buf[32];
		if (i % 2)
			snprintf(buf, sizeof(buf), "%zu.%zu.%zu-%zu", pick(5),
				 pick(20), pick(30), 1 + pick(3));
		else
			snprintf(buf, sizeof(buf), "%zu.%zu.%zu", pick(5),
				 pick(20), pick(30));
		versions[i] = flt_xstrdup(buf);
	}
	host_t *hosts = flt_xcalloc((size_t)n_hosts, sizeof(*hosts));
	size_t with_log4j;
	build_fleet(hosts, &pool, versions, FLT_ARRAY_SIZE(versions),
		    &with_log4j);
	printf("fleet: %ld hosts x %ld items (log4j-core on %zu hosts), "
	       "built in %.0f ms; %ld runs per query%s\n",
	       n_hosts, n_items, with_log4j, bench_now_ms() - t0, runs,
	       no_hits ? ", without hits" : "");

	size_t *hits = flt_xcalloc((size_t)n_items, sizeof(*hits));
	double *ms = flt_xcalloc((size_t)runs, sizeof(*ms));
	int status = 0;
	for (size_t qi = 0; qi < n_queries; qi++) {
		flt_query_t *q;
		if (flt_query_parse(queries[qi], adv, &q, &err) < 0) {
			fprintf(stderr, "querybench: %s: %s\n", queries[qi],
				err.msg);
			status = 1;
			continue;
		}
		size_t matched = 0, items = 0;
		for (long r = 0; r < runs; r++) {
			matched = items = 0;
			double s = bench_now_ms();
			for (long i = 0; i < n_hosts; i++) {
				host_t *h = &hosts[i];
				flt_query_host_t qh = {
					.id = h->name,
					.name = h->name,
					.attr = host_attr,
					.attr_arg = h,
					.items = h->items,
					.n_items = h->n,
				};
				size_t nh = 0;
				if (flt_query_match(q, &qh,
						    no_hits ? NULL : hits,
						    &nh)) {
					matched++;
					items += nh;
				}
			}
			ms[r] = bench_now_ms() - s;
		}
		qsort(ms, (size_t)runs, sizeof(*ms), bench_cmp_double);
		double median = ms[runs / 2];
		if (runs % 2 == 0)
			median = (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
		printf("%-66s %7.2f ms (min %.2f, max %.2f)  %zu hosts, %zu "
		       "items\n",
		       queries[qi], median, ms[0], ms[runs - 1], matched,
		       items);
		printf("  = %s\n", flt_query_string(q));
		json_t *j = json_pack(
			"{s:s, s:I, s:I, s:I, s:b, s:f, s:f, s:f, s:I, s:I}",
			"query", queries[qi], "hosts", (json_int_t)n_hosts,
			"items_per_host", (json_int_t)n_items, "runs",
			(json_int_t)runs, "hits", !no_hits, "median_ms", median,
			"min_ms", ms[0], "max_ms", ms[runs - 1],
			"hosts_matched", (json_int_t)matched, "items_matched",
			(json_int_t)items);
		char *line =
			j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6))
			  : NULL;
		if (line)
			printf("%s\n", line);
		free(line);
		json_decref(j);
		flt_query_free(q);
	}

	for (long i = 0; i < n_hosts; i++) {
		for (size_t k = 0; k < hosts[i].n; k++)
			free(hosts[i].items[k]);
		free(hosts[i].items);
	}
	free(hosts);
	for (size_t i = 0; i < pool.n; i++)
		free(pool.names[i]);
	free(pool.names);
	free(pool.dpkg);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(versions); i++)
		free(versions[i]);
	free(hits);
	free(ms);
	flt_advisories_free(adv);
	flt_flags_free(flags);
	return status;
}
