/*
 * libFuzzer harness for everything the coordinator decodes from the
 * network: the envelope, then its body as every agent and operator
 * request type, then the JSON mapping of whatever decoded.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DFLT_FUZZ=ON
 *   make -C build-fuzz fuzz_envelope
 *   build-fuzz/tests/fuzz/fuzz_envelope -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>

#include "flotilla/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ProtobufCMessageDescriptor *bodies[] = {
		&flotilla__register_request__descriptor,
		&flotilla__sync_request__descriptor,
		&flotilla__watch_request__descriptor,
		&flotilla__node_get_request__descriptor,
		&flotilla__fetch_chunk_request__descriptor,
		&flotilla__chunk_put_request__descriptor,
		&flotilla__package_push_request__descriptor,
		&flotilla__inventory_query_request__descriptor,
		&flotilla__campaign_create_request__descriptor,
		&flotilla__campaign_get_request__descriptor,
		&flotilla__job_register_request__descriptor,
	};
	flt_envelope_t *env;
	flt_error_t err;

	if (flt_envelope_unpack(data, size, &env, &err) == 0) {
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]);
		     i++) {
			ProtobufCMessage *m;
			if (flt_envelope_body(env, bodies[i], &m, &err) == 0) {
				json_decref(flt_pb_to_json(m));
				protobuf_c_message_free_unpacked(m, NULL);
			}
		}
		flt_envelope_free(env);
	}
	/* Bodies arrive inside envelopes, but fuzz them bare too. */
	ProtobufCMessage *m;
	if (flt_pb_unpack(&flotilla__register_request__descriptor, data, size,
			  &flt_pb_default_limits, &m, &err) == 0)
		protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
