/* flotilla package ...: signing keys, and packages for the coordinator. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

/* Names that "--format" defaults to "archive" for (case-insensitive). */
static const char *const archive_suffixes[] = {
	".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar.zst", ".zip",
};

static bool has_archive_suffix(const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(archive_suffixes); i++) {
		size_t sl = strlen(archive_suffixes[i]);
		if (l > sl &&
		    strcasecmp(name + l - sl, archive_suffixes[i]) == 0)
			return true;
	}
	return false;
}

/* "signed (key 1a2b3c4d5e6f7a8b)" or "unsigned". */
static void signed_str(const Flotilla__PackageManifest *m, char *buf,
		       size_t len)
{
	if (m->signature.len)
		snprintf(buf, len, "signed (key %s)", cli_dash(m->key_id));
	else
		snprintf(buf, len, "unsigned");
}

static void print_manifest(const Flotilla__PackageManifest *m, bool chunks)
{
	char size[32], sig[64], when[40], age[32];
	cli_format_size(m->size, size, sizeof(size));
	signed_str(m, sig, sizeof(sig));
	flt_format_time(m->created_at_ms, when, sizeof(when));
	cli_age(m->created_at_ms, age, sizeof(age));
	cli_kv("Name", "%s", m->name);
	cli_kv("Version", "%s", m->version);
	cli_kv("Format", "%s", m->format);
	if (*m->file_name)
		cli_kv("File name", "%s", m->file_name);
	cli_kv("Size", "%llu bytes (%s)", (unsigned long long)m->size, size);
	cli_kv("SHA-256", "%s", m->sha256);
	cli_kv("Chunks", "%zu of at most %u bytes", m->n_chunks, m->chunk_size);
	cli_kv("Signature", "%s", sig);
	if (m->created_at_ms)
		cli_kv("Created", "%s (%s)", when, age);
	else
		cli_kv("Created", "-");
	cli_kv("Index", "%llu", (unsigned long long)m->index);
	if (chunks)
		for (size_t i = 0; i < m->n_chunks; i++)
			cli_printf("  chunk %-6zu %s\n", i, m->chunks[i]);
}

/* ---- keygen ------------------------------------------------------------ */

static int package_keygen(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	bool json = false;
	const char *ops[2];
	flt_error_t err;
	uint8_t pk[32];
	char id[17];
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 2, 2, ops);
	(void)c;
	if (rc >= 0)
		return rc;
	if (flt_key_generate(ops[0], ops[1], &err) < 0)
		return cli_fail("%s", err.msg);
	if (flt_key_load_public(ops[0], pk, &err) < 0)
		return cli_fail("%s", err.msg);
	flt_key_id(pk, id);
	if (json) {
		cli_print_json(json_pack("{s:s, s:s, s:s}", "public_file",
					 ops[0], "secret_file", ops[1],
					 "key_id", id));
		return 0;
	}
	cli_printf("key %s: public key in %s, secret key in %s (mode 0600)\n",
		   id, ops[0], ops[1]);
	return 0;
}

/* ---- push -------------------------------------------------------------- */

/* A file being pushed: read in chunks, twice (digests, then upload). */
typedef struct push_file {
	const char *path;
	int fd;
	uint64_t size;
	uint8_t *buf; /* FLT_PKG_CHUNK_SIZE */
} push_file_t;

/* Reads the chunk at the current offset: up to FLT_PKG_CHUNK_SIZE bytes,
 * fewer only at the end. Returns 0 or -errno. */
static int read_chunk(push_file_t *f, size_t *len)
{
	size_t got = 0;
	while (got < FLT_PKG_CHUNK_SIZE) {
		ssize_t n = read(f->fd, f->buf + got, FLT_PKG_CHUNK_SIZE - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return 0;
}

/* First pass: the whole digest and every chunk's. */
static int digest_file(push_file_t *f, Flotilla__PackageManifest *m)
{
	crypto_hash_sha256_state st;
	unsigned char whole[crypto_hash_sha256_BYTES];
	uint64_t total = 0;
	size_t nchunks = (size_t)((f->size + FLT_PKG_CHUNK_SIZE - 1) /
				  FLT_PKG_CHUNK_SIZE);

	m->chunks = flt_xcalloc(nchunks ? nchunks : 1, sizeof(*m->chunks));
	crypto_hash_sha256_init(&st);
	for (;;) {
		size_t len = 0;
		int rc = read_chunk(f, &len);
		if (rc < 0)
			return cli_fail("%s: %s", f->path, strerror(-rc));
		if (len == 0)
			break;
		if (m->n_chunks == nchunks)
			return cli_fail("%s: grew while it was read", f->path);
		crypto_hash_sha256_update(&st, f->buf, len);
		m->chunks[m->n_chunks] = flt_xmalloc(FLT_SHA256_HEX);
		flt_sha256_hex(f->buf, len, m->chunks[m->n_chunks]);
		m->n_chunks++;
		total += len;
	}
	if (total != f->size)
		return cli_fail("%s: changed size while it was read", f->path);
	crypto_hash_sha256_final(&st, whole);
	m->sha256 = flt_xmalloc(FLT_SHA256_HEX);
	sodium_bin2hex(m->sha256, FLT_SHA256_HEX, whole, sizeof(whole));
	return 0;
}

/* On a terminal, "uploading 3/12 chunks (768.0 KiB of 2.9 MiB)" redrawn
 * on stderr. */
static void upload_progress(bool tty, size_t i, const push_file_t *f,
			    const Flotilla__PackageManifest *m)
{
	char done[32], total[32];
	uint64_t sent = (uint64_t)i * FLT_PKG_CHUNK_SIZE;
	if (!tty)
		return;
	cli_format_size(sent < f->size ? sent : f->size, done, sizeof(done));
	cli_format_size(f->size, total, sizeof(total));
	fprintf(stderr, "\r\033[2Kuploading %zu/%zu chunks (%s of %s)", i,
		m->n_chunks, done, total);
	if (i == m->n_chunks)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Clears the progress line, so that an error starts a line of its own. */
static void upload_progress_clear(bool tty)
{
	if (tty)
		fputs("\r\033[2K", stderr);
}

/* Second pass: every chunk to the coordinator, each checked against the
 * first pass, so that a file changed meanwhile is not pushed half old,
 * half new. */
static int upload_chunks(cli_t *c, push_file_t *f,
			 const Flotilla__PackageManifest *m, bool tty,
			 size_t *existed)
{
	if (lseek(f->fd, 0, SEEK_SET) < 0)
		return cli_fail("%s: %s", f->path, strerror(errno));
	for (size_t i = 0; i < m->n_chunks; i++) {
		Flotilla__ChunkPutRequest req =
			FLOTILLA__CHUNK_PUT_REQUEST__INIT;
		cleanup_pb Flotilla__ChunkPutResponse *resp = NULL;
		char hex[FLT_SHA256_HEX];
		flt_error_t err;
		size_t len = 0;
		upload_progress(tty, i, f, m);
		int rc = read_chunk(f, &len);
		if (rc < 0) {
			upload_progress_clear(tty);
			return cli_fail("%s: %s", f->path, strerror(-rc));
		}
		flt_sha256_hex(f->buf, len, hex);
		if (len == 0 || strcmp(hex, m->chunks[i]) != 0) {
			upload_progress_clear(tty);
			return cli_fail("%s: changed while it was pushed "
					"(chunk %zu)",
					f->path, i);
		}
		req.data.data = f->buf;
		req.data.len = len;
		if (cli_call_err(c, FLOTILLA__METHOD__METHOD_CHUNK_PUT,
				 &req.base,
				 &flotilla__chunk_put_response__descriptor,
				 (ProtobufCMessage **)&resp, &err) < 0) {
			upload_progress_clear(tty);
			return cli_fail("%s", err.msg);
		}
		if (strcmp(resp->sha256, hex) != 0) {
			upload_progress_clear(tty);
			return cli_fail("chunk %zu: the coordinator stored "
					"sha256 %.12s, not %.12s",
					i, resp->sha256, hex);
		}
		*existed += resp->existed;
	}
	upload_progress(tty, m->n_chunks, f, m);
	return 0;
}

static int open_package_file(push_file_t *f)
{
	struct stat st;
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (f->fd < 0)
		return cli_fail("%s: %s", f->path, strerror(errno));
	if (fstat(f->fd, &st) < 0)
		return cli_fail("%s: %s", f->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return cli_fail("%s: is a directory (push one file, or an "
				"archive of the directory: tar czf NAME.tar.gz "
				"-C DIR .)",
				f->path);
	if (!S_ISREG(st.st_mode))
		return cli_fail("%s: not a regular file", f->path);
	if ((uint64_t)st.st_size > FLT_PKG_MAX_SIZE)
		return cli_fail("%s: %llu bytes, more than the %llu a package "
				"may have",
				f->path, (unsigned long long)st.st_size,
				(unsigned long long)FLT_PKG_MAX_SIZE);
	if (st.st_size == 0)
		return cli_fail("%s: empty file", f->path);
	f->size = (uint64_t)st.st_size;
	return 0;
}

/* Frees a string field push set (not the INIT default). */
static void free_field(char *s)
{
	if (s != protobuf_c_empty_string)
		free(s);
}

/* Frees what push set in m (name, version and format are borrowed from
 * argv and the flags). */
static void manifest_release(Flotilla__PackageManifest *m)
{
	for (size_t i = 0; i < m->n_chunks; i++)
		free(m->chunks[i]);
	free(m->chunks);
	free_field(m->sha256);
	free(m->signature.data);
	free_field(m->key_id);
	free_field(m->file_name);
}

static int push_manifest(cli_t *c, Flotilla__PackageManifest *m, bool json,
			 size_t existed)
{
	Flotilla__PackagePushRequest req = FLOTILLA__PACKAGE_PUSH_REQUEST__INIT;
	cleanup_pb Flotilla__PackageGetResponse *resp = NULL;
	req.manifest = m;
	if (cli_call(c, FLOTILLA__METHOD__METHOD_PACKAGE_PUSH, &req.base,
		     &flotilla__package_get_response__descriptor,
		     (ProtobufCMessage **)&resp) != 0)
		return 1;
	if (resp->n_packages == 0)
		return cli_fail("bad reply: no package");
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->packages[0]->base));
		return 0;
	}
	cli_printf("pushed %s %s: %zu chunk%s, %zu already stored\n", m->name,
		   m->version, m->n_chunks, m->n_chunks == 1 ? "" : "s",
		   existed);
	print_manifest(resp->packages[0], false);
	return 0;
}

static int package_push(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__PackageManifest m = FLOTILLA__PACKAGE_MANIFEST__INIT;
	push_file_t f = { .fd = -1 };
	bool json = false;
	const char *ops[3], *key = NULL, *format = NULL;
	size_t existed = 0;
	flt_error_t err;
	const flt_flag_t flags[] = {
		{ "sign", FLT_FLAG_STRING, &key, "SECRET_KEYFILE",
		  "sign with this key (from flotilla package keygen)", 0, 0,
		  "FLOTILLA_SIGNING_KEY" },
		{ "format", FLT_FLAG_STRING, &format, "archive|file",
		  "unpack the file (archive) or install it as is (default: "
		  "archive for .tar, .tar.gz, .tgz, .tar.xz, .tar.bz2, "
		  ".tar.zst, .zip)",
		  0, 0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 3, 3, ops);
	if (rc >= 0)
		return rc;
	if (!flt_pkg_name_valid(ops[0]))
		return cli_usage_fail(cmd,
				      "\"%s\": not a package name (1-64 of "
				      "A-Z a-z 0-9 . _ -, not starting with . "
				      "or -)",
				      ops[0]);
	if (!flt_pkg_version_valid(ops[1]))
		return cli_usage_fail(cmd,
				      "\"%s\": not a package version (1-128 of "
				      "A-Z a-z 0-9 . + ~ : _ -, not starting "
				      "with .)",
				      ops[1]);
	if (format && strcmp(format, "archive") != 0 &&
	    strcmp(format, "file") != 0)
		return cli_usage_fail(cmd,
				      "--format: \"%s\": expected archive or "
				      "file",
				      format);

	m.name = (char *)ops[0];
	m.version = (char *)ops[1];
	f.path = ops[2];
	if (sodium_init() < 0)
		return cli_fail("libsodium failed to initialise");
	if (open_package_file(&f) != 0) {
		rc = 1;
		goto out;
	}
	{
		cleanup_free char *copy = flt_xstrdup(f.path);
		const char *base = basename(copy);
		if (!format)
			format = has_archive_suffix(base) ? "archive" : "file";
		m.format = (char *)format;
		if (strcmp(format, "file") == 0)
			m.file_name = flt_xstrdup(base);
	}
	m.size = f.size;
	m.chunk_size = FLT_PKG_CHUNK_SIZE;
	f.buf = flt_xmalloc(FLT_PKG_CHUNK_SIZE);
	if ((rc = digest_file(&f, &m)) != 0)
		goto out;
	/* Signed before anything is sent: a bad key costs no upload. */
	if (key) {
		uint8_t sk[64];
		rc = flt_key_load_secret(key, sk, &err);
		if (rc == 0)
			rc = flt_pkg_sign(&m, sk, &err);
		sodium_memzero(sk, sizeof(sk));
		if (rc < 0) {
			rc = cli_fail("%s", err.msg);
			goto out;
		}
	}
	if (flt_pkg_manifest_check(&m, &err) < 0) {
		rc = cli_fail("%s: %s", f.path, err.msg);
		goto out;
	}
	/* The manifest first, alone: a coordinator that refuses what it
	 * says (a missing or foreign signature) refuses it before any
	 * chunk is sent, so that a refused push leaves nothing behind. A
	 * manifest whose chunks are all stored already is simply taken. */
	{
		Flotilla__PackagePushRequest probe =
			FLOTILLA__PACKAGE_PUSH_REQUEST__INIT;
		cleanup_pb Flotilla__PackageGetResponse *taken = NULL;
		probe.manifest = &m;
		rc = cli_call_err(c, FLOTILLA__METHOD__METHOD_PACKAGE_PUSH,
				  &probe.base,
				  &flotilla__package_get_response__descriptor,
				  (ProtobufCMessage **)&taken, &err);
		if (rc == FLT_EAUTH || rc == FLT_ECONFLICT ||
		    rc == FLT_ETRANSPORT || rc == -ETIMEDOUT) {
			rc = cli_fail("%s", err.msg);
			goto out;
		}
		if (rc == 0) {
			rc = push_manifest(c, &m, json, m.n_chunks);
			goto out;
		}
	}
	bool tty = !json && isatty(STDERR_FILENO);
	if ((rc = upload_chunks(c, &f, &m, tty, &existed)) != 0)
		goto out;
	rc = push_manifest(c, &m, json, existed);
out:
	if (f.fd >= 0)
		close(f.fd);
	free(f.buf);
	manifest_release(&m);
	return rc;
}

/* ---- list and show ----------------------------------------------------- */

static int by_name_then_created(const void *a, const void *b)
{
	const Flotilla__PackageManifest *x =
		*(Flotilla__PackageManifest *const *)a;
	const Flotilla__PackageManifest *y =
		*(Flotilla__PackageManifest *const *)b;
	int r = strcmp(x->name, y->name);
	if (r)
		return r;
	if (x->created_at_ms != y->created_at_ms)
		return x->created_at_ms < y->created_at_ms ? -1 : 1;
	return strcmp(x->version, y->version);
}

static void sort_packages(Flotilla__PackageGetResponse *r)
{
	if (r->n_packages > 1)
		qsort(r->packages, r->n_packages, sizeof(*r->packages),
		      by_name_then_created);
}

static json_t *packages_json(const Flotilla__PackageGetResponse *r)
{
	return cli_json_array((ProtobufCMessage *const *)r->packages,
			      r->n_packages);
}

static int package_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__PackageListRequest req = FLOTILLA__PACKAGE_LIST_REQUEST__INIT;
	cleanup_pb Flotilla__PackageGetResponse *resp = NULL;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_PACKAGE_LIST, &req.base,
			   &flotilla__package_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	sort_packages(resp);
	if (json) {
		cli_print_json(packages_json(resp));
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 6, "NAME", "VERSION", "SIZE", "DIGEST", "SIGNED",
		       "CREATED");
	for (size_t i = 0; i < resp->n_packages; i++) {
		const Flotilla__PackageManifest *m = resp->packages[i];
		char size[32], digest[13], sig[32], age[32];
		cli_format_size(m->size, size, sizeof(size));
		snprintf(digest, sizeof(digest), "%.12s", m->sha256);
		if (m->signature.len)
			snprintf(sig, sizeof(sig), "%s", cli_dash(m->key_id));
		else
			snprintf(sig, sizeof(sig), "no");
		cli_age(m->created_at_ms, age, sizeof(age));
		cli_table_row(&t, m->name, m->version, size, digest, sig, age);
	}
	cli_table_print(&t, "");
	return 0;
}

static int package_show(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__PackageGetRequest req = FLOTILLA__PACKAGE_GET_REQUEST__INIT;
	cleanup_pb Flotilla__PackageGetResponse *resp = NULL;
	bool json = false, chunks = false;
	const char *ops[2];
	const flt_flag_t flags[] = {
		{ "chunks", FLT_FLAG_BOOL, &chunks, NULL,
		  "also list the digest of every chunk", 0, 0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 2, ops);
	if (rc >= 0)
		return rc;
	req.name = (char *)ops[0];
	req.version = (char *)(ops[1] ? ops[1] : "");
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_PACKAGE_GET, &req.base,
			   &flotilla__package_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (resp->n_packages == 0)
		return cli_fail("package %s%s%s: not found", ops[0],
				ops[1] ? " " : "", ops[1] ? ops[1] : "");
	sort_packages(resp);
	if (json) {
		/* One version asked: its manifest; else every version. */
		if (ops[1])
			cli_print_json(
				flt_pb_to_json(&resp->packages[0]->base));
		else
			cli_print_json(packages_json(resp));
		return 0;
	}
	for (size_t i = 0; i < resp->n_packages; i++) {
		if (i)
			putchar('\n');
		print_manifest(resp->packages[i], chunks);
	}
	return 0;
}

static int package_rm(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__PackageGetRequest req = FLOTILLA__PACKAGE_GET_REQUEST__INIT;
	cleanup_pb Flotilla__PackageRmResponse *resp = NULL;
	bool json = false;
	const char *ops[2] = { NULL, NULL };
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 2, ops);
	if (rc >= 0)
		return rc;
	/* NAME@VERSION, or NAME VERSION as package show takes them. */
	char name[256];
	snprintf(name, sizeof(name), "%s", ops[0]);
	char *at = strchr(name, '@');
	if (at && !ops[1]) {
		*at = 0;
		ops[1] = at + 1;
	}
	if (!ops[1] || !*ops[1])
		return cli_fail("package rm %s: which version? (NAME@VERSION)",
				ops[0]);
	req.name = name;
	req.version = (char *)ops[1];
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_PACKAGE_RM, &req.base,
			   &flotilla__package_rm_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
		return 0;
	}
	cli_printf("package %s@%s removed: %u chunks deleted (%llu bytes), "
		   "%u kept for other versions\n",
		   name, ops[1], resp->chunks_deleted,
		   (unsigned long long)resp->bytes_freed, resp->chunks_kept);
	return 0;
}

const cli_cmd_t cli_package_cmds[] = {
	{ "package", "push",
	  "NAME VERSION PATH [--sign SECRET_KEYFILE] [--format archive|file] "
	  "[--json]",
	  "upload a file or archive as a package version", package_push },
	{ "package", "list", "[--json]", "list the packages and their versions",
	  package_list },
	{ "package", "rm", "NAME@VERSION [--json]",
	  "remove a version, and the chunks no other version holds",
	  package_rm },
	{ "package", "show", "NAME [VERSION] [--chunks] [--json]",
	  "show a package version (or every version of a package)",
	  package_show },
	{ "package", "keygen", "PUBLIC_FILE SECRET_FILE [--json]",
	  "make an ed25519 key pair to sign packages with", package_keygen },
	{ NULL, NULL, NULL, NULL, NULL },
};
