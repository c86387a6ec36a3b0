/*
 * Unit tests for agent/pkgstore.c: real archives (tar, tar.gz, zip) made
 * with libarchive's writer, cut into chunks and served from memory; good
 * ones are staged and switched, hostile ones refused without a trace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>

#include "testutil.h"

#include "flotilla/error.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"
#include "pkgstore.h"

#define CHUNK 1000

/* ---- archives --------------------------------------------------------- */

enum kind { F, D, L, H, CHR, FIFO };

struct ent {
	enum kind kind;
	const char *path;
	unsigned mode;
	const char *data; /* F: contents (NULL: the big blob); L, H: target */
};

enum fmt { TAR, TGZ, ZIP };

/* Incompressible bytes, so that even the tar.gz spans several chunks. */
static uint8_t blob[5000];

static void fill_blob(void)
{
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(blob); i++) {
		x = x * 1103515245 + 12345;
		blob[i] = (uint8_t)(x >> 16);
	}
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void add_entry(struct archive *a, const struct ent *x)
{
	struct archive_entry *e = archive_entry_new();
	const void *data = NULL;
	size_t len = 0;

	archive_entry_set_pathname(e, x->path);
	archive_entry_set_perm(e, x->mode ? x->mode : 0644);
	archive_entry_set_mtime(e, 1700000000, 0);
	switch (x->kind) {
	case F:
		data = x->data ? (const void *)x->data : blob;
		len = x->data ? strlen(x->data) : sizeof(blob);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)len);
		break;
	case D:
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, x->mode ? x->mode : 0755);
		break;
	case L:
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, x->data);
		archive_entry_set_perm(e, 0777);
		break;
	case H:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, x->data);
		archive_entry_set_size(e, 0);
		break;
	case CHR:
		archive_entry_set_filetype(e, AE_IFCHR);
		archive_entry_set_rdev(e, makedev(1, 3));
		break;
	case FIFO: archive_entry_set_filetype(e, AE_IFIFO); break;
	}
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (len)
		assert_int_equal(archive_write_data(a, data, len),
				 (la_ssize_t)len);
	archive_entry_free(e);
}

static struct archive *writer(enum fmt f, const char *file)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	if (f == ZIP) {
		assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	} else {
		assert_int_equal(archive_write_set_format_pax_restricted(a),
				 ARCHIVE_OK);
		if (f == TGZ)
			assert_int_equal(archive_write_add_filter_gzip(a),
					 ARCHIVE_OK);
	}
	assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
	return a;
}

/* Closes the archive and returns its bytes; the file is removed. */
static uint8_t *finish(struct archive *a, const char *file, size_t *len)
{
	uint8_t *c;

	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	c = slurp(file, len);
	unlink(file);
	return c;
}

/* Writes the entries as an archive in dir and returns its bytes. */
static uint8_t *build(const char *dir, enum fmt f, const struct ent *e,
		      size_t n, size_t *len)
{
	char file[PATH_MAX];
	struct archive *a;

	snprintf(file, sizeof(file), "%s/build.%s", dir,
		 f == ZIP   ? "zip"
		 : f == TGZ ? "tar.gz"
			    : "tar");
	a = writer(f, file);
	for (size_t i = 0; i < n; i++)
		add_entry(a, &e[i]);
	return finish(a, file, len);
}

/* ---- packages served from memory -------------------------------------- */

struct pkg {
	Flotilla__PackageManifest *m;
	uint8_t *content;
	size_t len;
	long corrupt; /* this chunk is served with a byte flipped; -1 none */
	unsigned fetches;
	int fail; /* every fetch fails with this, when set */
};

/*
 * Takes content, cut in chunks of cs bytes. The manifest is all malloc'd,
 * freed by pkg_free.
 */
static struct pkg *pkg_new_cs(const char *name, const char *version,
			      uint8_t *content, size_t len, const char *format,
			      const char *file_name, size_t cs)
{
	struct pkg *p = calloc(1, sizeof(*p));
	char hex[FLT_SHA256_HEX];
	size_t i, n = (len + cs - 1) / cs;

	assert_non_null(p);
	p->m = malloc(sizeof(*p->m));
	assert_non_null(p->m);
	flotilla__package_manifest__init(p->m);
	p->m->name = strdup(name);
	p->m->version = strdup(version);
	flt_sha256_hex(content, len, hex);
	p->m->sha256 = strdup(hex);
	p->m->size = len;
	p->m->chunk_size = (uint32_t)cs;
	p->m->n_chunks = n;
	p->m->chunks = calloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		size_t off = i * cs;

		flt_sha256_hex(content + off, len - off < cs ? len - off : cs,
			       hex);
		p->m->chunks[i] = strdup(hex);
	}
	p->m->format = strdup(format);
	p->m->file_name = strdup(file_name ? file_name : "");
	p->content = content;
	p->len = len;
	p->corrupt = -1;
	assert_int_equal(flt_pkg_manifest_check(p->m, NULL), 0);
	return p;
}

static struct pkg *pkg_new(const char *name, const char *version,
			   uint8_t *content, size_t len, const char *format,
			   const char *file_name)
{
	return pkg_new_cs(name, version, content, len, format, file_name,
			  CHUNK);
}

static void pkg_free(struct pkg *p)
{
	protobuf_c_message_free_unpacked(&p->m->base, NULL);
	free(p->content);
	free(p);
}

static void set_str(char **field, const char *s)
{
	free(*field);
	*field = strdup(s);
}

static int fetch(void *arg, const char *sha, uint8_t **data, size_t *len,
		 flt_error_t *err)
{
	struct pkg *p = arg;
	size_t i, off, n, cs = p->m->chunk_size;

	p->fetches++;
	if (p->fail)
		return flt_err(err, p->fail, "coordinator unreachable");
	for (i = 0; i < p->m->n_chunks; i++)
		if (!strcmp(p->m->chunks[i], sha))
			break;
	if (i == p->m->n_chunks)
		return flt_err(err, FLT_ENOTFOUND, "no chunk %s", sha);
	off = i * cs;
	n = p->len - off < cs ? p->len - off : cs;
	*data = malloc(n ? n : 1);
	assert_non_null(*data);
	memcpy(*data, p->content + off, n);
	if ((long)i == p->corrupt)
		(*data)[n / 2] ^= 0x20;
	*len = n;
	return 0;
}

static int stage(agent_pkgs_t *s, struct pkg *p, flt_error_t *err)
{
	return agent_pkgs_stage(s, p->m, fetch, p, err);
}

/* ---- the file system -------------------------------------------------- */

struct env {
	char root[PATH_MAX]; /* the test's own directory */
	char store[PATH_MAX]; /* root/pkgs */
	char escape[PATH_MAX]; /* a name just outside root's parent */
	bool tmp_x; /* /tmp/x was there before the test */
};

static int env_setup(void **state)
{
	struct env *v = calloc(1, sizeof(*v));
	char *real;

	if (!v || !mkdtemp(strcpy(v->root, "/tmp/flt-unit-XXXXXX")))
		return -1;
	real = realpath(v->root, NULL);
	if (!real)
		return -1;
	snprintf(v->root, sizeof(v->root), "%s", real);
	free(real);
	snprintf(v->store, sizeof(v->store), "%s/pkgs", v->root);
	/* Where "lib -> ../../.." then "lib/<name>" would land. */
	snprintf(v->escape, sizeof(v->escape), "/tmp/flt-escape-%ld",
		 (long)getpid());
	v->tmp_x = access("/tmp/x", F_OK) == 0;
	*state = v;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *v = *state;
	umount2(v->store, MNT_DETACH); /* test_disk_full's, if it failed */
	int rc = flt_rm_rf(v->root, 0);

	unlink(v->escape);
	free(v);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir/sub, sorted, joined by ',' (static buffer). */
static const char *list(const char *dir, const char *sub)
{
	static char out[4096];
	char path[PATH_MAX], *names[256];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", dir, sub ? "/" : "",
		 sub ? sub : "");
	d = opendir(path);
	if (!d)
		return "(none)";
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			assert_true(n < 256);
			names[n++] = strdup(e->d_name);
		}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, ",");
		strcat(out, names[i]);
		free(names[i]);
	}
	return out;
}

static unsigned mode_of(const char *dir, const char *sub)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static agent_pkgs_t *open_store_as(const struct env *v, const uint8_t *key,
				   bool allow_unsigned)
{
	flt_error_t err = { 0 };
	agent_pkgs_t *s = NULL;

	if (agent_pkgs_open(v->store, key, allow_unsigned, &s, &err) < 0)
		fail_msg("open: %s", err.msg);
	return s;
}

/* With a key: only what it signed. Without: anything (as --dev). */
static agent_pkgs_t *open_store(const struct env *v, const uint8_t *key)
{
	return open_store_as(v, key, key == NULL);
}

static void stage_ok(agent_pkgs_t *s, struct pkg *p)
{
	flt_error_t err = { 0 };

	if (stage(s, p, &err) < 0)
		fail_msg("stage %s %s: %s", p->m->name, p->m->version, err.msg);
}

static void switch_ok(agent_pkgs_t *s, const char *name, const char *ver)
{
	flt_error_t err = { 0 };

	if (agent_pkgs_switch(s, name, ver, &err) < 0)
		fail_msg("switch %s %s: %s", name, ver, err.msg);
}

static void assert_current(agent_pkgs_t *s, const char *name, const char *want)
{
	char ver[256];

	assert_int_equal(agent_pkgs_current(s, name, ver, sizeof(ver)), 0);
	assert_string_equal(ver, want);
}

/* ---- good packages ---------------------------------------------------- */

static const struct ent good[] = {
	{ D, "./", 0700, NULL },
	{ D, "bin", 0700, NULL },
	{ F, "bin/run", 0750, "#!/bin/sh\necho hello\n" },
	{ F, "etc/app.conf", 0600, "port=8080\n" }, /* etc/ not listed */
	{ F, "share/data/big.dat", 0644, NULL },
	{ L, "lib", 0, "bin" },
	{ L, "bin/conf", 0, "../etc/app.conf" },
	{ L, "share/data/self", 0, "./big.dat" },
	{ D, "etc", 0755, NULL }, /* listed after its contents */
	{ H, "bin/run2", 0, "bin/run" },
};

static struct pkg *good_pkg(const struct env *v, const char *version,
			    enum fmt f)
{
	size_t len, n = FLT_ARRAY_SIZE(good);
	uint8_t *c;

	/* zip has no hard links. */
	c = build(v->root, f, good, f == ZIP ? n - 1 : n, &len);
	return pkg_new("app", version, c, len, "archive", NULL);
}

static void check_tree(const struct env *v, const char *version, bool zip)
{
	char dir[PATH_MAX], link[PATH_MAX], target[64];
	uint8_t *data;
	struct stat st;
	ssize_t n;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/app/%s", v->store, version);
	assert_int_equal(mode_of(dir, "."), 0755);
	assert_int_equal(mode_of(dir, "bin"), 0755);
	assert_int_equal(mode_of(dir, "bin/run"), 0755);
	assert_int_equal(mode_of(dir, "etc"), 0755);
	assert_int_equal(mode_of(dir, "etc/app.conf"), 0644);
	assert_int_equal(mode_of(dir, "share"), 0755);
	assert_int_equal(mode_of(dir, "share/data/big.dat"), 0644);
	snprintf(link, sizeof(link), "%s/share/data/big.dat", dir);
	data = slurp(link, &len);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(data, blob, sizeof(blob));
	free(data);
	snprintf(link, sizeof(link), "%s/bin/conf", dir);
	n = readlink(link, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "../etc/app.conf");
	assert_int_equal(lstat(dir, &st), 0);
	if (zip) {
		assert_string_equal(list(dir, NULL), "bin,etc,lib,share");
		assert_string_equal(list(dir, "bin"), "conf,run");
		return;
	}
	assert_string_equal(list(dir, NULL), "bin,etc,lib,share");
	assert_string_equal(list(dir, "bin"), "conf,run,run2");
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/bin/run2", dir);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_nlink, 2);
	}
}

static void test_stage_switch_resolve(void **state)
{
	struct env *v = *state;
	agent_pkgs_t *s = open_store(v, NULL);
	struct pkg *p1 = good_pkg(v, "1.0", TAR);
	struct pkg *p2 = good_pkg(v, "2.0", TGZ);
	struct pkg *p3 = good_pkg(v, "3.0", ZIP);
	flt_error_t err = { 0 };
	char path[PATH_MAX], want[PATH_MAX];

	assert_string_equal(agent_pkgs_dir(s), v->store);
	assert_true(p1->m->n_chunks > 3);
	assert_true(p2->m->n_chunks > 3);
	assert_true(p3->m->n_chunks > 3);
	assert_false(agent_pkgs_staged(s, "app", "1.0"));
	assert_current(s, "app", "");
	assert_int_equal(agent_pkgs_resolve(s, "app", path, sizeof(path), &err),
			 FLT_ENOTFOUND);
	assert_msg(&err, "no current version");

	stage_ok(s, p1);
	assert_int_equal(p1->fetches, p1->m->n_chunks);
	assert_true(agent_pkgs_staged(s, "app", "1.0"));
	check_tree(v, "1.0", false);
	/* Staged, but not in use until switched. */
	assert_current(s, "app", "");
	assert_string_equal(list(v->store, NULL), ".lock,app");
	assert_string_equal(list(v->store, "app"), ".1.0.sha256,1.0");

	stage_ok(s, p2);
	check_tree(v, "2.0", false);
	stage_ok(s, p3);
	check_tree(v, "3.0", true);
	assert_string_equal(list(v->store, NULL), ".lock,app");

	switch_ok(s, "app", "1.0");
	assert_current(s, "app", "1.0");
	assert_int_equal(agent_pkgs_resolve(s, "app", path, sizeof(path), &err),
			 0);
	snprintf(want, sizeof(want), "%s/app/1.0", v->store);
	assert_string_equal(path, want);
	/* The link is relative: the store may be moved whole. */
	{
		char link[PATH_MAX], target[64];
		ssize_t n;

		snprintf(link, sizeof(link), "%s/app/current", v->store);
		n = readlink(link, target, sizeof(target) - 1);
		assert_int_equal(n, 3);
		target[n] = '\0';
		assert_string_equal(target, "1.0");
		snprintf(link, sizeof(link), "%s/app/current/bin/run",
			 v->store);
		assert_int_equal(access(link, X_OK), 0);
	}

	switch_ok(s, "app", "2.0");
	assert_current(s, "app", "2.0");
	assert_int_equal(agent_pkgs_resolve(s, "app", path, sizeof(path), NULL),
			 0);
	snprintf(want, sizeof(want), "%s/app/2.0", v->store);
	assert_string_equal(path, want);
	switch_ok(s, "app", "1.0");
	assert_current(s, "app", "1.0");
	switch_ok(s, "app", "1.0");
	assert_current(s, "app", "1.0");
	assert_string_equal(list(v->store, "app"),
			    ".1.0.sha256,.2.0.sha256,.3.0.sha256,1.0,2.0,3.0,"
			    "current");

	/* Not staged: refused, current unchanged. */
	assert_int_equal(agent_pkgs_switch(s, "app", "9.9", &err),
			 FLT_ENOTFOUND);
	assert_msg(&err, "version 9.9 is not staged");
	assert_int_equal(agent_pkgs_switch(s, "other", "1.0", &err),
			 FLT_ENOTFOUND);
	assert_int_equal(agent_pkgs_switch(s, "app", "../1.0", &err), -EINVAL);
	assert_int_equal(agent_pkgs_switch(s, "../app", "1.0", &err), -EINVAL);
	assert_current(s, "app", "1.0");

	/* "" takes the link away. */
	switch_ok(s, "app", "");
	assert_current(s, "app", "");
	assert_int_equal(agent_pkgs_resolve(s, "app", path, sizeof(path), &err),
			 FLT_ENOTFOUND);
	switch_ok(s, "app", "");
	switch_ok(s, "app", "3.0");
	assert_current(s, "app", "3.0");
	assert_int_equal(agent_pkgs_resolve(s, "app", path, 10, &err),
			 -ENAMETOOLONG);

	/* Reopened, everything is still there. */
	agent_pkgs_close(s);
	s = open_store(v, NULL);
	assert_current(s, "app", "3.0");
	assert_true(agent_pkgs_staged(s, "app", "1.0"));
	assert_true(agent_pkgs_staged(s, "app", "2.0"));
	agent_pkgs_close(s);
	pkg_free(p1);
	pkg_free(p2);
	pkg_free(p3);
}

static void test_restage(void **state)
{
	struct env *v = *state;
	agent_pkgs_t *s = open_store(v, NULL);
	struct pkg *p = good_pkg(v, "1.0", TAR);
	struct pkg *q = good_pkg(v, "1.0", TGZ);
	flt_error_t err = { 0 };
	struct stat before, after;
	char dir[PATH_MAX];

	stage_ok(s, p);
	switch_ok(s, "app", "1.0");
	snprintf(dir, sizeof(dir), "%s/app/1.0", v->store);
	assert_int_equal(stat(dir, &before), 0);

	/* Same digest: kept as it is, nothing fetched. */
	p->fetches = 0;
	stage_ok(s, p);
	assert_int_equal(p->fetches, 0);
	assert_int_equal(stat(dir, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);

	/* Same version, other content: refused. */
	assert_int_equal(stage(s, q, &err), FLT_ECONFLICT);
	assert_msg(&err, "package app 1.0: version 1.0 is staged with another "
			 "digest");
	assert_int_equal(q->fetches, 0);
	assert_int_equal(stat(dir, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_current(s, "app", "1.0");

	/* Something that is not a version under a version's name. */
	{
		char other[PATH_MAX];

		snprintf(other, sizeof(other), "%s/app/4.0", v->store);
		assert_int_equal(mkdir(other, 0755), 0);
		set_str(&q->m->version, "4.0");
		assert_int_equal(stage(s, q, &err), FLT_ECONFLICT);
		assert_msg(&err, "is not a staged version");
		assert_false(agent_pkgs_staged(s, "app", "4.0"));
		assert_int_equal(agent_pkgs_switch(s, "app", "4.0", &err),
				 FLT_ENOTFOUND);
	}
	assert_string_equal(list(v->store, NULL), ".lock,app");
	agent_pkgs_close(s);
	pkg_free(p);
	pkg_free(q);
}

static void test_file_format(void **state)
{
	struct env *v = *state;
	agent_pkgs_t *s = open_store(v, NULL);
	uint8_t *c = malloc(sizeof(blob));
	flt_error_t err = { 0 };
	char dir[PATH_MAX];
	struct pkg *p, *e;
	uint8_t *data;
	size_t len;

	memcpy(c, blob, sizeof(blob));
	p = pkg_new("tool", "0.1", c, sizeof(blob), "file", "tool.bin");
	stage_ok(s, p);
	switch_ok(s, "tool", "0.1");
	snprintf(dir, sizeof(dir), "%s/tool/0.1", v->store);
	assert_string_equal(list(dir, NULL), "tool.bin");
	assert_int_equal(mode_of(dir, "tool.bin"), 0644);
	assert_int_equal(mode_of(dir, "."), 0755);
	snprintf(dir, sizeof(dir), "%s/tool/0.1/tool.bin", v->store);
	data = slurp(dir, &len);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(data, blob, len);
	free(data);

	/* An empty file is a file too. */
	e = pkg_new("empty", "1", malloc(1), 0, "file", "nothing");
	assert_int_equal(e->m->n_chunks, 0);
	assert_int_equal(stage(s, e, &err), 0);
	snprintf(dir, sizeof(dir), "%s/empty/1", v->store);
	assert_string_equal(list(dir, NULL), "nothing");
	/* But not an empty archive. */
	set_str(&e->m->version, "2");
	set_str(&e->m->format, "archive");
	assert_int_equal(stage(s, e, &err), FLT_EPROTO);
	assert_msg(&err, "package empty 2: archive: ");
	assert_string_equal(list(v->store, NULL), ".lock,empty,tool");
	assert_string_equal(list(v->store, "empty"), ".1.sha256,1");
	agent_pkgs_close(s);
	pkg_free(p);
	pkg_free(e);
}

static void test_gc(void **state)
{
	struct env *v = *state;
	agent_pkgs_t *s = open_store(v, NULL);
	const char *vers[] = { "1.0", "2.0", "3.0", "4.0", "5.0" };
	struct pkg *p[5];

	for (size_t i = 0; i < 5; i++) {
		p[i] = good_pkg(v, vers[i], TAR);
		stage_ok(s, p[i]);
		usleep(20000); /* distinct staging times on coarse clocks */
	}
	switch_ok(s, "app", "2.0");
	/* Current, plus the two most recently staged others. */
	agent_pkgs_gc(s, "app", 2, NULL);
	assert_string_equal(list(v->store, "app"),
			    ".2.0.sha256,.4.0.sha256,.5.0.sha256,2.0,4.0,5.0,"
			    "current");
	/* The version a rollback would need is kept beyond the count. */
	agent_pkgs_gc(s, "app", 1, "4.0");
	assert_string_equal(list(v->store, "app"),
			    ".2.0.sha256,.4.0.sha256,.5.0.sha256,2.0,4.0,5.0,"
			    "current");
	agent_pkgs_gc(s, "app", 0, "4.0");
	assert_string_equal(list(v->store, "app"),
			    ".2.0.sha256,.4.0.sha256,2.0,4.0,current");
	agent_pkgs_gc(s, "app", 0, NULL);
	assert_string_equal(list(v->store, "app"), ".2.0.sha256,2.0,current");
	assert_current(s, "app", "2.0");
	assert_string_equal(list(v->store, NULL), ".lock,app");
	/* Without a current version, keep counts alone. */
	stage_ok(s, p[0]);
	switch_ok(s, "app", "");
	agent_pkgs_gc(s, "app", 1, NULL);
	assert_string_equal(list(v->store, "app"), ".1.0.sha256,1.0");
	agent_pkgs_gc(s, "nothing", 1, NULL);
	agent_pkgs_close(s);
	for (size_t i = 0; i < 5; i++)
		pkg_free(p[i]);
}

static void test_stale_temporaries(void **state)
{
	struct env *v = *state;
	agent_pkgs_t *s = open_store(v, NULL);
	struct pkg *p = good_pkg(v, "1.0", TAR);
	char path[PATH_MAX];

	stage_ok(s, p);
	switch_ok(s, "app", "1.0");
	agent_pkgs_close(s);

	/* What a crash in the middle of each step would leave. */
	snprintf(path, sizeof(path), "%s/.unpack-0123456789abcdef", v->store);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.unpack-0123456789abcdef/d", v->store);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.unpack-0123456789abcdef/d/up",
		 v->store);
	assert_int_equal(symlink("/", path), 0);
	snprintf(path, sizeof(path), "%s/.fetch-0123456789abcdef", v->store);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/.gc-0123456789abcdef", v->store);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/app/.current.tmp", v->store);
	assert_int_equal(symlink("1.0", path), 0);
	snprintf(path, sizeof(path), "%s/app/..marker-0123456789abcdef",
		 v->store);
	write_file(path, "x", 1);

	s = open_store(v, NULL);
	assert_string_equal(list(v->store, NULL), ".lock,app");
	assert_string_equal(list(v->store, "app"), ".1.0.sha256,1.0,current");
	assert_true(exists("/", "etc"));
	assert_current(s, "app", "1.0");
	assert_true(agent_pkgs_staged(s, "app", "1.0"));

	/* While a store is open, what looks stale may be its staging in
	 * progress: another open leaves it alone. */
	snprintf(path, sizeof(path), "%s/.fetch-fedcba9876543210", v->store);
	write_file(path, "x", 1);
	{
		agent_pkgs_t *other = open_store(v, NULL);

		assert_true(exists(v->store, ".fetch-fedcba9876543210"));
		assert_current(other, "app", "1.0");
		agent_pkgs_close(other);
	}
	agent_pkgs_close(s);
	s = open_store(v, NULL);
	assert_false(exists(v->store, ".fetch-fedcba9876543210"));
	agent_pkgs_close(s);
	pkg_free(p);
}

/* ---- hostile packages ------------------------------------------------- */

/*
 * A store with app 1.0 staged and current, and whatever is being refused
 * then checked to have left nothing: no new version, no temporary, the
 * link unchanged, nothing outside.
 */
struct hostile {
	struct env *v;
	agent_pkgs_t *s;
	struct pkg *base;
};

static void hostile_begin(struct hostile *h, struct env *v, const uint8_t *key,
			  const uint8_t *sk)
{
	h->v = v;
	h->s = open_store(v, key);
	h->base = good_pkg(v, "1.0", TAR);
	if (sk)
		assert_int_equal(flt_pkg_sign(h->base->m, sk, NULL), 0);
	stage_ok(h->s, h->base);
	switch_ok(h->s, "app", "1.0");
}

static void assert_untouched(struct hostile *h)
{
	const struct env *v = h->v;

	assert_current(h->s, "app", "1.0");
	assert_string_equal(list(v->store, NULL), ".lock,app");
	assert_string_equal(list(v->store, "app"), ".1.0.sha256,1.0,current");
	assert_false(agent_pkgs_staged(h->s, "app", "6.6"));
	assert_string_equal(list(v->root, NULL), "pkgs");
	assert_false(exists(v->escape, "."));
	if (!v->tmp_x)
		assert_false(exists("/tmp", "x"));
	check_tree(v, "1.0", false);
}

static void hostile_end(struct hostile *h)
{
	agent_pkgs_close(h->s);
	pkg_free(h->base);
}

/* Stages p (and frees it), expecting code and a message with want. */
static void refused_pkg(struct hostile *h, struct pkg *p, int code,
			const char *want)
{
	flt_error_t err = { 0 };

	assert_int_equal(stage(h->s, p, &err), code);
	assert_int_equal(err.code, code);
	assert_msg(&err, "package app 6.6");
	assert_msg(&err, want);
	pkg_free(p);
	assert_untouched(h);
}

/* Stages entries as app 6.6 (in format f) and expects code and want. */
static void refused(struct hostile *h, enum fmt f, const struct ent *e,
		    size_t n, int code, const char *want)
{
	size_t len;
	uint8_t *c = build(h->v->root, f, e, n, &len);

	refused_pkg(h, pkg_new("app", "6.6", c, len, "archive", NULL), code,
		    want);
}

#define REFUSED(h, f, code, want, ...)                             \
	do {                                                       \
		const struct ent e_[] = { __VA_ARGS__ };           \
		refused(h, f, e_, FLT_ARRAY_SIZE(e_), code, want); \
	} while (0)

static void test_hostile_paths(void **state)
{
	struct env *v = *state;
	char abs[PATH_MAX];
	struct hostile h;

	hostile_begin(&h, v, NULL, NULL);
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"../../escape\": path leaves the package",
		{ F, "ok", 0, "fine" }, { F, "../../escape", 0, "gotcha" });
	assert_false(exists(v->root, "escape"));
	assert_false(exists(v->store, "escape"));
	REFUSED(&h, TGZ, FLT_EPROTO, "entry \"../escape\": path leaves",
		{ F, "../escape", 0, "gotcha" });
	REFUSED(&h, ZIP, FLT_EPROTO, "entry \"a/../../b\": path leaves",
		{ F, "a/../../b", 0, "gotcha" });
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"dir/../\": path leaves",
		{ D, "dir/..", 0, NULL });

	snprintf(abs, sizeof(abs), "%s/abs", v->root);
	{
		const struct ent e[] = { { F, abs, 0, "gotcha" } };
		char want[PATH_MAX + 64];

		snprintf(want, sizeof(want), "entry \"%s\": path is absolute",
			 abs);
		refused(&h, TAR, e, 1, FLT_EPROTO, want);
		assert_false(exists(v->root, "abs"));
	}
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"/tmp/x\": path is absolute",
		{ F, "/tmp/x", 0, "gotcha" });
	REFUSED(&h, TAR, FLT_EPROTO, "entry \".\": names the package root",
		{ L, ".", 0, "x" });
	/* A file named like a directory, its data then read as headers. */
	REFUSED(&h, TAR, FLT_EPROTO,
		"archive: after entry \"./\": ", { F, "./", 0, "gotcha" });
	hostile_end(&h);
}

static void test_hostile_symlinks(void **state)
{
	struct env *v = *state;
	const char *base = strrchr(v->escape, '/') + 1;
	char through[PATH_MAX];
	struct hostile h;

	hostile_begin(&h, v, NULL, NULL);
	/* The classic: a link out, then a file through it. */
	snprintf(through, sizeof(through), "lib/%s", base);
	{
		const struct ent e[] = { { L, "lib", 0, "../../.." },
					 { F, through, 0, "gotcha" } };

		refused(&h, TAR, e, 2, FLT_EPROTO,
			"entry \"lib\": symlink to \"../../..\" points "
			"outside the package");
	}
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"a/b/c\": symlink to \"../../../x\" points outside",
		{ L, "a/b/c", 0, "../../../x" });
	REFUSED(&h, TGZ, FLT_EPROTO,
		"entry \"etc\": symlink to \"/etc\" points outside",
		{ L, "etc", 0, "/etc" });
	REFUSED(&h, ZIP, FLT_EPROTO,
		"entry \"passwd\": symlink to \"/etc/passwd\" points outside",
		{ F, "ok", 0, "fine" }, { L, "passwd", 0, "/etc/passwd" });
	/* Each link stays inside, but the second climbs through the
	 * first: up -> .. from a/ is the root, up/.. would be above it. */
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"a/esc\": symlink to \"up/..\": \"..\" after a name",
		{ L, "a/up", 0, ".." }, { L, "a/esc", 0, "up/.." },
		{ F, "a/esc/x", 0, "gotcha" });
	/* A link inside the package may not be written through either. */
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"lnk/x\": path goes through the symlink \"lnk\"",
		{ D, "sub", 0, NULL }, { L, "lnk", 0, "sub" },
		{ F, "lnk/x", 0, "gotcha" });
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"f/x\": path: \"f\" is not a directory",
		{ F, "f", 0, "file" }, { F, "f/x", 0, "gotcha" });
	/* Nor replaced by one. */
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"d\": appears twice",
		{ D, "d", 0, NULL }, { D, "e", 0, NULL }, { L, "d", 0, "e" });
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"f\": appears twice",
		{ F, "f", 0, "one" }, { F, "f", 0, "two" });
	assert_false(exists(v->escape, "."));
	hostile_end(&h);
}

static void test_hostile_entries(void **state)
{
	struct env *v = *state;
	struct hostile h;

	hostile_begin(&h, v, NULL, NULL);
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"pw\": hard link to \"/etc/passwd\" is absolute",
		{ H, "pw", 0, "/etc/passwd" });
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"pw\": hard link to \"../../../../etc/passwd\" leaves "
		"the package",
		{ H, "pw", 0, "../../../../etc/passwd" });
	REFUSED(&h, TAR, FLT_EPROTO,
		"hard link to \"nope\": not in the package",
		{ H, "pw", 0, "nope" });
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"h\": hard link to \"lnk/f\" goes through the symlink",
		{ D, "sub", 0, NULL }, { F, "sub/f", 0, "x" },
		{ L, "lnk", 0, "sub" }, { H, "h", 0, "lnk/f" });
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"dev/null\": device node",
		{ D, "dev", 0, NULL }, { CHR, "dev/null", 0, NULL });
	REFUSED(&h, TAR, FLT_EPROTO, "entry \"pipe\": FIFO",
		{ FIFO, "pipe", 0, NULL });
	REFUSED(&h, TAR, FLT_EPROTO,
		"entry \"bin/su\": setuid or setgid file (mode 4755)",
		{ F, "bin/su", 04755, "#!/bin/sh\n" });
	REFUSED(&h, TGZ, FLT_EPROTO, "entry \"sg\": setuid or setgid",
		{ F, "sg", 02755, "#!/bin/sh\n" });
	hostile_end(&h);
}

/* A ustar header for a regular file of the given size, no data. */
static void ustar_header(uint8_t h[512], const char *name,
			 unsigned long long size)
{
	unsigned sum = 0;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	snprintf((char *)h + 124, 12, "%011llo", size);
	memcpy(h + 136, "14707450400", 12);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

static void test_hostile_limits(void **state)
{
	struct env *v = *state;
	struct archive_entry *e;
	char file[PATH_MAX];
	struct hostile h;
	struct archive *a;
	uint8_t *c;
	size_t len;

	hostile_begin(&h, v, NULL, NULL);

	/* One entry past the limit: "./" entries cost nothing to unpack. */
	snprintf(file, sizeof(file), "%s/build.tar.gz", v->root);
	a = writer(TGZ, file);
	e = archive_entry_new();
	archive_entry_set_pathname(e, "./");
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	for (int i = 0; i <= 100000; i++)
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	archive_entry_free(e);
	c = finish(a, file, &len);
	refused_pkg(&h,
		    pkg_new_cs("app", "6.6", c, len, "archive", NULL,
			       FLT_PKG_CHUNK_SIZE),
		    FLT_EPROTO, "more than 100000 entries");

	/* A file said to be larger than a package may unpack to: refused
	 * on its header, before a byte is written. */
	c = calloc(1, 1536);
	ustar_header(c, "huge", FLT_PKG_MAX_SIZE + 1);
	refused_pkg(&h, pkg_new("app", "6.6", c, 1536, "archive", NULL),
		    FLT_EPROTO,
		    "entry \"huge\": the package unpacks to more than "
		    "1073741824 bytes");
	/* Exactly the limit is allowed by that check (the data is then
	 * missing: a truncated archive). */
	c = calloc(1, 1536);
	ustar_header(c, "huge", FLT_PKG_MAX_SIZE);
	refused_pkg(&h, pkg_new("app", "6.6", c, 1536, "archive", NULL),
		    FLT_EPROTO, "entry \"huge\": ");
	/* Not an archive at all. */
	c = malloc(3000);
	memset(c, 'x', 3000);
	refused_pkg(&h, pkg_new("app", "6.6", c, 3000, "archive", NULL),
		    FLT_EPROTO, "archive: ");
	hostile_end(&h);
}

static void test_hostile_content(void **state)
{
	struct env *v = *state;
	struct hostile h;
	struct pkg *p;

	hostile_begin(&h, v, NULL, NULL);
	p = good_pkg(v, "6.6", TAR);
	set_str(&p->m->sha256, "ba7816bf8f01cfea414140de5dae2223b00361a3961"
			       "77a9cb410ff61f20015ad");
	refused_pkg(&h, p, FLT_EPROTO, "content: sha256 ");
	p = good_pkg(v, "6.6", TGZ);
	p->corrupt = 2;
	refused_pkg(&h, p, FLT_EPROTO, "chunk 2 (");
	p = good_pkg(v, "6.6", TGZ);
	p->corrupt = 2;
	{
		flt_error_t err = { 0 };

		assert_int_equal(stage(h.s, p, &err), FLT_EPROTO);
		assert_msg(&err, "content does not match its digest");
		/* Nothing fetched past the bad chunk. */
		assert_int_equal(p->fetches, 3);
		pkg_free(p);
	}
	/* The size says one byte less: the last chunk is too long. */
	p = good_pkg(v, "6.6", TAR);
	p->m->size--;
	assert_int_equal(flt_pkg_manifest_check(p->m, NULL), 0);
	refused_pkg(&h, p, FLT_EPROTO, "bytes, expected ");
	p = good_pkg(v, "6.6", TAR);
	p->fail = -EIO;
	refused_pkg(&h, p, -EIO, "chunk 0 (");
	p = good_pkg(v, "6.6", TAR);
	p->fail = -EIO;
	{
		flt_error_t err = { 0 };

		assert_int_equal(stage(h.s, p, &err), -EIO);
		assert_msg(&err, "coordinator unreachable");
		pkg_free(p);
	}
	/* A manifest that does not add up is refused before any fetch. */
	p = good_pkg(v, "6.6", TAR);
	p->m->n_chunks--;
	{
		flt_error_t err = { 0 };

		assert_int_equal(stage(h.s, p, &err), FLT_EPROTO);
		assert_msg(&err, "manifest: chunks: ");
		assert_int_equal(p->fetches, 0);
		p->m->n_chunks++;
		pkg_free(p);
	}
	/* A file package whose name would leave its directory. */
	p = good_pkg(v, "6.6", TAR);
	set_str(&p->m->format, "file");
	set_str(&p->m->file_name, "../../escape");
	refused_pkg(&h, p, FLT_EPROTO, "manifest: file_name");
	assert_untouched(&h);
	hostile_end(&h);
}

static void test_signatures(void **state)
{
	struct env *v = *state;
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	flt_error_t err = { 0 };
	struct hostile h;
	struct pkg *p;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	hostile_begin(&h, v, pk, sk);

	p = good_pkg(v, "6.6", TAR);
	refused_pkg(&h, p, FLT_EAUTH,
		    "package app 6.6: unsigned; this agent requires packages "
		    "signed with the fleet key (--package-key), or "
		    "--allow-unsigned-packages");
	p = good_pkg(v, "6.6", TAR);
	assert_int_equal(flt_pkg_sign(p->m, sk, NULL), 0);
	p->m->signature.data[5] ^= 1;
	refused_pkg(&h, p, FLT_EAUTH, "bad signature");
	/* Signed as 6.5, presented as 6.6. */
	p = good_pkg(v, "6.5", TAR);
	assert_int_equal(flt_pkg_sign(p->m, sk, NULL), 0);
	set_str(&p->m->version, "6.6");
	refused_pkg(&h, p, FLT_EAUTH, "bad signature");
	p = good_pkg(v, "6.6", TAR);
	assert_int_equal(flt_pkg_sign(p->m, sk2, NULL), 0);
	refused_pkg(&h, p, FLT_EAUTH, "signed by another key (key id ");
	assert_untouched(&h);

	p = good_pkg(v, "6.6", TGZ);
	assert_int_equal(flt_pkg_sign(p->m, sk, NULL), 0);
	assert_int_equal(stage(h.s, p, &err), 0);
	assert_true(agent_pkgs_staged(h.s, "app", "6.6"));
	pkg_free(p);
	hostile_end(&h);
}

/*
 * The policy without the defaults: no key and no --allow-unsigned-packages
 * refuses everything, signed or not, naming the flags; the flag lets an
 * unsigned package through; with a key and the flag, an unsigned package
 * passes but a bad signature still does not.
 */
static void test_signature_policy(void **state)
{
	struct env *v = *state;
	uint8_t pk[32], sk[64];
	flt_error_t err = { 0 };
	struct hostile h;
	struct pkg *p;

	crypto_sign_keypair(pk, sk);
	h.v = v;
	h.s = open_store_as(v, NULL, false);
	p = good_pkg(v, "1.0", TAR);
	assert_int_equal(stage(h.s, p, &err), FLT_EAUTH);
	assert_non_null(strstr(err.msg, "package app 1.0: unsigned; this "
					"agent requires packages signed with "
					"the fleet key (--package-key), or "
					"--allow-unsigned-packages"));
	pkg_free(p);
	p = good_pkg(v, "1.0", TAR);
	assert_int_equal(flt_pkg_sign(p->m, sk, NULL), 0);
	assert_int_equal(stage(h.s, p, &err), FLT_EAUTH);
	assert_non_null(strstr(err.msg, "signed, but this agent has no fleet "
					"key to verify it with "
					"(--package-key FILE)"));
	pkg_free(p);
	assert_string_equal(list(v->store, NULL), ".lock");
	agent_pkgs_close(h.s);

	h.s = open_store_as(v, NULL, true);
	p = good_pkg(v, "1.0", TAR);
	assert_int_equal(stage(h.s, p, &err), 0);
	assert_true(agent_pkgs_staged(h.s, "app", "1.0"));
	pkg_free(p);
	agent_pkgs_close(h.s);

	h.s = open_store_as(v, pk, true);
	p = good_pkg(v, "2.0", TAR);
	assert_int_equal(stage(h.s, p, &err), 0);
	pkg_free(p);
	p = good_pkg(v, "3.0", TAR);
	assert_int_equal(flt_pkg_sign(p->m, sk, NULL), 0);
	p->m->signature.data[0] ^= 1;
	assert_int_equal(stage(h.s, p, &err), FLT_EAUTH);
	assert_non_null(strstr(err.msg, "bad signature"));
	assert_false(agent_pkgs_staged(h.s, "app", "3.0"));
	pkg_free(p);
	agent_pkgs_close(h.s);
}

/*
 * A full disk, for real: the store on a 256 KiB tmpfs in a mount namespace
 * of this process alone. The message leads with the cause and the store's
 * directory, nothing is left behind, and a package that fits is staged.
 */
static void test_disk_full(void **state)
{
	struct env *v = *state;
	flt_error_t err = { 0 };
	char want[PATH_MAX + 128];
	size_t big = 1024 * 1024;
	uint8_t *c;

	private_tmpfs(v->store, "256k");
	agent_pkgs_t *s = open_store(v, NULL);

	c = malloc(big);
	assert_non_null(c);
	randombytes_buf(c, big);
	struct pkg *p =
		pkg_new_cs("big", "1.0", c, big, "file", "big.bin", 64 * 1024);
	assert_int_equal(stage(s, p, &err), -ENOSPC);
	snprintf(want, sizeof(want),
		 "package big 1.0: no space left on device (package store "
		 "%s): ",
		 v->store);
	if (strncmp(err.msg, want, strlen(want)) != 0)
		fail_msg("message \"%s\" does not start with \"%s\"", err.msg,
			 want);
	fprintf(stderr, "full disk: %s\n", err.msg);
	assert_string_equal(list(v->store, NULL), ".lock");

	c = malloc(sizeof(blob));
	assert_non_null(c);
	memcpy(c, blob, sizeof(blob));
	struct pkg *small =
		pkg_new("small", "1", c, sizeof(blob), "file", "small.bin");
	stage_ok(s, small);
	agent_pkgs_close(s);
	pkg_free(p);
	pkg_free(small);
	assert_int_equal(umount(v->store), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
		T(test_stage_switch_resolve),
		T(test_restage),
		T(test_file_format),
		T(test_gc),
		T(test_stale_temporaries),
		T(test_hostile_paths),
		T(test_hostile_symlinks),
		T(test_hostile_entries),
		T(test_hostile_limits),
		T(test_hostile_content),
		T(test_signatures),
		T(test_signature_policy),
		T(test_disk_full),
#undef T
	};

	if (sodium_init() < 0)
		return 1;
	fill_blob();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
