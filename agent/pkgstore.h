/*
 * The agent's packages: <data_dir>/packages/<name>/<version>/ holds a
 * staged version (unpacked, read-only to tasks), <name>/current is a
 * symlink to the version in use, switched atomically (a new link renamed
 * over the old one, then the directory fsync'd).
 */
#ifndef FLOTILLA_AGENT_PKGSTORE_H
#define FLOTILLA_AGENT_PKGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

typedef struct agent_pkgs agent_pkgs_t;

/*
 * dir is <data_dir>/packages (made when missing). fleet_key: the fleet's
 * ed25519 public key; when set, only packages it signed are installed.
 */
int agent_pkgs_open(const char *dir, const uint8_t *fleet_key /* 32 or NULL */,
		    agent_pkgs_t **out, flt_error_t *err);
void agent_pkgs_close(agent_pkgs_t *p);
const char *agent_pkgs_dir(const agent_pkgs_t *p);

/*
 * Fetches one chunk: *data (malloc'd) and *len, or an error. The store
 * checks the chunk's digest itself.
 */
typedef int (*agent_chunk_fetch_fn)(void *arg, const char *sha256,
				    uint8_t **data, size_t *len,
				    flt_error_t *err);

/*
 * Stages m as <name>/<version>: fetches every chunk into a temporary file
 * under dir, checks each chunk's digest, the whole size and sha256, the
 * signature (when the store has a fleet key), then unpacks ("archive":
 * any format libarchive reads) into a temporary directory renamed into
 * place; "file": the file alone, as file_name. Archives are refused whole
 * (FLT_EPROTO naming the entry) for absolute paths, ".." components,
 * symlinks or hard links that point outside the package, device nodes,
 * FIFOs and sockets, setuid/setgid bits, more than 100000 entries or
 * FLT_PKG_MAX_SIZE bytes unpacked. A version already staged with the
 * same digest is kept as it is (0). Nothing is left behind on failure:
 * the current link and the staged versions are untouched.
 */
int agent_pkgs_stage(agent_pkgs_t *p, const Flotilla__PackageManifest *m,
		     agent_chunk_fetch_fn fetch, void *arg, flt_error_t *err);

/* True when <name>/<version> is staged (complete). */
bool agent_pkgs_staged(agent_pkgs_t *p, const char *name, const char *version);

/* The version <name>/current points to, in ver ("" when there is none).
 * Returns 0 or -errno. */
int agent_pkgs_current(agent_pkgs_t *p, const char *name, char *ver,
		       size_t len);

/*
 * Points <name>/current at version (which must be staged), atomically;
 * version "" removes the link. 0, or an error with current unchanged.
 */
int agent_pkgs_switch(agent_pkgs_t *p, const char *name, const char *version,
		      flt_error_t *err);

/* The directory tasks see for name: <dir>/<name>/<current version>,
 * resolved (so a later switch does not move a running task's view).
 * FLT_ENOTFOUND when the package has no current version here. */
int agent_pkgs_resolve(agent_pkgs_t *p, const char *name, char *path,
		       size_t len, flt_error_t *err);

/* Removes staged versions of name beyond the current one and the `keep`
 * most recently staged others. */
void agent_pkgs_gc(agent_pkgs_t *p, const char *name, unsigned keep);

#endif
