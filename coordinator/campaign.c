/*
 * Campaigns: one package version rolled out to every host an inventory
 * query matches, canary first, then waves, behind a failure gate.
 *
 * State lives in `campaigns` (Campaign, key: id) and `campaign_targets`
 * (CampaignTarget, key: "<campaign id>/<node id>"). One thread decides
 * every transition: it works on copies of what changes, commits them in
 * one transaction through the writer, and only then shows them in memory
 * and wakes the nodes concerned. A coordinator killed at any instant
 * restarts from the last commit: a target is dispatched once (its step id
 * is stored with it) and the agent runs a step id at most once.
 *
 * A campaign and each of its targets move only through their lifecycle
 * tables, coord_campaign_fsm and coord_target_fsm below, rendered in
 * docs/lifecycles.md: what a table refuses changes nothing.
 *
 * The failure gate: failures are failed + failed_offline + still_exposed
 * targets. The gate trips when failures EXCEED the limit (a limit of 0
 * trips on the first failure, a limit of 2 on the third). Once tripped no
 * new target is dispatched; targets already in flight finish and are
 * counted, whatever their result. The campaign then pauses (on_failure
 * "pause") or aborts ("abort"). Resuming a tripped campaign accepts the
 * failures so far: the limit becomes failures + the original limit.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "lifecycle.h"
#include "scheduler.h"
#include "flotilla/lock.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

#define DEFAULT_MIN_HEALTHY_MS 10000u
#define DEFAULT_HOST_TIMEOUT_MS 600000u
#define DEFAULT_BATCH_PERCENT 25u
#define LATE_SCAN_MS 2000
#define MAX_CAMPAIGNS 1000

#define ST(x) FLOTILLA__TARGET_STATE__TARGET_STATE_##x
#define CS(x) FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_##x

typedef Flotilla__Campaign camp_msg_t;
typedef Flotilla__CampaignTarget target_t;

typedef struct camp {
	camp_msg_t *c;
	flt_query_t *q; /* the parsed target; NULL if it no longer parses */
	target_t **t; /* sorted by node id */
	size_t n, cap;
	/* This thread's time spent on it since the current wave began or the
	 * coordinator started (memory only, for the log; the wave's start is
	 * c->wave_started_at_ms, stored so that a restart keeps it). */
	int64_t busy_us;
	/* This round's working copies: change index + 1, 0 for none. */
	size_t *chi; /* per target, k->n of them */
	size_t chi_n;
	size_t cchi; /* the campaign's */
} camp_t;

typedef struct report {
	char node[37];
	Flotilla__StepStatus *st;
	struct report *next;
} report_t;

typedef enum { CMD_PAUSE, CMD_RESUME, CMD_ABORT, CMD_CREATE } cmd_kind_t;

typedef struct cmd {
	cmd_kind_t kind;
	char id[37];
	flt_request_t *r;
	struct camp *create; /* CMD_CREATE: the campaign to store */
	struct cmd *next;
} cmd_t;

/* One change to commit: a campaign, a target, or a new target. */
typedef struct change {
	camp_t *camp;
	camp_msg_t *c; /* new campaign value, or NULL */
	target_t *t; /* new target value, or NULL */
	size_t ti; /* index of t in camp (SIZE_MAX: new target) */
	bool push; /* the node has a new step */
} change_t;

struct coord_campaigns {
	coord_campaigns_opts_t o;
	flt_db_t db_c, db_t;
	flt_mutex_t mtx; /* memory (camps) and the queues */
	pthread_cond_t cond;
	camp_t **v;
	size_t n, cap;
	report_t *reports, **rtail;
	cmd_t *cmds, **ctail;
	cmd_t *round_cmds; /* the campaign thread's: this round's commands */
	bool stopping;
	pthread_t thread;
	bool started;
	int64_t next_late_scan;
	/* The thread's pending changes. */
	change_t *ch;
	size_t nch, chcap;
	/* Synchronous commits. */
	flt_mutex_t wmtx;
	pthread_cond_t wcond;
	bool wdone;
	int wrc;
	uint64_t windex;
	flt_error_t werr;
};

/* ---- lifecycles ---------------------------------------------------------- */

#define NO FLT_FSM_REFUSE
#define IG FLT_FSM_IGNORE

static const char *const campaign_events[CAMP_EV_COUNT] = {
	[CAMP_EV_CREATE] = "create", [CAMP_EV_PAUSE] = "pause",
	[CAMP_EV_RESUME] = "resume", [CAMP_EV_ABORT] = "abort",
	[CAMP_EV_TRIP] = "trip",     [CAMP_EV_TRIP_ABORT] = "trip_abort",
	[CAMP_EV_HOLD] = "hold",     [CAMP_EV_FINISH] = "finish",
	[CAMP_EV_SETTLE] = "settle",
};

_Static_assert(CAMP_EV_COUNT == 9, "campaign_next has a column per event");
static const signed char campaign_next[][CAMP_EV_COUNT] = {
	/* create, pause, resume, abort, trip, trip_abort, hold, finish,
	 * settle */
	[CS(UNKNOWN)] = { CS(RUNNING), NO, NO, NO, NO, NO, NO, NO, NO },
	[CS(RUNNING)] = { NO, CS(PAUSED), NO, CS(ABORTING), CS(PAUSED),
			  CS(ABORTING), CS(PAUSED), CS(COMPLETE), NO },
	[CS(PAUSED)] = { NO, NO, CS(RUNNING), CS(ABORTING), CS(PAUSED),
			 CS(ABORTING), NO, NO, NO },
	[CS(COMPLETE)] = { NO, NO, NO, NO, IG, IG, NO, NO, NO },
	[CS(ABORTING)] = { NO, NO, NO, NO, IG, IG, NO, NO, CS(ABORTED) },
	[CS(ABORTED)] = { NO, NO, NO, NO, IG, IG, NO, NO, NO },
};

const flt_fsm_t coord_campaign_fsm = {
	.name = "campaign",
	.doc = "A campaign rolls one package version out to the hosts an "
	       "inventory query matched, wave by wave. *pause*, *resume* and "
	       "*abort* come from operators, who get the refusal as their "
	       "answer; the campaign thread sends the others: *create* (a "
	       "campaign with no host to patch then gets *finish* at once), "
	       "*trip* and *trip_abort* when failures exceed the limit "
	       "(per `on_failure`; a paused campaign stays paused, and the "
	       "gate trips once), *hold* when the canary wave is done and "
	       "`manual_promote` asks for a resume, *finish* when the last "
	       "wave is done, *settle* when an abort has nothing left in "
	       "flight.",
	.states = &flotilla__campaign_state__descriptor,
	.n_states = FLT_ARRAY_SIZE(campaign_next),
	.events = campaign_events,
	.n_events = CAMP_EV_COUNT,
	.next = &campaign_next[0][0],
};

static const char *const target_events[TARGET_EV_COUNT] = {
	[TARGET_EV_PLAN] = "plan",
	[TARGET_EV_LATE] = "late",
	[TARGET_EV_DISPATCH] = "dispatch",
	[TARGET_EV_SKIP] = "skip",
	[TARGET_EV_START] = "start",
	[TARGET_EV_SUCCEED] = "succeed",
	[TARGET_EV_STAY_EXPOSED] = "stay_exposed",
	[TARGET_EV_FAIL] = "fail",
	[TARGET_EV_FAIL_OFFLINE] = "fail_offline",
	[TARGET_EV_ABORT] = "abort",
};

/* A target that has settled takes no report and no timeout. */
#define SETTLED                                        \
	{                                              \
		NO, NO, NO, NO, IG, IG, IG, IG, IG, IG \
	}

_Static_assert(TARGET_EV_COUNT == 10, "target_next has a column per event");
static const signed char target_next[][TARGET_EV_COUNT] = {
	/* plan, late, dispatch, skip, start, succeed, stay_exposed, fail,
	 * fail_offline, abort */
	[ST(UNKNOWN)] = { ST(PENDING), ST(LATE), NO, NO, NO, NO, NO, NO, NO,
			  NO },
	[ST(PENDING)] = { NO, NO, ST(DISPATCHED), ST(SKIPPED), NO, NO, NO, NO,
			  NO, ST(SKIPPED) },
	[ST(DISPATCHED)] = { NO, NO, NO, NO, ST(APPLYING), ST(REMEDIATED),
			     ST(STILL_EXPOSED), ST(FAILED), ST(FAILED_OFFLINE),
			     IG },
	[ST(APPLYING)] = { NO, NO, NO, NO, IG, ST(REMEDIATED),
			   ST(STILL_EXPOSED), ST(FAILED), ST(FAILED), IG },
	[ST(REMEDIATED)] = { NO, NO, NO, NO, IG, IG, IG, IG, IG,
			     ST(ROLLING_BACK) },
	[ST(FAILED)] = SETTLED,
	[ST(FAILED_OFFLINE)] = SETTLED,
	[ST(STILL_EXPOSED)] = { NO, NO, NO, NO, IG, IG, IG, IG, IG,
				ST(ROLLING_BACK) },
	[ST(SKIPPED)] = SETTLED,
	[ST(ROLLING_BACK)] = { NO, NO, NO, NO, IG, ST(ROLLED_BACK), NO,
			       ST(FAILED), ST(FAILED), IG },
	[ST(ROLLED_BACK)] = SETTLED,
	[ST(LATE)] = SETTLED,
};

#undef SETTLED
#undef IG
#undef NO

const flt_fsm_t coord_target_fsm = {
	.name = "campaign target",
	.doc = "One host of a campaign. It is made when the campaign is "
	       "planned (*plan*), or reported when it matches the target only "
	       "later (*late*: never patched). When its wave comes it gets a "
	       "step (*dispatch*), or is *skip*ped when it no longer matches; "
	       "its agent reports the step started (*start*), succeeded with "
	       "a re-scan that no longer matches the target (*succeed*) or "
	       "still does (*stay_exposed*), or failed (*fail*, also sent "
	       "after the per-host timeout with the host up; *fail_offline* "
	       "with the host down). *abort* skips the hosts not yet sent and "
	       "rolls back those the campaign changed; hosts in flight finish "
	       "first. Reports about a settled step change nothing. Failures "
	       "for the gate: failed, failed_offline, still_exposed.",
	.states = &flotilla__target_state__descriptor,
	.n_states = FLT_ARRAY_SIZE(target_next),
	.events = target_events,
	.n_events = TARGET_EV_COUNT,
	.next = &target_next[0][0],
};

/* ---- helpers ----------------------------------------------------------- */

static bool terminal(Flotilla__TargetState s)
{
	return s == ST(REMEDIATED) || s == ST(FAILED) ||
	       s == ST(FAILED_OFFLINE) || s == ST(STILL_EXPOSED) ||
	       s == ST(SKIPPED) || s == ST(ROLLED_BACK) || s == ST(LATE);
}

static bool in_flight(Flotilla__TargetState s)
{
	return s == ST(DISPATCHED) || s == ST(APPLYING) ||
	       s == ST(ROLLING_BACK);
}

static bool is_failure(Flotilla__TargetState s)
{
	return s == ST(FAILED) || s == ST(FAILED_OFFLINE) ||
	       s == ST(STILL_EXPOSED);
}

static bool camp_open(const camp_msg_t *c)
{
	return c->state == CS(RUNNING) || c->state == CS(PAUSED) ||
	       c->state == CS(ABORTING);
}

static const char *target_state_name(Flotilla__TargetState s)
{
	return flt_fsm_state_name(&coord_target_fsm, s);
}

static int target_cmp(const void *a, const void *b)
{
	const target_t *x = *(target_t *const *)a, *y = *(target_t *const *)b;
	return strcmp(x->node_id, y->node_id);
}

static long target_find(const camp_t *k, const char *node)
{
	size_t lo = 0, hi = k->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(node, k->t[mid]->node_id);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static void camp_add_target(camp_t *k, target_t *t)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 16;
		k->t = flt_xrealloc(k->t, k->cap * sizeof(*k->t));
	}
	size_t i = k->n;
	while (i > 0 && strcmp(k->t[i - 1]->node_id, t->node_id) > 0) {
		k->t[i] = k->t[i - 1];
		i--;
	}
	k->t[i] = t;
	k->n++;
}

static void camp_free(camp_t *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		flotilla__campaign_target__free_unpacked(k->t[i], NULL);
	free(k->t);
	free(k->chi);
	if (k->c)
		flotilla__campaign__free_unpacked(k->c, NULL);
	flt_query_free(k->q);
	free(k);
}

/* Called with mtx held. */
static camp_t *camp_find(coord_campaigns_t *cs, const char *q, flt_error_t *err)
{
	camp_t *found = NULL;
	size_t n = 0, ql = strlen(q);
	for (size_t i = 0; i < cs->n; i++) {
		if (strcmp(cs->v[i]->c->id, q) == 0)
			return cs->v[i];
		if (ql && strncmp(cs->v[i]->c->id, q, ql) == 0) {
			found = cs->v[i];
			n++;
		}
	}
	if (n == 1)
		return found;
	if (n > 1)
		flt_err(err, FLT_ECONFLICT,
			"\"%s\" matches %zu campaigns; use more of the id", q,
			n);
	else
		flt_err(err, FLT_ENOTFOUND, "no campaign \"%s\"", q);
	return NULL;
}

static void counts_of(const camp_t *k, const camp_msg_t *c,
		      Flotilla__CampaignCounts *o)
{
	flotilla__campaign_counts__init(o);
	for (size_t i = 0; i < k->n; i++) {
		const target_t *t = k->t[i];
		if (t->state == ST(LATE)) {
			o->late++;
			continue;
		}
		o->total++;
		switch (t->state) {
		case ST(PENDING): o->pending++; break;
		case ST(DISPATCHED):
		case ST(APPLYING):
		case ST(ROLLING_BACK): o->in_flight++; break;
		case ST(REMEDIATED): o->remediated++; break;
		case ST(FAILED): o->failed++; break;
		case ST(FAILED_OFFLINE):
			o->failed++;
			o->failed_offline++;
			break;
		case ST(STILL_EXPOSED):
			o->failed++;
			o->still_exposed++;
			break;
		case ST(SKIPPED): o->skipped++; break;
		case ST(ROLLED_BACK): o->rolled_back++; break;
		default: break;
		}
		if (t->wave == c->wave) {
			o->wave_total++;
			if (terminal(t->state))
				o->wave_done++;
		}
	}
}

/* ---- loading ------------------------------------------------------------ */

static int load_campaign(const void *key, size_t klen, const void *val,
			 size_t vlen, void *arg)
{
	coord_campaigns_t *cs = arg;
	(void)key;
	(void)klen;
	camp_msg_t *c = flotilla__campaign__unpack(NULL, vlen, val);
	if (!c || !c->spec)
		return 0;
	camp_t *k = flt_xcalloc(1, sizeof(*k));
	k->c = c;
	flt_error_t err;
	if (flt_query_parse(c->spec->target, coord_inv_advisories(cs->o.inv),
			    &k->q, &err) < 0)
		flt_warn("campaign %s: target no longer parses: %s", c->id,
			 err.msg);
	if (cs->n == cs->cap) {
		cs->cap = cs->cap ? 2 * cs->cap : 8;
		cs->v = flt_xrealloc(cs->v, cs->cap * sizeof(*cs->v));
	}
	cs->v[cs->n++] = k;
	return 0;
}

static int load_target(const void *key, size_t klen, const void *val,
		       size_t vlen, void *arg)
{
	coord_campaigns_t *cs = arg;
	(void)key;
	(void)klen;
	target_t *t = flotilla__campaign_target__unpack(NULL, vlen, val);
	if (!t)
		return 0;
	for (size_t i = 0; i < cs->n; i++) {
		if (strcmp(cs->v[i]->c->id, t->campaign) == 0) {
			camp_t *k = cs->v[i];
			if (k->n == k->cap) {
				k->cap = k->cap ? 2 * k->cap : 16;
				k->t = flt_xrealloc(k->t,
						    k->cap * sizeof(*k->t));
			}
			k->t[k->n++] = t;
			return 0;
		}
	}
	flotilla__campaign_target__free_unpacked(t, NULL);
	return 0;
}

/* ---- committing --------------------------------------------------------- */

static void target_key(char *key, size_t len, const target_t *t)
{
	snprintf(key, len, "%s/%s", t->campaign, t->node_id);
}

typedef struct create_op create_op_t;

static int changes_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	coord_campaigns_t *cs = arg;
	char key[128];
	for (size_t i = 0; i < cs->nch; i++) {
		change_t *ch = &cs->ch[i];
		int rc = 0;
		if (ch->c) {
			ch->c->updated_at_ms = flt_now_wall_ms();
			ch->c->index = flt_txn_index(txn);
			rc = flt_txn_put_pb(txn, cs->db_c, ch->c->id,
					    &ch->c->base, err);
		}
		if (rc == 0 && ch->t) {
			target_key(key, sizeof(key), ch->t);
			rc = flt_txn_put_pb(txn, cs->db_t, key, &ch->t->base,
					    err);
		}
		if (rc < 0)
			return rc;
	}
	/* The operators' commands of the round go with their records (a
	 * creation went with its own transaction). */
	for (cmd_t *c = cs->round_cmds; c; c = c->next) {
		int rc = c->r && c->kind != CMD_CREATE
				 ? coord_audit_in_txn(txn, c->r, err)
				 : 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

typedef struct sync_op {
	coord_campaigns_t *cs;
	coord_apply_fn apply;
	void *arg;
} sync_op_t;

static int sync_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	sync_op_t *o = arg;
	return o->apply(txn, o->arg, err);
}

static void sync_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	coord_campaigns_t *cs = ((sync_op_t *)arg)->cs;
	flt_mutex_lock(&cs->wmtx);
	cs->wrc = rc;
	cs->windex = index;
	if (rc < 0 && err)
		cs->werr = *err;
	cs->wdone = true;
	pthread_cond_signal(&cs->wcond);
	flt_mutex_unlock(&cs->wmtx);
}

/* Submits an op and waits for its commit (only the campaign thread). */
static int commit_sync(coord_campaigns_t *cs, coord_apply_fn apply, void *arg,
		       uint64_t *index, flt_error_t *err)
{
	sync_op_t op = { cs, apply, arg };
	flt_mutex_lock(&cs->wmtx);
	cs->wdone = false;
	flt_mutex_unlock(&cs->wmtx);
	coord_writer_submit(cs->o.writer, sync_apply, sync_done, &op);
	flt_mutex_lock(&cs->wmtx);
	while (!cs->wdone)
		flt_cond_wait(&cs->wcond, &cs->wmtx);
	int rc = cs->wrc;
	if (index)
		*index = cs->windex;
	if (rc < 0 && err)
		*err = cs->werr;
	flt_mutex_unlock(&cs->wmtx);
	return rc;
}

/* The working copy of the campaign in the pending changes. */
static change_t *new_change(coord_campaigns_t *cs, camp_t *k)
{
	if (cs->nch == cs->chcap) {
		cs->chcap = cs->chcap ? 2 * cs->chcap : 64;
		cs->ch = flt_xrealloc(cs->ch, cs->chcap * sizeof(*cs->ch));
	}
	change_t *ch = &cs->ch[cs->nch++];
	memset(ch, 0, sizeof(*ch));
	ch->camp = k;
	ch->ti = SIZE_MAX;
	return ch;
}

/* The working copy of the campaign in the pending changes. */
static camp_msg_t *work_camp(coord_campaigns_t *cs, camp_t *k)
{
	if (k->cchi)
		return cs->ch[k->cchi - 1].c;
	change_t *ch = new_change(cs, k);
	ch->c = flt_pb_dup(&k->c->base);
	k->cchi = cs->nch;
	return ch->c;
}

/* The working copy of target ti (each target changes once per round). */
static target_t *work_target(coord_campaigns_t *cs, camp_t *k, size_t ti)
{
	if (k->chi_n < k->n) {
		free(k->chi);
		k->chi = flt_xcalloc(k->n, sizeof(*k->chi));
		k->chi_n = k->n;
	}
	if (k->chi[ti])
		return cs->ch[k->chi[ti] - 1].t;
	change_t *ch = new_change(cs, k);
	ch->ti = ti;
	ch->t = flt_pb_dup(&k->t[ti]->base);
	k->chi[ti] = cs->nch;
	return ch->t;
}

/* Is target ti already changed this round? */
static target_t *changed_target(coord_campaigns_t *cs, camp_t *k, size_t ti)
{
	if (ti >= k->chi_n || !k->chi[ti])
		return NULL;
	return cs->ch[k->chi[ti] - 1].t;
}

/* Forgets the round's index entries of every campaign it touched. */
static void changes_unindex(coord_campaigns_t *cs)
{
	for (size_t i = 0; i < cs->nch; i++) {
		change_t *ch = &cs->ch[i];
		ch->camp->cchi = 0;
		if (ch->ti != SIZE_MAX && ch->ti < ch->camp->chi_n)
			ch->camp->chi[ch->ti] = 0;
	}
}

static void changes_discard(coord_campaigns_t *cs)
{
	changes_unindex(cs);
	for (size_t i = 0; i < cs->nch; i++) {
		if (cs->ch[i].c)
			flotilla__campaign__free_unpacked(cs->ch[i].c, NULL);
		if (cs->ch[i].t)
			flotilla__campaign_target__free_unpacked(cs->ch[i].t,
								 NULL);
	}
	cs->nch = 0;
}

/* Commits the pending changes; on success shows them and wakes nodes. */
static int changes_commit(coord_campaigns_t *cs)
{
	bool any = false;
	for (size_t i = 0; i < cs->nch && !any; i++)
		any = cs->ch[i].c || cs->ch[i].t;
	if (!any) {
		changes_unindex(cs);
		cs->nch = 0;
		return 0;
	}
	uint64_t index;
	flt_error_t err;
	int rc = commit_sync(cs, changes_apply, cs, &index, &err);
	if (rc < 0) {
		flt_warn("campaign changes not stored (retried): %s", err.msg);
		changes_discard(cs);
		return rc;
	}
	changes_unindex(cs);
	flt_mutex_lock(&cs->mtx);
	for (size_t i = 0; i < cs->nch; i++) {
		change_t *ch = &cs->ch[i];
		if (ch->c) {
			flotilla__campaign__free_unpacked(ch->camp->c, NULL);
			ch->camp->c = ch->c;
			ch->c = NULL;
		}
		if (ch->t && ch->ti != SIZE_MAX) {
			flotilla__campaign_target__free_unpacked(
				ch->camp->t[ch->ti], NULL);
			ch->camp->t[ch->ti] = ch->t;
		}
	}
	/* New targets last: inserting moves the others' indexes. */
	for (size_t i = 0; i < cs->nch; i++) {
		change_t *ch = &cs->ch[i];
		if (ch->t && ch->ti == SIZE_MAX)
			camp_add_target(ch->camp, ch->t);
	}
	flt_mutex_unlock(&cs->mtx);
	for (size_t i = 0; i < cs->nch; i++) {
		change_t *ch = &cs->ch[i];
		if (ch->push && ch->t)
			coord_nodes_push(cs->o.nodes, ch->t->node_id, index);
		ch->t = NULL;
	}
	cs->nch = 0;
	return 0;
}

/* ---- the per-round decisions -------------------------------------------- */

static uint32_t failures_of(coord_campaigns_t *cs, camp_t *k)
{
	uint32_t n = 0;
	for (size_t i = 0; i < k->n; i++) {
		target_t *w = changed_target(cs, k, i);
		if (is_failure((w ? w : k->t[i])->state))
			n++;
	}
	return n;
}

/* Gives target ti (already a working copy) a new step id. */
static void new_step(coord_campaigns_t *cs, camp_t *k, size_t ti)
{
	camp_msg_t *c = work_camp(cs, k);
	change_t *ch = &cs->ch[k->chi[ti] - 1];
	target_t *w = ch->t;
	char id[80];
	snprintf(id, sizeof(id), "%s/%u", c->id, ++c->next_step);
	flt_pb_set_str(&w->step_id, id);
	w->started_at_ms = flt_now_wall_ms();
	w->finished_at_ms = 0;
	ch->push = true;
}

/* Target ti as this round sees it: its working copy, or the stored one. */
static target_t *cur_target(coord_campaigns_t *cs, camp_t *k, size_t ti)
{
	target_t *w = changed_target(cs, k, ti);
	return w ? w : k->t[ti];
}

/*
 * Moves target ti on ev through coord_target_fsm, in its working copy
 * (made only when the state changes). Entering dispatched or rolling_back
 * gives the host a new step; entering a settled state stamps the end and
 * keeps msg. Returns 1 when it moved, 0 when the event changes nothing
 * here, FLT_ECONFLICT when the table refuses it (logged: only the campaign
 * thread sends target events, and never one the table refuses).
 */
static int target_event(coord_campaigns_t *cs, camp_t *k, size_t ti, int ev,
			const char *msg)
{
	const target_t *cur = cur_target(cs, k, ti);
	int state = cur->state;
	flt_error_t err;
	int rc = flt_fsm_step(&coord_target_fsm, cur->node_name, &state, ev,
			      &err);
	if (rc < 0)
		flt_warn("campaign %.8s: %s", k->c->id, err.msg);
	if (rc <= 0)
		return rc;
	target_t *w = work_target(cs, k, ti);
	w->state = state;
	if (in_flight(w->state) && w->state != ST(APPLYING)) {
		flt_pb_set_str(&w->message, "");
		new_step(cs, k, ti);
	} else if (terminal(w->state)) {
		w->finished_at_ms = flt_now_wall_ms();
		flt_pb_set_str(&w->message, msg);
	}
	return 1;
}

/*
 * Moves the campaign's working copy c on ev through coord_campaign_fsm.
 * Returns 1 when it moved, 0 when the event changes nothing here,
 * FLT_ECONFLICT when the table refuses it: err says "campaign 1a2b3c4d:
 * cannot pause when complete", and c is untouched.
 */
static int camp_event(camp_msg_t *c, int ev, flt_error_t *err)
{
	char id[9];
	snprintf(id, sizeof(id), "%.8s", c->id);
	int state = c->state;
	int rc = flt_fsm_step(&coord_campaign_fsm, id, &state, ev, err);
	c->state = state;
	return rc;
}

/* The target event of a step status from an agent, or -1. */
static int report_event(Flotilla__StepState st)
{
	switch (st) {
	case FLOTILLA__STEP_STATE__STEP_STATE_APPLYING:
	case FLOTILLA__STEP_STATE__STEP_STATE_VERIFYING: return TARGET_EV_START;
	case FLOTILLA__STEP_STATE__STEP_STATE_SUCCEEDED:
		return TARGET_EV_SUCCEED;
	case FLOTILLA__STEP_STATE__STEP_STATE_FAILED: return TARGET_EV_FAIL;
	default: return -1;
	}
}

/* The campaign a step id ("<campaign id>/<n>") belongs to, or NULL. */
static camp_t *step_camp(coord_campaigns_t *cs, const char *step_id)
{
	const char *slash = strchr(step_id, '/');
	if (!slash || slash - step_id != 36)
		return NULL;
	for (size_t i = 0; i < cs->n; i++)
		if (strncmp(cs->v[i]->c->id, step_id, 36) == 0 &&
		    cs->v[i]->c->id[36] == '\0')
			return cs->v[i];
	return NULL;
}

/* One step status from a node. */
static void apply_report(coord_campaigns_t *cs, const char *node,
			 const Flotilla__StepStatus *st, sched_fleet_t *fleet)
{
	camp_t *k = step_camp(cs, st->id);
	long ti = k ? target_find(k, node) : -1;
	int ev = report_event(st->state);
	if (ti < 0 || ev < 0)
		return;
	const target_t *cur = cur_target(cs, k, (size_t)ti);
	/* An old step, or one the target's state no longer takes (settled,
	 * or "applying" again). */
	if (strcmp(cur->step_id, st->id) != 0 ||
	    flt_fsm_next(&coord_target_fsm, cur->state, ev) < 0)
		return;
	bool rollback = cur->state == ST(ROLLING_BACK);
	char msg[600] = "";
	if (ev == TARGET_EV_START) {
		target_event(cs, k, (size_t)ti, ev, "");
		target_t *w = work_target(cs, k, (size_t)ti);
		if (st->from_version[0] || !w->from_version[0])
			flt_pb_set_str(&w->from_version, st->from_version);
		return;
	}
	if (ev == TARGET_EV_SUCCEED) {
		char digest[FLT_INV_DIGEST_LEN];
		int64_t scanned = 0;
		coord_inv_state(cs->o.inv, node, digest, &scanned);
		/* Judged on the re-scan the step made, or a later one (both
		 * times are the agent's clock): until it arrives, the agent
		 * keeps reporting the step. */
		if (st->inventory_digest[0] &&
		    strcmp(digest, st->inventory_digest) != 0 &&
		    (!st->finished_at_ms || scanned < st->finished_at_ms))
			return;
		snprintf(msg, sizeof(msg), "%s", rollback ? st->message : "");
	} else if (rollback) {
		snprintf(msg, sizeof(msg), "rollback failed: %s", st->message);
	} else {
		snprintf(msg, sizeof(msg), "%s%s", st->message,
			 st->rolled_back ? " (switched back)" : "");
	}
	target_t *w = work_target(cs, k, (size_t)ti);
	if (!rollback && st->from_version[0])
		flt_pb_set_str(&w->from_version, st->from_version);
	if (ev == TARGET_EV_SUCCEED && !rollback) {
		long fi = sched_fleet_find(fleet, node);
		char vers[256] = "", paths[512] = "";
		bool known = false, match = false;
		if (fi >= 0 && k->q)
			match = coord_inv_match_node(
				cs->o.inv, fleet, (size_t)fi, k->q, vers,
				sizeof(vers), paths, sizeof(paths), &known);
		char after[256] = "";
		/* The first matched name stands for what was fixed. */
		char name[128];
		snprintf(name, sizeof(name), "%s", w->names);
		char *comma = strchr(name, ',');
		if (comma)
			*comma = 0;
		coord_inv_versions_of(cs->o.inv, node, name, after,
				      sizeof(after));
		flt_pb_set_str(&w->after, after);
		if (match) {
			ev = TARGET_EV_STAY_EXPOSED;
			snprintf(msg, sizeof(msg),
				 "the step succeeded but the re-scan still "
				 "matches the target: %s at %s",
				 vers, paths);
		}
	}
	target_event(cs, k, (size_t)ti, ev, msg);
	flt_info("campaign %.8s host %s: %s", k->c->id, w->node_name,
		 target_state_name(w->state));
}

/* Per-host timeouts of a campaign's targets in flight. */
static void check_timeouts(coord_campaigns_t *cs, camp_t *k)
{
	int64_t now = flt_now_wall_ms();
	uint32_t limit = k->c->spec->host_timeout_ms;
	for (size_t i = 0; i < k->n; i++) {
		if (changed_target(cs, k, i))
			continue;
		const target_t *t = k->t[i];
		if (!in_flight(t->state) ||
		    now - t->started_at_ms < (int64_t)limit)
			continue;
		bool up = coord_nodes_ready(cs->o.nodes, t->node_id);
		int ev = up ? TARGET_EV_FAIL : TARGET_EV_FAIL_OFFLINE;
		const char *msg = "no result within the per-host timeout";
		if (t->state == ST(ROLLING_BACK))
			msg = "rollback: no result within the per-host "
			      "timeout";
		else if (flt_fsm_next(&coord_target_fsm, t->state, ev) ==
			 ST(FAILED_OFFLINE))
			msg = "the host was down for the whole per-host "
			      "timeout";
		if (target_event(cs, k, i, ev, msg) > 0)
			flt_warn("campaign %.8s host %s: %s", k->c->id,
				 t->node_name, msg);
	}
}

/* Moves a running campaign on: dispatches its wave, or the next one. */
static void advance(coord_campaigns_t *cs, camp_t *k, sched_fleet_t *fleet)
{
	for (;;) {
		camp_msg_t *c = work_camp(cs, k);
		if (c->state != CS(RUNNING))
			return;
		bool open = false;
		for (size_t i = 0; i < k->n; i++) {
			const target_t *cur = cur_target(cs, k, i);
			if (cur->wave != c->wave || cur->state == ST(LATE))
				continue;
			if (cur->state == ST(PENDING)) {
				long fi = sched_fleet_find(fleet, cur->node_id);
				bool known = false, match = true;
				if (fi >= 0 && k->q)
					match = coord_inv_match_node(
						cs->o.inv, fleet, (size_t)fi,
						k->q, NULL, 0, NULL, 0, &known);
				if (known && !match) {
					target_event(cs, k, i, TARGET_EV_SKIP,
						     "no longer matches the "
						     "target when its wave "
						     "came");
					continue;
				}
				target_event(cs, k, i, TARGET_EV_DISPATCH, "");
				open = true;
			} else if (!terminal(cur->state)) {
				open = true;
			}
		}
		if (open)
			return;
		/* The wave is done. Its start is wall-clock time because it is
		 * stored: the monotonic clock does not survive a reboot. */
		int64_t now = flt_now_wall_ms();
		flt_info("campaign %.8s wave %u done wall_ms=%lld "
			 "coordinator_ms=%.3f",
			 c->id, c->wave + 1,
			 c->wave_started_at_ms && now >= c->wave_started_at_ms
				 ? (long long)(now - c->wave_started_at_ms)
				 : -1LL,
			 (double)k->busy_us / 1000.0);
		c->wave_started_at_ms = now;
		k->busy_us = 0;
		if (c->wave + 1 >= c->waves) {
			camp_event(c, CAMP_EV_FINISH, NULL);
			flt_pb_set_str(&c->message, "");
			flt_info("campaign %.8s complete", c->id);
			return;
		}
		c->wave++;
		flt_info("campaign %.8s wave %u of %u", c->id, c->wave + 1,
			 c->waves);
		if (c->wave == 1 && c->spec->manual_promote &&
		    c->spec->canary > 0) {
			camp_event(c, CAMP_EV_HOLD, NULL);
			flt_pb_set_str(&c->message,
				       "the canary wave is done: resume the "
				       "campaign to go on");
			return;
		}
	}
}

static void gate(coord_campaigns_t *cs, camp_t *k)
{
	camp_msg_t *c = work_camp(cs, k);
	bool abort = strcmp(c->spec->on_failure, "abort") == 0;
	int ev = abort ? CAMP_EV_TRIP_ABORT : CAMP_EV_TRIP;
	if (c->tripped || flt_fsm_next(&coord_campaign_fsm, c->state, ev) < 0)
		return;
	uint32_t failures = failures_of(cs, k);
	if (failures <= c->failure_limit)
		return;
	c->tripped = true;
	char msg[256];
	snprintf(msg, sizeof(msg),
		 "%u failures exceed the limit of %u: %s; hosts already in "
		 "flight finish",
		 failures, c->failure_limit,
		 abort ? "aborting (rolling back what changed)" : "paused");
	flt_pb_set_str(&c->message, msg);
	camp_event(c, ev, NULL);
	flt_warn("campaign %.8s %s", c->id, msg);
}

/* While aborting: the table says what abort does to each target (skip
 * the pending, roll back the changed); done when none is in flight. */
static void abort_step(coord_campaigns_t *cs, camp_t *k)
{
	bool open = false;
	for (size_t i = 0; i < k->n; i++) {
		target_event(cs, k, i, TARGET_EV_ABORT,
			     "not sent: the campaign was aborted");
		open = open || in_flight(cur_target(cs, k, i)->state);
	}
	if (!open) {
		camp_msg_t *c = work_camp(cs, k);
		camp_event(c, CAMP_EV_SETTLE, NULL);
		flt_info("campaign %.8s aborted", c->id);
	}
}

/*
 * A new target for node of the fleet, with what its inventory matched
 * (hits), made through the table by ev (plan or late). Owned by the
 * caller.
 */
static target_t *target_new(const camp_t *k, const sched_fleet_t *f,
			    size_t node, const Flotilla__Inventory *inv,
			    const size_t *hits, size_t n_hits, int ev)
{
	target_t *t = flt_xcalloc(1, sizeof(*t));
	flotilla__campaign_target__init(t);
	t->campaign = flt_xstrdup(k->c->id);
	t->node_id = flt_xstrdup(sched_node_id(f, node));
	const char *name = sched_node_attr(f, node, "node.name");
	t->node_name = flt_xstrdup(name ? name : t->node_id);
	int state = t->state;
	flt_fsm_step(&coord_target_fsm, t->node_name, &state, ev, NULL);
	t->state = state;
	char vers[256] = "", names[256] = "", paths[1024] = "";
	for (size_t h = 0; h < n_hits; h++) {
		const Flotilla__InventoryItem *it = inv->items[hits[h]];
		size_t l;
		if (!strstr(vers, it->version)) {
			l = strlen(vers);
			snprintf(vers + l, sizeof(vers) - l, "%s%s",
				 l ? ", " : "", it->version);
		}
		if (!strstr(names, it->name)) {
			l = strlen(names);
			snprintf(names + l, sizeof(names) - l, "%s%s",
				 l ? ", " : "", it->name);
		}
		l = strlen(paths);
		snprintf(paths + l, sizeof(paths) - l, "%s%s", l ? ", " : "",
			 it->path[0] ? it->path : it->name);
	}
	t->before = flt_xstrdup(vers);
	t->after = flt_xstrdup("");
	t->step_id = flt_xstrdup("");
	t->message = flt_xstrdup("");
	t->from_version = flt_xstrdup("");
	t->paths = flt_xstrdup(paths);
	t->names = flt_xstrdup(names);
	return t;
}

typedef struct late_ctx {
	coord_campaigns_t *cs;
	camp_t *k;
	const sched_fleet_t *f;
} late_ctx_t;

/* A host matching an open campaign's target that is not one of its
 * targets: recorded late (a new target in this round's changes). */
static int late_one(void *arg, size_t node, const Flotilla__Inventory *inv,
		    const size_t *hits, size_t n_hits)
{
	late_ctx_t *x = arg;
	coord_campaigns_t *cs = x->cs;
	const char *id = sched_node_id(x->f, node);
	if (target_find(x->k, id) >= 0)
		return 0;
	for (size_t i = 0; i < cs->nch; i++)
		if (cs->ch[i].camp == x->k && cs->ch[i].t &&
		    strcmp(cs->ch[i].t->node_id, id) == 0)
			return 0;
	target_t *t =
		target_new(x->k, x->f, node, inv, hits, n_hits, TARGET_EV_LATE);
	t->wave = x->k->c->waves;
	flt_pb_set_str(&t->message, "matched the target after the campaign "
				    "was created: reported, not patched");
	new_change(cs, x->k)->t = t;
	flt_info("campaign %.8s: host %s matches the target late", x->k->c->id,
		 t->node_name);
	return 0;
}

typedef struct create_ctx {
	coord_campaigns_t *cs;
	camp_t *k;
	flt_request_t *r;
} create_ctx_t;

static int create_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	create_ctx_t *x = arg;
	camp_t *k = x->k;
	char key[128];
	k->c->index = flt_txn_index(txn);
	k->c->updated_at_ms = k->c->created_at_ms;
	k->c->wave_started_at_ms = k->c->created_at_ms;
	int rc = flt_txn_put_pb(txn, x->cs->db_c, k->c->id, &k->c->base, err);
	for (size_t i = 0; rc == 0 && i < k->n; i++) {
		target_key(key, sizeof(key), k->t[i]);
		rc = flt_txn_put_pb(txn, x->cs->db_t, key, &k->t[i]->base, err);
	}
	return rc < 0 ? rc : coord_audit_in_txn(txn, x->r, err);
}

/* Stores a new campaign (one transaction) and shows it. */
static void create_cmd(coord_campaigns_t *cs, cmd_t *cmd)
{
	create_ctx_t x = { cs, cmd->create, cmd->r };
	flt_error_t err;
	if (commit_sync(cs, create_apply, &x, NULL, &err) < 0) {
		flt_request_fail(cmd->r, err.code ? err.code : FLT_ESTORE,
				 "campaign not stored: %s", err.msg);
		cmd->r = NULL;
		camp_free(cmd->create);
		cmd->create = NULL;
		return;
	}
	camp_t *k = steal_ptr(&cmd->create);
	flt_mutex_lock(&cs->mtx);
	if (cs->n == cs->cap) {
		cs->cap = cs->cap ? 2 * cs->cap : 8;
		cs->v = flt_xrealloc(cs->v, cs->cap * sizeof(*cs->v));
	}
	cs->v[cs->n++] = k;
	flt_mutex_unlock(&cs->mtx);
	flt_info("campaign %s created target=\"%s\" package=%s@%s targets=%zu "
		 "waves=%u failure_limit=%u on_failure=%s",
		 k->c->id, k->c->spec->target, k->c->spec->package,
		 k->c->spec->version, k->n, k->c->waves, k->c->failure_limit,
		 k->c->spec->on_failure);
}

static void handle_cmd(coord_campaigns_t *cs, cmd_t *cmd)
{
	flt_error_t err;
	if (cmd->kind == CMD_CREATE) {
		create_cmd(cs, cmd);
		return;
	}
	flt_mutex_lock(&cs->mtx);
	camp_t *k = camp_find(cs, cmd->id, &err);
	flt_mutex_unlock(&cs->mtx);
	if (!k) {
		flt_request_fail(cmd->r, err.code, "%s", err.msg);
		cmd->r = NULL;
		return;
	}
	camp_msg_t *c = work_camp(cs, k);
	int rc = 0;
	switch (cmd->kind) {
	case CMD_PAUSE:
		if ((rc = camp_event(c, CAMP_EV_PAUSE, &err)) > 0)
			flt_pb_set_str(&c->message, "paused by an operator");
		break;
	case CMD_RESUME: {
		/* A tripped gate accepts the failures so far. */
		uint32_t f = failures_of(cs, k);
		if ((rc = camp_event(c, CAMP_EV_RESUME, &err)) <= 0)
			break;
		if (c->tripped) {
			uint32_t base = c->spec->max_failures;
			if (c->spec->max_failures_percent) {
				size_t total = 0;
				for (size_t i = 0; i < k->n; i++)
					total += k->t[i]->state != ST(LATE);
				base = (uint32_t)(total *
						  c->spec->max_failures_percent /
						  100);
			}
			c->failure_limit = f + base;
			c->tripped = false;
		}
		flt_pb_set_str(&c->message, "");
		break;
	}
	case CMD_CREATE: break;
	case CMD_ABORT:
		if ((rc = camp_event(c, CAMP_EV_ABORT, &err)) > 0)
			flt_pb_set_str(&c->message,
				       "aborted by an operator: rolling back "
				       "what changed");
		break;
	}
	if (rc < 0) {
		flt_request_fail(cmd->r, rc, "%s", err.msg);
		cmd->r = NULL;
	}
}

/*
 * A campaign as a reply shows it: shallow copies (into c and m) without
 * the package's chunk digests, which status polls do not need. The stored
 * message is never changed: the campaign thread reads (packs) it without
 * the lock.
 */
static Flotilla__Campaign *reply_view(const Flotilla__Campaign *src,
				      Flotilla__Campaign *c,
				      Flotilla__PackageManifest *m)
{
	*c = *src;
	if (src->package) {
		*m = *src->package;
		m->n_chunks = 0;
		m->chunks = NULL;
		c->package = m;
	}
	return c;
}

static void reply_campaign(coord_campaigns_t *cs, flt_request_t *r,
			   const char *id, bool targets);

/* Drops the campaign's working copy when the round left it unchanged
 * (then nothing is written for it). */
static void drop_unchanged_camp(coord_campaigns_t *cs, camp_t *k)
{
	if (k->cchi) {
		change_t *ch = &cs->ch[k->cchi - 1];
		if (!flt_pb_equal(&ch->c->base, &k->c->base))
			return;
		/* The entry stays (indexes point past it), empty. */
		flotilla__campaign__free_unpacked(ch->c, NULL);
		ch->c = NULL;
		k->cchi = 0;
		return;
	}
}

static int64_t elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000LL +
	       (b->tv_nsec - a->tv_nsec) / 1000;
}

static void round_run(coord_campaigns_t *cs)
{
	flt_mutex_lock(&cs->mtx);
	report_t *reps = cs->reports;
	cs->reports = NULL;
	cs->rtail = &cs->reports;
	cmd_t *cmds = cs->cmds;
	cs->cmds = NULL;
	cs->ctail = &cs->cmds;
	bool any_open = false;
	for (size_t i = 0; i < cs->n; i++)
		any_open |= camp_open(cs->v[i]->c);
	flt_mutex_unlock(&cs->mtx);

	if (!any_open && !reps && !cmds)
		return;
	flt_error_t err;
	struct timespec s0, s1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &s0);
	sched_fleet_t *fleet = NULL;
	coord_fleet_snap_t *snap = coord_nodes_snapshot(cs->o.nodes, &err);
	if (!snap) {
		flt_warn("campaigns: %s", err.msg);
		goto out;
	}
	fleet = coord_fleet_snap_fleet(snap);
	/* Only this thread changes cs->v: no lock needed to read it. */
	for (cmd_t *c = cmds; c; c = c->next)
		handle_cmd(cs, c);
	for (report_t *r = reps; r; r = r->next)
		apply_report(cs, r->node, r->st, fleet);
	/* The fleet, the commands and the reports count for every open
	 * campaign (usually one), as the commit's wait does below. */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &s1);
	int64_t shared_us = elapsed_us(&s0, &s1);
	for (size_t i = 0; i < cs->n && shared_us > 0; i++)
		if (camp_open(cs->v[i]->c))
			cs->v[i]->busy_us += shared_us;
	int64_t now = flt_now_mono_ms();
	bool late_scan = now >= cs->next_late_scan;
	if (late_scan)
		cs->next_late_scan = now + LATE_SCAN_MS;
	for (size_t i = 0; i < cs->n; i++) {
		camp_t *k = cs->v[i];
		if (!camp_open(k->c))
			continue;
		struct timespec t0, t1;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
		check_timeouts(cs, k);
		gate(cs, k);
		camp_msg_t *c = work_camp(cs, k);
		if (c->state == CS(RUNNING))
			advance(cs, k, fleet);
		else if (c->state == CS(ABORTING))
			abort_step(cs, k);
		gate(cs, k);
		if (late_scan && k->q && camp_open(c)) {
			late_ctx_t x = { cs, k, fleet };
			coord_inv_eval(cs->o.inv, fleet, k->q, late_one, &x,
				       NULL);
		}
		drop_unchanged_camp(cs, k);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
		k->busy_us += elapsed_us(&t0, &t1);
	}
	struct timespec c0, c1;
	clock_gettime(CLOCK_MONOTONIC, &c0);
	cs->round_cmds = cmds;
	bool ok = changes_commit(cs) == 0;
	cs->round_cmds = NULL;
	clock_gettime(CLOCK_MONOTONIC, &c1);
	/* The commit's wait counts for every open campaign (usually one). */
	int64_t commit_us = elapsed_us(&c0, &c1);
	for (size_t i = 0; i < cs->n && commit_us > 0; i++)
		if (camp_open(cs->v[i]->c) || cs->v[i]->busy_us)
			cs->v[i]->busy_us += commit_us;
	for (cmd_t *c = cmds; c; c = c->next) {
		if (!c->r)
			continue;
		if (ok)
			reply_campaign(cs, c->r, c->id, false);
		else
			flt_request_fail(c->r, -EAGAIN,
					 "campaign change not stored; retry");
		c->r = NULL;
	}
out:
	coord_fleet_snap_release(snap);
	while (reps) {
		report_t *n = reps->next;
		flotilla__step_status__free_unpacked(reps->st, NULL);
		free(reps);
		reps = n;
	}
	while (cmds) {
		cmd_t *n = cmds->next;
		if (cmds->r)
			flt_request_fail(cmds->r, -EAGAIN,
					 "campaigns unavailable");
		free(cmds);
		cmds = n;
	}
}

/* ---- the thread ------------------------------------------------------------ */

static void *campaign_main(void *arg)
{
	coord_campaigns_t *cs = arg;
	pthread_setname_np(pthread_self(), "campaigns");
	uint32_t tick = cs->o.tick_ms ? cs->o.tick_ms : 100;
	for (;;) {
		flt_mutex_lock(&cs->mtx);
		if (!cs->stopping && !cs->reports && !cs->cmds) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)(tick % 1000) * 1000000L;
			ts.tv_sec += tick / 1000 + ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			flt_cond_timedwait(&cs->cond, &cs->mtx, &ts);
		}
		bool stop = cs->stopping;
		flt_mutex_unlock(&cs->mtx);
		if (stop)
			break;
		round_run(cs);
	}
	/* Commands still queued are answered by the round's cleanup. */
	round_run(cs);
	return NULL;
}

int coord_campaigns_open(const coord_campaigns_opts_t *o,
			 coord_campaigns_t **out, flt_error_t *err)
{
	coord_campaigns_t *cs = flt_xcalloc(1, sizeof(*cs));
	cs->o = *o;
	flt_mutex_init(&cs->mtx, COORD_LOCK_CAMPAIGNS, "campaigns");
	pthread_cond_init(&cs->cond, NULL);
	flt_mutex_init(&cs->wmtx, COORD_LOCK_CAMPAIGN_COMMIT,
		       "campaign commit");
	pthread_cond_init(&cs->wcond, NULL);
	cs->rtail = &cs->reports;
	cs->ctail = &cs->cmds;
	int rc;
	if ((rc = flt_store_db(o->store, "campaigns", &cs->db_c)) < 0 ||
	    (rc = flt_store_db(o->store, "campaign_targets", &cs->db_t)) < 0) {
		flt_err(err, rc, "opening the campaign databases failed");
		goto fail;
	}
	flt_txn_t *txn;
	if ((rc = flt_txn_begin(o->store, false, &txn, err)) < 0)
		goto fail;
	rc = flt_txn_foreach(txn, cs->db_c, NULL, 0, load_campaign, cs);
	if (rc == 0)
		rc = flt_txn_foreach(txn, cs->db_t, NULL, 0, load_target, cs);
	flt_txn_abort(txn);
	if (rc < 0) {
		flt_err(err, rc, "reading campaigns failed");
		goto fail;
	}
	size_t open = 0;
	for (size_t i = 0; i < cs->n; i++) {
		camp_t *k = cs->v[i];
		if (k->n > 1)
			qsort(k->t, k->n, sizeof(*k->t), target_cmp);
		open += camp_open(k->c);
	}
	if (cs->n)
		flt_info("campaigns loaded total=%zu open=%zu", cs->n, open);
	if (pthread_create(&cs->thread, NULL, campaign_main, cs) != 0) {
		rc = flt_err(err, -EAGAIN,
			     "starting the campaign thread failed");
		goto fail;
	}
	cs->started = true;
	*out = cs;
	return 0;
fail:
	coord_campaigns_free(cs);
	return rc;
}

void coord_campaigns_stop(coord_campaigns_t *cs)
{
	if (!cs || !cs->started)
		return;
	flt_mutex_lock(&cs->mtx);
	cs->stopping = true;
	pthread_cond_signal(&cs->cond);
	flt_mutex_unlock(&cs->mtx);
	pthread_join(cs->thread, NULL);
	cs->started = false;
}

void coord_campaigns_free(coord_campaigns_t *cs)
{
	if (!cs)
		return;
	coord_campaigns_stop(cs);
	for (size_t i = 0; i < cs->n; i++)
		camp_free(cs->v[i]);
	free(cs->v);
	changes_discard(cs);
	free(cs->ch);
	flt_mutex_destroy(&cs->mtx);
	pthread_cond_destroy(&cs->cond);
	flt_mutex_destroy(&cs->wmtx);
	pthread_cond_destroy(&cs->wcond);
	free(cs);
}

/* ---- what nodes see -------------------------------------------------------- */

/*
 * A status that cannot change what is stored, judged on the stored
 * targets (cs->mtx held): a step the host is no longer on, or one the
 * target's table ignores (settled, or "applying" again: each heartbeat of
 * a host in flight repeats it). Dropped before it wakes the campaign
 * thread. Outcomes of steps in flight always go through.
 */
static bool report_moot(coord_campaigns_t *cs, const char *node_id,
			const Flotilla__StepStatus *st)
{
	camp_t *k = step_camp(cs, st->id);
	long ti = k ? target_find(k, node_id) : -1;
	if (ti < 0)
		return true;
	const target_t *t = k->t[ti];
	int ev = report_event(st->state);
	return ev < 0 || strcmp(t->step_id, st->id) != 0 ||
	       flt_fsm_next(&coord_target_fsm, t->state, ev) < 0;
}

void coord_campaigns_report(coord_campaigns_t *cs, const char *node_id,
			    Flotilla__StepStatus *const *steps, size_t n)
{
	if (n == 0 || strlen(node_id) > 36)
		return;
	flt_mutex_lock(&cs->mtx);
	if (cs->stopping) {
		flt_mutex_unlock(&cs->mtx);
		return;
	}
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (report_moot(cs, node_id, steps[i]))
			continue;
		any = true;
		report_t *r = flt_xcalloc(1, sizeof(*r));
		snprintf(r->node, sizeof(r->node), "%s", node_id);
		r->st = flt_pb_dup(&steps[i]->base);
		*cs->rtail = r;
		cs->rtail = &r->next;
	}
	if (any)
		pthread_cond_signal(&cs->cond);
	flt_mutex_unlock(&cs->mtx);
}

/*
 * The deadline a host's agent gets for its step: shorter than the per-host
 * timeout, so that a host whose tasks never turn healthy reports its own
 * failure, already switched back, before the coordinator gives up on it.
 * The margin (a fifth, at most 30 s) covers the dispatch, the switch back
 * and the restart of the tasks; the agent always gets more than the min
 * healthy time.
 */
static uint32_t agent_timeout_ms(const Flotilla__CampaignSpec *sp)
{
	uint32_t total = sp->host_timeout_ms;
	if (total <= sp->min_healthy_ms)
		return total; /* not accepted at creation; never wrap */
	uint32_t margin = total / 5;
	if (margin > 30000)
		margin = 30000;
	uint32_t t = total - margin;
	if (t <= sp->min_healthy_ms)
		t = sp->min_healthy_ms + (total - sp->min_healthy_ms) / 2;
	return t;
}

void coord_campaigns_node_steps(coord_campaigns_t *cs, const char *node_id,
				Flotilla__SyncResponse *resp)
{
	Flotilla__PatchStep **v = NULL;
	size_t n = 0;
	flt_mutex_lock(&cs->mtx);
	for (size_t i = 0; i < cs->n; i++) {
		camp_t *k = cs->v[i];
		if (!camp_open(k->c))
			continue;
		long ti = target_find(k, node_id);
		if (ti < 0 || !in_flight(k->t[ti]->state))
			continue;
		const target_t *t = k->t[ti];
		const Flotilla__CampaignSpec *sp = k->c->spec;
		Flotilla__PatchStep *st = flt_xcalloc(1, sizeof(*st));
		flotilla__patch_step__init(st);
		st->id = flt_xstrdup(t->step_id);
		st->campaign = flt_xstrdup(k->c->id);
		st->package_name = flt_xstrdup(sp->package);
		st->restart = !sp->no_restart;
		st->min_healthy_ms = sp->min_healthy_ms;
		st->timeout_ms = agent_timeout_ms(sp);
		if (t->state == ST(ROLLING_BACK)) {
			st->action =
				FLOTILLA__STEP_ACTION__STEP_ACTION_ROLLBACK;
			st->rollback_to = flt_xstrdup(t->from_version);
		} else {
			st->action = FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL;
			st->rollback_to = flt_xstrdup("");
			if (k->c->package)
				st->package = flt_pb_dup(&k->c->package->base);
		}
		v = flt_xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = st;
	}
	flt_mutex_unlock(&cs->mtx);
	resp->steps = v;
	resp->n_steps = n;
}

void coord_campaigns_node_steps_free(Flotilla__SyncResponse *resp)
{
	for (size_t i = 0; i < resp->n_steps; i++)
		flotilla__patch_step__free_unpacked(resp->steps[i], NULL);
	free(resp->steps);
	resp->steps = NULL;
	resp->n_steps = 0;
}

/* ---- operator methods ------------------------------------------------------ */

static void reply_campaign(coord_campaigns_t *cs, flt_request_t *r,
			   const char *id, bool targets)
{
	flt_error_t err;
	flt_mutex_lock(&cs->mtx);
	camp_t *k = camp_find(cs, id, &err);
	if (!k) {
		flt_mutex_unlock(&cs->mtx);
		flt_request_fail(r, err.code, "%s", err.msg);
		return;
	}
	Flotilla__CampaignGetResponse resp =
		FLOTILLA__CAMPAIGN_GET_RESPONSE__INIT;
	Flotilla__CampaignCounts counts;
	counts_of(k, k->c, &counts);
	Flotilla__Campaign c;
	Flotilla__PackageManifest m;
	resp.campaign = reply_view(k->c, &c, &m);
	resp.counts = &counts;
	if (targets) {
		resp.n_targets = k->n;
		resp.targets = k->t;
	}
	flt_request_reply(r, &resp.base);
	flt_mutex_unlock(&cs->mtx);
}

void coord_campaigns_get(coord_campaigns_t *cs, flt_request_t *r)
{
	Flotilla__CampaignGetRequest *req;
	if (flt_request_body(r, &flotilla__campaign_get_request__descriptor,
			     &req) < 0)
		return;
	reply_campaign(cs, r, req->id, req->targets);
	flotilla__campaign_get_request__free_unpacked(req, NULL);
}

void coord_campaigns_list(coord_campaigns_t *cs, flt_request_t *r)
{
	Flotilla__CampaignListResponse resp =
		FLOTILLA__CAMPAIGN_LIST_RESPONSE__INIT;
	flt_mutex_lock(&cs->mtx);
	size_t n = cs->n;
	Flotilla__CampaignCounts *counts = flt_xcalloc(n + 1, sizeof(*counts));
	Flotilla__CampaignCounts **cp = flt_xcalloc(n + 1, sizeof(*cp));
	Flotilla__Campaign **camps = flt_xcalloc(n + 1, sizeof(*camps));
	Flotilla__Campaign *views = flt_xcalloc(n + 1, sizeof(*views));
	Flotilla__PackageManifest *pkgs = flt_xcalloc(n + 1, sizeof(*pkgs));
	for (size_t i = 0; i < n; i++) {
		counts_of(cs->v[i], cs->v[i]->c, &counts[i]);
		cp[i] = &counts[i];
		camps[i] = reply_view(cs->v[i]->c, &views[i], &pkgs[i]);
	}
	resp.n_campaigns = n;
	resp.campaigns = camps;
	resp.n_counts = n;
	resp.counts = cp;
	flt_request_reply(r, &resp.base);
	flt_mutex_unlock(&cs->mtx);
	free(counts);
	free(cp);
	free(camps);
	free(views);
	free(pkgs);
}

static void enqueue(coord_campaigns_t *cs, cmd_t *c)
{
	flt_mutex_lock(&cs->mtx);
	if (cs->stopping) {
		flt_mutex_unlock(&cs->mtx);
		flt_request_fail(c->r, -EAGAIN, "coordinator is shutting down");
		if (c->create)
			camp_free(c->create);
		free(c);
		return;
	}
	flt_request_defer(c->r);
	*cs->ctail = c;
	cs->ctail = &c->next;
	pthread_cond_signal(&cs->cond);
	flt_mutex_unlock(&cs->mtx);
}

static void handle_cmd_req(coord_campaigns_t *cs, flt_request_t *r,
			   cmd_kind_t kind)
{
	Flotilla__CampaignGetRequest *req;
	if (flt_request_body(r, &flotilla__campaign_get_request__descriptor,
			     &req) < 0)
		return;
	if (!req->id[0] || strlen(req->id) > 36) {
		flt_request_fail(r, FLT_EPROTO, "id: a campaign id or prefix");
		flotilla__campaign_get_request__free_unpacked(req, NULL);
		return;
	}
	cmd_t *c = flt_xcalloc(1, sizeof(*c));
	c->kind = kind;
	c->r = r;
	snprintf(c->id, sizeof(c->id), "%s", req->id);
	flotilla__campaign_get_request__free_unpacked(req, NULL);
	enqueue(cs, c);
}

/* Checks and completes a spec; the message names the field. */
static int spec_check(Flotilla__CampaignSpec *sp, flt_error_t *err)
{
	if (strlen(sp->name) > 128)
		return flt_err(err, FLT_EPROTO,
			       "spec.name: at most 128 characters");
	if (!sp->target[0])
		return flt_err(err, FLT_EPROTO,
			       "spec.target: an inventory query is required");
	if (!flt_pkg_name_valid(sp->package))
		return flt_err(err, FLT_EPROTO,
			       "spec.package: \"%s\" is not a package name",
			       sp->package);
	if (!flt_pkg_version_valid(sp->version))
		return flt_err(err, FLT_EPROTO,
			       "spec.version: \"%s\" is not a version",
			       sp->version);
	if (sp->batch && sp->batch_percent)
		return flt_err(err, FLT_EPROTO,
			       "spec.batch_percent: give batch or "
			       "batch_percent, not both");
	if (sp->batch_percent > 100)
		return flt_err(err, FLT_EPROTO, "spec.batch_percent: 1 to 100");
	if (sp->max_failures && sp->max_failures_percent)
		return flt_err(err, FLT_EPROTO,
			       "spec.max_failures_percent: give max_failures "
			       "or max_failures_percent, not both");
	if (sp->max_failures_percent > 100)
		return flt_err(err, FLT_EPROTO,
			       "spec.max_failures_percent: 0 to 100");
	if (!sp->on_failure[0])
		flt_pb_set_str(&sp->on_failure, "pause");
	if (strcmp(sp->on_failure, "pause") != 0 &&
	    strcmp(sp->on_failure, "abort") != 0)
		return flt_err(err, FLT_EPROTO,
			       "spec.on_failure: \"pause\" or \"abort\", not "
			       "\"%s\"",
			       sp->on_failure);
	if (!sp->batch && !sp->batch_percent)
		sp->batch_percent = DEFAULT_BATCH_PERCENT;
	if (!sp->min_healthy_ms)
		sp->min_healthy_ms = DEFAULT_MIN_HEALTHY_MS;
	if (!sp->host_timeout_ms)
		sp->host_timeout_ms = DEFAULT_HOST_TIMEOUT_MS;
	if (sp->min_healthy_ms >= sp->host_timeout_ms)
		return flt_err(err, FLT_EPROTO,
			       "spec.min_healthy_ms: %u ms must be shorter "
			       "than the per-host timeout (%u ms)",
			       sp->min_healthy_ms, sp->host_timeout_ms);
	return 0;
}

typedef struct plan_ctx {
	const sched_fleet_t *f;
	camp_t *k;
} plan_ctx_t;

static int plan_one(void *arg, size_t node, const Flotilla__Inventory *inv,
		    const size_t *hits, size_t n_hits)
{
	plan_ctx_t *x = arg;
	camp_t *k = x->k;
	target_t *t =
		target_new(k, x->f, node, inv, hits, n_hits, TARGET_EV_PLAN);
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 16;
		k->t = flt_xrealloc(k->t, k->cap * sizeof(*k->t));
	}
	k->t[k->n++] = t;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const target_t *x = *(target_t *const *)a, *y = *(target_t *const *)b;
	int c = strcmp(x->node_name, y->node_name);
	return c ? c : strcmp(x->node_id, y->node_id);
}

/* Waves: the canary hosts first, then batches, in host name order. */
static uint32_t plan_waves(camp_t *k)
{
	const Flotilla__CampaignSpec *sp = k->c->spec;
	if (k->n > 1)
		qsort(k->t, k->n, sizeof(*k->t), name_cmp);
	size_t canary = sp->canary < k->n ? sp->canary : k->n;
	size_t batch = sp->batch;
	if (!batch)
		batch = (size_t)ceil((double)k->n * sp->batch_percent / 100.0);
	if (!batch)
		batch = 1;
	uint32_t wave = 0;
	size_t i = 0;
	for (; i < canary; i++)
		k->t[i]->wave = 0;
	if (canary)
		wave = 1;
	for (size_t in = 0; i < k->n; i++) {
		k->t[i]->wave = wave;
		if (++in == batch && i + 1 < k->n) {
			in = 0;
			wave++;
		}
	}
	uint32_t waves = k->n ? k->t[k->n - 1]->wave + 1 : 0;
	if (k->n > 1)
		qsort(k->t, k->n, sizeof(*k->t), target_cmp);
	return waves;
}

/* Two open campaigns must not switch the same package, and at most
 * MAX_CAMPAIGNS are open (a dry run only needs the latter). */
static int check_room(coord_campaigns_t *cs, const char *package, bool dry_run,
		      flt_error_t *err)
{
	char busy_id[37] = "";
	size_t open = 0;
	flt_mutex_lock(&cs->mtx);
	for (size_t i = 0; i < cs->n; i++) {
		if (!camp_open(cs->v[i]->c))
			continue;
		open++;
		if (strcmp(cs->v[i]->c->spec->package, package) == 0)
			snprintf(busy_id, sizeof(busy_id), "%s",
				 cs->v[i]->c->id);
	}
	flt_mutex_unlock(&cs->mtx);
	if (busy_id[0] && !dry_run)
		return flt_err(err, FLT_ECONFLICT,
			       "campaign %.8s is still changing package %s: "
			       "let it finish or abort it first",
			       busy_id, package);
	if (open >= MAX_CAMPAIGNS)
		return flt_err(err, -EAGAIN, "too many open campaigns");
	return 0;
}

/* A dry run's answer: the campaign as planned, stored nowhere. */
static void reply_plan(flt_request_t *r, camp_t *k)
{
	Flotilla__CampaignGetResponse resp =
		FLOTILLA__CAMPAIGN_GET_RESPONSE__INIT;
	Flotilla__CampaignCounts counts;
	counts_of(k, k->c, &counts);
	resp.counts = &counts;
	resp.n_targets = k->n;
	resp.targets = k->t;
	Flotilla__Campaign view;
	Flotilla__PackageManifest m;
	resp.campaign = reply_view(k->c, &view, &m);
	flt_request_reply(r, &resp.base);
}

void coord_campaigns_create(coord_campaigns_t *cs, flt_request_t *r)
{
	Flotilla__CampaignCreateRequest *req;
	flt_error_t err;
	coord_fleet_snap_t *snap = NULL;
	sched_fleet_t *fleet = NULL;
	camp_t *k = NULL;
	if (flt_request_body(r, &flotilla__campaign_create_request__descriptor,
			     &req) < 0)
		return;
	if (!req->spec) {
		flt_request_fail(r, FLT_EPROTO, "spec: missing");
		goto out;
	}
	Flotilla__CampaignSpec *sp = req->spec;
	if (spec_check(sp, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
		goto out;
	}
	k = flt_xcalloc(1, sizeof(*k));
	if (flt_query_parse(sp->target, coord_inv_advisories(cs->o.inv), &k->q,
			    &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "spec.target: %s", err.msg);
		goto out;
	}
	if (!flt_query_has_package_term(k->q)) {
		flt_request_fail(r, FLT_EPROTO,
				 "spec.target: name a package (e.g. "
				 "'log4j-core < 2.17.1'), not only hosts");
		goto out;
	}
	Flotilla__PackageManifest *pkg = NULL;
	if (coord_pkgs_get(cs->o.pkgs, sp->package, sp->version, &pkg, &err) <
	    0) {
		flt_request_fail(r, err.code, "spec.package: %s", err.msg);
		goto out;
	}
	if (check_room(cs, sp->package, req->dry_run, &err) < 0) {
		flotilla__package_manifest__free_unpacked(pkg, NULL);
		flt_request_fail(r, err.code, "%s", err.msg);
		goto out;
	}

	camp_msg_t *c = flt_xcalloc(1, sizeof(*c));
	flotilla__campaign__init(c);
	k->c = c;
	char id[37];
	flt_uuid_v4(id);
	c->id = flt_xstrdup(id);
	c->spec = steal_ptr(&req->spec);
	c->package = pkg;
	c->message = flt_xstrdup("");
	c->created_at_ms = flt_now_wall_ms();
	if (!(snap = coord_nodes_snapshot(cs->o.nodes, &err))) {
		flt_request_fail(r, FLT_ESTORE, "%s", err.msg);
		goto out;
	}
	fleet = coord_fleet_snap_fleet(snap);
	plan_ctx_t x = { fleet, k };
	coord_inv_eval(cs->o.inv, fleet, k->q, plan_one, &x, NULL);
	if (flt_query_error(k->q, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "spec.target: %s", err.msg);
		goto out;
	}
	/* A query that finds nothing is most often a typo in a package name
	 * or a version; the operator says so when it is meant. */
	if (k->n == 0 && !c->spec->allow_empty) {
		flt_request_fail(r, FLT_EPROTO,
				 "spec.target: no host matches \"%s\" (set "
				 "allow_empty to create the campaign anyway)",
				 c->spec->target);
		goto out;
	}
	c->waves = plan_waves(k);
	if (c->spec->max_failures_percent)
		c->failure_limit =
			(uint32_t)(k->n * c->spec->max_failures_percent / 100);
	else
		c->failure_limit = c->spec->max_failures;
	camp_event(c, CAMP_EV_CREATE, NULL);
	if (k->n == 0) {
		camp_event(c, CAMP_EV_FINISH, NULL);
		flt_pb_set_str(&c->message, "no host matched the target");
	}
	if (req->dry_run) {
		reply_plan(r, k);
		goto out;
	}
	cmd_t *cmd = flt_xcalloc(1, sizeof(*cmd));
	cmd->kind = CMD_CREATE;
	cmd->r = r;
	cmd->create = steal_ptr(&k);
	snprintf(cmd->id, sizeof(cmd->id), "%s", id);
	enqueue(cs, cmd);
out:
	coord_fleet_snap_release(snap);
	camp_free(k);
	flotilla__campaign_create_request__free_unpacked(req, NULL);
}

void coord_campaigns_pause(coord_campaigns_t *cs, flt_request_t *r)
{
	handle_cmd_req(cs, r, CMD_PAUSE);
}

void coord_campaigns_resume(coord_campaigns_t *cs, flt_request_t *r)
{
	handle_cmd_req(cs, r, CMD_RESUME);
}

void coord_campaigns_abort(coord_campaigns_t *cs, flt_request_t *r)
{
	handle_cmd_req(cs, r, CMD_ABORT);
}

bool coord_campaigns_installs(coord_campaigns_t *cs, const char *name,
			      const char *version, char *id, size_t len)
{
	bool found = false;
	flt_mutex_lock(&cs->mtx);
	for (size_t i = 0; i < cs->n && !found; i++) {
		const camp_msg_t *c = cs->v[i]->c;
		if (!camp_open(c) || !c->spec ||
		    strcmp(c->spec->package, name) != 0 ||
		    strcmp(c->spec->version, version) != 0)
			continue;
		snprintf(id, len, "%s", c->id);
		found = true;
	}
	flt_mutex_unlock(&cs->mtx);
	return found;
}
