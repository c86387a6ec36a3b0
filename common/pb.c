#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "flotilla/pb.h"
#include "flotilla/util.h"

const flt_pb_limits_t flt_pb_default_limits = {
	.max_string = 64 * 1024,
	.max_repeated = 100000,
	.max_depth = 16,
	.alloc_factor = 32,
	.alloc_slack = 1 << 20,
};

const flt_pb_limits_t flt_pb_reply_limits = {
	.max_string = 64 * 1024,
	.max_repeated = 1000000,
	.max_depth = 16,
	.alloc_factor = 128,
	.alloc_slack = 1 << 20,
};

static size_t field_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static int check_msg(const ProtobufCMessage *m, const flt_pb_limits_t *lim,
		     unsigned depth, char *path, size_t pathlen,
		     flt_error_t *err);

static int check_value(const ProtobufCFieldDescriptor *f, const void *p,
		       const flt_pb_limits_t *lim, unsigned depth, char *path,
		       size_t pathlen, flt_error_t *err)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		size_t n = s ? strlen(s) : 0;
		if (n > lim->max_string)
			return flt_err(err, FLT_EPROTO,
				       "%s: longer than %zu bytes", path,
				       lim->max_string);
		if (!flt_is_text(s ? s : "", n))
			return flt_err(err, FLT_EPROTO,
				       "%s: not valid UTF-8 text", path);
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		if (b->len > lim->max_string)
			return flt_err(err, FLT_EPROTO,
				       "%s: longer than %zu bytes", path,
				       lim->max_string);
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		if (!sub)
			return 0;
		return check_msg(sub, lim, depth + 1, path, pathlen, err);
	}
	default:
		return 0;
	}
}

static int check_msg(const ProtobufCMessage *m, const flt_pb_limits_t *lim,
		     unsigned depth, char *path, size_t pathlen,
		     flt_error_t *err)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	size_t base = strlen(path);

	if (depth > lim->max_depth)
		return flt_err(err, FLT_EPROTO, "%s: nested deeper than %u",
			       base ? path : d->short_name, lim->max_depth);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *fp = (const char *)m + f->offset;
		int rc;

		snprintf(path + base, pathlen - base, "%s%s", base ? "." : "",
			 f->name);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m +
						     f->quantifier_offset);
			const char *arr = *(char *const *)fp;
			size_t sz = field_size(f->type);
			size_t fbase = strlen(path);
			if (n > lim->max_repeated)
				return flt_err(err, FLT_EPROTO,
					       "%s: more than %zu elements",
					       path, lim->max_repeated);
			for (size_t k = 0; k < n; k++) {
				snprintf(path + fbase, pathlen - fbase,
					 "[%zu]", k);
				rc = check_value(f, arr + k * sz, lim, depth,
						 path, pathlen, err);
				if (rc < 0)
					return rc;
			}
		} else {
			rc = check_value(f, fp, lim, depth, path, pathlen, err);
			if (rc < 0)
				return rc;
		}
		path[base] = '\0';
	}
	return 0;
}

int flt_pb_check(const ProtobufCMessage *m, const flt_pb_limits_t *lim,
		 flt_error_t *err)
{
	char path[512] = "";
	return check_msg(m, lim ? lim : &flt_pb_default_limits, 0, path,
			 sizeof(path), err);
}

/*
 * protobuf-c builds the whole message (every unknown field included) before
 * we can look at it, so a small hostile message could make it allocate far
 * more than its size. Unpacking draws on a budget proportional to the
 * input; past it the allocation fails and so does the unpack. Memory comes
 * from malloc, so messages are freed with the default allocator.
 */
typedef struct budget {
	size_t left;
} budget_t;

#define ALLOC_OVERHEAD 16

static void *budget_alloc(void *data, size_t size)
{
	budget_t *b = data;
	if (size + ALLOC_OVERHEAD > b->left)
		return NULL;
	b->left -= size + ALLOC_OVERHEAD;
	return malloc(size);
}

static void budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

int flt_pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf,
		  size_t len, const flt_pb_limits_t *lim,
		  ProtobufCMessage **out, flt_error_t *err)
{
	if (!lim)
		lim = &flt_pb_default_limits;
	budget_t b = { .left = lim->alloc_factor * len + lim->alloc_slack };
	ProtobufCAllocator a = { budget_alloc, budget_free, &b };
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, buf);
	if (!m)
		return flt_err(err, FLT_EPROTO, "%s: cannot be decoded",
			       desc->short_name);
	int rc = flt_pb_check(m, lim, err);
	if (rc < 0) {
		flt_err_prefix(err, "%s", desc->short_name);
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
	size_t n = strlen(d->short_name);
	return n > 5 && strcmp(d->short_name + n - 5, "Entry") == 0 &&
	       d->n_fields == 2 && strcmp(d->fields[0].name, "key") == 0 &&
	       strcmp(d->fields[1].name, "value") == 0;
}

/* NODE_STATUS_READY of enum NodeStatus -> "ready". */
static json_t *enum_json(const ProtobufCEnumDescriptor *d, int v)
{
	const ProtobufCEnumValue *ev =
		protobuf_c_enum_descriptor_get_value(d, v);
	if (!ev)
		return json_integer(v);
	/* The prefix all value names share, up to its last '_'. */
	size_t n = d->n_values > 1 ? strlen(d->values[0].name) : 0;
	for (unsigned i = 1; i < d->n_values; i++) {
		size_t k = 0;
		while (k < n && d->values[i].name[k] == d->values[0].name[k])
			k++;
		n = k;
	}
	while (n > 0 && d->values[0].name[n - 1] != '_')
		n--;
	const char *name = ev->name + (strlen(ev->name) > n ? n : 0);
	char low[128];
	size_t i = 0;
	for (; name[i] && i + 1 < sizeof(low); i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[i] = '\0';
	return json_string(low);
}

static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		/* Indexes and sizes stay far below 2^63 (see ADR 0004). */
		return json_integer((json_int_t) * (const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return enum_json(f->descriptor, *(const int *)p);
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		json_t *j = json_string(s ? s : "");
		if (!j) {
			/* Not UTF-8 (only from a peer that skipped checks):
			 * show it with the offending bytes replaced. */
			cleanup_free char *c = flt_xstrdup(s);
			for (char *q = c; *q; q++)
				if ((unsigned char)*q >= 0x80)
					*q = '?';
			j = json_string(c);
		}
		return j;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		size_t n = sodium_base64_encoded_len(
			b->len, sodium_base64_VARIANT_ORIGINAL);
		cleanup_free char *s = flt_xmalloc(n);
		sodium_bin2base64(s, n, b->data, b->len,
				  sodium_base64_VARIANT_ORIGINAL);
		return json_string(s);
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		return m ? flt_pb_to_json(m) : json_null();
	}
	}
	return json_null();
}

json_t *flt_pb_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *fp = (const char *)m + f->offset;

		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			json_object_set_new(o, f->name, value_json(f, fp));
			continue;
		}
		size_t n = *(const size_t *)((const char *)m +
					     f->quantifier_offset);
		const char *arr = *(char *const *)fp;
		size_t sz = field_size(f->type);
		if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    is_map_entry(f->descriptor)) {
			json_t *map = json_object();
			const ProtobufCMessageDescriptor *ed = f->descriptor;
			for (size_t k = 0; k < n; k++) {
				const ProtobufCMessage *e =
					((ProtobufCMessage *const *)arr)[k];
				const char *key =
					*(char *const *)((const char *)e +
							 ed->fields[0].offset);
				json_object_set_new(
					map, key ? key : "",
					value_json(&ed->fields[1],
						   (const char *)e +
							   ed->fields[1].offset));
			}
			json_object_set_new(o, f->name, map);
			continue;
		}
		json_t *a = json_array();
		for (size_t k = 0; k < n; k++)
			json_array_append_new(a, value_json(f, arr + k * sz));
		json_object_set_new(o, f->name, a);
	}
	return o;
}
