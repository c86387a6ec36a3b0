/*
 * The agent's package store (see pkgstore.h).
 *
 * Layout under dir:
 *   <name>/<version>/          a staged version, complete
 *   <name>/.<version>.sha256   its digest, written just before the version
 *                              directory is renamed into place
 *   <name>/current             symlink to "<version>"
 *   .lock                      flock'd shared by every open store
 *   .fetch-*, .unpack-*, .gc-* temporaries (removed at open)
 *   <name>/.current.tmp, <name>/..*   temporaries (removed at open)
 * Names and versions never start with '.', so no temporary looks like one;
 * a digest record ends in ".sha256" and starts with a single '.', so it is
 * neither a version nor a temporary.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "flotilla/log.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"
#include "pkgstore.h"

#define ENTRIES_MAX 100000
/* Path components of an archive entry. */
#define DEPTH_MAX 128
/* Bytes of a name from an archive or a manifest quoted in a message. */
#define SHOWN_MAX 200
#define PATH_LEN_MAX 4096
#define CURRENT "current"
#define CURRENT_TMP ".current.tmp"
#define MARKER_SUFFIX ".sha256"
/* "." version ".sha256" */
#define MARKER_LEN (1 + 128 + sizeof(MARKER_SUFFIX))
#define TEMP_LEN 32
#define LOCK_FILE ".lock"
#define LOCK_WAIT_MS 10000

struct agent_pkgs {
	pthread_mutex_t lock;
	int dirfd;
	int lockfd; /* LOCK_FILE, flock'd shared while open */
	bool has_key;
	bool allow_unsigned;
	uint8_t key[32];
	char *dir; /* absolute */
};

static void temp_name(char buf[TEMP_LEN], const char *prefix)
{
	uint8_t r[8];

	randombytes_buf(r, sizeof(r));
	snprintf(buf, TEMP_LEN, "%s", prefix);
	sodium_bin2hex(buf + strlen(buf), TEMP_LEN - strlen(buf), r, sizeof(r));
}

static void marker_name(char buf[MARKER_LEN], const char *version)
{
	snprintf(buf, MARKER_LEN, ".%s" MARKER_SUFFIX, version);
}

/* <dir>/<name>, or -errno (-ENOENT when absent and !create). */
static int open_name_dir(agent_pkgs_t *p, const char *name, bool create,
			 bool *created)
{
	int fd;

	fd = openat(p->dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdirat(p->dirfd, name, 0755) < 0)
		return -errno;
	if (created)
		*created = true;
	fd = openat(p->dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0755) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* The digest recorded for version: 0, -ENOENT, or -EINVAL when garbled. */
static int read_marker(int namefd, const char *version,
		       char sha[FLT_SHA256_HEX])
{
	char name[MARKER_LEN], buf[FLT_SHA256_HEX + 2];
	ssize_t n;
	int fd;

	marker_name(name, version);
	fd = openat(namefd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	if (!flt_sha256_valid(buf))
		return -EINVAL;
	memcpy(sha, buf, FLT_SHA256_HEX);
	return 0;
}

enum { V_ABSENT, V_STAGED, V_UNKNOWN };

/*
 * V_STAGED (sha filled) when <version>/ and its digest record exist;
 * V_UNKNOWN when something else holds the name; V_ABSENT; or -errno.
 */
static int version_state(int namefd, const char *version,
			 char sha[FLT_SHA256_HEX])
{
	struct stat st;
	int rc;

	if (fstatat(namefd, version, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? V_ABSENT : -errno;
	if (!S_ISDIR(st.st_mode))
		return V_UNKNOWN;
	rc = read_marker(namefd, version, sha);
	if (rc == 0)
		return V_STAGED;
	if (rc == -ENOENT || rc == -EINVAL)
		return V_UNKNOWN;
	return rc;
}

/* What a crash may have left: temporaries are never reused, only removed. */
static void remove_stale(agent_pkgs_t *p)
{
	struct dirent *e;
	DIR *d;
	int fd;

	fd = openat(p->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		const char *n = e->d_name;

		if (!strncmp(n, ".fetch-", 7) || !strncmp(n, ".unpack-", 8) ||
		    !strncmp(n, ".gc-", 4)) {
			int rc = flt_rm_rf_at(p->dirfd, n, 0);

			if (rc < 0)
				flt_warn("package store: stale temporary not "
					 "removed dir=%s name=%s error=\"%s\"",
					 p->dir, n, strerror(-rc));
		} else if (flt_pkg_name_valid(n)) {
			struct dirent *f;
			DIR *nd;
			int nfd = open_name_dir(p, n, false, NULL);

			if (nfd < 0)
				continue;
			if (!(nd = fdopendir(nfd))) {
				close(nfd);
				continue;
			}
			while ((f = readdir(nd)))
				if (!strcmp(f->d_name, CURRENT_TMP) ||
				    (!strncmp(f->d_name, "..", 2) &&
				     f->d_name[2] != '\0'))
					flt_rm_rf_at(dirfd(nd), f->d_name, 0);
			closedir(nd);
		}
	}
	closedir(d);
}

/*
 * Another process may have the store open and be in the middle of staging
 * (the agent's exec helper opens it to resolve a task's packages): its
 * temporaries are not stale. So they are removed only by the opener that
 * gets the lock file exclusively, which it then holds shared like every
 * other opener until it closes the store.
 */
static int lock_store(agent_pkgs_t *p, flt_error_t *err)
{
	const struct timespec pause = { 0, 10 * 1000 * 1000 };
	int waited = 0, rc;

	p->lockfd = openat(p->dirfd, LOCK_FILE,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (p->lockfd < 0)
		return flt_err(err, -errno,
			       "package store %s/" LOCK_FILE ": %s", p->dir,
			       strerror(errno));
	if (flock(p->lockfd, LOCK_EX | LOCK_NB) == 0)
		remove_stale(p);
	/* From exclusive, or from nothing while another opener cleans up. */
	while (flock(p->lockfd, LOCK_SH | LOCK_NB) < 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) ||
		    waited >= LOCK_WAIT_MS) {
			rc = errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			close(p->lockfd);
			return flt_err(err, rc, "package store %s: %s", p->dir,
				       rc == -ETIMEDOUT
					       ? "still locked by another "
						 "process after 10 s"
					       : strerror(-rc));
		}
		nanosleep(&pause, NULL);
		waited += 10;
	}
	return 0;
}

int agent_pkgs_open(const char *dir, const uint8_t *fleet_key,
		    bool allow_unsigned, agent_pkgs_t **out, flt_error_t *err)
{
	agent_pkgs_t *p;
	char *abs;
	int rc;

	if (!dir || !*dir || !out)
		return flt_err(err, -EINVAL,
			       "package store: missing directory");
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "package store: libsodium failed to "
			       "initialize");
	if ((rc = flt_mkdir_p(dir, 0755)) < 0)
		return flt_err(err, rc, "package store %s: %s", dir,
			       strerror(-rc));
	abs = realpath(dir, NULL);
	if (!abs)
		return flt_err(err, -errno, "package store %s: %s", dir,
			       strerror(errno));
	p = calloc(1, sizeof(*p));
	if (!p) {
		free(abs);
		return flt_err(err, -ENOMEM, "package store: out of memory");
	}
	p->dir = abs;
	p->dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0) {
		rc = -errno;
		free(abs);
		free(p);
		return flt_err(err, rc, "package store %s: %s", dir,
			       strerror(-rc));
	}
	if ((rc = lock_store(p, err)) < 0) {
		close(p->dirfd);
		free(abs);
		free(p);
		return rc;
	}
	if (fleet_key) {
		memcpy(p->key, fleet_key, sizeof(p->key));
		p->has_key = true;
	}
	p->allow_unsigned = allow_unsigned;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void agent_pkgs_close(agent_pkgs_t *p)
{
	if (!p)
		return;
	close(p->lockfd);
	close(p->dirfd);
	pthread_mutex_destroy(&p->lock);
	free(p->dir);
	free(p);
}

const char *agent_pkgs_dir(const agent_pkgs_t *p) { return p->dir; }

/* ---- fetching -------------------------------------------------------- */

/*
 * Writes the chunks to fd in order. Each chunk is checked before it is
 * written: its length (chunk_size, the last one what remains of size) and
 * its digest. The whole digest is checked at the end.
 */
static int fetch_content(const Flotilla__PackageManifest *m,
			 agent_chunk_fetch_fn fetch, void *arg, int fd,
			 const char *dir, flt_error_t *err)
{
	crypto_hash_sha256_state st;
	uint8_t h[crypto_hash_sha256_BYTES];
	char hex[FLT_SHA256_HEX];
	uint64_t off = 0;
	size_t i;
	int rc;

	crypto_hash_sha256_init(&st);
	for (i = 0; i < m->n_chunks; i++) {
		uint64_t want = m->size - off < m->chunk_size ? m->size - off
							      : m->chunk_size;
		flt_error_t ferr = { 0 };
		uint8_t *data = NULL;
		size_t len = 0;

		rc = fetch(arg, m->chunks[i], &data, &len, &ferr);
		if (rc < 0) {
			free(data);
			return flt_err(err, rc, "chunk %zu (%.12s): %s", i,
				       m->chunks[i],
				       ferr.msg[0] ? ferr.msg
						   : flt_strerror(rc));
		}
		if (!data && len) {
			rc = flt_err(err, -EINVAL,
				     "chunk %zu (%.12s): fetched without data",
				     i, m->chunks[i]);
		} else if (len != want) {
			rc = flt_err(err, FLT_EPROTO,
				     "chunk %zu (%.12s): %zu bytes, expected "
				     "%llu",
				     i, m->chunks[i], len,
				     (unsigned long long)want);
		} else {
			flt_sha256_hex(data, len, hex);
			if (strcmp(hex, m->chunks[i]))
				rc = flt_err(err, FLT_EPROTO,
					     "chunk %zu (%.12s): content does "
					     "not match its digest (sha256 "
					     "%.12s)",
					     i, m->chunks[i], hex);
		}
		if (rc == 0) {
			crypto_hash_sha256_update(&st, data, len);
			if ((rc = flt_write_all(fd, data, len, NULL)) < 0)
				rc = flt_err(err, flt_write_errno(rc, dir),
					     "writing chunk %zu: %s", i,
					     flt_write_strerror(rc, dir));
		}
		free(data);
		if (rc < 0)
			return rc;
		off += len;
	}
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	if (off != m->size || strcmp(hex, m->sha256))
		return flt_err(err, FLT_EPROTO,
			       "content: sha256 %s does not match the "
			       "manifest's %s",
			       hex, m->sha256);
	return 0;
}

/* ---- unpacking ------------------------------------------------------- */

struct unpack {
	struct archive *a;
	int rootfd;
	uint64_t bytes;
	unsigned long entries;
	flt_error_t *err;
	char shown[208]; /* the current entry's path, for messages */
};

static int refuse(struct unpack *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fails the whole archive: FLT_EPROTO, "entry "<path>": <reason>". */
static int refuse(struct unpack *u, const char *fmt, ...)
{
	char why[FLT_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return flt_err(u->err, FLT_EPROTO, "entry \"%s\": %s", u->shown, why);
}

/*
 * Splits path into its components in buf, leaving out empty ones and ".".
 * Refuses absolute paths and any "..": an archive has no business naming
 * anything above the directory it is unpacked in.
 */
static int split_path(struct unpack *u, const char *path, const char *what,
		      char *buf, char **comps, size_t *n)
{
	char *s, *save = NULL;
	size_t len = strlen(path);

	*n = 0;
	if (path[0] == '/')
		return refuse(u, "%s is absolute", what);
	if (len > PATH_LEN_MAX)
		return refuse(u, "%s is longer than %d bytes", what,
			      PATH_LEN_MAX);
	memcpy(buf, path, len + 1);
	for (s = strtok_r(buf, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (!strcmp(s, "."))
			continue;
		if (!strcmp(s, ".."))
			return refuse(u, "%s leaves the package", what);
		if (*n == DEPTH_MAX)
			return refuse(u, "%s is deeper than %d directories",
				      what, DEPTH_MAX);
		comps[(*n)++] = s;
	}
	return 0;
}

static int dup_fd(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	return d < 0 ? -errno : d;
}

/*
 * Opens the directory holding comps[n-1], one component at a time with
 * O_NOFOLLOW, so that nothing is ever written through a symlink or into
 * a place the archive did not create itself. Missing directories are made
 * (mode 0755) when create is set. The message names the offending prefix.
 */
static int walk_parents(struct unpack *u, char **comps, size_t n, bool create,
			const char *what)
{
	char prefix[PATH_LEN_MAX + 1] = "", b[208];
	size_t i, plen = 0;
	int fd, next, rc;

	if ((fd = dup_fd(u->rootfd)) < 0)
		return flt_err(u->err, fd, "%s", strerror(-fd));
	for (i = 0; i + 1 < n; i++) {
		plen += (size_t)snprintf(prefix + plen, sizeof(prefix) - plen,
					 "%s%s", i ? "/" : "", comps[i]);
		if (plen >= sizeof(prefix))
			plen = sizeof(prefix) - 1;
		next = openat(fd, comps[i],
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comps[i], 0755) < 0 && errno != EEXIST)
				goto sys;
			next = openat(fd, comps[i],
				      O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					      O_CLOEXEC);
			if (next >= 0 && fchmod(next, 0755) < 0) {
				int e = errno;

				close(next);
				errno = e;
				goto sys;
			}
		}
		if (next < 0) {
			struct stat st;

			if (errno == ENOENT) {
				close(fd);
				return refuse(u,
					      "%s: \"%s\" is not in the "
					      "package before it",
					      what,
					      flt_shown(prefix, SHOWN_MAX, b,
							sizeof(b)));
			}
			if ((errno == ELOOP || errno == ENOTDIR) &&
			    fstatat(fd, comps[i], &st, AT_SYMLINK_NOFOLLOW) ==
				    0) {
				close(fd);
				if (S_ISLNK(st.st_mode))
					return refuse(u,
						      "%s goes through the "
						      "symlink \"%s\"",
						      what,
						      flt_shown(prefix,
								SHOWN_MAX, b,
								sizeof(b)));
				return refuse(u,
					      "%s: \"%s\" is not a "
					      "directory",
					      what,
					      flt_shown(prefix, SHOWN_MAX, b,
							sizeof(b)));
			}
			goto sys;
		}
		close(fd);
		fd = next;
	}
	return fd;
sys:
	rc = -errno;
	close(fd);
	return flt_err(u->err, rc, "entry \"%s\": %s: %s", u->shown,
		       flt_shown(prefix, SHOWN_MAX, b, sizeof(b)),
		       strerror(-rc));
}

/*
 * A symlink is kept only when the kernel, resolving it from where it
 * stands, cannot leave the package whatever the other links are: a
 * relative target whose ".." components all come first and climb no
 * higher than the link's own depth. A ".." after a name could climb back
 * out through another link ("up -> .." then "x -> up/.."), which a purely
 * lexical check of one link would miss.
 */
static int check_symlink(struct unpack *u, const char *target, size_t depth)
{
	char buf[PATH_LEN_MAX + 1], b[208], *s, *save = NULL;
	size_t len, ups = 0;
	bool named = false;

	if (!target || !*target)
		return refuse(u, "symlink without a target");
	len = strlen(target);
	if (len > PATH_LEN_MAX)
		return refuse(u, "symlink target longer than %d bytes",
			      PATH_LEN_MAX);
	if (target[0] == '/')
		return refuse(u, "symlink to \"%s\" points outside the package",
			      flt_shown(target, SHOWN_MAX, b, sizeof(b)));
	memcpy(buf, target, len + 1);
	for (s = strtok_r(buf, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (!strcmp(s, "."))
			continue;
		if (strcmp(s, "..")) {
			named = true;
			continue;
		}
		if (named)
			return refuse(
				u,
				"symlink to \"%s\": \"..\" after a "
				"name could leave the package through "
				"another symlink",
				flt_shown(target, SHOWN_MAX, b, sizeof(b)));
		if (++ups > depth)
			return refuse(
				u,
				"symlink to \"%s\" points outside "
				"the package",
				flt_shown(target, SHOWN_MAX, b, sizeof(b)));
	}
	return 0;
}

/* Copies the entry's data into fd, within what is left of the budget. */
static int write_data(struct unpack *u, struct archive_entry *e, int fd)
{
	uint64_t left = FLT_PKG_MAX_SIZE - u->bytes, end = 0, declared = 0;
	const void *buf;
	la_int64_t off;
	size_t size;
	int r, rc;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
		declared = (uint64_t)archive_entry_size(e);
	if (declared > left)
		goto too_big;
	for (;;) {
		r = archive_read_data_block(u->a, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return refuse(u, "%s", archive_error_string(u->a));
		if (off < 0 || (uint64_t)off > left ||
		    size > left - (uint64_t)off)
			goto too_big;
		if ((rc = flt_pwrite_all(fd, buf, size, off)) < 0)
			return flt_err(u->err, rc, "entry \"%s\": %s", u->shown,
				       strerror(-rc));
		if ((uint64_t)off + size > end)
			end = (uint64_t)off + size;
	}
	/* A sparse file may end in a hole. */
	if (declared > end) {
		if (ftruncate(fd, (off_t)declared) < 0)
			return flt_err(u->err, -errno, "entry \"%s\": %s",
				       u->shown, strerror(errno));
		end = declared;
	}
	u->bytes += end;
	return 0;
too_big:
	return refuse(u, "the package unpacks to more than %llu bytes",
		      FLT_PKG_MAX_SIZE);
}

static int exists_already(struct unpack *u)
{
	return refuse(u, "appears twice in the archive");
}

static int make_dir(struct unpack *u, int parent, const char *leaf)
{
	struct stat st;
	int fd, rc = 0;

	if (mkdirat(parent, leaf, 0755) < 0) {
		if (errno != EEXIST)
			return flt_err(u->err, -errno, "entry \"%s\": %s",
				       u->shown, strerror(errno));
		/* Listed again after its contents: fine, if a directory. */
		if (fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			return exists_already(u);
	}
	fd = openat(parent, leaf,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0755) < 0)
		rc = flt_err(u->err, -errno, "entry \"%s\": %s", u->shown,
			     strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

static int make_file(struct unpack *u, struct archive_entry *e, int parent,
		     const char *leaf)
{
	mode_t mode = (archive_entry_mode(e) & S_IXUSR) ? 0755 : 0644;
	int fd, rc;

	fd = openat(parent, leaf,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return exists_already(u);
		return flt_err(u->err, -errno, "entry \"%s\": %s", u->shown,
			       strerror(errno));
	}
	rc = write_data(u, e, fd);
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = flt_err(u->err, -errno, "entry \"%s\": %s", u->shown,
			     strerror(errno));
	close(fd);
	return rc;
}

/*
 * Hard links are kept when they join two entries of the package: the
 * target is looked up like any path (no "..", no symlink on the way) and
 * must be a regular file unpacked before. Their data, if a format sends
 * any, is not supported.
 */
static int make_hardlink(struct unpack *u, struct archive_entry *e,
			 const char *target, int parent, const char *leaf)
{
	char buf[PATH_LEN_MAX + 1], *comps[DEPTH_MAX], b[208], what[240];
	struct stat st;
	int tfd, rc = 0;
	size_t n;

	snprintf(what, sizeof(what), "hard link to \"%s\"",
		 flt_shown(target, SHOWN_MAX, b, sizeof(b)));
	if ((rc = split_path(u, target, what, buf, comps, &n)) < 0)
		return rc;
	if (n == 0)
		return refuse(u, "%s: not a file", what);
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
		return refuse(u, "%s with contents of its own", what);
	tfd = walk_parents(u, comps, n, false, what);
	if (tfd < 0)
		return tfd;
	if (fstatat(tfd, comps[n - 1], &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = errno == ENOENT
			     ? refuse(u, "%s: not in the package before it",
				      what)
			     : flt_err(u->err, -errno, "entry \"%s\": %s",
				       u->shown, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = refuse(u, "%s: not a regular file", what);
	else if (linkat(tfd, comps[n - 1], parent, leaf, 0) < 0)
		rc = errno == EEXIST
			     ? exists_already(u)
			     : flt_err(u->err, -errno, "entry \"%s\": %s",
				       u->shown, strerror(errno));
	close(tfd);
	return rc;
}

static int unpack_entry(struct unpack *u, struct archive_entry *e)
{
	char buf[PATH_LEN_MAX + 1], *comps[DEPTH_MAX];
	const char *path = archive_entry_pathname(e);
	const char *hardlink = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);
	mode_t mode = archive_entry_mode(e);
	int parent, rc;
	size_t n;

	flt_shown(path, SHOWN_MAX, u->shown, sizeof(u->shown));
	if (++u->entries > ENTRIES_MAX)
		return refuse(u, "more than %d entries in the archive",
			      ENTRIES_MAX);
	if (!path)
		return flt_err(u->err, FLT_EPROTO,
			       "entry %lu: no path (not valid in this locale)",
			       u->entries);
	if ((rc = split_path(u, path, "path", buf, comps, &n)) < 0)
		return rc;
	if (!hardlink) {
		switch (type) {
		case AE_IFREG:
		case AE_IFDIR:
		case AE_IFLNK: break;
		case AE_IFCHR:
		case AE_IFBLK: return refuse(u, "device node");
		case AE_IFIFO: return refuse(u, "FIFO");
		case AE_IFSOCK: return refuse(u, "socket");
		default:
			return refuse(u, "unsupported entry type (mode %06o)",
				      (unsigned)type);
		}
	}
	/* Tasks run what they find here: no privilege comes with it. On a
	 * directory the bits cannot carry over (directories are 0755). */
	if (type != AE_IFDIR && (mode & (S_ISUID | S_ISGID)))
		return refuse(u, "setuid or setgid file (mode %04o)",
			      (unsigned)(mode & 07777));
	if (n == 0) {
		if (type == AE_IFDIR && !hardlink)
			return 0; /* "./", the package root itself */
		return refuse(u, "names the package root");
	}
	if (type == AE_IFLNK && !hardlink &&
	    (rc = check_symlink(u, archive_entry_symlink(e), n - 1)) < 0)
		return rc;

	parent = walk_parents(u, comps, n, true, "path");
	if (parent < 0)
		return parent;
	if (hardlink)
		rc = make_hardlink(u, e, hardlink, parent, comps[n - 1]);
	else if (type == AE_IFDIR)
		rc = make_dir(u, parent, comps[n - 1]);
	else if (type == AE_IFREG)
		rc = make_file(u, e, parent, comps[n - 1]);
	else if (symlinkat(archive_entry_symlink(e), parent, comps[n - 1]) < 0)
		rc = errno == EEXIST
			     ? exists_already(u)
			     : flt_err(u->err, -errno, "entry \"%s\": %s",
				       u->shown, strerror(errno));
	close(parent);
	return rc;
}

/*
 * Formats and filters are named one by one rather than "all": mtree is
 * left out (its entries name files on this machine, which the reader would
 * copy in), and so are raw and empty; a filter is only used when libarchive
 * does it in-process, never by running an outside program on our input.
 */
static void support_formats(struct archive *a)
{
	static int (*const filters[])(struct archive *) = {
		archive_read_support_filter_gzip,
		archive_read_support_filter_bzip2,
		archive_read_support_filter_xz,
		archive_read_support_filter_lzma,
		archive_read_support_filter_lzip,
		archive_read_support_filter_zstd,
		archive_read_support_filter_lz4,
		archive_read_support_filter_compress,
	};
	struct archive *probe = archive_read_new();
	size_t i;

	for (i = 0; probe && i < FLT_ARRAY_SIZE(filters); i++)
		if (filters[i](probe) == ARCHIVE_OK)
			filters[i](a);
	archive_read_free(probe);
	archive_read_support_format_tar(a);
	archive_read_support_format_zip(a);
	archive_read_support_format_cpio(a);
	archive_read_support_format_7zip(a);
}

static int unpack_archive(int fd, int rootfd, flt_error_t *err)
{
	struct unpack u = { .rootfd = rootfd, .err = err };
	struct archive_entry *e;
	int r, rc = 0;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return flt_err(err, -errno, "archive: %s", strerror(errno));
	u.a = archive_read_new();
	if (!u.a)
		return flt_err(err, -ENOMEM, "archive: out of memory");
	support_formats(u.a);
	if (archive_read_open_fd(u.a, fd, 64 * 1024) != ARCHIVE_OK) {
		rc = flt_err(err, FLT_EPROTO, "archive: %s",
			     archive_error_string(u.a));
		goto out;
	}
	for (;;) {
		r = archive_read_next_header(u.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_RETRY too: a damaged header was skipped, and what
		 * follows may be data read as headers. */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			rc = u.entries ? flt_err(err, FLT_EPROTO,
						 "archive: after entry \"%s\": "
						 "%s",
						 u.shown,
						 archive_error_string(u.a))
				       : flt_err(err, FLT_EPROTO, "archive: %s",
						 archive_error_string(u.a));
			goto out;
		}
		if ((rc = unpack_entry(&u, e)) < 0)
			goto out;
	}
out:
	archive_read_free(u.a);
	return rc;
}

/* ---- staging --------------------------------------------------------- */

/*
 * Under the lock: 1 when version is staged with m's digest, 0 when the
 * name is free, or an error (FLT_ECONFLICT: taken by something else).
 */
static int check_existing(agent_pkgs_t *p, int namefd,
			  const Flotilla__PackageManifest *m, flt_error_t *err)
{
	char sha[FLT_SHA256_HEX], b[208];
	int st = version_state(namefd, m->version, sha);

	if (st < 0)
		return flt_err(err, st, "%s/%s/%s: %s", p->dir, m->name,
			       m->version, strerror(-st));
	if (st == V_ABSENT)
		return 0;
	if (st == V_STAGED && !strcmp(sha, m->sha256))
		return 1;
	if (st == V_STAGED)
		return flt_err(err, FLT_ECONFLICT,
			       "version %s is staged with another digest "
			       "(sha256 %.12s, this one %.12s)",
			       flt_shown(m->version, SHOWN_MAX, b, sizeof(b)),
			       sha, m->sha256);
	return flt_err(err, FLT_ECONFLICT,
		       "%s/%s/%s exists but is not a staged version (no "
		       "digest record)",
		       p->dir, m->name, m->version);
}

static int rename_noreplace(int from_dir, const char *from, int to_dir,
			    const char *to)
{
	if (renameat2(from_dir, from, to_dir, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: we checked under the lock
	 * that to is absent, and only the store writes here. */
	return renameat(from_dir, from, to_dir, to) < 0 ? -errno : 0;
}

/*
 * Under the lock: records the digest, then renames the unpacked tree into
 * place, so that a version directory is never seen without its digest.
 */
static int install(agent_pkgs_t *p, const Flotilla__PackageManifest *m,
		   const char *tmpdir, flt_error_t *err)
{
	char marker[MARKER_LEN], tmp[TEMP_LEN], line[FLT_SHA256_HEX + 1];
	bool created = false, marked = false;
	int namefd, fd, rc;

	namefd = open_name_dir(p, m->name, true, &created);
	if (namefd < 0)
		return flt_err(err, namefd, "%s/%s: %s", p->dir, m->name,
			       strerror(-namefd));
	if ((rc = check_existing(p, namefd, m, err)) != 0)
		goto out;

	marker_name(marker, m->version);
	temp_name(tmp, "..marker-");
	fd = openat(namefd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto sys;
	}
	snprintf(line, sizeof(line), "%s\n", m->sha256);
	if ((rc = flt_write_all(fd, line, strlen(line), NULL)) < 0 ||
	    (fsync(fd) < 0 && (rc = -errno) < 0) ||
	    (renameat(namefd, tmp, namefd, marker) < 0 && (rc = -errno) < 0)) {
		close(fd);
		unlinkat(namefd, tmp, 0);
		goto sys;
	}
	close(fd);
	marked = true;
	/* The record must be on disk before the directory it vouches for. */
	if (fsync(namefd) < 0) {
		rc = -errno;
		goto sys;
	}
	if ((rc = rename_noreplace(p->dirfd, tmpdir, namefd, m->version)) < 0)
		goto sys;
	if (fsync(namefd) < 0 || fsync(p->dirfd) < 0) {
		/* In place and complete; only its durability is in doubt. */
		flt_warn("package store: fsync failed dir=%s/%s error=\"%s\"",
			 p->dir, m->name, strerror(errno));
	}
	rc = 0;
	goto out;
sys:
	flt_err(err, rc, "%s/%s/%s: %s", p->dir, m->name, m->version,
		strerror(-rc));
out:
	if (rc < 0 && marked)
		unlinkat(namefd, marker, 0);
	close(namefd);
	if (rc < 0 && created)
		unlinkat(p->dirfd, m->name, AT_REMOVEDIR);
	return rc;
}

static int stage_locked_check(agent_pkgs_t *p,
			      const Flotilla__PackageManifest *m,
			      flt_error_t *err)
{
	int namefd, rc;

	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, m->name, false, NULL);
	if (namefd == -ENOENT)
		rc = 0;
	else if (namefd < 0)
		rc = flt_err(err, namefd, "%s/%s: %s", p->dir, m->name,
			     strerror(-namefd));
	else
		rc = check_existing(p, namefd, m, err);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/*
 * Fetching and unpacking run without the lock (a download may take
 * minutes); their temporaries have names of their own. Only the final
 * rename into place is serialized, and it checks the version again.
 */
/*
 * Whether this agent may install m: signed by the fleet key it was given,
 * or accepted unsigned only when its configuration says so. A signature
 * it cannot check (no key) counts as none. The refusal names the package,
 * what is missing and the flag that would supply it.
 */
static int check_signature(agent_pkgs_t *p, const Flotilla__PackageManifest *m,
			   const char *nb, const char *vb, flt_error_t *err)
{
	int rc;

	if (p->has_key && m->signature.len != 0) {
		/* Its message names the package already. */
		if ((rc = flt_pkg_verify(m, p->key, err)) < 0) {
			flt_error_t why = *err;
			return flt_err(err, rc,
				       "%s; this agent installs only packages "
				       "signed with the fleet key "
				       "(--package-key)",
				       why.msg);
		}
		return 0;
	}
	if (p->allow_unsigned)
		return 0;
	if (m->signature.len == 0)
		return flt_err(err, FLT_EAUTH,
			       "package %s %s: unsigned; this agent requires "
			       "packages signed with the fleet key "
			       "(--package-key), or --allow-unsigned-packages",
			       nb, vb);
	return flt_err(err, FLT_EAUTH,
		       "package %s %s: signed, but this agent has no fleet key "
		       "to verify it with (--package-key FILE), or "
		       "--allow-unsigned-packages",
		       nb, vb);
}

int agent_pkgs_stage(agent_pkgs_t *p, const Flotilla__PackageManifest *m,
		     agent_chunk_fetch_fn fetch, void *arg, flt_error_t *err)
{
	char fetched[TEMP_LEN], unpacked[TEMP_LEN], nb[208], vb[208];
	bool have_file = false, have_dir = false;
	int fd = -1, rootfd = -1, rc;

	if (!p || !m || !fetch)
		return flt_err(err, -EINVAL,
			       "package store: missing manifest or fetch "
			       "function");
	if ((rc = flt_pkg_manifest_check(m, err)) < 0)
		goto fail;
	flt_shown(m->name, SHOWN_MAX, nb, sizeof(nb));
	flt_shown(m->version, SHOWN_MAX, vb, sizeof(vb));
	if ((rc = check_signature(p, m, nb, vb, err)) < 0)
		return rc;
	if ((rc = stage_locked_check(p, m, err)) != 0)
		goto fail;

	temp_name(fetched, ".fetch-");
	fd = openat(p->dirfd, fetched,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = flt_err(err, -errno, "%s/%s: %s", p->dir, fetched,
			     strerror(errno));
		goto fail;
	}
	have_file = true;
	if ((rc = fetch_content(m, fetch, arg, fd, p->dir, err)) < 0)
		goto fail;

	temp_name(unpacked, ".unpack-");
	if (mkdirat(p->dirfd, unpacked, 0700) < 0) {
		rc = flt_err(err, -errno, "%s/%s: %s", p->dir, unpacked,
			     strerror(errno));
		goto fail;
	}
	have_dir = true;
	rootfd = openat(p->dirfd, unpacked,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		rc = flt_err(err, -errno, "%s/%s: %s", p->dir, unpacked,
			     strerror(errno));
		goto fail;
	}
	if (!strcmp(m->format, "archive")) {
		rc = unpack_archive(fd, rootfd, err);
	} else if (fchmod(fd, 0644) < 0 ||
		   renameat(p->dirfd, fetched, rootfd, m->file_name) < 0) {
		rc = flt_err(err, -errno, "%s/%s/%s: %s", p->dir, unpacked,
			     m->file_name, strerror(errno));
	}
	if (rc < 0)
		goto fail;
	/* One syncfs rather than an fsync per file: the tree may hold tens
	 * of thousands of them, and it must be on disk before the rename
	 * makes it a version. */
	if (fchmod(rootfd, 0755) < 0 || syncfs(rootfd) < 0) {
		rc = -errno;
		rc = flt_err(err, rc, "%s/%s: %s", p->dir, unpacked,
			     flt_write_strerror(rc, p->dir));
		goto fail;
	}

	pthread_mutex_lock(&p->lock);
	rc = install(p, m, unpacked, err);
	pthread_mutex_unlock(&p->lock);
	if (rc > 0)
		rc = 0; /* staged meanwhile by another caller, same digest */
	else if (rc == 0)
		have_dir = false;
fail:
	if (rc > 0)
		rc = 0; /* already staged with this digest */
	if (fd >= 0)
		close(fd);
	if (rootfd >= 0)
		close(rootfd);
	if (have_file)
		unlinkat(p->dirfd, fetched, 0);
	if (have_dir) {
		int r = flt_rm_rf_at(p->dirfd, unpacked, 0);

		if (r < 0)
			flt_warn("package store: temporary not removed "
				 "dir=%s name=%s error=\"%s\"",
				 p->dir, unpacked, strerror(-r));
	}
	flt_shown(m->name, SHOWN_MAX, nb, sizeof(nb));
	flt_shown(m->version, SHOWN_MAX, vb, sizeof(vb));
	/* A full disk first, with the store's directory: whatever step hit
	 * it (and however the file system called it) is the detail. */
	int full = rc < 0 ? flt_write_errno(rc, p->dir) : 0;
	if ((full == -ENOSPC || full == -EDQUOT) && err) {
		char detail[FLT_ERROR_MSG_MAX];
		memcpy(detail, err->msg, sizeof(detail));
		rc = flt_err(err, full,
			     "package %s %s: %s (package store %s): %s", nb, vb,
			     flt_write_strerror(full, NULL), p->dir, detail);
	} else if (rc < 0 && err)
		flt_err_prefix(err, "package %s %s", nb, vb);
	return rc;
}

/* ---- queries and the current link ------------------------------------ */

bool agent_pkgs_staged(agent_pkgs_t *p, const char *name, const char *version)
{
	char sha[FLT_SHA256_HEX];
	bool staged = false;
	int namefd;

	if (!p || !flt_pkg_name_valid(name) || !flt_pkg_version_valid(version))
		return false;
	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, name, false, NULL);
	if (namefd >= 0) {
		staged = version_state(namefd, version, sha) == V_STAGED;
		close(namefd);
	}
	pthread_mutex_unlock(&p->lock);
	return staged;
}

/* readlink of <name>/current into ver: 0 ("" when absent) or -errno. */
static int read_current(int namefd, char *ver, size_t len)
{
	char buf[256];
	ssize_t n;

	n = readlinkat(namefd, CURRENT, buf, sizeof(buf));
	if (n < 0) {
		if (errno != ENOENT)
			return -errno;
		n = 0;
	}
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	buf[n] = '\0';
	if (n > 0 && !flt_pkg_version_valid(buf))
		return -EINVAL; /* not a link we made */
	if ((size_t)n >= len)
		return -ERANGE;
	memcpy(ver, buf, (size_t)n + 1);
	return 0;
}

int agent_pkgs_current(agent_pkgs_t *p, const char *name, char *ver, size_t len)
{
	int namefd, rc;

	if (!p || !ver || len == 0 || !flt_pkg_name_valid(name))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, name, false, NULL);
	if (namefd == -ENOENT) {
		ver[0] = '\0';
		rc = 0;
	} else if (namefd < 0) {
		rc = namefd;
	} else {
		rc = read_current(namefd, ver, len);
		close(namefd);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int switch_locked(int namefd, const char *dir, const char *name,
			 const char *version, flt_error_t *err)
{
	char sha[FLT_SHA256_HEX], b[208];
	int st;

	if (!*version) {
		if (unlinkat(namefd, CURRENT, 0) < 0 && errno != ENOENT)
			goto sys;
	} else {
		st = version_state(namefd, version, sha);
		if (st < 0) {
			errno = -st;
			goto sys;
		}
		if (st != V_STAGED)
			return flt_err(
				err, FLT_ENOTFOUND,
				"package %s: version %s is not staged", name,
				flt_shown(version, SHOWN_MAX, b, sizeof(b)));
		/* A fresh link renamed over the old one: current always
		 * names a complete version, the old or the new. */
		if (unlinkat(namefd, CURRENT_TMP, 0) < 0 && errno != ENOENT)
			goto sys;
		if (symlinkat(version, namefd, CURRENT_TMP) < 0)
			goto sys;
		if (renameat(namefd, CURRENT_TMP, namefd, CURRENT) < 0) {
			int e = errno;

			unlinkat(namefd, CURRENT_TMP, 0);
			errno = e;
			goto sys;
		}
	}
	if (fsync(namefd) < 0)
		goto sys;
	return 0;
sys:
	st = -errno;
	return flt_err(err, flt_write_errno(st, dir),
		       "package %s: switching to %s: %s (package store %s)",
		       name,
		       *version ? flt_shown(version, SHOWN_MAX, b, sizeof(b))
				: "no version",
		       flt_write_strerror(st, dir), dir);
}

int agent_pkgs_switch(agent_pkgs_t *p, const char *name, const char *version,
		      flt_error_t *err)
{
	char b[208];
	int namefd, rc;

	if (!p || !version)
		return flt_err(err, -EINVAL,
			       "package store: missing package version");
	if (!flt_pkg_name_valid(name))
		return flt_err(err, -EINVAL, "package name \"%s\": not valid",
			       flt_shown(name, SHOWN_MAX, b, sizeof(b)));
	if (*version && !flt_pkg_version_valid(version))
		return flt_err(err, -EINVAL,
			       "package %s: version \"%s\": not valid", name,
			       flt_shown(version, SHOWN_MAX, b, sizeof(b)));
	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, name, false, NULL);
	if (namefd == -ENOENT)
		rc = *version ? flt_err(err, FLT_ENOTFOUND,
					"package %s: version %s is not staged",
					name,
					flt_shown(version, SHOWN_MAX, b,
						  sizeof(b)))
			      : 0;
	else if (namefd < 0)
		rc = flt_err(err, namefd, "%s/%s: %s", p->dir, name,
			     strerror(-namefd));
	else
		rc = switch_locked(namefd, p->dir, name, version, err);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int agent_pkgs_resolve(agent_pkgs_t *p, const char *name, char *path,
		       size_t len, flt_error_t *err)
{
	char ver[256], sha[FLT_SHA256_HEX], b[208];
	int namefd, rc = 0;

	if (!p || !path || !flt_pkg_name_valid(name))
		return flt_err(err, -EINVAL, "package name \"%s\": not valid",
			       flt_shown(name, SHOWN_MAX, b, sizeof(b)));
	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, name, false, NULL);
	if (namefd == -ENOENT) {
		ver[0] = '\0';
	} else if (namefd < 0) {
		rc = flt_err(err, namefd, "%s/%s: %s", p->dir, name,
			     strerror(-namefd));
	} else if ((rc = read_current(namefd, ver, sizeof(ver))) < 0) {
		rc = flt_err(err, rc, "%s/%s/" CURRENT ": %s", p->dir, name,
			     rc == -EINVAL ? "not a link to a version"
					   : strerror(-rc));
	} else if (*ver && version_state(namefd, ver, sha) != V_STAGED) {
		rc = flt_err(err, FLT_ENOTFOUND,
			     "package %s: current version %s is not staged",
			     name, ver);
	}
	if (rc == 0 && !*ver)
		rc = flt_err(err, FLT_ENOTFOUND,
			     "package %s has no current version here", name);
	if (rc == 0 &&
	    (size_t)snprintf(path, len, "%s/%s/%s", p->dir, name, ver) >= len)
		rc = flt_err(err, -ENAMETOOLONG,
			     "package %s: path of version %s too long", name,
			     ver);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* ---- garbage collection ---------------------------------------------- */

struct staged_version {
	char name[NAME_MAX + 1];
	struct timespec staged_at;
};

/* Most recently staged first. */
static int by_recency(const void *a, const void *b)
{
	const struct staged_version *x = a, *y = b;

	if (x->staged_at.tv_sec != y->staged_at.tv_sec)
		return x->staged_at.tv_sec < y->staged_at.tv_sec ? 1 : -1;
	if (x->staged_at.tv_nsec != y->staged_at.tv_nsec)
		return x->staged_at.tv_nsec < y->staged_at.tv_nsec ? 1 : -1;
	return -strcmp(x->name, y->name);
}

/*
 * The directory is first renamed out of the name directory, so that a
 * crash halfway leaves a .gc- temporary (removed at open), never a version
 * with part of its files.
 */
static void remove_version(agent_pkgs_t *p, int namefd, const char *name,
			   const char *version)
{
	char tmp[TEMP_LEN], marker[MARKER_LEN];
	int rc;

	temp_name(tmp, ".gc-");
	if (renameat(namefd, version, p->dirfd, tmp) < 0) {
		flt_warn("package store: version not removed package=%s "
			 "version=%s error=\"%s\"",
			 name, version, strerror(errno));
		return;
	}
	marker_name(marker, version);
	unlinkat(namefd, marker, 0);
	fsync(namefd);
	if ((rc = flt_rm_rf_at(p->dirfd, tmp, 0)) < 0)
		flt_warn("package store: temporary not removed dir=%s name=%s "
			 "error=\"%s\"",
			 p->dir, tmp, strerror(-rc));
	flt_info("package version removed package=%s version=%s", name,
		 version);
}

void agent_pkgs_gc(agent_pkgs_t *p, const char *name, unsigned keep,
		   const char *also)
{
	struct staged_version *v = NULL;
	size_t n = 0, cap = 0, i;
	char current[256] = "";
	unsigned kept = 0;
	struct dirent *e;
	int namefd, fd;
	DIR *d;

	if (!p || !flt_pkg_name_valid(name))
		return;
	pthread_mutex_lock(&p->lock);
	namefd = open_name_dir(p, name, false, NULL);
	if (namefd < 0)
		goto out;
	if (read_current(namefd, current, sizeof(current)) < 0)
		goto out; /* unsure what is in use: remove nothing */
	if ((fd = dup_fd(namefd)) < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while ((e = readdir(d))) {
		char marker[MARKER_LEN];
		struct stat st;

		if (!flt_pkg_version_valid(e->d_name))
			continue;
		/* Only versions we staged: a directory and its record. */
		marker_name(marker, e->d_name);
		if (fstatat(namefd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) ||
		    fstatat(namefd, marker, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			v = flt_xrealloc(v, cap * sizeof(*v));
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", e->d_name);
		v[n].staged_at = st.st_mtim;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), by_recency);
	for (i = 0; i < n; i++) {
		if (!strcmp(v[i].name, current) ||
		    (also && !strcmp(v[i].name, also)))
			continue;
		if (kept < keep) {
			kept++;
			continue;
		}
		remove_version(p, namefd, name, v[i].name);
	}
out:
	free(v);
	if (namefd >= 0)
		close(namefd);
	pthread_mutex_unlock(&p->lock);
}
