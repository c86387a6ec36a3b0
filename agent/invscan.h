/*
 * When the agent scans its host's inventory (agent_inventory_scan), and
 * the latest result: a thread of its own scans at start, every interval
 * and whenever asked (after a package switch), so that a slow scan of
 * large Java roots never delays a heartbeat or a task.
 */
#ifndef FLOTILLA_AGENT_INVSCAN_H
#define FLOTILLA_AGENT_INVSCAN_H

#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/pkg.h"
#include "inventory.h"

typedef struct agent_invscan agent_invscan_t;

typedef struct agent_invscan_opts {
	/* What to scan; its strings and arrays are borrowed until close. */
	agent_inv_opts_t scan;
	int64_t interval_ms; /* between scans; 0: 5 minutes */
	/* Called (scan thread, no lock held) when a scan ends with a digest
	 * other than the previous one's; quick, may be NULL. */
	void (*on_change)(void *arg);
	void *change_arg;
} agent_invscan_opts_t;

/* Starts the scan thread; the first scan begins at once. */
int agent_invscan_open(const agent_invscan_opts_t *o, agent_invscan_t **out,
		       flt_error_t *err);
/* Waits for a scan under way to end, then stops the thread. Waiters of
 * agent_invscan_wait return -ECANCELED. */
void agent_invscan_close(agent_invscan_t *s);

/* The latest scan's digest ("" until the first scan ends). Thread-safe. */
void agent_invscan_digest(agent_invscan_t *s, char out[FLT_SHA256_HEX]);

/*
 * The latest inventory, shared and read-only: hold it until
 * agent_invscan_release (scans meanwhile replace it for later callers
 * only). NULL until the first scan ends. Thread-safe.
 */
const Flotilla__Inventory *agent_invscan_get(agent_invscan_t *s);
void agent_invscan_release(agent_invscan_t *s, const Flotilla__Inventory *inv);

/* Asks for a scan that starts after this call; returns its ticket. */
uint64_t agent_invscan_request(agent_invscan_t *s);

/*
 * Waits at most timeout_ms for the scan of ticket (or a later one) to
 * end: 0 and its digest in digest (may be NULL), -ETIMEDOUT, or
 * -ECANCELED once the scanner is closing. Thread-safe.
 */
int agent_invscan_wait(agent_invscan_t *s, uint64_t ticket,
		       char digest[FLT_SHA256_HEX], int timeout_ms);

#endif
