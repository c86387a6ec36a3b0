/* Shared by acl.c (identity and checks), aclops.c (the ACL methods) and
 * audit.c (the audit trail). */
#ifndef FLOTILLA_ACL_INTERNAL_H
#define FLOTILLA_ACL_INTERNAL_H

#include <sodium.h>

#include "coordinator.h"
#include "flotilla/hash.h"
#include "flotilla/util.h"

/* Namespace capabilities, as bits. */
enum {
	NS_READ_JOB = 1u << 0,
	NS_SUBMIT_JOB = 1u << 1,
	NS_STOP_JOB = 1u << 2,
	NS_READ_LOGS = 1u << 3,
	NS_PRIVILEGED = 1u << 4,
	NS_DENY = 1u << 5,
};

/* Fleet-wide areas, and what a policy grants in each. */
enum fleet_area {
	F_NODE,
	F_PACKAGE,
	F_INVENTORY,
	F_CAMPAIGN,
	F_AUDIT,
	F_COUNT
};
enum level { L_NONE = 0, L_READ = 1, L_WRITE = 2, L_DENY = 3 };

typedef struct acl_tok {
	Flotilla__AclToken *t;
	char hash[2 * crypto_hash_sha256_BYTES + 1]; /* key in by_hash */
} acl_tok_t;

struct coord_acl {
	flt_store_t *store;
	coord_writer_t *writer;
	char *data_dir;
	bool enforce;
	flt_db_t db_tokens, db_policies, db_meta, db_audit;
	/* lock: the three maps. */
	flt_rwlock_t lock;
	flt_map_t tokens; /* accessor id -> acl_tok_t */
	flt_map_t by_hash; /* secret's SHA-256 in hex -> acl_tok_t */
	flt_map_t policies; /* name -> Flotilla__AclPolicy */
	/* The audit trail; touched on the writer's thread only (and by
	 * open before it starts). */
	uint64_t audit_next; /* the next event's sequence number */
	uint64_t audit_count; /* events stored (about: see audit.c) */
	uint64_t audit_max;
	int64_t audit_max_age_ms;
};

/* One operator call's context: who, where, and its audit record. */
typedef struct acl_call {
	coord_acl_t *a;
	Flotilla__Method method;
	const ProtobufCMessageDescriptor *request; /* the row's body */
	bool audited; /* a state-changing method: recorded when answered */
	bool recorded; /* already, inside the change's transaction */
	bool dev; /* ACLs not enforced */
	int64_t time_ms;
	char ns[FLT_NAMESPACE_MAX + 1];
	char accessor[37]; /* the token's; "" when anonymous */
	char who[48];
	char who_name[128];
	char peer[80];
	char *target; /* found in the request's body when first needed */
} acl_call_t;

unsigned acl_ns_policy_bits(const char *policy);
int acl_policy_check(const Flotilla__AclPolicy *p, flt_error_t *err);

/* The maps: under the write lock, or before the ACL is shared. Put
 * takes ownership. */
void acl_tok_put(coord_acl_t *a, Flotilla__AclToken *tok);
void acl_tok_del(coord_acl_t *a, const char *accessor);
void acl_tok_free(acl_tok_t *t);
/* Under the lock: the token whose secret id is secret, or NULL. */
const acl_tok_t *acl_tok_by_secret(coord_acl_t *a, const char *secret);
void acl_pol_put(coord_acl_t *a, Flotilla__AclPolicy *p);
void acl_pol_del(coord_acl_t *a, const char *name);

uint64_t acl_reset_index(coord_acl_t *a);
void acl_reset_remove(coord_acl_t *a);

/* audit.c */
void acl_audit_load(coord_acl_t *a, flt_txn_t *txn);
/* Queues the record of a call answered without one in a transaction. */
void acl_audit_submit(coord_acl_t *a, acl_call_t *cl, flt_request_t *r,
		      int code, const char *msg);

#endif
