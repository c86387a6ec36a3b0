/*
 * submitbench ADDRESS N COMMAND [ARG...]: job submit -> task running.
 *
 * For each of N rounds: registers a one-allocation service job running
 * COMMAND (absolute path, no arguments), then asks for the job every
 * millisecond until the coordinator reports its allocation running (the
 * agent has started the sandboxed task and said so), then stops the job.
 * Prints p50, p90, p99 and max of submit -> running in milliseconds.
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flotilla.pb-c.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#include "bench.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
			"usage: submitbench ADDRESS N COMMAND [ARG...]\n");
		return 2;
	}
	flt_log_init("submitbench", FLT_LOG_ERROR);
	int n = atoi(argv[2]);
	flt_client_opts_t o = { .url = argv[1] };
	flt_client_t *c;
	flt_error_t err;
	if (flt_client_open(&o, &c, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double *lat = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-%d", i);
		Flotilla__TaskSpec task = FLOTILLA__TASK_SPEC__INIT;
		task.name = "t";
		task.command = argv[3];
		task.args = argv + 4;
		task.n_args = (size_t)(argc - 4);
		Flotilla__TaskSpec *tasks[] = { &task };
		Flotilla__TaskGroup g = FLOTILLA__TASK_GROUP__INIT;
		g.name = "g";
		g.count = 1;
		g.tasks = tasks;
		g.n_tasks = 1;
		Flotilla__TaskGroup *groups[] = { &g };
		Flotilla__Job job = FLOTILLA__JOB__INIT;
		job.name = name;
		job.type = "service";
		job.groups = groups;
		job.n_groups = 1;
		Flotilla__JobRegisterRequest req =
			FLOTILLA__JOB_REGISTER_REQUEST__INIT;
		req.job = &job;
		Flotilla__JobRegisterResponse *rr;
		double t0 = bench_now_ms();
		if (flt_client_call(
			    c, FLOTILLA__METHOD__METHOD_JOB_REGISTER, NULL,
			    &req.base,
			    &flotilla__job_register_response__descriptor,
			    (ProtobufCMessage **)&rr, 10000, &err) < 0) {
			fprintf(stderr, "register: %s\n", err.msg);
			return 1;
		}
		protobuf_c_message_free_unpacked(&rr->base, NULL);
		for (;;) {
			Flotilla__JobGetRequest gr =
				FLOTILLA__JOB_GET_REQUEST__INIT;
			gr.name = name;
			Flotilla__JobGetResponse *resp;
			if (flt_client_call(
				    c, FLOTILLA__METHOD__METHOD_JOB_GET, NULL,
				    &gr.base,
				    &flotilla__job_get_response__descriptor,
				    (ProtobufCMessage **)&resp, 10000,
				    &err) < 0) {
				fprintf(stderr, "get: %s\n", err.msg);
				return 1;
			}
			uint32_t running = resp->summary->running;
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			if (running)
				break;
			if (bench_now_ms() - t0 > 30000) {
				fprintf(stderr, "%s: not running after 30 s\n",
					name);
				return 1;
			}
			usleep(1000);
		}
		lat[i] = bench_now_ms() - t0;
		Flotilla__JobStopRequest sr = FLOTILLA__JOB_STOP_REQUEST__INIT;
		sr.name = name;
		if (flt_client_call(
			    c, FLOTILLA__METHOD__METHOD_JOB_STOP, NULL,
			    &sr.base,
			    &flotilla__job_register_response__descriptor,
			    (ProtobufCMessage **)&rr, 10000, &err) < 0) {
			fprintf(stderr, "stop: %s\n", err.msg);
			return 1;
		}
		protobuf_c_message_free_unpacked(&rr->base, NULL);
	}
	qsort(lat, (size_t)n, sizeof(double), bench_cmp_double);
	printf("submissions=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
	       n, lat[n / 2], lat[n * 9 / 10], lat[(n * 99) / 100], lat[n - 1]);
	flt_client_close(c);
	free(lat);
	return 0;
}
