/* The agent's identity (node id and secret), kept in its own LMDB. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agent.h"
#include "flotilla/util.h"

#define IDENTITY_KEY "self"

/* Sets id from a node id and secret as stored or received, when both have
 * the sizes of an identity; false (id untouched) otherwise. */
static bool identity_set(agent_identity_t *id, const char *node_id,
			 ProtobufCBinaryData secret)
{
	if (strlen(node_id) >= sizeof(id->node_id) ||
	    secret.len != sizeof(id->secret))
		return false;
	snprintf(id->node_id, sizeof(id->node_id), "%s", node_id);
	memcpy(id->secret, secret.data, sizeof(id->secret));
	id->valid = true;
	return true;
}

/* A key of any other size is ignored: the API then refuses every read. */
static void grant_key_set(agent_identity_t *id, ProtobufCBinaryData key)
{
	if (key.len != sizeof(id->grant_key))
		return;
	memcpy(id->grant_key, key.data, sizeof(id->grant_key));
	id->has_grant_key = true;
}

int agent_identity_from_reply(const Flotilla__RegisterResponse *r,
			      agent_identity_t *id)
{
	if (!identity_set(id, r->node_id, r->node_secret))
		return FLT_EPROTO;
	memset(id->grant_key, 0, sizeof(id->grant_key));
	id->has_grant_key = false;
	grant_key_set(id, r->grant_key);
	return 0;
}

bool agent_identity_grant_key(agent_identity_t *id, ProtobufCBinaryData key)
{
	if (key.len != sizeof(id->grant_key) ||
	    (id->has_grant_key &&
	     !memcmp(id->grant_key, key.data, sizeof(id->grant_key))))
		return false;
	grant_key_set(id, key);
	return true;
}

void agent_identity_creds(const agent_identity_t *id, Flotilla__Credentials *c)
{
	flotilla__credentials__init(c);
	c->node_id = (char *)id->node_id;
	c->node_secret.data = (uint8_t *)id->secret;
	c->node_secret.len = sizeof(id->secret);
}

int agent_identity_load(flt_store_t *s, agent_identity_t *id, flt_error_t *err)
{
	flt_db_t db;
	flt_txn_t *txn;
	Flotilla__AgentIdentity *rec;
	int rc;

	memset(id, 0, sizeof(*id));
	if ((rc = flt_store_db(s, "identity", &db)) < 0)
		return flt_err(err, rc, "store has no identity database");
	if ((rc = flt_txn_begin(s, false, &txn, err)) < 0)
		return rc;
	rc = flt_txn_get_pb(txn, db, IDENTITY_KEY,
			    &flotilla__agent_identity__descriptor,
			    (ProtobufCMessage **)&rec, err);
	flt_txn_abort(txn);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (identity_set(id, rec->node_id, rec->node_secret))
		grant_key_set(id, rec->grant_key);
	flotilla__agent_identity__free_unpacked(rec, NULL);
	return 0;
}

int agent_identity_save(flt_store_t *s, const agent_identity_t *id,
			const char *coordinator, flt_error_t *err)
{
	Flotilla__AgentIdentity rec = FLOTILLA__AGENT_IDENTITY__INIT;
	flt_db_t db;
	flt_txn_t *txn;
	int rc;

	if ((rc = flt_store_db(s, "identity", &db)) < 0)
		return flt_err(err, rc, "store has no identity database");
	rec.node_id = (char *)id->node_id;
	rec.node_secret.data = (uint8_t *)id->secret;
	rec.node_secret.len = sizeof(id->secret);
	rec.coordinator = (char *)coordinator;
	if (id->has_grant_key) {
		rec.grant_key.data = (uint8_t *)id->grant_key;
		rec.grant_key.len = sizeof(id->grant_key);
	}
	if ((rc = flt_txn_begin(s, true, &txn, err)) < 0)
		return rc;
	if ((rc = flt_txn_put_pb(txn, db, IDENTITY_KEY, &rec.base, err)) < 0) {
		flt_txn_abort(txn);
		return rc;
	}
	return flt_txn_commit(txn, err);
}

int agent_registration_id(flt_store_t *s, char out[37], flt_error_t *err)
{
	static const char key[] = "registration";
	flt_db_t db;
	flt_txn_t *txn;
	const void *v;
	size_t vl;
	int rc;

	if ((rc = flt_store_db(s, "identity", &db)) < 0)
		return flt_err(err, rc, "store has no identity database");
	if ((rc = flt_txn_begin(s, true, &txn, err)) < 0)
		return rc;
	rc = flt_txn_get(txn, db, key, sizeof(key) - 1, &v, &vl);
	if (rc == 0 && vl == 36) {
		memcpy(out, v, 36);
		out[36] = '\0';
		flt_txn_abort(txn);
		return 0;
	}
	flt_uuid_v4(out);
	if ((rc = flt_txn_put(txn, db, key, sizeof(key) - 1, out, 36, err)) <
	    0) {
		flt_txn_abort(txn);
		return rc;
	}
	return flt_txn_commit(txn, err);
}
