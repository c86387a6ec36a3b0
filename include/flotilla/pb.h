/* Generic helpers over protobuf-c messages, driven by their descriptors. */
#ifndef FLOTILLA_PB_H
#define FLOTILLA_PB_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "flotilla/error.h"

typedef struct flt_pb_limits {
	size_t max_string; /* bytes of any string field */
	size_t max_bytes; /* bytes of any bytes field; 0: max_string */
	size_t max_repeated; /* elements of any repeated field */
	unsigned max_depth; /* nesting of messages */
	/* Decoding may allocate at most alloc_factor * length + alloc_slack
	 * bytes (protobuf-c builds the whole message, unknown fields and
	 * all, before it can be checked). */
	size_t alloc_factor;
	size_t alloc_slack;
	/* Strings are valid UTF-8 without NUL; with no_controls, also
	 * without control characters (job specs: see flt_text_check). */
	bool no_controls;
} flt_pb_limits_t;

/* Limits for requests from the network (any peer). */
extern const flt_pb_limits_t flt_pb_default_limits;
/* Limits for replies from the coordinator (lists may be long and sparse)
 * and from agents (log chunks of up to 1 MiB in bytes fields). */
extern const flt_pb_limits_t flt_pb_reply_limits;

/*
 * Checks every field of m (recursively) against lim and that every string
 * is valid UTF-8 (and without control characters other than tab and
 * newline when lim->no_controls). Free text from outside (messages, check
 * output, label values, fingerprints) may hold control characters: it is
 * escaped where it is shown (flt_escape). The message names the field
 * path and the byte: "labels[3].value: invalid UTF-8 at byte 7".
 */
int flt_pb_check(const ProtobufCMessage *m, const flt_pb_limits_t *lim,
		 flt_error_t *err);

/*
 * Unpacks len bytes as desc and checks them; *out is owned by the caller
 * (free with protobuf_c_message_free_unpacked(m, NULL)). A message whose
 * decoding would allocate more than lim allows is refused as FLT_EPROTO,
 * and so is a string holding a NUL ("Job: groups[0].tasks[0].name: NUL
 * character at byte 1"), which protobuf-c would silently cut there.
 */
int flt_pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf,
		  size_t len, const flt_pb_limits_t *lim,
		  ProtobufCMessage **out, flt_error_t *err);

/*
 * A deep copy of m (owned by the caller, free with
 * protobuf_c_message_free_unpacked(copy, NULL)), made by packing and
 * unpacking: what a copy keeps is exactly what the wire would carry.
 * Aborts only when memory runs out (m packs into what unpacks).
 */
void *flt_pb_dup(const ProtobufCMessage *m);

/*
 * True when a and b encode to the same bytes (same descriptor assumed;
 * two NULLs are equal, NULL and a message are not). Field order is the
 * descriptor's, so equal values give equal encodings; unknown fields
 * count.
 */
bool flt_pb_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

/*
 * Sets a string field of a message to a copy of v ("" for NULL), freeing
 * the old string unless it is protobuf-c's shared empty default. Aborts
 * on OOM.
 */
void flt_pb_set_str(char **field, const char *v);

static inline void flt_pb_freep(void *p)
{
	ProtobufCMessage **m = p;
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
}
#define cleanup_pb __attribute__((cleanup(flt_pb_freep)))

/*
 * Enum values by their JSON names: the value name without the prefix all
 * of the enum's names share, in lower case (TARGET_STATE_FAILED_OFFLINE ->
 * "failed_offline"), except a zero value named *_UNSET, which is "" (a
 * field not decided yet). The one spelling of a state everywhere: the CLI,
 * logs and JSON. flt_pb_enum_name returns a string that lives as long as
 * the program, "unknown" for a value outside the enum. Thread-safe.
 */
const char *flt_pb_enum_name(const ProtobufCEnumDescriptor *d, int v);
bool flt_pb_enum_known(const ProtobufCEnumDescriptor *d, int v);
/* FLT_ENOTFOUND when no value of d has that JSON name. */
int flt_pb_enum_value(const ProtobufCEnumDescriptor *d, const char *name,
		      int *v);

/*
 * Maps m to JSON (new reference): field names as in the .proto, every field
 * present (defaults included) but those marked [deprecated = true], maps
 * as objects, enums as their short lower case names ("ready" for
 * NODE_STATUS_READY), bytes as base64.
 */
json_t *flt_pb_to_json(const ProtobufCMessage *m);

/*
 * The reverse of flt_pb_to_json: builds a new desc message (owned by the
 * caller, free with protobuf_c_message_free_unpacked(m, NULL)) from a JSON
 * object. Unknown keys (deprecated fields are unknown here too), wrong types
 * and out-of-range numbers are refused
 * with the field path: "resources.memory_mb: must be a whole number >= 0".
 * Absent fields keep their defaults; null is the same as absent. A string
 * holding NUL (JSON loaded with JSON_ALLOW_NUL) is refused with its path:
 * "groups[0].name: NUL character at byte 1".
 */
int flt_pb_from_json(const ProtobufCMessageDescriptor *desc, json_t *j,
		     ProtobufCMessage **out, flt_error_t *err);

#endif
