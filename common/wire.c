#include <errno.h>
#include <string.h>

#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

/* Limits for envelopes: the body is checked again when it is unpacked. */
static const flt_pb_limits_t envelope_limits = {
	.max_string = FLT_WIRE_MAX_MSG,
	.max_repeated = 0,
	.max_depth = 2,
	.alloc_factor = 2,
	.alloc_slack = 64 * 1024,
	/* Method, credentials: identifiers and secrets, never free text. */
	.no_controls = true,
};

int flt_join_token_load(const char *token, const char *file, char **out,
			flt_error_t *err)
{
	*out = NULL;
	if (token && file)
		return flt_err(err, FLT_EUSAGE,
			       "give --join-token or --join-token-file, not "
			       "both");
	if (file) {
		int rc = flt_read_file(file, 4096, out);
		if (rc < 0)
			return flt_err(err, rc, "--join-token-file %s: %s",
				       file, strerror(-rc));
	} else if (token) {
		*out = flt_xstrdup(token);
	}
	return 0;
}

int flt_wire_request_size_check(size_t len, flt_error_t *err)
{
	if (len <= FLT_WIRE_MAX_REQUEST)
		return 0;
	return flt_err(err, -EMSGSIZE,
		       "request of %zu bytes exceeds the limit of %u bytes",
		       len, FLT_WIRE_MAX_REQUEST);
}

const char *flt_method_name(Flotilla__Method m)
{
	if (m == FLOTILLA__METHOD__METHOD_UNSPECIFIED)
		return "unknown";
	return flt_pb_enum_name(&flotilla__method__descriptor, m);
}

static const struct {
	int ours;
	Flotilla__ErrorCode wire;
} codes[] = {
	{ FLT_EPROTO, FLOTILLA__ERROR_CODE__ERROR_BAD_REQUEST },
	{ FLT_EAUTH, FLOTILLA__ERROR_CODE__ERROR_UNAUTHENTICATED },
	{ FLT_ENOTFOUND, FLOTILLA__ERROR_CODE__ERROR_NOT_FOUND },
	{ FLT_EVERSION, FLOTILLA__ERROR_CODE__ERROR_UNSUPPORTED_VERSION },
	{ FLT_EMETHOD, FLOTILLA__ERROR_CODE__ERROR_UNKNOWN_METHOD },
	{ -EAGAIN, FLOTILLA__ERROR_CODE__ERROR_UNAVAILABLE },
	{ FLT_ECONFLICT, FLOTILLA__ERROR_CODE__ERROR_CONFLICT },
	{ FLT_EDENIED, FLOTILLA__ERROR_CODE__ERROR_PERMISSION_DENIED },
};

Flotilla__ErrorCode flt_wire_code_out(int code)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(codes); i++)
		if (codes[i].ours == code)
			return codes[i].wire;
	if (code == -ENOENT)
		return FLOTILLA__ERROR_CODE__ERROR_NOT_FOUND;
	if (code == -EINVAL)
		return FLOTILLA__ERROR_CODE__ERROR_BAD_REQUEST;
	return FLOTILLA__ERROR_CODE__ERROR_INTERNAL;
}

int flt_wire_code_in(Flotilla__ErrorCode code)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(codes); i++)
		if (codes[i].wire == code)
			return codes[i].ours;
	return FLT_EREMOTE;
}

static bool method_known(Flotilla__Method m)
{
	return m != FLOTILLA__METHOD__METHOD_UNSPECIFIED &&
	       protobuf_c_enum_descriptor_get_value(
		       &flotilla__method__descriptor, m) != NULL;
}

static int unpack(const void *buf, size_t len, bool request,
		  flt_envelope_t **out, flt_error_t *err)
{
	ProtobufCMessage *m;
	int rc = flt_pb_unpack(&flotilla__envelope__descriptor, buf, len,
			       &envelope_limits, &m, err);
	if (rc < 0)
		return rc;
	flt_envelope_t *env = (flt_envelope_t *)m;
	if (env->version != FLT_WIRE_VERSION) {
		rc = flt_err(err, FLT_EVERSION,
			     "protocol version %u is not supported (this side "
			     "speaks %u)",
			     env->version, FLT_WIRE_VERSION);
		goto fail;
	}
	if (request && !method_known(env->method)) {
		rc = flt_err(err, FLT_EMETHOD, "method %d is not known",
			     (int)env->method);
		goto fail;
	}
	const Flotilla__Credentials *c = env->credentials;
	if (c && (strlen(c->join_token) > FLT_JOIN_TOKEN_MAX ||
		  (*c->node_id && !flt_is_name(c->node_id, FLT_NODE_ID_MAX)) ||
		  (c->node_secret.len != 0 &&
		   c->node_secret.len != FLT_NODE_SECRET_LEN) ||
		  strlen(c->token) > FLT_TOKEN_MAX)) {
		rc = flt_err(err, FLT_EPROTO, "credentials: malformed");
		goto fail;
	}
	if (*env->namespace_ && strcmp(env->namespace_, "*") != 0 &&
	    !flt_namespace_valid(env->namespace_)) {
		rc = flt_err(err, FLT_EPROTO,
			     "namespace: not a namespace name (1 to %d of "
			     "a-z, 0-9 and -, starting with a letter or digit)",
			     FLT_NAMESPACE_MAX);
		goto fail;
	}
	*out = env;
	return 0;
fail:
	flotilla__envelope__free_unpacked(env, NULL);
	return rc;
}

int flt_envelope_unpack(const void *buf, size_t len, flt_envelope_t **out,
			flt_error_t *err)
{
	return unpack(buf, len, true, out, err);
}

int flt_envelope_unpack_reply(const void *buf, size_t len, flt_envelope_t **out,
			      flt_error_t *err)
{
	return unpack(buf, len, false, out, err);
}

void flt_envelope_peek(const void *buf, size_t len, uint32_t *method,
		       uint64_t *request_id)
{
	flt_envelope_t *env = flotilla__envelope__unpack(NULL, len, buf);
	*method = env ? env->method : 0;
	*request_id = env ? env->request_id : 0;
	if (env)
		flotilla__envelope__free_unpacked(env, NULL);
}

void flt_envelope_free(flt_envelope_t *env)
{
	if (env)
		flotilla__envelope__free_unpacked(env, NULL);
}

int flt_envelope_pack(flt_envelope_t *env, const ProtobufCMessage *body_msg,
		      nng_msg **out, flt_error_t *err)
{
	cleanup_free uint8_t *body = NULL;
	if (body_msg) {
		size_t bl = protobuf_c_message_get_packed_size(body_msg);
		if (bl > FLT_WIRE_MAX_MSG - 1024)
			return flt_err(
				err, -EMSGSIZE,
				"%s: %zu bytes is over the message limit",
				body_msg->descriptor->short_name, bl);
		body = flt_xmalloc(bl);
		protobuf_c_message_pack(body_msg, body);
		env->body.data = body;
		env->body.len = bl;
	}
	size_t len = flotilla__envelope__get_packed_size(env);
	nng_msg *msg;
	int rc = nng_msg_alloc(&msg, len);
	if (rc == 0)
		flotilla__envelope__pack(env, nng_msg_body(msg));
	if (body_msg) {
		env->body.data = NULL;
		env->body.len = 0;
	}
	if (rc != 0)
		return flt_err(err, -ENOMEM, "message: %s", nng_strerror(rc));
	*out = msg;
	return 0;
}

int flt_envelope_body(const flt_envelope_t *env,
		      const ProtobufCMessageDescriptor *desc,
		      ProtobufCMessage **out, flt_error_t *err)
{
	return flt_envelope_body_lim(env, desc, &flt_pb_default_limits, out,
				     err);
}

int flt_envelope_body_lim(const flt_envelope_t *env,
			  const ProtobufCMessageDescriptor *desc,
			  const flt_pb_limits_t *lim, ProtobufCMessage **out,
			  flt_error_t *err)
{
	return flt_pb_unpack(desc, env->body.data, env->body.len, lim, out,
			     err);
}
