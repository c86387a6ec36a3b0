/*
 * The host's inventory: the packages this agent manages, the host's dpkg
 * packages (from the dpkg status file) and the Java archives under the
 * configured roots, read with libarchive (never by running anything).
 */
#ifndef FLOTILLA_AGENT_INVENTORY_H
#define FLOTILLA_AGENT_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

#define AGENT_INV_MAX_ITEMS 50000
#define AGENT_INV_MAX_ERRORS 20
/* Bytes kept of a name, version, group, arch or source, and of a path. */
#define AGENT_INV_FIELD_MAX 256
#define AGENT_INV_PATH_MAX 4096

typedef struct agent_inv_opts {
	/* The dpkg status file (/var/lib/dpkg/status); NULL or "": none. */
	const char *dpkg_status;
	/* Directories searched (recursively, not following symlinked
	 * directories, not crossing into /proc, /sys or other kernel file
	 * systems) for .jar, .war and .ear files; links to archives are not
	 * followed either (their targets are found where they are). A root
	 * may itself be a link, or an archive. */
	const char *const *java_roots;
	size_t n_java_roots;
	/* The agent's package directory (<data_dir>/packages): each
	 * <name>/current link is a managed item at the version it points
	 * to, and each current directory is probed for Java archives too. */
	const char *packages_dir;
	size_t max_files; /* archives probed at most; 0: 100000 */
} agent_inv_opts_t;

/*
 * Scans everything o names into a new Inventory (free with
 * flotilla__inventory__free_unpacked(inv, NULL): every string and array
 * in it is malloc'd). Items are sorted by name, then kind, path and
 * version (the other fields break ties), exact duplicates dropped;
 * digest is the sha256 hex over the items' canonical encoding (equal
 * inventories have equal digests, whatever the scan order); unreadable
 * files and archives are listed in errors (at most AGENT_INV_MAX_ERRORS),
 * not fatal. Every string is valid UTF-8 without control characters
 * (others are replaced by '?'), cut to AGENT_INV_FIELD_MAX bytes, paths
 * to AGENT_INV_PATH_MAX. The walk of the Java roots skips packages_dir:
 * only the versions its current links point to are in use. Returns 0, or
 * -EINVAL (with err) when o is NULL.
 */
int agent_inventory_scan(const agent_inv_opts_t *o, Flotilla__Inventory **out,
			 flt_error_t *err);

/* ---- the parts, for tests --------------------------------------------- */

/* Start from { 0 }; the list owns its items and errors. */
typedef struct agent_inv_list {
	Flotilla__InventoryItem **items;
	size_t n, cap;
	char **errors;
	size_t n_errors;
	/* Past AGENT_INV_MAX_ITEMS and AGENT_INV_MAX_ERRORS: counted only. */
	size_t items_dropped, errors_dropped;
} agent_inv_list_t;

void agent_inv_list_free(agent_inv_list_t *l);

/*
 * Appends a copy of item (its strings borrowed; NULL reads as ""), each
 * string sanitized and cut as agent_inventory_scan promises. Returns 0,
 * or -ENOSPC past AGENT_INV_MAX_ITEMS (noted once in l's errors).
 */
int agent_inv_add(agent_inv_list_t *l, const Flotilla__InventoryItem *item);

/* Appends a message to l's errors (sanitized, at most FLT_ERROR_MSG_MAX
 * bytes); past AGENT_INV_MAX_ERRORS it is only counted. */
void agent_inv_error(agent_inv_list_t *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Appends every package of a dpkg status file whose Status is
 * "install ok installed" (also half-configured etc.: any status but
 * "not-installed" and "config-files"), with name, version ("" when
 * missing) and arch. Malformed stanzas are skipped and listed in l's
 * errors. Returns 0 once the file was read, or -errno (with err, and
 * listed in l's errors too) when it could not be.
 */
int agent_dpkg_parse(const char *path, agent_inv_list_t *l, flt_error_t *err);

/*
 * Probes one Java archive at path (reported as display_path): its own
 * coordinates (pom.properties under META-INF/maven, else the manifest's
 * Implementation-Title/Version or Bundle-SymbolicName/Version, else the
 * file name "artifact-1.2.3.jar"), every further pom.properties inside (a
 * shaded jar holds several: one item each, all with the archive's path),
 * JndiLookup.class (jndi_lookup on every item of the archive that holds
 * it), and nested .jar/.war/.ear entries one level deep, reported as
 * "display_path!/inner/path.jar" (archives nested deeper are not
 * opened). Returns 0 when the archive was read to its end; otherwise
 * -errno or FLT_EPROTO with err, the reason also listed in l's errors,
 * and the items found before a mid-archive failure kept.
 */
int agent_java_probe(const char *path, const char *display_path,
		     agent_inv_list_t *l, flt_error_t *err);

/* The same on an open regular file, read from its start (fd is borrowed:
 * it stays open, its offset moved). */
int agent_java_probe_fd(int fd, const char *display_path, agent_inv_list_t *l,
			flt_error_t *err);

/* True for a name that ends in .jar, .war or .ear (any case), with
 * something before it: an archive the probe opens. */
bool agent_java_archive_name(const char *name);

/*
 * Sorts l, drops exact duplicates and computes the digest: what
 * agent_inventory_scan returns. Takes l's items and errors (l is left
 * empty); never NULL (aborts when out of memory).
 */
Flotilla__Inventory *agent_inv_finish(agent_inv_list_t *l);

#endif
