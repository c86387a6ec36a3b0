/* Package digests, manifests, signatures and key files (see pkg.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "flotilla/pkg.h"
#include "flotilla/util.h"

#define NAME_LEN_MAX 64
#define VERSION_LEN_MAX 128
#define FILE_NAME_MAX 255
#define SIGNED_PREFIX "flotilla-package-v1\n"
#define PUBLIC_TAG "flotilla-ed25519-public "
#define SECRET_TAG "flotilla-ed25519-secret "
/* A key file is one short line; anything longer is not one of ours. */
#define KEY_FILE_MAX 256
/* Bytes of a value from a manifest quoted in a message. */
#define SHOWN_MAX 64

void flt_sha256_hex(const void *buf, size_t len, char out[FLT_SHA256_HEX])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(out, FLT_SHA256_HEX, h, sizeof(h));
}

static bool is_lower_hex(const char *s, size_t n)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

bool flt_sha256_valid(const char *hex)
{
	return is_lower_hex(hex, FLT_SHA256_HEX - 1);
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

bool flt_pkg_name_valid(const char *s)
{
	size_t n;

	if (!s || !*s || s[0] == '.' || s[0] == '-')
		return false;
	for (n = 0; s[n]; n++)
		if (n >= NAME_LEN_MAX ||
		    !(is_alnum(s[n]) || strchr("._-", s[n])))
			return false;
	return true;
}

bool flt_pkg_version_valid(const char *s)
{
	size_t n;

	/* "current" is the name of the link beside the versions. */
	if (!s || !*s || s[0] == '.' || !strcmp(s, "current"))
		return false;
	for (n = 0; s[n]; n++)
		if (n >= VERSION_LEN_MAX ||
		    !(is_alnum(s[n]) || strchr(".+~:_-", s[n])))
			return false;
	return true;
}

static bool plain_file_name(const char *s)
{
	size_t n;

	if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (n = 0; s[n]; n++)
		if (n >= FILE_NAME_MAX || s[n] == '/' ||
		    (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
	return true;
}

int flt_pkg_manifest_check(const Flotilla__PackageManifest *m, flt_error_t *err)
{
	char b[72];
	uint64_t want;
	size_t i;

	if (!m)
		return flt_err(err, -EINVAL, "manifest: missing");
	if (!flt_pkg_name_valid(m->name))
		return flt_err(err, FLT_EPROTO,
			       "manifest: name \"%s\": must be 1-%d of "
			       "[A-Za-z0-9._-], not starting with '.' or '-'",
			       flt_shown(m->name, SHOWN_MAX, b, sizeof(b)),
			       NAME_LEN_MAX);
	if (!flt_pkg_version_valid(m->version))
		return flt_err(err, FLT_EPROTO,
			       "manifest: version \"%s\": must be 1-%d of "
			       "[A-Za-z0-9.+~:_-], not starting with '.', "
			       "and not \"current\"",
			       flt_shown(m->version, SHOWN_MAX, b, sizeof(b)),
			       VERSION_LEN_MAX);
	if (!flt_sha256_valid(m->sha256))
		return flt_err(err, FLT_EPROTO,
			       "manifest: sha256 \"%s\": not 64 lower-case hex "
			       "digits",
			       flt_shown(m->sha256, SHOWN_MAX, b, sizeof(b)));
	if (m->size > FLT_PKG_MAX_SIZE)
		return flt_err(err, FLT_EPROTO,
			       "manifest: size %" PRIu64 ": above the limit "
			       "of %llu bytes",
			       m->size, FLT_PKG_MAX_SIZE);
	if (m->chunk_size == 0 || m->chunk_size > FLT_PKG_CHUNK_SIZE)
		return flt_err(err, FLT_EPROTO,
			       "manifest: chunk_size %" PRIu32 ": must be 1 "
			       "to %u",
			       m->chunk_size, FLT_PKG_CHUNK_SIZE);
	want = (m->size + m->chunk_size - 1) / m->chunk_size;
	if (m->n_chunks != want)
		return flt_err(
			err, FLT_EPROTO,
			"manifest: chunks: %zu digests, expected %" PRIu64
			" for %" PRIu64 " bytes in chunks of %" PRIu32,
			m->n_chunks, want, m->size, m->chunk_size);
	if (m->n_chunks > FLT_PKG_MAX_CHUNKS)
		return flt_err(err, FLT_EPROTO,
			       "manifest: chunks: %zu, above the limit of %llu "
			       "(use larger chunks)",
			       m->n_chunks, FLT_PKG_MAX_CHUNKS);
	for (i = 0; i < m->n_chunks; i++)
		if (!flt_sha256_valid(m->chunks[i]))
			return flt_err(err, FLT_EPROTO,
				       "manifest: chunks[%zu] \"%s\": not 64 "
				       "lower-case hex digits",
				       i,
				       flt_shown(m->chunks[i], SHOWN_MAX, b,
						 sizeof(b)));
	if (!m->format ||
	    (strcmp(m->format, "archive") && strcmp(m->format, "file")))
		return flt_err(err, FLT_EPROTO,
			       "manifest: format \"%s\": must be \"archive\" "
			       "or \"file\"",
			       flt_shown(m->format, SHOWN_MAX, b, sizeof(b)));
	if (!strcmp(m->format, "file") && (!m->file_name || !*m->file_name))
		return flt_err(err, FLT_EPROTO,
			       "manifest: file_name: required with format "
			       "\"file\"");
	if (m->file_name && *m->file_name && !plain_file_name(m->file_name))
		return flt_err(err, FLT_EPROTO,
			       "manifest: file_name \"%s\": must be a plain "
			       "file name (no '/', not \".\" or \"..\", at "
			       "most %d bytes)",
			       flt_shown(m->file_name, SHOWN_MAX, b, sizeof(b)),
			       FILE_NAME_MAX);
	if (m->signature.len != 0 && m->signature.len != crypto_sign_BYTES)
		return flt_err(err, FLT_EPROTO,
			       "manifest: signature: %zu bytes, must be 0 or "
			       "%d",
			       m->signature.len, crypto_sign_BYTES);
	if (m->key_id && *m->key_id && !is_lower_hex(m->key_id, 16))
		return flt_err(err, FLT_EPROTO,
			       "manifest: key_id \"%s\": not 16 lower-case hex "
			       "digits",
			       flt_shown(m->key_id, SHOWN_MAX, b, sizeof(b)));
	return 0;
}

static const char *or_empty(const char *s) { return s ? s : ""; }

char *flt_pkg_signed_message(const Flotilla__PackageManifest *m)
{
	char *s;

	if (asprintf(&s, SIGNED_PREFIX "%s\n%s\n%s\n%" PRIu64 "\n%s\n%s\n",
		     or_empty(m->name), or_empty(m->version),
		     or_empty(m->sha256), m->size, or_empty(m->format),
		     or_empty(m->file_name)) < 0)
		return NULL;
	return s;
}

/* ---- key files ------------------------------------------------------- */

static int fsync_parent(const char *path)
{
	cleanup_free char *dir = flt_xstrdup(path);
	char *slash = strrchr(dir, '/');
	cleanup_close int fd = -1;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/*
 * Writes line to path, which must not exist: the content goes to a
 * temporary file (mkostemp: O_EXCL, mode 0600) beside it, synced, then
 * linked to path, which fails if path appeared meanwhile. A reader never
 * sees a partial key, and an existing key is never replaced: losing a
 * fleet's secret key would orphan every agent that trusts it.
 */
static int write_key_file(const char *path, const char *what, const char *line,
			  mode_t mode, flt_error_t *err)
{
	cleanup_free char *tmp = NULL;
	cleanup_close int fd = -1;
	int rc;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
		return flt_err(err, -ENOMEM, "%s %s: out of memory", what,
			       path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return flt_err(err, rc, "%s %s: %s", what, path, strerror(-rc));
	}
	if ((rc = flt_write_all(fd, line, strlen(line), NULL)) < 0 ||
	    (fchmod(fd, mode) < 0 && (rc = -errno)) ||
	    (fsync(fd) < 0 && (rc = -errno)) ||
	    (link(tmp, path) < 0 && (rc = -errno))) {
		unlink(tmp);
		if (rc == -EEXIST)
			return flt_err(err, rc,
				       "%s %s: already exists (not replaced)",
				       what, path);
		return flt_err(err, rc, "%s %s: %s", what, path, strerror(-rc));
	}
	unlink(tmp);
	if ((rc = fsync_parent(path)) < 0)
		return flt_err(err, rc, "%s %s: syncing its directory: %s",
			       what, path, strerror(-rc));
	return 0;
}

static int absent(const char *path, const char *what, flt_error_t *err)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return flt_err(err, -EEXIST,
			       "%s %s: already exists (not replaced)", what,
			       path);
	if (errno != ENOENT)
		return flt_err(err, -errno, "%s %s: %s", what, path,
			       strerror(errno));
	return 0;
}

int flt_key_generate(const char *public_path, const char *secret_path,
		     flt_error_t *err)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char pub[sizeof(PUBLIC_TAG) +
		 sodium_base64_ENCODED_LEN(sizeof(pk),
					   sodium_base64_VARIANT_ORIGINAL) +
		 1];
	char sec[sizeof(SECRET_TAG) +
		 sodium_base64_ENCODED_LEN(sizeof(sk),
					   sodium_base64_VARIANT_ORIGINAL) +
		 1];
	size_t n;
	int rc;

	if (!public_path || !*public_path || !secret_path || !*secret_path)
		return flt_err(err, -EINVAL, "key files: missing path");
	if (!strcmp(public_path, secret_path))
		return flt_err(err, -EINVAL,
			       "key files: public and secret key paths are "
			       "the same (%s)",
			       public_path);
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "key files: libsodium failed to "
			       "initialize");
	if ((rc = absent(secret_path, "secret key", err)) < 0 ||
	    (rc = absent(public_path, "public key", err)) < 0)
		return rc;

	crypto_sign_keypair(pk, sk);
	n = strlen(SECRET_TAG);
	memcpy(sec, SECRET_TAG, n);
	sodium_bin2base64(sec + n, sizeof(sec) - n - 1, sk, sizeof(sk),
			  sodium_base64_VARIANT_ORIGINAL);
	strcat(sec, "\n");
	n = strlen(PUBLIC_TAG);
	memcpy(pub, PUBLIC_TAG, n);
	sodium_bin2base64(pub + n, sizeof(pub) - n - 1, pk, sizeof(pk),
			  sodium_base64_VARIANT_ORIGINAL);
	strcat(pub, "\n");
	sodium_memzero(sk, sizeof(sk));

	rc = write_key_file(secret_path, "secret key", sec, 0600, err);
	sodium_memzero(sec, sizeof(sec));
	if (rc < 0)
		return rc;
	rc = write_key_file(public_path, "public key", pub, 0644, err);
	if (rc < 0) {
		/* We made it a moment ago: a secret without its public half
		 * is only a trap for the next attempt. */
		unlink(secret_path);
		return rc;
	}
	return 0;
}

/*
 * Decodes "<tag><base64 of len bytes>" (one line, newline trimmed) into
 * out. The messages never quote the line: it may hold a secret.
 */
static int parse_key(const char *path, const char *what, const char *tag,
		     const char *line, uint8_t *out, size_t len,
		     flt_error_t *err)
{
	uint8_t bin[KEY_FILE_MAX];
	size_t taglen = strlen(tag), binlen = 0;
	const char *b64, *end = NULL;
	int rc = 0;

	if (strncmp(line, tag, taglen))
		return flt_err(err, FLT_EPROTO,
			       "%s %s: not a flotilla %s file (expected "
			       "\"%s<base64>\")",
			       what, path, what, tag);
	b64 = line + taglen;
	if (sodium_base642bin(bin, sizeof(bin), b64, strlen(b64), NULL, &binlen,
			      &end, sodium_base64_VARIANT_ORIGINAL) < 0 ||
	    *end != '\0')
		rc = flt_err(err, FLT_EPROTO, "%s %s: bad base64", what, path);
	else if (binlen != len)
		rc = flt_err(err, FLT_EPROTO,
			     "%s %s: key is %zu bytes, expected %zu", what,
			     path, binlen, len);
	else
		memcpy(out, bin, len);
	sodium_memzero(bin, sizeof(bin));
	return rc;
}

int flt_key_load_public(const char *path, uint8_t pk[32], flt_error_t *err)
{
	cleanup_free char *line = NULL;
	int rc;

	if (!path || !*path)
		return flt_err(err, -EINVAL, "public key: missing path");
	rc = flt_read_file(path, KEY_FILE_MAX, &line);
	if (rc == -EFBIG)
		return flt_err(err, FLT_EPROTO,
			       "public key %s: not a flotilla public key file "
			       "(longer than %d bytes)",
			       path, KEY_FILE_MAX);
	if (rc < 0)
		return flt_err(err, rc, "public key %s: %s", path,
			       strerror(-rc));
	return parse_key(path, "public key", PUBLIC_TAG, line, pk,
			 crypto_sign_PUBLICKEYBYTES, err);
}

int flt_key_load_secret(const char *path, uint8_t sk[64], flt_error_t *err)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES],
		check[crypto_sign_SECRETKEYBYTES];
	char line[KEY_FILE_MAX + 1];
	cleanup_close int fd = -1;
	struct stat st;
	size_t n = 0;
	int rc;

	if (!path || !*path)
		return flt_err(err, -EINVAL, "secret key: missing path");
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "secret key %s: libsodium failed to "
			       "initialize",
			       path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0)
		return flt_err(err, -errno, "secret key %s: %s", path,
			       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return flt_err(err, -EINVAL,
			       "secret key %s: not a regular file", path);
	/* Like ssh: a key others can read is a key others may have. */
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return flt_err(err, -EACCES,
			       "secret key %s: mode %04o lets group or others "
			       "access it; it must be 0600 or stricter "
			       "(chmod 600 %s)",
			       path, (unsigned)(st.st_mode & 07777), path);
	for (;;) {
		ssize_t r = read(fd, line + n, sizeof(line) - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			sodium_memzero(line, sizeof(line));
			return flt_err(err, rc, "secret key %s: %s", path,
				       strerror(-rc));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(line) - 1) {
			sodium_memzero(line, sizeof(line));
			return flt_err(err, FLT_EPROTO,
				       "secret key %s: not a flotilla secret "
				       "key file (longer than %d bytes)",
				       path, KEY_FILE_MAX);
		}
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	line[n] = '\0';
	rc = parse_key(path, "secret key", SECRET_TAG, line, sk,
		       crypto_sign_SECRETKEYBYTES, err);
	sodium_memzero(line, sizeof(line));
	if (rc < 0)
		return rc;
	/* An ed25519 secret key is seed || public key: both halves must
	 * agree, or every signature would fail to verify far from here. */
	crypto_sign_seed_keypair(pk, check, sk);
	rc = sodium_memcmp(check, sk, sizeof(check));
	sodium_memzero(check, sizeof(check));
	if (rc != 0) {
		sodium_memzero(sk, crypto_sign_SECRETKEYBYTES);
		return flt_err(err, FLT_EPROTO,
			       "secret key %s: corrupt (its public half does "
			       "not match its seed)",
			       path);
	}
	return 0;
}

void flt_key_id(const uint8_t pk[32], char out[17])
{
	sodium_bin2hex(out, 17, pk, 8);
}

/* ---- signatures ------------------------------------------------------ */

int flt_pkg_sign(Flotilla__PackageManifest *m, const uint8_t sk[64],
		 flt_error_t *err)
{
	cleanup_free char *msg = NULL;
	uint8_t *sig;
	char *id;

	if (!m || !sk)
		return flt_err(err, -EINVAL, "sign: missing manifest or key");
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "sign: libsodium failed to "
			       "initialize");
	msg = flt_pkg_signed_message(m);
	sig = malloc(crypto_sign_BYTES);
	id = malloc(17);
	if (!msg || !sig || !id) {
		free(sig);
		free(id);
		return flt_err(err, -ENOMEM, "sign: out of memory");
	}
	crypto_sign_detached(sig, NULL, (const uint8_t *)msg, strlen(msg), sk);
	/* An ed25519 secret key ends with its public key. */
	flt_key_id(sk + crypto_sign_SEEDBYTES, id);
	m->signature.data = sig;
	m->signature.len = crypto_sign_BYTES;
	m->key_id = id;
	return 0;
}

int flt_pkg_verify(const Flotilla__PackageManifest *m, const uint8_t pk[32],
		   flt_error_t *err)
{
	cleanup_free char *msg = NULL;
	char id[17], b1[72], b2[72];

	if (!m || !pk)
		return flt_err(err, -EINVAL, "verify: missing manifest or key");
	flt_shown(m->name, SHOWN_MAX, b1, sizeof(b1));
	flt_shown(m->version, SHOWN_MAX, b2, sizeof(b2));
	if (m->signature.len == 0)
		return flt_err(err, FLT_EAUTH, "package %s %s: unsigned", b1,
			       b2);
	flt_key_id(pk, id);
	if (m->key_id && *m->key_id && strcmp(m->key_id, id)) {
		char b3[72];

		return flt_err(err, FLT_EAUTH,
			       "package %s %s: signed by another key (key id "
			       "%s; this one is %s)",
			       b1, b2,
			       flt_shown(m->key_id, SHOWN_MAX, b3, sizeof(b3)),
			       id);
	}
	if (m->signature.len != crypto_sign_BYTES)
		return flt_err(err, FLT_EAUTH,
			       "package %s %s: bad signature (%zu bytes)", b1,
			       b2, m->signature.len);
	msg = flt_pkg_signed_message(m);
	if (!msg)
		return flt_err(err, -ENOMEM, "verify: out of memory");
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "verify: libsodium failed to "
			       "initialize");
	if (crypto_sign_verify_detached(m->signature.data, (const uint8_t *)msg,
					strlen(msg), pk) != 0)
		return flt_err(err, FLT_EAUTH, "package %s %s: bad signature",
			       b1, b2);
	return 0;
}
