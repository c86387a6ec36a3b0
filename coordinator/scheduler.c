#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/hash.h"
#include "flotilla/job.h"
#include "flotilla/pb.h"
#include "flotilla/regex.h"
#include "flotilla/util.h"
#include "flotilla/version.h"
#include "scheduler.h"

#define MAX_KEYS 256
#define DEFAULT_PIDS 1024

typedef struct node {
	char *id;
	const char **values; /* by key id; NULL when unset */
	uint32_t cls; /* nodes alike but for name and id share one */
	uint32_t cpu_total, cpu_used;
	uint64_t mem_total, mem_used;
	uint32_t pids_total, pids_used;
	bool eligible;
	bool down, draining;
	int64_t drain_deadline_ms;
	Flotilla__Allowances *allow; /* owned; NULL: allows nothing */
} node_t;

/* The values of one key, interned: node -> value index. */
typedef struct vcache {
	uint32_t *node_value;
	size_t nodes; /* nodes covered so far */
	const char **vals; /* index -> value (borrowed from a node) */
	uint32_t nvals;
	flt_map_t index; /* value -> its index + 1 */
} vcache_t;

struct sched_fleet {
	node_t *nodes;
	size_t n, cap;
	char *keys[MAX_KEYS];
	bool unique[MAX_KEYS]; /* node.name and node.id: not in a class */
	size_t nkeys;
	size_t cursor; /* rotates the start of each scan */
	/*
	 * Node classes, as Nomad computes them: nodes whose attributes are
	 * equal but for name and id are feasible for the same constraints,
	 * so a job evaluates each class once, not each node.
	 */
	char **class_keys; /* class -> its attributes (see class_key) */
	uint32_t nclasses, class_cap;
	flt_map_t classes; /* class key -> class + 1 */
	char *kbuf; /* class_key's buffer */
	size_t kcap;
	flt_map_t ids; /* node id -> node + 1, built on demand */
	size_t id_nodes; /* nodes in ids */
	vcache_t vc[MAX_KEYS];
};

/* Indexes as map values: + 1, so that none is NULL. */
static void *idx_val(size_t i) { return (void *)(uintptr_t)(i + 1); }
static size_t val_idx(void *v) { return (size_t)(uintptr_t)v - 1; }

static bool unique_key(const char *k)
{
	return !strcmp(k, "node.name") || !strcmp(k, "node.id");
}

/*
 * What makes a node's class, as one string (in f->kbuf): each attribute
 * but name and id as its key's id, its value's length and the value, so
 * that no value can make two classes look alike.
 */
static size_t put_num(char *p, size_t v)
{
	char d[24];
	size_t n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	for (size_t i = 0; i < n; i++)
		p[i] = d[n - 1 - i];
	return n;
}

/* Built for every node a fleet loads: no printf on this path. */
static const char *class_key(sched_fleet_t *f, const node_t *n)
{
	size_t len = 0;
	for (size_t k = 0; k < f->nkeys; k++) {
		if (!n->values[k] || f->unique[k])
			continue;
		size_t vl = strlen(n->values[k]);
		size_t need = len + vl + 48;
		if (need > f->kcap) {
			f->kcap = need * 2;
			f->kbuf = flt_xrealloc(f->kbuf, f->kcap);
		}
		len += put_num(f->kbuf + len, k);
		f->kbuf[len++] = ':';
		len += put_num(f->kbuf + len, vl);
		f->kbuf[len++] = ':';
		memcpy(f->kbuf + len, n->values[k], vl);
		len += vl;
	}
	if (!f->kbuf) {
		f->kcap = 64;
		f->kbuf = flt_xmalloc(f->kcap);
	}
	f->kbuf[len] = '\0';
	return f->kbuf;
}

/* Finds or makes the class of node i. */
static uint32_t classify(sched_fleet_t *f, size_t i)
{
	const char *key = class_key(f, &f->nodes[i]);
	void *found = flt_map_get(&f->classes, key);
	if (found)
		return (uint32_t)val_idx(found);
	if (f->nclasses == f->class_cap) {
		f->class_cap = f->class_cap ? f->class_cap * 2 : 64;
		f->class_keys = flt_xrealloc(f->class_keys,
					     f->class_cap * sizeof(char *));
	}
	uint32_t c = f->nclasses++;
	f->class_keys[c] = flt_xstrdup(key);
	flt_map_put(&f->classes, f->class_keys[c], idx_val(c));
	return c;
}

/* Brings the value cache of key up to date with the fleet. */
static vcache_t *values_of(sched_fleet_t *f, int key)
{
	static vcache_t none;
	if (key < 0)
		return &none;
	vcache_t *v = &f->vc[key];
	if (v->nodes == f->n)
		return v;
	v->node_value = flt_xrealloc(v->node_value,
				     (f->n ? f->n : 1) * sizeof(uint32_t));
	for (size_t i = v->nodes; i < f->n; i++) {
		const char *val = f->nodes[i].values[key];
		if (!val)
			val = "";
		void *found = flt_map_get(&v->index, val);
		if (!found) {
			v->vals = flt_xrealloc(v->vals,
					       (v->nvals + 1) * sizeof(char *));
			v->vals[v->nvals] = val;
			found = idx_val(v->nvals++);
			flt_map_put(&v->index, val, found);
		}
		v->node_value[i] = (uint32_t)val_idx(found);
	}
	v->nodes = f->n;
	return v;
}

sched_fleet_t *sched_fleet_new(void)
{
	return flt_xcalloc(1, sizeof(sched_fleet_t));
}

void sched_fleet_free(sched_fleet_t *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		for (size_t k = 0; k < f->nkeys; k++)
			free((char *)f->nodes[i].values[k]);
		free(f->nodes[i].values);
		free(f->nodes[i].id);
		if (f->nodes[i].allow)
			flotilla__allowances__free_unpacked(f->nodes[i].allow,
							    NULL);
	}
	for (size_t k = 0; k < f->nkeys; k++) {
		free(f->keys[k]);
		free(f->vc[k].node_value);
		free(f->vc[k].vals);
		flt_map_free(&f->vc[k].index);
	}
	for (uint32_t c = 0; c < f->nclasses; c++)
		free(f->class_keys[c]);
	free(f->class_keys);
	flt_map_free(&f->classes);
	free(f->kbuf);
	flt_map_free(&f->ids);
	free(f->nodes);
	free(f);
}

/* Key id, added when new (-1 when the table is full). */
static int key_id(sched_fleet_t *f, const char *key, bool add)
{
	for (size_t k = 0; k < f->nkeys; k++)
		if (strcmp(f->keys[k], key) == 0)
			return (int)k;
	if (!add || f->nkeys == MAX_KEYS)
		return -1;
	f->keys[f->nkeys] = flt_xstrdup(key);
	f->unique[f->nkeys] = unique_key(key);
	/* Every node gets room for the new key. */
	for (size_t i = 0; i < f->n; i++) {
		f->nodes[i].values = flt_xrealloc(
			f->nodes[i].values, (f->nkeys + 1) * sizeof(char *));
		f->nodes[i].values[f->nkeys] = NULL;
	}
	return (int)f->nkeys++;
}

size_t sched_fleet_add(sched_fleet_t *f, const char *id, size_t nattrs,
		       const char *const *keys, const char *const *values,
		       uint32_t cpu, uint64_t memory_mb, uint32_t pids,
		       bool eligible)
{
	for (size_t a = 0; a < nattrs; a++)
		key_id(f, keys[a], true);
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->nodes = flt_xrealloc(f->nodes, f->cap * sizeof(*f->nodes));
	}
	node_t *n = &f->nodes[f->n];
	memset(n, 0, sizeof(*n));
	n->id = flt_xstrdup(id);
	n->values = flt_xcalloc(f->nkeys ? f->nkeys : 1, sizeof(char *));
	for (size_t a = 0; a < nattrs; a++) {
		int k = key_id(f, keys[a], false);
		if (k >= 0 && values[a])
			n->values[k] = flt_xstrdup(values[a]);
	}
	n->cpu_total = cpu;
	n->mem_total = memory_mb;
	n->pids_total = pids;
	n->eligible = eligible;
	n->cls = classify(f, f->n);
	return f->n++;
}

size_t sched_fleet_size(const sched_fleet_t *f) { return f->n; }

const char *sched_node_id(const sched_fleet_t *f, size_t node)
{
	return f->nodes[node].id;
}

void sched_node_set_state(sched_fleet_t *f, size_t node, bool down,
			  bool draining, int64_t drain_deadline_ms)
{
	f->nodes[node].down = down;
	f->nodes[node].draining = draining;
	f->nodes[node].drain_deadline_ms = drain_deadline_ms;
}

bool sched_node_down(const sched_fleet_t *f, size_t node)
{
	return f->nodes[node].down;
}

bool sched_node_draining(const sched_fleet_t *f, size_t node,
			 int64_t *deadline_ms)
{
	if (deadline_ms)
		*deadline_ms = f->nodes[node].drain_deadline_ms;
	return f->nodes[node].draining;
}

void sched_node_set_allowances(sched_fleet_t *f, size_t i,
			       const Flotilla__Allowances *a)
{
	node_t *n = &f->nodes[i];
	if (n->allow)
		flotilla__allowances__free_unpacked(n->allow, NULL);
	n->allow = a ? flt_pb_dup(&a->base) : NULL;
	int k = key_id(f, "attr.allowances", true);
	if (k < 0)
		return;
	n = &f->nodes[i]; /* key_id may have moved the values */
	free((char *)n->values[k]);
	n->values[k] = flt_allowances_text(a);
	n->cls = classify(f, i);
}

long sched_fleet_privileges_check(const sched_fleet_t *f, const flt_priv_t *v,
				  size_t n, bool *nowhere)
{
	size_t best_node = 0, best = 0;
	bool any = false;

	*nowhere = false;
	if (!n)
		return -1;
	for (size_t k = 0; k < n; k++) {
		bool somewhere = false;
		for (size_t i = 0; i < f->n && !somewhere; i++)
			somewhere = flt_priv_allowed(&v[k], f->nodes[i].allow);
		if (!somewhere) {
			*nowhere = true;
			return (long)k;
		}
	}
	for (size_t i = 0; i < f->n; i++) {
		size_t ok = 0;
		for (size_t k = 0; k < n; k++)
			ok += flt_priv_allowed(&v[k], f->nodes[i].allow);
		if (ok == n)
			return -1;
		if (!any || ok > best) {
			best = ok;
			best_node = i;
			any = true;
		}
	}
	for (size_t k = 0; k < n; k++)
		if (!flt_priv_allowed(&v[k], f->nodes[best_node].allow))
			return (long)k;
	return -1;
}

const char *sched_node_attr(const sched_fleet_t *f, size_t node,
			    const char *key)
{
	for (size_t k = 0; k < f->nkeys; k++)
		if (strcmp(f->keys[k], key) == 0)
			return f->nodes[node].values[k];
	return NULL;
}

long sched_fleet_find(sched_fleet_t *f, const char *id)
{
	/* The first node of an id wins, as in a scan. */
	for (; f->id_nodes < f->n; f->id_nodes++)
		if (!flt_map_get(&f->ids, f->nodes[f->id_nodes].id))
			flt_map_put(&f->ids, f->nodes[f->id_nodes].id,
				    idx_val(f->id_nodes));
	void *found = flt_map_get(&f->ids, id);
	return found ? (long)val_idx(found) : -1;
}

void sched_fleet_reset_usage(sched_fleet_t *f)
{
	for (size_t i = 0; i < f->n; i++) {
		f->nodes[i].cpu_used = 0;
		f->nodes[i].mem_used = 0;
		f->nodes[i].pids_used = 0;
	}
}

void sched_reserve(sched_fleet_t *f, size_t i, const sched_ask_t *ask)
{
	node_t *n = &f->nodes[i];
	n->cpu_used += ask->cpu;
	n->mem_used += ask->memory_mb;
	n->pids_used += ask->pids;
}

void sched_node_free_resources(const sched_fleet_t *f, size_t i, uint32_t *cpu,
			       uint64_t *mem, uint32_t *pids)
{
	const node_t *n = &f->nodes[i];
	*cpu = n->cpu_total - n->cpu_used;
	*mem = n->mem_total - n->mem_used;
	*pids = n->pids_total - n->pids_used;
}

void sched_ask_of(const Flotilla__TaskGroup *g, sched_ask_t *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < g->n_tasks; i++) {
		const Flotilla__Resources *r = g->tasks[i]->resources;
		out->cpu += r ? r->cpu_quota_percent : 0;
		out->memory_mb += r ? r->memory_mb : 0;
		out->pids += r && r->max_pids ? r->max_pids : DEFAULT_PIDS;
	}
}

void sched_release(sched_fleet_t *f, size_t i, const sched_ask_t *ask)
{
	node_t *n = &f->nodes[i];
	n->cpu_used -= ask->cpu < n->cpu_used ? ask->cpu : n->cpu_used;
	n->mem_used -=
		ask->memory_mb < n->mem_used ? ask->memory_mb : n->mem_used;
	n->pids_used -= ask->pids < n->pids_used ? ask->pids : n->pids_used;
}

/* ---- constraints ------------------------------------------------------ */

typedef struct cons {
	const Flotilla__Constraint *c;
	flt_constraint_op_t op;
	int key; /* -1: the fleet has no such attribute anywhere */
	flt_regex_t *re;
	bool re_gave_up; /* a bound stopped a match: counted as no match */
	double num;
	bool is_num;
	uint32_t limit; /* distinct_property */
	uint32_t filtered;
} cons_t;

static bool number(const char *s, double *out)
{
	char *end;
	if (!*s)
		return false;
	*out = strtod(s, &end);
	return *end == '\0';
}

/* Is needle one of the comma-separated items of list? */
static bool in_list(const char *list, const char *needle)
{
	size_t nl = strlen(needle);
	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		while (l && p[l - 1] == ' ')
			l--;
		if (l == nl && !memcmp(p, needle, l))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

static bool static_ok(cons_t *c, const node_t *n)
{
	const char *v = c->key >= 0 ? n->values[c->key] : NULL;
	const char *want = c->c->value;
	double x;
	switch (c->op) {
	case FLT_OP_IS_SET: return v != NULL;
	case FLT_OP_IS_NOT_SET: return v == NULL;
	case FLT_OP_DISTINCT_HOSTS:
	case FLT_OP_DISTINCT_PROPERTY: return true; /* depend on placements */
	default: break;
	}
	if (!v)
		return false;
	switch (c->op) {
	case FLT_OP_EQ: return strcmp(v, want) == 0;
	case FLT_OP_NE: return strcmp(v, want) != 0;
	case FLT_OP_LT:
	case FLT_OP_GT:
	case FLT_OP_LE:
	case FLT_OP_GE: {
		int r;
		if (c->is_num && number(v, &x))
			r = x < c->num ? -1 : x > c->num ? 1 : 0;
		else
			r = strcmp(v, want);
		return c->op == FLT_OP_LT   ? r < 0
		       : c->op == FLT_OP_GT ? r > 0
		       : c->op == FLT_OP_LE ? r <= 0
					    : r >= 0;
	}
	case FLT_OP_REGEXP: {
		int rc = flt_regex_match(c->re, v, NULL);
		c->re_gave_up |= rc < 0;
		return rc == 1;
	}
	case FLT_OP_VERSION: {
		bool m = false;
		return flt_semver_range_match(want, v, &m, NULL) == 0 && m;
	}
	case FLT_OP_SET_CONTAINS: {
		/* Every wanted item is in the node's set. */
		char item[256];
		for (const char *p = want; *p;) {
			const char *e = strchr(p, ',');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			while (l && *p == ' ')
				p++, l--;
			while (l && p[l - 1] == ' ')
				l--;
			if (l >= sizeof(item))
				return false;
			memcpy(item, p, l);
			item[l] = '\0';
			if (l && !in_list(v, item))
				return false;
			if (!e)
				break;
			p = e + 1;
		}
		return true;
	}
	case FLT_OP_IN: return in_list(want, v);
	default: return false;
	}
}

static int compile(sched_fleet_t *f, const Flotilla__Constraint *src,
		   const char *where, cons_t *c, flt_error_t *err)
{
	memset(c, 0, sizeof(*c));
	c->c = src;
	int op = flt_constraint_op(src->operator_);
	if (op < 0)
		return flt_err(err, -EINVAL, "%s.operator: unknown \"%s\"",
			       where, src->operator_);
	c->op = (flt_constraint_op_t)op;
	c->key = *src->attribute ? key_id(f, src->attribute, false) : -1;
	c->is_num = number(src->value, &c->num);
	if (c->op == FLT_OP_REGEXP) {
		flt_error_t e;
		if (flt_regex_compile(src->value, &c->re, &e) < 0)
			return flt_err(err, -EINVAL, "%s.value: %s", where,
				       e.msg);
	}
	if (c->op == FLT_OP_VERSION) {
		bool m;
		if (flt_semver_range_match(src->value, "0.0.0", &m, err) < 0)
			return flt_err_prefix(err, "%s.value", where);
	}
	if (c->op == FLT_OP_DISTINCT_PROPERTY)
		c->limit = *src->value ? (uint32_t)atoi(src->value) : 1;
	return 0;
}

/* ---- placement --------------------------------------------------------- */

typedef struct spread {
	double weight;
	const uint32_t *node_value; /* from the fleet's value cache */
	uint32_t *counts; /* allocations per value */
	uint32_t nvalues;
} spread_t;

/* Allocations of the group per node: a small map, not an array of the
 * fleet's size, so that a job's cost does not grow with the fleet. */
typedef struct here {
	uint32_t *keys; /* node + 1 */
	uint32_t *counts;
	size_t cap;
} here_t;

typedef struct plan {
	sched_fleet_t *f;
	cons_t *cons;
	size_t ncons;
	bool per_node; /* some constraint names node.name or node.id */
	uint8_t *verdict; /* per class: 0 unknown, 1 feasible, 2 + filter */
	spread_t *spreads;
	size_t nspreads;
	here_t here;
	int distinct_hosts;
	cons_t *dprop[8];
	size_t ndprop;
	uint32_t *dprop_counts[8];
	const uint32_t *dprop_values[8];
	sched_ask_t ask;
	flt_priv_t *privs; /* what the group asks that weakens the sandbox */
	size_t npriv;
	uint32_t *priv_filtered; /* nodes lacking privs[k] (the first lacked) */
	uint32_t total;
	uint32_t filtered_ineligible, filtered_distinct, exhausted_cpu,
		exhausted_mem, exhausted_pids;
} plan_t;

static uint32_t *here_slot(here_t *h, size_t node, bool add)
{
	size_t s = (node * 2654435761u) & (h->cap - 1);
	while (h->keys[s]) {
		if (h->keys[s] == node + 1)
			return &h->counts[s];
		s = (s + 1) & (h->cap - 1);
	}
	if (!add)
		return NULL;
	h->keys[s] = (uint32_t)node + 1;
	return &h->counts[s];
}

static uint32_t here_get(here_t *h, size_t node)
{
	uint32_t *c = here_slot(h, node, false);
	return c ? *c : 0;
}

static bool fits(plan_t *p, const node_t *n, bool count)
{
	if (n->cpu_used + p->ask.cpu > n->cpu_total) {
		p->exhausted_cpu += count;
		return false;
	}
	if (n->mem_used + p->ask.memory_mb > n->mem_total) {
		p->exhausted_mem += count;
		return false;
	}
	if (n->pids_used + p->ask.pids > n->pids_total) {
		p->exhausted_pids += count;
		return false;
	}
	return true;
}

static bool distinct_ok(plan_t *p, size_t i, bool count)
{
	if (p->distinct_hosts && here_get(&p->here, i)) {
		p->filtered_distinct += count;
		return false;
	}
	for (size_t d = 0; d < p->ndprop; d++)
		if (p->dprop_counts[d][p->dprop_values[d][i]] >=
		    p->dprop[d]->limit) {
			p->filtered_distinct += count;
			return false;
		}
	return true;
}

/*
 * Eligibility and the constraints that do not depend on placements:
 * evaluated once per class (nodes alike but for name and id), and per
 * node only for constraints on node.name or node.id. Returns 0 when
 * feasible, else 1 (not eligible), 2 + the index of the constraint, or
 * VERDICT_PRIV when the node does not allow what the group asks.
 */
#define VERDICT_PRIV 254

/* The first of the group's privileges node n does not allow, or -1. */
static long priv_missing(const plan_t *p, const node_t *n)
{
	for (size_t k = 0; k < p->npriv; k++)
		if (!flt_priv_allowed(&p->privs[k], n->allow))
			return (long)k;
	return -1;
}

static unsigned static_verdict(plan_t *p, size_t i)
{
	const node_t *n = &p->f->nodes[i];
	if (!n->eligible)
		return 1;
	uint8_t *v = &p->verdict[n->cls];
	if (!*v) {
		*v = 1;
		for (size_t c = 0; c < p->ncons; c++) {
			if (p->cons[c].key >= 0 &&
			    unique_key(p->f->keys[p->cons[c].key]))
				continue;
			if (!static_ok(&p->cons[c], n)) {
				*v = (uint8_t)(2 + (c < 250 ? c : 250));
				break;
			}
		}
		/* Allowances are part of the class (attr.allowances). */
		if (*v == 1 && priv_missing(p, n) >= 0)
			*v = VERDICT_PRIV;
	}
	if (*v != 1)
		return *v;
	if (p->per_node)
		for (size_t c = 0; c < p->ncons; c++)
			if (p->cons[c].key >= 0 &&
			    unique_key(p->f->keys[p->cons[c].key]) &&
			    !static_ok(&p->cons[c], n))
				return (unsigned)(2 + c);
	return 0;
}

static double score(plan_t *p, size_t i)
{
	const node_t *n = &p->f->nodes[i];
	/* Bin packing: how full the node would be (the fuller the better),
	 * over the resources the node has. */
	double s = 0, parts = 0;
	if (n->cpu_total) {
		s += (double)(n->cpu_used + p->ask.cpu) / n->cpu_total;
		parts++;
	}
	if (n->mem_total) {
		s += (double)(n->mem_used + p->ask.memory_mb) / n->mem_total;
		parts++;
	}
	s = parts ? s / parts : 0;
	/* Spread: values below their even share score up, above it down. */
	for (size_t k = 0; k < p->nspreads; k++) {
		spread_t *sp = &p->spreads[k];
		double even = (double)(p->total + 1) / sp->nvalues;
		double have = sp->counts[sp->node_value[i]];
		double v = (even - have) / even;
		if (v < -1)
			v = -1;
		s += sp->weight * v;
	}
	return s;
}

static void count_here(plan_t *p, size_t i)
{
	(*here_slot(&p->here, i, true))++;
	p->total++;
	for (size_t k = 0; k < p->nspreads; k++)
		p->spreads[k].counts[p->spreads[k].node_value[i]]++;
	for (size_t d = 0; d < p->ndprop; d++)
		p->dprop_counts[d][p->dprop_values[d][i]]++;
}

static void reserve(plan_t *p, size_t i)
{
	node_t *n = &p->f->nodes[i];
	n->cpu_used += p->ask.cpu;
	n->mem_used += p->ask.memory_mb;
	n->pids_used += p->ask.pids;
	count_here(p, i);
}

static void explain(plan_t *p, sched_result_t *out)
{
	size_t off = 0, len = sizeof(out->why);
	out->why[0] = '\0';
#define ADD(...)                                                           \
	do {                                                               \
		if (off < len)                                             \
			off += (size_t)snprintf(out->why + off, len - off, \
						__VA_ARGS__);              \
	} while (0)
	ADD("%u of %u allocations not placed:", out->unplaced,
	    out->unplaced + (uint32_t)out->nplaced);
	if (p->filtered_ineligible)
		ADD(" %u nodes not ready or not eligible;",
		    p->filtered_ineligible);
	for (size_t c = 0; c < p->ncons; c++)
		if (p->cons[c].filtered)
			ADD(" constraint %s %s %s filtered %u nodes;",
			    p->cons[c].c->attribute, p->cons[c].c->operator_,
			    p->cons[c].c->value, p->cons[c].filtered);
	for (size_t c = 0; c < p->ncons; c++)
		if (p->cons[c].re_gave_up)
			ADD(" constraint %s %s %s: regular expression: a "
			    "match limit stopped it (no match);",
			    p->cons[c].c->attribute, p->cons[c].c->operator_,
			    p->cons[c].c->value);
	for (size_t k = 0; k < p->npriv; k++) {
		const flt_priv_t *pv = &p->privs[k];
		char allow[FLT_PRIV_VALUE_MAX + 64];
		if (!p->priv_filtered[k])
			continue;
		flt_priv_allowance(pv, allow, sizeof(allow));
		ADD(" %u nodes do not allow %s%s%s (%s: %s);",
		    p->priv_filtered[k], flt_priv_kind_name(pv->kind),
		    *pv->value ? " " : "", pv->value, pv->path, allow);
	}
	if (p->filtered_distinct)
		ADD(" distinct constraints filtered %u nodes;",
		    p->filtered_distinct);
	if (p->exhausted_cpu)
		ADD(" cpu exhausted on %u nodes;", p->exhausted_cpu);
	if (p->exhausted_mem)
		ADD(" memory exhausted on %u nodes;", p->exhausted_mem);
	if (p->exhausted_pids)
		ADD(" pids exhausted on %u nodes;", p->exhausted_pids);
	if (!p->f->n)
		ADD(" no nodes;");
	if (off && off < len && out->why[off - 1] == ';')
		out->why[off - 1] = '\0';
#undef ADD
}

static void plan_free(plan_t *p)
{
	for (size_t c = 0; c < p->ncons; c++)
		flt_regex_free(p->cons[c].re);
	for (size_t k = 0; k < p->nspreads; k++)
		free(p->spreads[k].counts);
	for (size_t d = 0; d < p->ndprop; d++)
		free(p->dprop_counts[d]);
	free(p->cons);
	free(p->privs);
	free(p->priv_filtered);
	free(p->spreads);
	free(p->verdict);
	free(p->here.keys);
	free(p->here.counts);
}

static int plan_init(plan_t *p, sched_fleet_t *f, const sched_request_t *rq,
		     flt_error_t *err)
{
	const Flotilla__Job *j = rq->job;
	const Flotilla__TaskGroup *g = rq->group;
	memset(p, 0, sizeof(*p));
	p->f = f;
	sched_ask_of(g, &p->ask);
	flt_group_privileges(g, "", &p->privs, &p->npriv);
	p->priv_filtered = flt_xcalloc(p->npriv + 1, sizeof(uint32_t));
	p->cons = flt_xcalloc(j->n_constraints + g->n_constraints + 1,
			      sizeof(*p->cons));
	for (size_t c = 0; c < j->n_constraints + g->n_constraints; c++) {
		bool job_level = c < j->n_constraints;
		const Flotilla__Constraint *src =
			job_level ? j->constraints[c]
				  : g->constraints[c - j->n_constraints];
		char where[64];
		snprintf(where, sizeof(where), "%sconstraints[%zu]",
			 job_level ? "" : "group.",
			 job_level ? c : c - j->n_constraints);
		int rc = compile(f, src, where, &p->cons[p->ncons], err);
		p->ncons++;
		if (rc < 0)
			return rc;
		cons_t *cc = &p->cons[p->ncons - 1];
		if (cc->key >= 0 && unique_key(f->keys[cc->key]))
			p->per_node = true;
		if (cc->op == FLT_OP_DISTINCT_HOSTS)
			p->distinct_hosts = 1;
		if (cc->op == FLT_OP_DISTINCT_PROPERTY &&
		    p->ndprop < FLT_ARRAY_SIZE(p->dprop))
			p->dprop[p->ndprop++] = cc;
	}
	p->verdict = flt_xcalloc(f->nclasses ? f->nclasses : 1, 1);
	size_t want = 2 * ((size_t)rq->count + rq->nexisting + 1);
	if (!strcmp(j->type, "system"))
		want = 2 * (f->n + 1);
	p->here.cap = 16;
	while (p->here.cap < want)
		p->here.cap *= 2;
	p->here.keys = flt_xcalloc(p->here.cap, sizeof(uint32_t));
	p->here.counts = flt_xcalloc(p->here.cap, sizeof(uint32_t));
	for (size_t d = 0; d < p->ndprop; d++) {
		vcache_t *v = values_of(f, p->dprop[d]->key);
		p->dprop_values[d] = v->node_value;
		p->dprop_counts[d] =
			flt_xcalloc(v->nvals ? v->nvals : 1, sizeof(uint32_t));
	}
	size_t ns = j->n_spreads + g->n_spreads;
	p->spreads = flt_xcalloc(ns + 1, sizeof(*p->spreads));
	for (size_t s = 0; s < ns; s++) {
		const Flotilla__Spread *src =
			s < j->n_spreads ? j->spreads[s]
					 : g->spreads[s - j->n_spreads];
		int key = key_id(f, src->attribute, false);
		if (key < 0)
			continue; /* no node has it: nothing to spread over */
		vcache_t *v = values_of(f, key);
		spread_t *sp = &p->spreads[p->nspreads++];
		sp->weight = (src->weight ? src->weight : 50) / 100.0;
		sp->node_value = v->node_value;
		sp->nvalues = v->nvals ? v->nvals : 1;
		sp->counts = flt_xcalloc(sp->nvalues, sizeof(uint32_t));
	}
	for (size_t e = 0; e < rq->nexisting; e++)
		if (rq->existing[e] < f->n)
			count_here(p, rq->existing[e]);
	return 0;
}

/*
 * Picks the best of up to `sample` feasible nodes with room, scanning the
 * fleet from a rotating start; -1 if none has room.
 */
static long pick(plan_t *p, unsigned sample)
{
	sched_fleet_t *f = p->f;
	long best = -1;
	double best_score = -1e18;
	unsigned seen = 0;
	size_t k;
	for (k = 0; k < f->n && seen < sample; k++) {
		size_t i = (f->cursor + k) % f->n;
		if (static_verdict(p, i) || !distinct_ok(p, i, false) ||
		    !fits(p, &f->nodes[i], false))
			continue;
		seen++;
		double s = score(p, i);
		if (s > best_score) {
			best_score = s;
			best = (long)i;
		}
	}
	/* The next scan starts where this one stopped. */
	f->cursor = f->n ? (f->cursor + k) % f->n : 0;
	return best;
}

/* Why nothing fits: one pass over the fleet, on failure only. */
static void count_failures(plan_t *p)
{
	for (size_t i = 0; i < p->f->n; i++) {
		unsigned v = static_verdict(p, i);
		if (v == 1)
			p->filtered_ineligible++;
		else if (v == VERDICT_PRIV) {
			long k = priv_missing(p, &p->f->nodes[i]);
			if (k >= 0)
				p->priv_filtered[k]++;
		} else if (v >= 2)
			p->cons[v - 2].filtered++;
		else if (distinct_ok(p, i, true))
			fits(p, &p->f->nodes[i], true);
	}
}

int sched_place(sched_fleet_t *f, const sched_request_t *rq,
		sched_result_t *out, flt_error_t *err)
{
	plan_t p;
	memset(out, 0, sizeof(*out));
	int rc = plan_init(&p, f, rq, err);
	if (rc < 0) {
		plan_free(&p);
		return rc;
	}
	f->cursor = f->n ? rq->seed % f->n : 0;
	bool system = !strcmp(rq->job->type, "system");
	unsigned sample = rq->sample;
	if (!sample)
		sample = p.nspreads ? 16 : 4;

	if (system) {
		/* One allocation on every feasible node that has none. */
		out->placed = flt_xcalloc(f->n + 1, sizeof(size_t));
		for (size_t i = 0; i < f->n; i++) {
			if (static_verdict(&p, i) || here_get(&p.here, i))
				continue;
			if (!fits(&p, &f->nodes[i], false)) {
				out->unplaced++;
				continue;
			}
			reserve(&p, i);
			out->placed[out->nplaced++] = i;
		}
	} else {
		out->placed = flt_xcalloc(rq->count + 1, sizeof(size_t));
		for (uint32_t a = 0; a < rq->count; a++) {
			long i = pick(&p, sample);
			if (i < 0) {
				out->unplaced = rq->count - a;
				count_failures(&p);
				break;
			}
			reserve(&p, (size_t)i);
			out->placed[out->nplaced++] = (size_t)i;
		}
	}
	if (out->unplaced) {
		if (system)
			count_failures(&p);
		explain(&p, out);
	}
	plan_free(&p);
	return 0;
}

void sched_result_free(sched_result_t *r)
{
	free(r->placed);
	memset(r, 0, sizeof(*r));
}
