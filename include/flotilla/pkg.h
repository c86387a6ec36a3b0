/*
 * Packages: digests, chunking, ed25519 signatures (libsodium) and key
 * files, shared by the CLI (push), the coordinator (store) and the agent
 * (verify).
 */
#ifndef FLOTILLA_PKG_H
#define FLOTILLA_PKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

#define FLT_PKG_CHUNK_SIZE (256u * 1024)
#define FLT_PKG_MAX_SIZE (1ull << 30) /* 1 GiB per package */
#define FLT_PKG_MAX_CHUNKS (FLT_PKG_MAX_SIZE / FLT_PKG_CHUNK_SIZE)
#define FLT_SHA256_HEX 65 /* 64 digits and the NUL */

/* Lower-case hex sha256 of buf. */
void flt_sha256_hex(const void *buf, size_t len, char out[FLT_SHA256_HEX]);
/* True for exactly 64 lower-case hex digits. */
bool flt_sha256_valid(const char *hex);

/* A package name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'.
 * A version: 1-128 of [A-Za-z0-9.+~:_-], not starting with '.', and not
 * "current" (the name of the link an agent keeps beside the versions).
 * Both are safe as a file name. */
bool flt_pkg_name_valid(const char *s);
bool flt_pkg_version_valid(const char *s);

/*
 * Checks a manifest's shape: valid name, version, digests; size at most
 * FLT_PKG_MAX_SIZE; chunk_size 1 to FLT_PKG_CHUNK_SIZE; one chunk digest
 * per chunk_size bytes (the last chunk may be shorter; an empty package
 * has no chunks), at most FLT_PKG_MAX_CHUNKS; format "archive" or "file";
 * file_name a plain file name (no '/', not "." or "..", at most 255 bytes),
 * required for "file", optional for "archive"; signature 0 or 64 bytes;
 * key_id empty or 16 lower-case hex digits. FLT_EPROTO with a message
 * that names the field: "manifest: chunk_size 0: must be 1 to 262144".
 * It does not verify the signature (flt_pkg_verify does).
 */
int flt_pkg_manifest_check(const Flotilla__PackageManifest *m,
			   flt_error_t *err);

/*
 * What a signature covers: "flotilla-package-v1\n<name>\n<version>\n
 * <sha256>\n<size>\n<format>\n<file_name>\n" (malloc'd, NUL-terminated;
 * NULL when out of memory). The chunking is not covered: the chunks are
 * checked against sha256, which is.
 */
char *flt_pkg_signed_message(const Flotilla__PackageManifest *m);

/*
 * Key files: one line, "flotilla-ed25519-public <base64 of 32 bytes>" or
 * "flotilla-ed25519-secret <base64 of 64 bytes>" (libsodium's seed ||
 * public key). flt_key_generate writes a new pair, the secret with mode
 * 0600 and the public with 0644, each complete or not at all (a temporary
 * file linked into place); it refuses (-EEXIST) to replace either file.
 * flt_key_load_secret refuses (-EACCES) a file that group or others may
 * access in any way, and (FLT_EPROTO) one whose halves disagree. Errors
 * name the file; they never quote its contents.
 */
int flt_key_generate(const char *public_path, const char *secret_path,
		     flt_error_t *err);
int flt_key_load_public(const char *path, uint8_t pk[32], flt_error_t *err);
int flt_key_load_secret(const char *path, uint8_t sk[64], flt_error_t *err);
/* Hex of the public key's first 8 bytes. */
void flt_key_id(const uint8_t pk[32], char out[17]);

/*
 * Sets m->signature and m->key_id (both malloc'd, as
 * protobuf_c_message_free_unpacked expects) from sk. What they held
 * before is not freed: sign a manifest that has no signature yet.
 */
int flt_pkg_sign(Flotilla__PackageManifest *m, const uint8_t sk[64],
		 flt_error_t *err);
/* 0 when m carries a valid signature by pk; FLT_EAUTH with "unsigned",
 * "signed by another key (key id X)" or "bad signature" otherwise. */
int flt_pkg_verify(const Flotilla__PackageManifest *m, const uint8_t pk[32],
		   flt_error_t *err);

#endif
