/*
 * The agent's packages: <data_dir>/packages/<name>/<version>/ holds a
 * staged version (unpacked, read-only to tasks), <name>/current is a
 * symlink to the version in use ("<version>", relative), switched
 * atomically (a new link renamed over the old one, then the directory
 * fsync'd). <name>/.<version>.sha256 records the digest a version was
 * staged from; a version counts as staged when both are there.
 * Temporaries are named with a leading '.', which no name or version
 * has, and what a crash leaves of them is removed at open, by an opener
 * alone with the store: every open store holds <dir>/.lock shared (flock),
 * so that another process's staging in progress is never mistaken for
 * stale.
 *
 * Every function may be called from any thread: one lock serializes the
 * changes. The fetch callback is called without it.
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
 * ed25519 public key (copied), or NULL. A package is staged when it
 * carries a valid signature by fleet_key, or, with allow_unsigned, when
 * it carries none (or one the store has no key to check); a signature by
 * another key, or a bad one, is refused whatever allow_unsigned says.
 * Removes stale temporaries when no other process has the store open;
 * waits at most 10 s for one that is removing them.
 */
int agent_pkgs_open(const char *dir, const uint8_t *fleet_key /* 32 or NULL */,
		    bool allow_unsigned, agent_pkgs_t **out, flt_error_t *err);
void agent_pkgs_close(agent_pkgs_t *p);
/* dir, made absolute (realpath) at open; lent for the store's life. */
const char *agent_pkgs_dir(const agent_pkgs_t *p);

/*
 * Fetches one chunk: *data (malloc'd) and *len, or an error. The store
 * checks the chunk's digest itself.
 */
typedef int (*agent_chunk_fetch_fn)(void *arg, const char *sha256,
				    uint8_t **data, size_t *len,
				    flt_error_t *err);

/*
 * Stages m as <name>/<version>. Checks the manifest (flt_pkg_manifest_check)
 * and its signature as agent_pkgs_open says (FLT_EAUTH: "package NAME
 * VERSION: unsigned; this agent requires packages signed with the fleet
 * key (--package-key), or --allow-unsigned-packages", or flt_pkg_verify's
 * reason) before fetching anything. Then fetches every
 * chunk in order into a temporary file under dir, checking each one's
 * length and digest as it comes and the whole sha256 at the end
 * (FLT_EPROTO), and unpacks it into a temporary directory, synced and
 * renamed into place:
 *  - "file": the file alone, as file_name, mode 0644;
 *  - "archive": tar (any variant), zip, cpio or 7-Zip, plain or
 *    compressed with gzip, bzip2, xz, lzma, lzip, zstd, lz4 or compress
 *    (decompressed in-process only). Directories get mode 0755, files
 *    0755 when the owner could execute them and 0644 otherwise; the owner
 *    is the agent, times are not kept. The archive is refused whole
 *    (FLT_EPROTO, `entry "<path>": <reason>`) for an absolute path, any
 *    ".." component, a path through a symlink or through a file, an
 *    entry listed twice (a directory may be), a symlink whose target is
 *    absolute, climbs above the package, or has ".." after a name (which
 *    could climb out through another link), a hard link to anything but
 *    a regular file unpacked before it in the package, device nodes,
 *    FIFOs and sockets, setuid/setgid files (the bits are dropped on
 *    directories), more than 100000 entries or more than
 *    FLT_PKG_MAX_SIZE bytes unpacked, or a damaged archive.
 * A version already staged with the same digest is kept as it is (0,
 * nothing fetched); staged with another digest, or a directory of that
 * name the store did not stage: FLT_ECONFLICT. Messages start with
 * "package NAME VERSION: ". Nothing is left behind on failure: the
 * current link and the staged versions are untouched.
 */
int agent_pkgs_stage(agent_pkgs_t *p, const Flotilla__PackageManifest *m,
		     agent_chunk_fetch_fn fetch, void *arg, flt_error_t *err);

/* True when <name>/<version> is staged (complete, with its digest). */
bool agent_pkgs_staged(agent_pkgs_t *p, const char *name, const char *version);

/* The version <name>/current points to, in ver ("" when there is none).
 * Returns 0 or -errno: -EINVAL for an invalid name or a link that does
 * not name a version, -ERANGE when len is too small. */
int agent_pkgs_current(agent_pkgs_t *p, const char *name, char *ver,
		       size_t len);

/*
 * Points <name>/current at version (which must be staged, FLT_ENOTFOUND
 * otherwise), atomically; version "" removes the link. 0, or an error
 * with current unchanged.
 */
int agent_pkgs_switch(agent_pkgs_t *p, const char *name, const char *version,
		      flt_error_t *err);

/* The directory tasks see for name: <dir>/<name>/<current version>,
 * absolute and resolved (so a later switch does not move a running task's
 * view). FLT_ENOTFOUND when the package has no current version here,
 * -ENAMETOOLONG when it does not fit in len. */
int agent_pkgs_resolve(agent_pkgs_t *p, const char *name, char *path,
		       size_t len, flt_error_t *err);

/* Removes staged versions of name beyond the current one, `also` (the
 * version a rollback would return to; NULL or "" for none) and the `keep`
 * most recently staged others (by the time their digest was recorded).
 * Directories the store did not stage are left alone. Failures are
 * logged. A task still running from a removed version loses its files:
 * call it only once the package's users run the current version. */
void agent_pkgs_gc(agent_pkgs_t *p, const char *name, unsigned keep,
		   const char *also);

#endif
