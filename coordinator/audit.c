/*
 * The audit trail: one record of every state-changing operator call, in
 * the `audit` database under its sequence number (8 bytes, big-endian).
 *
 * A call that changes state is recorded inside the transaction that makes
 * the change (coord_audit_in_txn, called by the part that applies it), so
 * a change is never stored without its record. A call refused or failed,
 * or answered without a change, is recorded when it is answered, in a
 * transaction of its own. Chunk uploads are not recorded: the push that
 * makes them a package is.
 *
 * Retention is bounded: each write removes, oldest first and at most a
 * few at a time, records past --audit-max-events or older than
 * --audit-max-age. The count it goes by is kept in memory and may run a
 * little high after a failed write (a batch retried op by op), which
 * only makes the trimming start a few records early.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl-internal.h"
#include "coordinator.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define TRIM_PER_WRITE 8
#define LIST_DEFAULT 1000
#define LIST_MAX 100000
#define TARGET_MAX 256

static void seq_key(uint64_t seq, unsigned char k[8])
{
	for (int i = 7; i >= 0; i--) {
		k[i] = (unsigned char)(seq & 0xff);
		seq >>= 8;
	}
}

static uint64_t key_seq(const void *key, size_t klen)
{
	const unsigned char *k = key;
	uint64_t v = 0;
	for (size_t i = 0; i < klen && i < 8; i++)
		v = (v << 8) | k[i];
	return v;
}

/* ---- what a call acted on ------------------------------------------------ */

static const char *str_field(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor,
								name);
	if (!f || f->type != PROTOBUF_C_TYPE_STRING ||
	    f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	const char *v = *(char *const *)((const char *)m + f->offset);
	return v && *v ? v : NULL;
}

/* The target of a request body: its id or name ("name@version" for a
 * package), or that of its first message field (a job's name, a
 * campaign spec's name, a policy's name). */
static void target_in(const ProtobufCMessage *m, char *out, size_t len,
		      int depth)
{
	static const char *const keys[] = { "id", "name", "node_id", "alloc_id",
					    "subject" };
	for (size_t i = 0; i < FLT_ARRAY_SIZE(keys); i++) {
		const char *v = str_field(m, keys[i]);
		if (!v)
			continue;
		const char *ver = str_field(m, "version");
		if (ver && strcmp(keys[i], "name") == 0)
			snprintf(out, len, "%s@%s", v, ver);
		else
			snprintf(out, len, "%s", v);
		return;
	}
	if (depth > 0)
		return;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
		    f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		const ProtobufCMessage *sub = *(
			ProtobufCMessage *const *)((const char *)m + f->offset);
		if (!sub)
			continue;
		target_in(sub, out, len, depth + 1);
		if (*out)
			return;
	}
}

static const char *call_target(acl_call_t *cl, flt_request_t *r)
{
	if (cl->target)
		return cl->target;
	char buf[TARGET_MAX] = "";
	const flt_envelope_t *env = flt_request_envelope(r);
	ProtobufCMessage *body = NULL;
	flt_error_t err;
	if (cl->request && env &&
	    flt_envelope_body(env, cl->request, &body, &err) == 0) {
		target_in(body, buf, sizeof(buf), 0);
		protobuf_c_message_free_unpacked(body, NULL);
	}
	flt_utf8_trim(buf);
	cl->target = flt_xstrdup(buf);
	return cl->target;
}

/* The record of cl, its strings borrowed from cl and msg. */
static void event_of(acl_call_t *cl, flt_request_t *r, bool ok, const char *msg,
		     uint64_t index, Flotilla__AuditEvent *e)
{
	flotilla__audit_event__init(e);
	e->time_ms = cl->time_ms;
	e->who = cl->who;
	e->who_name = cl->who_name;
	e->method = (char *)flt_method_name(cl->method);
	e->namespace_ = cl->ns;
	e->target = (char *)call_target(cl, r);
	e->ok = ok;
	e->error = (char *)(msg ? msg : "");
	e->peer = cl->peer;
	e->index = index;
}

/* ---- writing ------------------------------------------------------------- */

typedef struct trim {
	coord_acl_t *a;
	int64_t cutoff;
	unsigned char keys[TRIM_PER_WRITE][8];
	size_t n;
} trim_t;

static int trim_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	trim_t *t = arg;
	if (t->n == TRIM_PER_WRITE || klen != 8)
		return 1;
	bool over = t->a->audit_count > t->a->audit_max + t->n;
	if (!over) {
		Flotilla__AuditEvent *e =
			flotilla__audit_event__unpack(NULL, vlen, val);
		bool old = !e || e->time_ms < t->cutoff;
		if (e)
			flotilla__audit_event__free_unpacked(e, NULL);
		if (!old)
			return 1;
	}
	memcpy(t->keys[t->n++], key, 8);
	return 0;
}

/* On the writer's thread, in txn: stores e under the next number, then
 * trims the oldest records past the bounds. */
static int put_event(coord_acl_t *a, flt_txn_t *txn, Flotilla__AuditEvent *e,
		     flt_error_t *err)
{
	unsigned char k[8];
	e->seq = a->audit_next;
	seq_key(e->seq, k);
	size_t len = protobuf_c_message_get_packed_size(&e->base);
	cleanup_free uint8_t *buf = flt_xmalloc(len ? len : 1);
	protobuf_c_message_pack(&e->base, buf);
	int rc = flt_txn_put(txn, a->db_audit, k, 8, buf, len, err);
	if (rc < 0)
		return rc;
	a->audit_next++;
	a->audit_count++;
	trim_t t = { .a = a,
		     .cutoff = flt_now_wall_ms() - a->audit_max_age_ms };
	flt_txn_foreach(txn, a->db_audit, NULL, 0, trim_one, &t);
	for (size_t i = 0; i < t.n; i++)
		if (flt_txn_del(txn, a->db_audit, t.keys[i], 8) == 0 &&
		    a->audit_count)
			a->audit_count--;
	return 0;
}

int coord_audit_in_txn(flt_txn_t *txn, flt_request_t *r, flt_error_t *err)
{
	acl_call_t *cl = r ? flt_request_context(r) : NULL;
	if (!cl || !cl->audited)
		return 0;
	Flotilla__AuditEvent e;
	event_of(cl, r, true, NULL, flt_txn_index(txn), &e);
	int rc = put_event(cl->a, txn, &e, err);
	if (rc == 0)
		cl->recorded = true;
	return rc;
}

typedef struct standalone {
	coord_acl_t *a;
	Flotilla__AuditEvent *e; /* owned */
} standalone_t;

static int standalone_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	standalone_t *s = arg;
	return put_event(s->a, txn, s->e, err);
}

static void standalone_done(void *arg, int rc, uint64_t index,
			    const flt_error_t *err)
{
	standalone_t *s = arg;
	(void)index;
	if (rc < 0 && rc != -ESHUTDOWN)
		flt_warn("audit record not stored method=%s who=%s "
			 "error=\"%s\"",
			 s->e->method, s->e->who, err ? err->msg : "");
	protobuf_c_message_free_unpacked(&s->e->base, NULL);
	free(s);
}

void acl_audit_submit(coord_acl_t *a, acl_call_t *cl, flt_request_t *r,
		      int code, const char *msg)
{
	Flotilla__AuditEvent e;
	event_of(cl, r, code == 0, msg, 0, &e);
	standalone_t *s = flt_xcalloc(1, sizeof(*s));
	s->a = a;
	s->e = flt_pb_dup(&e.base);
	coord_writer_submit(a->writer, standalone_apply, standalone_done, s);
}

/* ---- loading and listing ------------------------------------------------- */

typedef struct scan {
	uint64_t first, last, n;
} scan_t;

static int scan_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	scan_t *s = arg;
	(void)val;
	(void)vlen;
	uint64_t v = key_seq(key, klen);
	if (!s->n)
		s->first = v;
	s->last = v;
	s->n++;
	return 0;
}

void acl_audit_load(coord_acl_t *a, flt_txn_t *txn)
{
	scan_t s = { 0 };
	flt_txn_foreach(txn, a->db_audit, NULL, 0, scan_one, &s);
	a->audit_count = s.n;
	a->audit_next = s.n ? s.last + 1 : 1;
}

typedef struct collect {
	const Flotilla__AuditListRequest *q;
	Flotilla__AuditEvent **ring; /* the newest limit events */
	size_t limit, n, head;
} collect_t;

static int collect_one(const void *key, size_t klen, const void *val,
		       size_t vlen, void *arg)
{
	collect_t *c = arg;
	(void)key;
	(void)klen;
	Flotilla__AuditEvent *e =
		flotilla__audit_event__unpack(NULL, vlen, val);
	if (!e)
		return 0;
	const char *who = c->q->who;
	if (e->time_ms < c->q->since_ms ||
	    (*who && strcmp(who, e->who) != 0 &&
	     strcmp(who, e->who_name) != 0 &&
	     !(strncmp(e->who, "token:", 6) == 0 &&
	       strncmp(e->who + 6, who, strlen(who)) == 0))) {
		flotilla__audit_event__free_unpacked(e, NULL);
		return 0;
	}
	size_t slot = (c->head + c->n) % c->limit;
	if (c->n == c->limit) {
		flotilla__audit_event__free_unpacked(c->ring[c->head], NULL);
		slot = c->head;
		c->head = (c->head + 1) % c->limit;
	} else {
		c->n++;
	}
	c->ring[slot] = e;
	return 0;
}

void coord_audit_list(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AuditListRequest *q;
	if (flt_request_body(r, &flotilla__audit_list_request__descriptor, &q) <
	    0)
		return;
	collect_t c = { .q = q };
	c.limit = q->limit ? q->limit : LIST_DEFAULT;
	if (c.limit > LIST_MAX)
		c.limit = LIST_MAX;
	c.ring = flt_xcalloc(c.limit, sizeof(*c.ring));
	flt_error_t err;
	flt_txn_t *txn;
	if (flt_txn_begin(a->store, false, &txn, &err) < 0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		goto out;
	}
	flt_txn_foreach(txn, a->db_audit, NULL, 0, collect_one, &c);
	flt_txn_abort(txn);
	Flotilla__AuditListResponse resp = FLOTILLA__AUDIT_LIST_RESPONSE__INIT;
	Flotilla__AuditEvent **v = flt_xcalloc(c.n + 1, sizeof(*v));
	for (size_t i = 0; i < c.n; i++)
		v[i] = c.ring[(c.head + i) % c.limit];
	resp.n_events = c.n;
	resp.events = v;
	flt_request_reply(r, &resp.base);
	free(v);
out:
	for (size_t i = 0; i < c.n; i++)
		flotilla__audit_event__free_unpacked(
			c.ring[(c.head + i) % c.limit], NULL);
	free(c.ring);
	flotilla__audit_list_request__free_unpacked(q, NULL);
}
