/*
 * callbench ADDRESS N [THREADS]: the cost of one operator call.
 *
 * THREADS threads (default 1) each make N JobGet calls for a job that
 * does not exist (the coordinator looks it up and answers "no such job":
 * the cheapest call that passes the whole front door, its permission
 * check included). With $FLOTILLA_TOKEN set the calls carry that token,
 * and $FLOTILLA_NAMESPACE names their namespace. Prints calls per second
 * and the p50, p99 and max latency in microseconds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla.pb-c.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#include "bench.h"

typedef struct worker {
	flt_client_t *c;
	int n;
	double *lat;
	int failed;
} worker_t;

static const char *token;

static void *run(void *arg)
{
	worker_t *w = arg;
	Flotilla__Credentials cr = FLOTILLA__CREDENTIALS__INIT;
	cr.token = (char *)token;
	for (int i = 0; i < w->n; i++) {
		Flotilla__JobGetRequest req = FLOTILLA__JOB_GET_REQUEST__INIT;
		req.name = "no-such-job";
		flt_error_t err;
		double t0 = bench_now_ms();
		int rc = flt_client_call(w->c, FLOTILLA__METHOD__METHOD_JOB_GET,
					 token ? &cr : NULL, &req.base, NULL,
					 NULL, 10000, &err);
		w->lat[i] = (bench_now_ms() - t0) * 1000.0;
		if (rc != FLT_ENOTFOUND) {
			if (!w->failed++)
				fprintf(stderr, "callbench: %s\n",
					rc ? err.msg : "the job exists");
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: callbench ADDRESS N [THREADS]\n");
		return 2;
	}
	flt_log_init("callbench", FLT_LOG_ERROR);
	int n = atoi(argv[2]);
	int threads = argc > 3 ? atoi(argv[3]) : 1;
	if (n <= 0 || threads <= 0 || threads > 64) {
		fprintf(stderr, "callbench: N > 0 and 1 <= THREADS <= 64\n");
		return 2;
	}
	token = getenv("FLOTILLA_TOKEN");
	if (token && !*token)
		token = NULL;
	flt_client_opts_t o = { .url = argv[1],
				.namespace_ = getenv("FLOTILLA_NAMESPACE") };
	flt_client_t *c;
	flt_error_t err;
	if (flt_client_open(&o, &c, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	worker_t *w = calloc((size_t)threads, sizeof(*w));
	pthread_t *t = calloc((size_t)threads, sizeof(*t));
	double *lat = calloc((size_t)n * (size_t)threads, sizeof(double));
	/* A warm-up round: connections made, caches filled. */
	worker_t warm = { .c = c, .n = 200 < n ? 200 : n, .lat = lat };
	run(&warm);
	double t0 = bench_now_ms();
	for (int i = 0; i < threads; i++) {
		w[i] = (worker_t){ .c = c, .n = n, .lat = lat + (size_t)i * n };
		pthread_create(&t[i], NULL, run, &w[i]);
	}
	int failed = warm.failed;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		failed += w[i].failed;
	}
	double secs = (bench_now_ms() - t0) / 1000.0;
	size_t total = (size_t)n * (size_t)threads;
	qsort(lat, total, sizeof(double), bench_cmp_double);
	printf("calls=%zu threads=%d calls_per_s=%.0f p50_us=%.1f "
	       "p99_us=%.1f max_us=%.1f failed=%d\n",
	       total, threads, (double)total / secs, lat[total / 2],
	       lat[total * 99 / 100], lat[total - 1], failed);
	flt_client_close(c);
	free(lat);
	free(w);
	free(t);
	return failed ? 1 : 0;
}
