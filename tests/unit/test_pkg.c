/* Unit tests for common/pkg.c: digests, manifests, key files, signatures. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "testutil.h"

#include "flotilla/error.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

#define SHA_EMPTY \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* ---- digests ---------------------------------------------------------- */

static void test_sha256_vectors(void **state)
{
	char hex[FLT_SHA256_HEX];
	static char million[1000000];

	(void)state;
	flt_sha256_hex("", 0, hex);
	assert_string_equal(hex, SHA_EMPTY);
	flt_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	flt_sha256_hex(
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce459"
				 "64ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	flt_sha256_hex(million, sizeof(million), hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48"
				 "a497200e046d39ccc7112cd0");
}

static void test_sha256_valid(void **state)
{
	(void)state;
	assert_true(flt_sha256_valid(SHA_EMPTY));
	assert_true(flt_sha256_valid(SHA_ABC));
	assert_false(flt_sha256_valid(NULL));
	assert_false(flt_sha256_valid(""));
	/* Upper case, one digit short, one too many, a non-hex letter. */
	assert_false(flt_sha256_valid(
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	assert_false(flt_sha256_valid(
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
	assert_false(flt_sha256_valid(
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
	assert_false(flt_sha256_valid(
		"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

/* ---- names ------------------------------------------------------------ */

static void test_name_valid(void **state)
{
	char s[100];

	(void)state;
	assert_true(flt_pkg_name_valid("web"));
	assert_true(flt_pkg_name_valid("my-app_2.x"));
	assert_true(flt_pkg_name_valid("A"));
	assert_false(flt_pkg_name_valid(NULL));
	assert_false(flt_pkg_name_valid(""));
	assert_false(flt_pkg_name_valid(".hidden"));
	assert_false(flt_pkg_name_valid("-flag"));
	assert_false(flt_pkg_name_valid("a/b"));
	assert_false(flt_pkg_name_valid(".."));
	assert_false(flt_pkg_name_valid("a b"));
	assert_false(flt_pkg_name_valid("a+b"));
	assert_false(flt_pkg_name_valid("caf\xc3\xa9"));
	memset(s, 'a', 64);
	s[64] = '\0';
	assert_true(flt_pkg_name_valid(s));
	s[64] = 'a';
	s[65] = '\0';
	assert_false(flt_pkg_name_valid(s));
}

static void test_version_valid(void **state)
{
	char s[200];

	(void)state;
	assert_true(flt_pkg_version_valid("1.0"));
	assert_true(flt_pkg_version_valid("2:1.4.1-1+b1~rc1_x"));
	assert_true(flt_pkg_version_valid("-1"));
	assert_true(flt_pkg_version_valid("current2"));
	assert_false(flt_pkg_version_valid(NULL));
	assert_false(flt_pkg_version_valid(""));
	assert_false(flt_pkg_version_valid("."));
	assert_false(flt_pkg_version_valid(".."));
	assert_false(flt_pkg_version_valid(".1"));
	assert_false(flt_pkg_version_valid("1/2"));
	assert_false(flt_pkg_version_valid("1 2"));
	assert_false(flt_pkg_version_valid("current"));
	memset(s, '1', 128);
	s[128] = '\0';
	assert_true(flt_pkg_version_valid(s));
	s[128] = '1';
	s[129] = '\0';
	assert_false(flt_pkg_version_valid(s));
}

/* ---- manifests -------------------------------------------------------- */

/* A valid manifest of 2500 bytes in chunks of 1000, on the stack. */
struct mf {
	Flotilla__PackageManifest m;
	char *chunks[3];
};

static void mf_init(struct mf *f)
{
	flotilla__package_manifest__init(&f->m);
	f->m.name = "web";
	f->m.version = "1.2.3";
	f->m.sha256 = SHA_ABC;
	f->m.size = 2500;
	f->m.chunk_size = 1000;
	f->chunks[0] = SHA_ABC;
	f->chunks[1] = SHA_EMPTY;
	f->chunks[2] = SHA_ABC;
	f->m.chunks = f->chunks;
	f->m.n_chunks = 3;
	f->m.format = "archive";
	f->m.file_name = "";
}

/* The check fails with FLT_EPROTO and a message containing want. */
static void check_fails(const Flotilla__PackageManifest *m, const char *want)
{
	flt_error_t err = { 0 };

	assert_int_equal(flt_pkg_manifest_check(m, &err), FLT_EPROTO);
	assert_int_equal(err.code, FLT_EPROTO);
	assert_msg(&err, want);
}

static void test_manifest_ok(void **state)
{
	flt_error_t err = { 0 };
	uint8_t sig[64] = { 0 };
	struct mf f;

	(void)state;
	mf_init(&f);
	assert_int_equal(flt_pkg_manifest_check(&f.m, &err), 0);
	assert_int_equal(err.code, 0);

	/* An exact multiple of chunk_size. */
	f.m.size = 3000;
	assert_int_equal(flt_pkg_manifest_check(&f.m, NULL), 0);
	/* An empty package has no chunks. */
	f.m.size = 0;
	f.m.n_chunks = 0;
	f.m.sha256 = SHA_EMPTY;
	assert_int_equal(flt_pkg_manifest_check(&f.m, NULL), 0);

	mf_init(&f);
	f.m.format = "file";
	f.m.file_name = "tool.bin";
	f.m.signature.data = sig;
	f.m.signature.len = 64;
	f.m.key_id = "0123456789abcdef";
	assert_int_equal(flt_pkg_manifest_check(&f.m, NULL), 0);
	/* An archive may carry the name it was pushed from. */
	f.m.format = "archive";
	assert_int_equal(flt_pkg_manifest_check(&f.m, NULL), 0);
}

static void test_manifest_errors(void **state)
{
	uint8_t sig[64] = { 0 };
	char *many[5000];
	char big[300];
	struct mf f;
	size_t i;

	(void)state;
	mf_init(&f);
	f.m.name = "../etc";
	check_fails(&f.m, "name \"../etc\"");
	mf_init(&f);
	f.m.name = "";
	check_fails(&f.m, "name \"\"");
	mf_init(&f);
	f.m.version = "1.0/../..";
	check_fails(&f.m, "version \"1.0/../..\"");
	mf_init(&f);
	f.m.version = "current";
	check_fails(&f.m, "version \"current\"");
	mf_init(&f);
	f.m.sha256 = "ABC";
	check_fails(&f.m, "sha256 \"ABC\"");
	mf_init(&f);
	f.m.size = FLT_PKG_MAX_SIZE + 1;
	check_fails(&f.m, "size 1073741825: above the limit");
	mf_init(&f);
	f.m.chunk_size = 0;
	check_fails(&f.m, "chunk_size 0");
	mf_init(&f);
	f.m.chunk_size = FLT_PKG_CHUNK_SIZE + 1;
	check_fails(&f.m, "chunk_size 262145");

	/* One chunk too few, one too many, chunks for an empty package. */
	mf_init(&f);
	f.m.n_chunks = 2;
	check_fails(&f.m, "chunks: 2 digests, expected 3");
	mf_init(&f);
	f.m.size = 2000;
	check_fails(&f.m, "chunks: 3 digests, expected 2");
	mf_init(&f);
	f.m.size = 0;
	check_fails(&f.m, "chunks: 3 digests, expected 0");

	/* More chunks than a package may have, even if they add up. */
	for (i = 0; i < FLT_ARRAY_SIZE(many); i++)
		many[i] = SHA_ABC;
	mf_init(&f);
	f.m.chunk_size = 1;
	f.m.size = FLT_ARRAY_SIZE(many);
	f.m.chunks = many;
	f.m.n_chunks = FLT_ARRAY_SIZE(many);
	check_fails(&f.m, "chunks: 5000, above the limit of 4096");

	mf_init(&f);
	f.chunks[1] = "not-a-digest";
	check_fails(&f.m, "chunks[1] \"not-a-digest\"");
	mf_init(&f);
	f.m.format = "tarball";
	check_fails(&f.m, "format \"tarball\"");
	mf_init(&f);
	f.m.format = "file";
	check_fails(&f.m, "file_name: required");
	f.m.file_name = "../x";
	check_fails(&f.m, "file_name \"../x\"");
	f.m.file_name = "..";
	check_fails(&f.m, "file_name \"..\"");
	f.m.file_name = ".";
	check_fails(&f.m, "file_name \".\"");
	f.m.file_name = "a\nb";
	check_fails(&f.m, "file_name \"a\\x0ab\"");
	memset(big, 'x', 256);
	big[256] = '\0';
	f.m.file_name = big;
	check_fails(&f.m, "file_name \"xxxx");
	mf_init(&f);
	f.m.file_name = "dir/x.tar";
	check_fails(&f.m, "file_name \"dir/x.tar\"");

	mf_init(&f);
	f.m.signature.data = sig;
	f.m.signature.len = 63;
	check_fails(&f.m, "signature: 63 bytes");
	mf_init(&f);
	f.m.key_id = "0123";
	check_fails(&f.m, "key_id \"0123\"");
	f.m.key_id = "0123456789ABCDEF";
	check_fails(&f.m, "key_id \"0123456789ABCDEF\"");
}

static void test_signed_message(void **state)
{
	struct mf f;
	char *s;

	(void)state;
	mf_init(&f);
	f.m.format = "file";
	f.m.file_name = "tool";
	s = flt_pkg_signed_message(&f.m);
	assert_non_null(s);
	assert_string_equal(s, "flotilla-package-v1\nweb\n1.2.3\n" SHA_ABC
			       "\n2500\nfile\ntool\n");
	free(s);
}

/* ---- key files -------------------------------------------------------- */

static void paths(const char *dir, char pub[256], char sec[256])
{
	snprintf(pub, 256, "%s/fleet.pub", dir);
	snprintf(sec, 256, "%s/fleet.key", dir);
}

static void test_key_generate_load(void **state)
{
	const char *dir = *state;
	uint8_t pk[32], sk[64], pk2[32];
	char pub[256], sec[256], id[17], *line = NULL;
	flt_error_t err = { 0 };
	struct stat st;

	paths(dir, pub, sec);
	assert_int_equal(flt_key_generate(pub, sec, &err), 0);
	assert_int_equal(stat(sec, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(flt_read_file(pub, 256, &line), 0);
	assert_true(!strncmp(line, "flotilla-ed25519-public ", 24));
	free(line);
	assert_int_equal(flt_read_file(sec, 256, &line), 0);
	assert_true(!strncmp(line, "flotilla-ed25519-secret ", 24));
	free(line);

	assert_int_equal(flt_key_load_public(pub, pk, &err), 0);
	assert_int_equal(flt_key_load_secret(sec, sk, &err), 0);
	/* The secret key ends with the public one. */
	assert_memory_equal(sk + 32, pk, 32);
	flt_key_id(pk, id);
	assert_int_equal(strlen(id), 16);
	for (int i = 0; i < 16; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));

	/* Nothing is replaced, and no temporary file is left behind. */
	assert_int_equal(flt_key_generate(pub, sec, &err), -EEXIST);
	assert_msg(&err, "already exists");
	assert_int_equal(flt_key_load_public(pub, pk2, NULL), 0);
	assert_memory_equal(pk, pk2, 32);
	{
		char other[256];

		snprintf(other, sizeof(other), "%s/other.pub", dir);
		assert_int_equal(flt_key_generate(other, sec, &err), -EEXIST);
		assert_msg(&err, "secret key");
		assert_int_equal(access(other, F_OK), -1);
	}
	{
		DIR *d = opendir(dir);
		struct dirent *e;
		int n = 0;

		assert_non_null(d);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		assert_int_equal(n, 2);
	}
}

static void test_key_secret_mode_refused(void **state)
{
	const char *dir = *state;
	char pub[256], sec[256];
	flt_error_t err = { 0 };
	uint8_t sk[64];

	paths(dir, pub, sec);
	assert_int_equal(flt_key_generate(pub, sec, NULL), 0);
	assert_int_equal(chmod(sec, 0644), 0);
	assert_int_equal(flt_key_load_secret(sec, sk, &err), -EACCES);
	assert_msg(&err, sec);
	assert_msg(&err, "mode 0644");
	assert_msg(&err, "group or others");
	assert_int_equal(chmod(sec, 0640), 0);
	assert_int_equal(flt_key_load_secret(sec, sk, &err), -EACCES);
	assert_int_equal(chmod(sec, 0400), 0);
	assert_int_equal(flt_key_load_secret(sec, sk, &err), 0);
}

static void test_key_load_errors(void **state)
{
	const char *dir = *state;
	char path[256], pub[256], sec[256], line[200];
	flt_error_t err = { 0 };
	uint8_t pk[32], sk[64];
	int fd;

	snprintf(path, sizeof(path), "%s/missing.pub", dir);
	assert_int_equal(flt_key_load_public(path, pk, &err), -ENOENT);
	assert_msg(&err, "missing.pub");

	/* A secret key where a public one is expected, and the reverse. */
	paths(dir, pub, sec);
	assert_int_equal(flt_key_generate(pub, sec, NULL), 0);
	assert_int_equal(flt_key_load_public(sec, pk, &err), FLT_EPROTO);
	assert_msg(&err, "not a flotilla public key file");
	/* The message never shows the secret. */
	assert_null(strstr(err.msg, "secret "));

	snprintf(path, sizeof(path), "%s/bad.pub", dir);
	write_file(path, "flotilla-ed25519-public !!!!\n", 29);
	assert_int_equal(flt_key_load_public(path, pk, &err), FLT_EPROTO);
	assert_msg(&err, "bad base64");
	/* 24 bytes of valid base64: the wrong length. */
	snprintf(line, sizeof(line),
		 "flotilla-ed25519-public AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
	write_file(path, line, strlen(line));
	assert_int_equal(flt_key_load_public(path, pk, &err), FLT_EPROTO);
	assert_msg(&err, "key is 24 bytes, expected 32");

	/* A secret key whose public half was tampered with. */
	{
		uint8_t raw[64];
		size_t n;

		assert_int_equal(flt_key_load_secret(sec, raw, NULL), 0);
		raw[40] ^= 1;
		memcpy(line, "flotilla-ed25519-secret ", 24);
		sodium_bin2base64(line + 24, sizeof(line) - 24, raw, 64,
				  sodium_base64_VARIANT_ORIGINAL);
		n = strlen(line);
		snprintf(path, sizeof(path), "%s/bad.key", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, line, n), (ssize_t)n);
		close(fd);
		assert_int_equal(flt_key_load_secret(path, sk, &err),
				 FLT_EPROTO);
		assert_msg(&err, "corrupt");
	}
	/* A directory is not a key. */
	assert_int_equal(flt_key_load_secret(dir, sk, &err), -EINVAL);
}

/* ---- signatures ------------------------------------------------------- */

static void keys(const char *dir, const char *tag, uint8_t pk[32],
		 uint8_t sk[64])
{
	char pub[256], sec[256];

	snprintf(pub, sizeof(pub), "%s/%s.pub", dir, tag);
	snprintf(sec, sizeof(sec), "%s/%s.key", dir, tag);
	assert_int_equal(flt_key_generate(pub, sec, NULL), 0);
	assert_int_equal(flt_key_load_public(pub, pk, NULL), 0);
	assert_int_equal(flt_key_load_secret(sec, sk, NULL), 0);
}

static void test_sign_verify(void **state)
{
	const char *dir = *state;
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	flt_error_t err = { 0 };
	char id[17];
	struct mf f;

	keys(dir, "fleet", pk, sk);
	keys(dir, "other", pk2, sk2);
	mf_init(&f);

	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	assert_msg(&err, "package web 1.2.3: unsigned");

	assert_int_equal(flt_pkg_sign(&f.m, sk, &err), 0);
	assert_int_equal(f.m.signature.len, 64);
	flt_key_id(pk, id);
	assert_string_equal(f.m.key_id, id);
	assert_int_equal(flt_pkg_manifest_check(&f.m, NULL), 0);
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), 0);

	/* Every covered field counts. */
	f.m.version = "1.2.4";
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	assert_msg(&err, "package web 1.2.4: bad signature");
	f.m.version = "1.2.3";
	f.m.size = 2501;
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	assert_msg(&err, "bad signature");
	f.m.size = 2500;
	f.m.sha256 = SHA_EMPTY;
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	f.m.sha256 = SHA_ABC;
	f.m.format = "file";
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	f.m.format = "archive";
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), 0);
	f.m.signature.data[10] ^= 0x40;
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	assert_msg(&err, "bad signature");
	f.m.signature.data[10] ^= 0x40;

	/* Checked against another key: named by its id. */
	assert_int_equal(flt_pkg_verify(&f.m, pk2, &err), FLT_EAUTH);
	assert_msg(&err, "signed by another key (key id ");
	assert_msg(&err, id);
	/* Without a key id, the other key simply does not verify. */
	free(f.m.key_id);
	f.m.key_id = "";
	assert_int_equal(flt_pkg_verify(&f.m, pk2, &err), FLT_EAUTH);
	assert_msg(&err, "bad signature");
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), 0);
	free(f.m.signature.data);

	/* A key id that claims our key on another key's signature. */
	assert_int_equal(flt_pkg_sign(&f.m, sk2, NULL), 0);
	free(f.m.key_id);
	f.m.key_id = id;
	assert_int_equal(flt_pkg_verify(&f.m, pk, &err), FLT_EAUTH);
	assert_msg(&err, "bad signature");
	free(f.m.signature.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_sha256_valid),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_version_valid),
		cmocka_unit_test(test_manifest_ok),
		cmocka_unit_test(test_manifest_errors),
		cmocka_unit_test(test_signed_message),
#define T(f) cmocka_unit_test_setup_teardown(f, tmpdir_setup, tmpdir_teardown)
		T(test_key_generate_load),
		T(test_key_secret_mode_refused),
		T(test_key_load_errors),
		T(test_sign_verify),
#undef T
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
