/*
 * The scheduler's core: places the allocations of one task group on a
 * fleet held in memory. Pure computation (no I/O, no locks): evaluations
 * feed it a snapshot of the nodes and apply the plan it returns in one
 * transaction.
 *
 * Feasibility: node eligible and ready, constraints on node attributes and
 * labels, the node's allowances against what the group's tasks ask that
 * weakens their sandbox (flotilla/privilege.h), distinct_hosts /
 * distinct_property, then resources (CPU as
 * percent of a core, memory, pids) against what each node has left.
 * Ranking: bin packing (the fullest node that fits wins), plus spread over
 * an attribute when asked. Like Nomad's, it scores a sample of feasible
 * nodes per placement (from a rotating start) instead of all of them, which
 * keeps a placement's cost independent of the fleet's size.
 */
#ifndef FLOTILLA_SCHEDULER_H
#define FLOTILLA_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/privilege.h"

typedef struct sched_fleet sched_fleet_t;

sched_fleet_t *sched_fleet_new(void);
void sched_fleet_free(sched_fleet_t *f);

/*
 * Adds a node; keys are attribute names as constraints use them
 * ("node.name", "attr.os_id", "label.rack"), values their values (both
 * copied). cpu in percent of one core (cpu_count * 100), memory in MiB.
 * Returns the node's index.
 */
size_t sched_fleet_add(sched_fleet_t *f, const char *id, size_t nattrs,
		       const char *const *keys, const char *const *values,
		       uint32_t cpu, uint64_t memory_mb, uint32_t pids,
		       bool eligible);
size_t sched_fleet_size(const sched_fleet_t *f);
const char *sched_node_id(const sched_fleet_t *f, size_t node);
/* Where the node stands, for evaluations (the fleet view fills it). */
void sched_node_set_state(sched_fleet_t *f, size_t node, bool down,
			  bool draining, int64_t drain_deadline_ms);
bool sched_node_down(const sched_fleet_t *f, size_t node);
bool sched_node_draining(const sched_fleet_t *f, size_t node,
			 int64_t *deadline_ms);
/*
 * What tasks on the node may weaken in their sandbox (its fingerprint's
 * allowances; copied; NULL: nothing). Also sets the node's attribute
 * "attr.allowances" (flt_allowances_text), so that nodes alike in all but
 * their allowances are not one class. Call right after sched_fleet_add,
 * before any placement. A node without allowances set allows nothing.
 */
void sched_node_set_allowances(sched_fleet_t *f, size_t node,
			       const Flotilla__Allowances *a);

/*
 * Whether some node of f allows all of v[0..n): returns -1 when one does
 * (or n is 0), else the index of an entry to name: the first that no node
 * allows (*nowhere true), or else the first that the node allowing the
 * most of them lacks (*nowhere false: each is allowed somewhere, not all on
 * one node). Every known node counts, whatever its status.
 */
long sched_fleet_privileges_check(const sched_fleet_t *f, const flt_priv_t *v,
				  size_t n, bool *nowhere);

/* An attribute's value ("node.name"), or NULL. */
const char *sched_node_attr(const sched_fleet_t *f, size_t node,
			    const char *key);
/* The index of node id, or -1. */
long sched_fleet_find(sched_fleet_t *f, const char *id);

/* Resources still free on a node. */
void sched_node_free_resources(const sched_fleet_t *f, size_t node,
			       uint32_t *cpu, uint64_t *memory_mb,
			       uint32_t *pids);

/* What one allocation of a group asks for: the sum of its tasks. */
typedef struct sched_ask {
	uint32_t cpu; /* cpu_quota_percent summed */
	uint64_t memory_mb; /* memory_mb summed */
	uint32_t pids; /* max_pids summed (default 1024 a task) */
} sched_ask_t;
void sched_ask_of(const Flotilla__TaskGroup *g, sched_ask_t *out);

typedef struct sched_request {
	const Flotilla__Job *job;
	const Flotilla__TaskGroup *group;
	uint32_t count; /* allocations to place (not for system) */
	const size_t *existing; /* nodes already running this group */
	size_t nexisting;
	unsigned sample; /* candidates scored; 0: automatic */
	uint64_t seed; /* start of the rotation */
} sched_request_t;

typedef struct sched_result {
	size_t *placed; /* node indexes, one per allocation placed */
	size_t nplaced;
	uint32_t unplaced;
	/* Why allocations could not be placed, by filter: "constraint
	 * attr.os_id = debian filtered 3 nodes; 2 nodes do not allow
	 * CAP_NET_ADMIN (--allow-cap NET_ADMIN); memory exhausted on 2
	 * nodes". */
	char why[512];
} sched_result_t;

/*
 * Places rq->count allocations (for a system job: one on every feasible
 * node that has none) and reserves their resources on the fleet. A
 * malformed constraint (bad regexp, bad version range) fails with -EINVAL;
 * not finding room is no error: see unplaced and why.
 */
int sched_place(sched_fleet_t *f, const sched_request_t *rq,
		sched_result_t *out, flt_error_t *err);
void sched_result_free(sched_result_t *r);

/* Forgets every reservation (a fleet kept for the next evaluation). */
void sched_fleet_reset_usage(sched_fleet_t *f);
/* Takes what an existing allocation holds. */
void sched_reserve(sched_fleet_t *f, size_t node, const sched_ask_t *ask);
/* Gives back what a placement reserved (an allocation stopped). */
void sched_release(sched_fleet_t *f, size_t node, const sched_ask_t *ask);

#endif
