/*
 * The host's inventory (see inventory.h): the dpkg status file, the walk
 * of the Java roots and of the managed packages, and the sorted, digested
 * result. The item list the probes add to is invlist.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sodium.h>

#include "flotilla/query.h"
#include "flotilla/util.h"

#include "inventory.h"

#define DEFAULT_MAX_FILES 100000
/* Directory levels below a root: each one holds a descriptor open. */
#define WALK_MAX_DEPTH 64
/* Walk paths are built in place; longer ones are listed as errors. */
#define WALK_PATH_MAX (AGENT_INV_PATH_MAX + NAME_MAX + 2)

/* ---- dpkg ------------------------------------------------------------- */

struct stanza {
	unsigned long line; /* where it starts */
	bool any; /* it has a field */
	bool bad;
	char *package, *status, *version, *arch;
};

static void stanza_clear(struct stanza *st)
{
	free(st->package);
	free(st->status);
	free(st->version);
	free(st->arch);
	memset(st, 0, sizeof(*st));
}

static bool status_installed(const char *status, char word[32])
{
	char want[32], flag[32];

	/* "want flag status": "install ok installed", "deinstall ok
	 * config-files", "hold ok half-configured"... */
	if (sscanf(status, "%31s %31s %31s", want, flag, word) != 3)
		return false;
	return strcmp(word, "not-installed") != 0 &&
	       strcmp(word, "config-files") != 0;
}

static void stanza_end(struct stanza *st, const char *path, agent_inv_list_t *l)
{
	Flotilla__InventoryItem it = FLOTILLA__INVENTORY_ITEM__INIT;
	char word[32] = "";

	if (!st->any)
		goto out;
	if (st->bad || !st->package || !st->package[0]) {
		agent_inv_error(l,
				"dpkg %s: line %lu: malformed entry%s%.64s "
				"skipped",
				path, st->line, st->package ? " " : "",
				st->package ? st->package : "");
		goto out;
	}
	if (!st->status) {
		agent_inv_error(l, "dpkg %s: line %lu: %.64s: no Status", path,
				st->line, st->package);
		goto out;
	}
	if (!status_installed(st->status, word)) {
		if (!word[0])
			agent_inv_error(l,
					"dpkg %s: line %lu: %.64s: Status "
					"'%.64s' is not 'want flag status'",
					path, st->line, st->package,
					st->status);
		goto out;
	}
	it.kind = FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_DPKG;
	it.name = st->package;
	it.version = st->version;
	it.arch = st->arch;
	agent_inv_add(l, &it);
out:
	stanza_clear(st);
}

static void set_field(char **dst, const char *v)
{
	free(*dst);
	*dst = flt_xstrdup(v);
}

/* One "Name: value" line of a stanza. */
static void stanza_field(struct stanza *st, char *line)
{
	char *colon = strchr(line, ':'), *v, *end;

	if (!colon || colon == line) {
		st->bad = true;
		return;
	}
	*colon = '\0';
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	/* Field names are case-insensitive (deb822(5)). */
	if (strcasecmp(line, "Package") == 0)
		set_field(&st->package, v);
	else if (strcasecmp(line, "Status") == 0)
		set_field(&st->status, v);
	else if (strcasecmp(line, "Version") == 0)
		set_field(&st->version, v);
	else if (strcasecmp(line, "Architecture") == 0)
		set_field(&st->arch, v);
}

int agent_dpkg_parse(const char *path, agent_inv_list_t *l, flt_error_t *err)
{
	struct stanza st = { 0 };
	cleanup_free char *line = NULL;
	unsigned long lineno = 0;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc = 0;

	if (!path || !l)
		return flt_err(err, -EINVAL, "dpkg: missing argument");
	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		agent_inv_error(l, "dpkg %s: %s", path, strerror(-rc));
		return flt_err(err, rc, "dpkg %s: %s", path, strerror(-rc));
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strspn(line, " \t") == (size_t)n) {
			stanza_end(&st, path, l);
			continue;
		}
		if (!st.any) {
			st.any = true;
			st.line = lineno;
			/* A continuation with nothing to continue. */
			if (line[0] == ' ' || line[0] == '\t')
				st.bad = true;
		}
		/* Continuation lines belong to multi-line fields
		 * (Description, Conffiles), none of which we keep. */
		if (line[0] != ' ' && line[0] != '\t')
			stanza_field(&st, line);
	}
	if (ferror(f)) {
		rc = -EIO;
		agent_inv_error(l, "dpkg %s: read error after line %lu", path,
				lineno);
		flt_err(err, rc, "dpkg %s: read error after line %lu", path,
			lineno);
	}
	stanza_end(&st, path, l);
	fclose(f);
	return rc;
}

/* ---- walking the Java roots ------------------------------------------- */

struct walk {
	agent_inv_list_t *l;
	size_t max_files, n_files;
	bool full;
	/* packages_dir, not walked: its current links are probed apart. */
	bool skip_set;
	dev_t skip_dev;
	ino_t skip_ino;
	char path[WALK_PATH_MAX];
};

/* Kernel file systems: nothing to find, and reading some has effects. */
static bool pseudo_fs(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case DEVPTS_SUPER_MAGIC:
	case BPF_FS_MAGIC: return true;
	default: return false;
	}
}

/* Counts one more archive to probe, unless max_files are done. */
static bool take_file(struct walk *w)
{
	if (w->n_files < w->max_files) {
		w->n_files++;
		return true;
	}
	if (!w->full)
		agent_inv_error(w->l,
				"java: stopped after %zu archives "
				"(max_files)",
				w->max_files);
	w->full = true;
	return false;
}

static void probe_at(struct walk *w, int dfd, const char *name)
{
	cleanup_close int fd = -1;
	struct stat st;

	/* O_NOFOLLOW: a link planted among the archives is not followed;
	 * O_NONBLOCK: a FIFO named *.jar does not hang the scan. */
	fd = openat(dfd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (errno != ENOENT && errno != ELOOP)
			agent_inv_error(w->l, "java %s: %s", w->path,
					strerror(errno));
		return;
	}
	if (S_ISREG(st.st_mode) && take_file(w))
		agent_java_probe_fd(fd, w->path, w->l, NULL);
}

static void walk_dir(struct walk *w, int dfd, size_t plen, dev_t dev,
		     unsigned depth);

/* Enters the directory name of dfd, named w->path[0..plen), unless it is
 * a link, the package directory or a kernel file system. */
static void walk_sub(struct walk *w, int dfd, const char *name, size_t plen,
		     dev_t parent_dev, unsigned depth)
{
	struct stat st;
	int sub;

	sub = openat(dfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0) {
		if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
			agent_inv_error(w->l, "java %s: %s", w->path,
					strerror(errno));
		return;
	}
	if (fstat(sub, &st) < 0 ||
	    (w->skip_set && st.st_dev == w->skip_dev &&
	     st.st_ino == w->skip_ino) ||
	    (st.st_dev != parent_dev && pseudo_fs(sub))) {
		close(sub);
		return;
	}
	walk_dir(w, sub, plen, st.st_dev, depth);
}

/* Walks the directory open as dfd (taken), whose path is w->path[0..plen). */
static void walk_dir(struct walk *w, int dfd, size_t plen, dev_t dev,
		     unsigned depth)
{
	struct dirent *de;
	DIR *d = fdopendir(dfd);

	if (!d) {
		agent_inv_error(w->l, "java %s: %s", w->path, strerror(errno));
		close(dfd);
		return;
	}
	while (!w->full && (errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		size_t nlen = strlen(name);
		unsigned char type = de->d_type;
		struct stat st;
		size_t sep;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (type == DT_UNKNOWN) {
			if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) <
			    0)
				continue;
			type = S_ISDIR(st.st_mode)   ? DT_DIR
			       : S_ISREG(st.st_mode) ? DT_REG
						     : DT_UNKNOWN;
		}
		if (type != DT_DIR &&
		    (type != DT_REG || !agent_java_archive_name(name)))
			continue;
		/* "/" as a root has its separator already. */
		sep = plen == 0 || w->path[plen - 1] != '/';
		if (plen + sep + nlen >= sizeof(w->path)) {
			agent_inv_error(w->l, "java %.64s...: path too long",
					w->path);
			continue;
		}
		if (sep)
			w->path[plen] = '/';
		memcpy(w->path + plen + sep, name, nlen + 1);
		if (type == DT_REG)
			probe_at(w, dirfd(d), name);
		else if (depth >= WALK_MAX_DEPTH)
			agent_inv_error(w->l,
					"java %s: deeper than %d levels, "
					"not walked",
					w->path, WALK_MAX_DEPTH);
		else
			walk_sub(w, dirfd(d), name, plen + sep + nlen, dev,
				 depth + 1);
		w->path[plen] = '\0';
	}
	if (errno != 0 && !w->full)
		agent_inv_error(w->l, "java %s: %s", w->path, strerror(errno));
	closedir(d);
}

/*
 * A root (or a managed package's current directory): followed when it is
 * a link itself, walked when a directory, probed when an archive. The
 * paths reported start with display.
 */
static void walk_root(struct walk *w, const char *root, const char *display)
{
	size_t len = strlen(display);
	struct stat st;
	int fd;

	while (len > 1 && display[len - 1] == '/')
		len--;
	if (len >= AGENT_INV_PATH_MAX) {
		agent_inv_error(w->l, "java %.64s...: path too long", display);
		return;
	}
	memcpy(w->path, display, len);
	w->path[len] = '\0';
	fd = open(root, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			agent_inv_error(w->l, "java %s: %s", w->path,
					strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0 || pseudo_fs(fd) ||
	    (w->skip_set && st.st_dev == w->skip_dev &&
	     st.st_ino == w->skip_ino)) {
		close(fd);
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		walk_dir(w, fd, len, st.st_dev, 0);
		return;
	}
	if (S_ISREG(st.st_mode) && agent_java_archive_name(root) &&
	    take_file(w))
		agent_java_probe_fd(fd, w->path, w->l, NULL);
	close(fd);
}

/* ---- managed packages ------------------------------------------------- */

static void scan_managed(struct walk *w, const char *dir)
{
	cleanup_free char *display = NULL;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d) {
		if (errno != ENOENT)
			agent_inv_error(w->l, "packages %s: %s", dir,
					strerror(errno));
		return;
	}
	while ((errno = 0, de = readdir(d))) {
		Flotilla__InventoryItem it = FLOTILLA__INVENTORY_ITEM__INIT;
		char target[PATH_MAX];
		const char *version;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		free(display);
		if (asprintf(&display, "%s/%s/current", dir, de->d_name) < 0) {
			display = NULL;
			continue;
		}
		/* Only what a current link names is in use; a package
		 * staged but never switched to is not. */
		n = readlink(display, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		while (n > 1 && target[n - 1] == '/')
			target[--n] = '\0';
		version = strrchr(target, '/');
		version = version ? version + 1 : target;

		it.kind = FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_MANAGED;
		it.name = de->d_name;
		it.version = (char *)version;
		it.path = display;
		agent_inv_add(w->l, &it);
		walk_root(w, display, display);
	}
	if (errno != 0)
		agent_inv_error(w->l, "packages %s: %s", dir, strerror(errno));
	closedir(d);
}

/* ---- the result ------------------------------------------------------- */

static int item_cmp(const void *a, const void *b)
{
	const Flotilla__InventoryItem *x = *(Flotilla__InventoryItem *const *)a;
	const Flotilla__InventoryItem *y = *(Flotilla__InventoryItem *const *)b;
	int c;

	/* The coordinator's order (name, kind, path, version) first. */
	if ((c = flt_query_item_cmp(a, b)))
		return c;
	/* The rest makes the order total: the digest must not depend on
	 * the order in which equal-looking items were found. */
	if ((c = strcmp(x->group, y->group)))
		return c;
	if ((c = strcmp(x->source, y->source)))
		return c;
	if ((c = strcmp(x->arch, y->arch)))
		return c;
	return (int)x->jndi_lookup - (int)y->jndi_lookup;
}

static void hash_str(crypto_hash_sha256_state *h, const char *s)
{
	/* With the NUL: no string holds one, so none runs into the next. */
	crypto_hash_sha256_update(h, (const unsigned char *)s, strlen(s) + 1);
}

/*
 * "flotilla-inventory-1\n", then per item: kind, name, version, group,
 * path, source, jndi_lookup ("0"/"1") and arch, each followed by a NUL,
 * and a newline. Changing this changes every digest: bump the tag.
 */
static void inventory_digest(Flotilla__InventoryItem **items, size_t n,
			     char hex[2 * crypto_hash_sha256_BYTES + 1])
{
	static const char tag[] = "flotilla-inventory-1\n";
	unsigned char sum[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state h;

	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)tag,
				  sizeof(tag) - 1);
	for (size_t i = 0; i < n; i++) {
		const Flotilla__InventoryItem *it = items[i];
		char kind[16];

		snprintf(kind, sizeof(kind), "%d", (int)it->kind);
		hash_str(&h, kind);
		hash_str(&h, it->name);
		hash_str(&h, it->version);
		hash_str(&h, it->group);
		hash_str(&h, it->path);
		hash_str(&h, it->source);
		hash_str(&h, it->jndi_lookup ? "1" : "0");
		hash_str(&h, it->arch);
		crypto_hash_sha256_update(&h, (const unsigned char *)"\n", 1);
	}
	crypto_hash_sha256_final(&h, sum);
	sodium_bin2hex(hex, 2 * crypto_hash_sha256_BYTES + 1, sum, sizeof(sum));
}

Flotilla__Inventory *agent_inv_finish(agent_inv_list_t *l)
{
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	Flotilla__Inventory *inv = flt_xmalloc(sizeof(*inv));
	size_t n = 0;

	flotilla__inventory__init(inv);
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), item_cmp);
	/* The same archive reached twice (overlapping roots) is one item. */
	for (size_t i = 0; i < l->n; i++) {
		if (n > 0 && item_cmp(&l->items[n - 1], &l->items[i]) == 0)
			flotilla__inventory_item__free_unpacked(l->items[i],
								NULL);
		else
			l->items[n++] = l->items[i];
	}
	if (l->errors_dropped > 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "%zu more errors not listed",
			 l->errors_dropped + 1);
		free(l->errors[AGENT_INV_MAX_ERRORS - 1]);
		l->errors[AGENT_INV_MAX_ERRORS - 1] = flt_xstrdup(msg);
	}
	inventory_digest(l->items, n, hex);
	inv->n_items = n;
	inv->items = n ? l->items : NULL;
	if (!n)
		free(l->items);
	inv->n_errors = l->n_errors;
	inv->errors = l->errors;
	inv->digest = flt_xstrdup(hex);
	inv->scanned_at_ms = flt_now_wall_ms();
	memset(l, 0, sizeof(*l));
	return inv;
}

/* ---- the scan --------------------------------------------------------- */

int agent_inventory_scan(const agent_inv_opts_t *o, Flotilla__Inventory **out,
			 flt_error_t *err)
{
	agent_inv_list_t l = { 0 };
	struct walk *w;
	struct stat st;

	if (!o || !out)
		return flt_err(err, -EINVAL, "inventory: missing options");
	w = flt_xcalloc(1, sizeof(*w));
	w->l = &l;
	w->max_files = o->max_files ? o->max_files : DEFAULT_MAX_FILES;
	if (o->packages_dir && *o->packages_dir &&
	    stat(o->packages_dir, &st) == 0) {
		w->skip_set = true;
		w->skip_dev = st.st_dev;
		w->skip_ino = st.st_ino;
	}

	if (o->dpkg_status && *o->dpkg_status)
		agent_dpkg_parse(o->dpkg_status, &l, NULL);
	for (size_t i = 0; i < o->n_java_roots && !w->full; i++)
		if (o->java_roots[i] && *o->java_roots[i])
			walk_root(w, o->java_roots[i], o->java_roots[i]);
	if (o->packages_dir && *o->packages_dir)
		scan_managed(w, o->packages_dir);
	free(w);

	*out = agent_inv_finish(&l);
	return 0;
}
