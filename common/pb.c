#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "flotilla/pb.h"
#include "flotilla/util.h"

const flt_pb_limits_t flt_pb_default_limits = {
	.max_string = 64 * 1024,
	.max_bytes = 512 * 1024, /* package chunks (FLT_PKG_CHUNK_SIZE) */
	.max_repeated = 100000,
	.max_depth = 16,
	.alloc_factor = 32,
	.alloc_slack = 1 << 20,
};

const flt_pb_limits_t flt_pb_reply_limits = {
	.max_string = 64 * 1024,
	.max_bytes = 2u << 20,
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
	case PROTOBUF_C_TYPE_FIXED64: return 8;
	case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	default: return 4;
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
		const char *why;
		size_t at = flt_text_check(
			s ? s : "", n, lim->no_controls ? 0 : FLT_TEXT_CONTROLS,
			&why);
		if (at < n)
			return flt_err(err, FLT_EPROTO, "%s: %s at byte %zu",
				       path, why, at);
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		size_t max = lim->max_bytes ? lim->max_bytes : lim->max_string;
		if (b->len > max)
			return flt_err(err, FLT_EPROTO,
				       "%s: longer than %zu bytes", path, max);
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		if (!sub)
			return 0;
		return check_msg(sub, lim, depth + 1, path, pathlen, err);
	}
	default: return 0;
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
				snprintf(path + fbase, pathlen - fbase, "[%zu]",
					 k);
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

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/*
 * protobuf-c copies a string up to its first NUL: after unpacking, a
 * string "t\0x" is "t" and nothing says so. The lengths are only in the
 * encoding, so the strings are looked for there, through the descriptors
 * down to nested messages. Runs on what protobuf-c has already decoded
 * whole; an encoding it cannot walk (which protobuf-c would have refused)
 * is refused too, so that no string goes unchecked.
 */
#define NUL_SCAN_FIELDS 64 /* counted per field; flotilla.proto has 43 */
static int scan_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p,
		    size_t len, unsigned depth, unsigned max_depth, char *path,
		    size_t pathlen, flt_error_t *err)
{
	if (!len)
		return 0; /* nothing encoded (p may be NULL) */
	const uint8_t *end = p + len;
	size_t base = strlen(path);
	unsigned counts[NUL_SCAN_FIELDS] = { 0 };

	if (depth > max_depth)
		return 0; /* flt_pb_check refuses it */
	while (p < end) {
		uint64_t key, n;
		if (!varint(&p, end, &key))
			goto bad;
		switch (key & 7) {
		case 0:
			if (!varint(&p, end, &n))
				goto bad;
			continue;
		case 1:
		case 5:
			if ((size_t)(end - p) < ((key & 7) == 1 ? 8u : 4u))
				goto bad;
			p += (key & 7) == 1 ? 8 : 4;
			continue;
		case 2: break;
		default: goto bad;
		}
		if (!varint(&p, end, &n) || n > (uint64_t)(end - p))
			goto bad;
		const uint8_t *v = p;
		p += n;
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(
				d, (unsigned)(key >> 3));
		if (!f || (f->type != PROTOBUF_C_TYPE_STRING &&
			   f->type != PROTOBUF_C_TYPE_MESSAGE))
			continue;
		size_t fi = (size_t)(f - d->fields);
		unsigned k = fi < FLT_ARRAY_SIZE(counts) ? counts[fi]++ : 0;
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			snprintf(path + base, pathlen - base, "%s%s[%u]",
				 base ? "." : "", f->name, k);
		else
			snprintf(path + base, pathlen - base, "%s%s",
				 base ? "." : "", f->name);
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			const uint8_t *z = memchr(v, 0, (size_t)n);
			if (z)
				return flt_err(err, FLT_EPROTO,
					       "%s: NUL character at byte %zu",
					       path, (size_t)(z - v));
		} else {
			int rc =
				scan_nul(f->descriptor, v, (size_t)n, depth + 1,
					 max_depth, path, pathlen, err);
			if (rc < 0)
				return rc;
		}
		path[base] = '\0';
	}
	return 0;
bad:
	return flt_err(err, FLT_EPROTO, "%s%scannot be decoded", path,
		       base ? ": " : "");
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
	char path[512] = "";
	int rc = scan_nul(desc, buf, len, 0, lim->max_depth, path, sizeof(path),
			  err);
	if (rc == 0)
		rc = flt_pb_check(m, lim, err);
	if (rc < 0) {
		flt_err_prefix(err, "%s", desc->short_name);
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}

/* ---- JSON ------------------------------------------------------------- */

void *flt_pb_dup(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	cleanup_free uint8_t *buf = flt_xmalloc(len ? len : 1);
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *copy =
		protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	if (!copy)
		abort(); /* it was packed just above: only out of memory */
	return copy;
}

bool flt_pb_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	if (!a || !b)
		return a == b;
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	if (la != lb)
		return false;
	cleanup_free uint8_t *x = flt_xmalloc(la + 1);
	cleanup_free uint8_t *y = flt_xmalloc(lb + 1);
	protobuf_c_message_pack(a, x);
	protobuf_c_message_pack(b, y);
	return memcmp(x, y, la) == 0;
}

void flt_pb_set_str(char **field, const char *v)
{
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = flt_xstrdup(v ? v : "");
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
	size_t n = strlen(d->short_name);
	return n > 5 && strcmp(d->short_name + n - 5, "Entry") == 0 &&
	       d->n_fields == 2 && strcmp(d->fields[0].name, "key") == 0 &&
	       strcmp(d->fields[1].name, "value") == 0;
}

/*
 * The JSON names of an enum's values, computed once per enum: the value
 * names without the prefix they all share up to its last '_', in lower
 * case (NODE_STATUS_READY of enum NodeStatus -> "ready"). The names are
 * immutable once published, so only the lookup of the table takes the lock.
 */
typedef struct enum_names {
	const ProtobufCEnumDescriptor *d;
	char **names; /* by index in d->values */
} enum_names_t;

/* Published tables are never changed again: readers scan the first
 * n_published without the lock (every request's method name is looked up
 * here). The lock only serialises building a table; enums past the array
 * (none of flotilla.proto's) go to a list read under it. */
static pthread_mutex_t enum_mtx = PTHREAD_MUTEX_INITIALIZER;
static enum_names_t enum_tables[128];
static atomic_size_t n_published;
typedef struct enum_more {
	enum_names_t t;
	struct enum_more *next;
} enum_more_t;
static enum_more_t *enum_more;

static char **names_build(const ProtobufCEnumDescriptor *d)
{
	size_t n = d->n_values > 1 ? strlen(d->values[0].name) : 0;
	for (unsigned i = 1; i < d->n_values; i++) {
		size_t k = 0;
		while (k < n && d->values[i].name[k] == d->values[0].name[k])
			k++;
		n = k;
	}
	while (n > 0 && d->values[0].name[n - 1] != '_')
		n--;
	char **names =
		flt_xcalloc(d->n_values ? d->n_values : 1, sizeof(*names));
	for (unsigned i = 0; i < d->n_values; i++) {
		const char *name = d->values[i].name;
		size_t len = strlen(name);
		/* A zero value named *_UNSET stands for a field not decided
		 * yet, which users have always seen as "". */
		if (d->values[i].value == 0 && len > 6 &&
		    strcmp(name + len - 6, "_UNSET") == 0) {
			names[i] = flt_xstrdup("");
			continue;
		}
		name += len > n ? n : 0;
		names[i] = flt_xstrdup(name);
		for (char *c = names[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	return names;
}

static char **published(const ProtobufCEnumDescriptor *d)
{
	size_t n = atomic_load_explicit(&n_published, memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		if (enum_tables[i].d == d)
			return enum_tables[i].names;
	return NULL;
}

static char **names_of(const ProtobufCEnumDescriptor *d)
{
	char **names = published(d);
	if (names)
		return names;
	pthread_mutex_lock(&enum_mtx);
	names = published(d);
	for (enum_more_t *m = enum_more; m && !names; m = m->next)
		if (m->t.d == d)
			names = m->t.names;
	if (!names) {
		names = names_build(d);
		size_t n = atomic_load_explicit(&n_published,
						memory_order_relaxed);
		if (n < FLT_ARRAY_SIZE(enum_tables)) {
			enum_tables[n] = (enum_names_t){ d, names };
			atomic_store_explicit(&n_published, n + 1,
					      memory_order_release);
		} else {
			enum_more_t *m = flt_xmalloc(sizeof(*m));
			*m = (enum_more_t){ { d, names }, enum_more };
			enum_more = m;
		}
	}
	pthread_mutex_unlock(&enum_mtx);
	return names;
}

static int value_index(const ProtobufCEnumDescriptor *d, int v)
{
	for (unsigned i = 0; i < d->n_values; i++)
		if (d->values[i].value == v)
			return (int)i;
	return -1;
}

bool flt_pb_enum_known(const ProtobufCEnumDescriptor *d, int v)
{
	return value_index(d, v) >= 0;
}

const char *flt_pb_enum_name(const ProtobufCEnumDescriptor *d, int v)
{
	int i = value_index(d, v);
	return i < 0 ? "unknown" : names_of(d)[i];
}

int flt_pb_enum_value(const ProtobufCEnumDescriptor *d, const char *name,
		      int *v)
{
	char **names = names_of(d);
	for (unsigned i = 0; i < d->n_values; i++)
		if (strcmp(names[i], name) == 0) {
			*v = d->values[i].value;
			return 0;
		}
	return FLT_ENOTFOUND;
}

static json_t *enum_json(const ProtobufCEnumDescriptor *d, int v)
{
	if (!flt_pb_enum_known(d, v))
		return json_integer(v);
	return json_string(flt_pb_enum_name(d, v));
}

static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		/* Indexes and sizes stay far below 2^63 (see ADR 0004). */
		return json_integer((json_int_t) * (const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
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

/*
 * Deprecated fields are the old forms of fields that have a new one (a
 * string state that became an enum, under a new number, with the name the
 * string had): the JSON mapping has only the new one, both ways.
 */
static bool deprecated(const ProtobufCFieldDescriptor *f)
{
	return (f->flags & PROTOBUF_C_FIELD_FLAG_DEPRECATED) != 0;
}

json_t *flt_pb_to_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *fp = (const char *)m + f->offset;

		if (deprecated(f))
			continue;
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
					value_json(
						&ed->fields[1],
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

/* ---- JSON to protobuf ------------------------------------------------- */

static int from_json_msg(const ProtobufCMessageDescriptor *d, json_t *j,
			 const char *path, ProtobufCMessage **out,
			 flt_error_t *err);

static const char *type_word(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_STRING: return "a string";
	case PROTOBUF_C_TYPE_BYTES: return "a base64 string";
	case PROTOBUF_C_TYPE_BOOL: return "true or false";
	case PROTOBUF_C_TYPE_ENUM: return "one of its names";
	case PROTOBUF_C_TYPE_MESSAGE: return "an object";
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: return "a number";
	default: return "a whole number";
	}
}

/* Stores one JSON value into the field slot p (sized field_size). */
static int value_from_json(const ProtobufCFieldDescriptor *f, json_t *v,
			   void *p, const char *path, flt_error_t *err)
{
	json_int_t n = 0;
	bool is_int = json_is_integer(v);
	if (is_int)
		n = json_integer_value(v);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (!is_int || n < INT32_MIN || n > INT32_MAX)
			break;
		*(int32_t *)p = (int32_t)n;
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (!is_int || n < 0 || n > (json_int_t)UINT32_MAX)
			return flt_err(
				err, -EINVAL,
				"%s: must be a whole number from 0 to %u", path,
				UINT32_MAX);
		*(uint32_t *)p = (uint32_t)n;
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!is_int)
			break;
		*(int64_t *)p = n;
		return 0;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!is_int || n < 0)
			return flt_err(err, -EINVAL,
				       "%s: must be a whole number >= 0", path);
		*(uint64_t *)p = (uint64_t)n;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		if (!json_is_number(v))
			break;
		*(float *)p = (float)json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			break;
		*(double *)p = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			break;
		*(protobuf_c_boolean *)p = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		if (is_int &&
		    protobuf_c_enum_descriptor_get_value(ed, (int)n)) {
			*(int *)p = (int)n;
			return 0;
		}
		if (!json_is_string(v))
			break;
		int ev;
		if (flt_pb_enum_value(ed, json_string_value(v), &ev) == 0) {
			*(int *)p = ev;
			return 0;
		}
		return flt_err(err, -EINVAL, "%s: \"%s\" is not a known value",
			       path, json_string_value(v));
	}
	case PROTOBUF_C_TYPE_STRING: {
		if (!json_is_string(v))
			break;
		/* Loaded with JSON_ALLOW_NUL, "\u0000" is kept: refused here,
		 * with the field, where a C string would be cut short. */
		const char *s = json_string_value(v);
		size_t sl = strlen(s);
		if (sl != json_string_length(v))
			return flt_err(err, -EINVAL,
				       "%s: NUL character at byte %zu", path,
				       sl);
		*(char **)p = flt_xstrdup(s);
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		if (!json_is_string(v))
			break;
		const char *s = json_string_value(v);
		size_t sl = strlen(s), bl;
		uint8_t *b = flt_xmalloc(sl + 1);
		if (sodium_base642bin(b, sl + 1, s, sl, NULL, &bl, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(b);
			return flt_err(err, -EINVAL, "%s: not valid base64",
				       path);
		}
		((ProtobufCBinaryData *)p)->data = b;
		((ProtobufCBinaryData *)p)->len = bl;
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		if (!json_is_object(v))
			break;
		return from_json_msg(f->descriptor, v, path,
				     (ProtobufCMessage **)p, err);
	}
	return flt_err(err, -EINVAL, "%s: must be %s", path,
		       type_word(f->type));
}

static int field_from_json(const ProtobufCFieldDescriptor *f, json_t *v,
			   ProtobufCMessage *m, const char *path,
			   flt_error_t *err)
{
	char *fp = (char *)m + f->offset;
	char sub[512];
	int rc;

	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return value_from_json(f, v, fp, path, err);

	size_t *count = (size_t *)((char *)m + f->quantifier_offset);
	size_t sz = field_size(f->type);
	if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
		const ProtobufCMessageDescriptor *ed = f->descriptor;
		if (!json_is_object(v))
			return flt_err(err, -EINVAL,
				       "%s: must be an object of names to "
				       "values",
				       path);
		size_t n = json_object_size(v), k = 0;
		ProtobufCMessage **arr = flt_xcalloc(n, sizeof(*arr));
		*(ProtobufCMessage ***)fp = arr;
		const char *key;
		json_t *val;
		json_object_foreach(v, key, val)
		{
			ProtobufCMessage *e =
				flt_xcalloc(1, ed->sizeof_message);
			protobuf_c_message_init(ed, e);
			arr[k] = e;
			*count = ++k;
			*(char **)((char *)e + ed->fields[0].offset) =
				flt_xstrdup(key);
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			rc = value_from_json(&ed->fields[1], val,
					     (char *)e + ed->fields[1].offset,
					     sub, err);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	if (!json_is_array(v))
		return flt_err(err, -EINVAL, "%s: must be a list", path);
	size_t n = json_array_size(v);
	char *arr = flt_xcalloc(n, sz);
	*(char **)fp = arr;
	for (size_t k = 0; k < n; k++) {
		snprintf(sub, sizeof(sub), "%s[%zu]", path, k);
		/* Counted first, so that a half-built element is freed. */
		*count = k + 1;
		rc = value_from_json(f, json_array_get(v, k), arr + k * sz, sub,
				     err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int from_json_msg(const ProtobufCMessageDescriptor *d, json_t *j,
			 const char *path, ProtobufCMessage **out,
			 flt_error_t *err)
{
	ProtobufCMessage *m = flt_xcalloc(1, d->sizeof_message);
	const char *key;
	json_t *v;
	char sub[512];

	protobuf_c_message_init(d, m);
	*out = m; /* freed by the caller on failure too */
	json_object_foreach(j, key, v)
	{
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "",
			 key);
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(d, key);
		if (!f || deprecated(f))
			return flt_err(err, -EINVAL, "%s: unknown field", sub);
		if (json_is_null(v))
			continue;
		int rc = field_from_json(f, v, m, sub, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int flt_pb_from_json(const ProtobufCMessageDescriptor *desc, json_t *j,
		     ProtobufCMessage **out, flt_error_t *err)
{
	ProtobufCMessage *m = NULL;
	if (!json_is_object(j))
		return flt_err(err, -EINVAL, "%s: must be a JSON object",
			       desc->short_name);
	int rc = from_json_msg(desc, j, "", &m, err);
	if (rc < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}
