/*
 * flt-jobsend ADDRESS FILE: sends the job in FILE to the coordinator as a
 * JobRegister request, mapped from JSON without any of the checks the CLI
 * makes first, so that tests see what the coordinator itself refuses.
 * Prints the coordinator's error and exits 1 when refused, 0 when taken.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "flotilla.pb-c.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/wire.h"

int main(int argc, char **argv)
{
	flt_error_t err;
	if (argc != 3) {
		fprintf(stderr, "usage: flt-jobsend ADDRESS FILE\n");
		return 2;
	}
	flt_log_init("flt-jobsend", FLT_LOG_ERROR);
	json_error_t je;
	json_t *j = json_load_file(argv[2], 0, &je);
	if (!j) {
		fprintf(stderr, "%s: %s\n", argv[2], je.text);
		return 2;
	}
	Flotilla__JobRegisterRequest req = FLOTILLA__JOB_REGISTER_REQUEST__INIT;
	if (flt_pb_from_json(&flotilla__job__descriptor, j,
			     (ProtobufCMessage **)&req.job, &err) < 0) {
		fprintf(stderr, "%s: %s\n", argv[2], err.msg);
		json_decref(j);
		return 2;
	}
	json_decref(j);
	flt_client_opts_t o = { .url = argv[1] };
	flt_client_t *c;
	if (flt_client_open(&o, &c, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	Flotilla__JobRegisterResponse *resp = NULL;
	int rc = flt_client_call(c, FLOTILLA__METHOD__METHOD_JOB_REGISTER, NULL,
				 &req.base,
				 &flotilla__job_register_response__descriptor,
				 (ProtobufCMessage **)&resp, 10000, &err);
	protobuf_c_message_free_unpacked(&req.job->base, NULL);
	flt_client_close(c);
	if (rc < 0) {
		printf("%s\n", err.msg);
		return 1;
	}
	printf("version %llu\n", (unsigned long long)resp->job_version);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}
