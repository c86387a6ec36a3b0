/*
 * invquery: the coordinator's InventoryQuery as an operator's client sees
 * it, end to end (request, evaluation over every inventory held, reply,
 * decoding), for run-campaign-bench.sh.
 *
 *   invquery --api URL [--limit N] [--repeat R] QUERY
 *       R calls one after the other; prints min, p50, p90, max and mean in
 *       ms, what the last answer counted, then one JSON line.
 *   invquery --api URL --wait-hosts N [--wait-timeout S] QUERY
 *       asks every 500 ms (limit 1) until N hosts have sent an inventory;
 *       exit 0 when they have, 1 at the timeout.
 *
 * --limit bounds the hosts listed in a reply, not the hosts evaluated:
 * every query evaluates the whole fleet. A run with --limit 1 next to one
 * with --limit 0 (all) tells the evaluation from the cost of a large reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "flotilla.pb-c.h"
#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#include "bench.h"

static const char *api_url = "tcp://127.0.0.1:4701";
static long limit;
static long repeat = 20;
static long wait_hosts;
static long wait_timeout_s = 300;
static long timeout_ms = 30000;

static const flt_flag_t flags[] = {
	{ "api", FLT_FLAG_STRING, &api_url, "URL",
	  "the coordinator's API address", 0, 0, "FLOTILLA_ADDR" },
	{ "limit", FLT_FLAG_INT, &limit, "N",
	  "hosts listed per reply (default 0: all)", 0, 100000000, NULL },
	{ "repeat", FLT_FLAG_INT, &repeat, "R", "calls to time (default 20)", 1,
	  100000, NULL },
	{ "wait-hosts", FLT_FLAG_INT, &wait_hosts, "N",
	  "wait until N hosts have sent an inventory, then exit", 0, 100000000,
	  NULL },
	{ "wait-timeout", FLT_FLAG_INT, &wait_timeout_s, "S",
	  "longest wait with --wait-hosts (default 300)", 1, 86400, NULL },
	{ "timeout", FLT_FLAG_INT, &timeout_ms, "MS",
	  "deadline of one call (default 30000)", 10, 600000, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static void resp_free(Flotilla__InventoryQueryResponse *r)
{
	if (r)
		flotilla__inventory_query_response__free_unpacked(r, NULL);
}

static int query(flt_client_t *c, const char *q, uint32_t lim,
		 Flotilla__InventoryQueryResponse **resp, flt_error_t *err)
{
	Flotilla__InventoryQueryRequest req =
		FLOTILLA__INVENTORY_QUERY_REQUEST__INIT;
	req.query = (char *)q;
	req.limit = lim;
	return flt_client_call(c, FLOTILLA__METHOD__METHOD_INVENTORY_QUERY,
			       NULL, &req.base,
			       &flotilla__inventory_query_response__descriptor,
			       (ProtobufCMessage **)resp, (int)timeout_ms, err);
}

static int wait_for_hosts(flt_client_t *c, const char *q)
{
	double t0 = bench_now_ms(), next_log = t0;
	uint32_t last = 0;
	for (;;) {
		Flotilla__InventoryQueryResponse *resp;
		flt_error_t err;
		if (query(c, q, 1, &resp, &err) == 0) {
			last = resp->hosts_total;
			uint32_t unknown = resp->hosts_unknown;
			resp_free(resp);
			if (last >= (uint32_t)wait_hosts) {
				printf("invquery: %u hosts have sent an "
				       "inventory after %.1f s\n",
				       last, (bench_now_ms() - t0) / 1e3);
				return 0;
			}
			if (bench_now_ms() >= next_log) {
				fprintf(stderr,
					"invquery: %u hosts with an inventory, "
					"%u without\n",
					last, unknown);
				next_log = bench_now_ms() + 5000;
			}
		} else {
			fprintf(stderr, "invquery: %s\n", err.msg);
		}
		if (bench_now_ms() - t0 > (double)wait_timeout_s * 1e3) {
			fprintf(stderr,
				"invquery: only %u of %ld hosts sent an "
				"inventory within %ld s\n",
				last, wait_hosts, wait_timeout_s);
			return 1;
		}
		struct timespec ts = { 0, 500 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static int time_queries(flt_client_t *c, const char *q)
{
	double *lat = flt_xcalloc((size_t)repeat, sizeof(*lat));
	Flotilla__InventoryQueryResponse *last = NULL;
	size_t bytes = 0;
	double sum = 0;
	for (long i = 0; i < repeat; i++) {
		Flotilla__InventoryQueryResponse *resp;
		flt_error_t err;
		double t0 = bench_now_ms();
		if (query(c, q, (uint32_t)limit, &resp, &err) < 0) {
			fprintf(stderr, "invquery: %s\n", err.msg);
			free(lat);
			resp_free(last);
			return 1;
		}
		lat[i] = bench_now_ms() - t0;
		sum += lat[i];
		bytes = protobuf_c_message_get_packed_size(&resp->base);
		resp_free(last);
		last = resp;
	}
	qsort(lat, (size_t)repeat, sizeof(*lat), bench_cmp_double);
	double p50 = lat[(repeat - 1) / 2], p90 = lat[(repeat * 9 - 1) / 10];
	printf("invquery: \"%s\" (parsed: %s), limit %ld, %ld calls: min "
	       "%.2f ms, p50 %.2f ms, p90 %.2f ms, max %.2f ms, mean %.2f ms\n",
	       q, last->query, limit, repeat, lat[0], p50, p90, lat[repeat - 1],
	       sum / (double)repeat);
	printf("  hosts: %u matched of %u with an inventory (%u without); "
	       "%u items matched, %u with JndiLookup; %zu hosts listed, "
	       "reply %zu bytes\n",
	       last->hosts_matched, last->hosts_total, last->hosts_unknown,
	       last->items_matched, last->jndi_lookup, last->n_matches, bytes);
	json_t *j = json_object();
	json_object_set_new(j, "bench", json_string("invquery"));
	json_object_set_new(j, "query", json_string(q));
	json_object_set_new(j, "parsed", json_string(last->query));
	json_object_set_new(j, "limit", json_integer(limit));
	json_object_set_new(j, "calls", json_integer(repeat));
	json_object_set_new(j, "hosts_total", json_integer(last->hosts_total));
	json_object_set_new(j, "hosts_unknown",
			    json_integer(last->hosts_unknown));
	json_object_set_new(j, "hosts_matched",
			    json_integer(last->hosts_matched));
	json_object_set_new(j, "items_matched",
			    json_integer(last->items_matched));
	json_object_set_new(j, "hosts_listed",
			    json_integer((json_int_t)last->n_matches));
	json_object_set_new(j, "reply_bytes", json_integer((json_int_t)bytes));
	json_object_set_new(j, "min_ms", json_real(lat[0]));
	json_object_set_new(j, "p50_ms", json_real(p50));
	json_object_set_new(j, "p90_ms", json_real(p90));
	json_object_set_new(j, "max_ms", json_real(lat[repeat - 1]));
	json_object_set_new(j, "mean_ms", json_real(sum / (double)repeat));
	json_dumpf(j, stdout,
		   JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	fputc('\n', stdout);
	json_decref(j);
	resp_free(last);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	int next;

	flt_log_init("invquery", FLT_LOG_ERROR);
	int rc = flt_flags_main(flags, argc, argv, &next, "invquery",
				"Usage: invquery [OPTIONS] QUERY\n\n"
				"Times the coordinator's inventory query, or "
				"waits until N hosts have\nsent an inventory "
				"(--wait-hosts).",
				true);
	if (rc >= 0)
		return rc;
	if (next != argc - 1) {
		fprintf(stderr, "invquery: one QUERY argument expected\n");
		return 2;
	}
	const char *q = argv[next];
	flt_client_opts_t o = { .url = api_url };
	flt_client_t *c;
	if (flt_client_open(&o, &c, &err) < 0) {
		fprintf(stderr, "invquery: %s\n", err.msg);
		return 1;
	}
	rc = wait_hosts ? wait_for_hosts(c, q) : time_queries(c, q);
	flt_client_close(c);
	flt_flags_free(flags);
	return rc;
}
