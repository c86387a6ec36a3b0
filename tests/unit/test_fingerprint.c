/* Unit tests for agent/fingerprint.c: a host's own strings never keep it
 * out of the fleet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "agent.h"
#include "flotilla/pb.h"

/* Fingerprints the os-release text, and checks that the coordinator's
 * decoder takes what the agent would send. */
static void read_with(const char *dir, const char *text, agent_fingerprint_t *f)
{
	char path[512];
	flt_error_t err = { 0 };
	snprintf(path, sizeof(path), "%s/os-release", dir);
	write_file(path, text, strlen(text));
	agent_fingerprint_read(f, path);
	size_t len = protobuf_c_message_get_packed_size(&f->fp.base);
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	protobuf_c_message_pack(&f->fp.base, buf);
	ProtobufCMessage *m = NULL;
	if (flt_pb_unpack(&flotilla__fingerprint__descriptor, buf, len, NULL,
			  &m, &err) < 0)
		fail_msg("the coordinator would refuse it: %s", err.msg);
	protobuf_c_message_free_unpacked(m, NULL);
	free(buf);
}

static void test_plain(void **state)
{
	agent_fingerprint_t f;
	read_with(*state,
		  "ID=debian\nVERSION_ID=\"12\"\n"
		  "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		  &f);
	assert_string_equal(f.os_id, "debian");
	assert_string_equal(f.os_version, "12");
	assert_string_equal(f.os_name, "Debian GNU/Linux 12 (bookworm)");
	read_with(*state, "PRETTY_NAME=\"Caf\xc3\xa9 \xe2\x80\xae OS\"\n", &f);
	assert_string_equal(f.os_name, "Caf\xc3\xa9 \xe2\x80\xae OS");
}

/* An escape sequence is valid text: sent as it is (every display
 * escapes it), never a reason to refuse the host. */
static void test_escape_sequence_sent(void **state)
{
	agent_fingerprint_t f;
	read_with(*state, "PRETTY_NAME=\"Evil \x1b]0;pwned\a\x1b[2J OS\"\n",
		  &f);
	assert_string_equal(f.os_name, "Evil \x1b]0;pwned\a\x1b[2J OS");
}

/* Invalid UTF-8 cannot be sent: the field goes escaped. */
static void test_invalid_utf8_escaped(void **state)
{
	agent_fingerprint_t f;
	read_with(*state,
		  "ID=ev\xffil\nPRETTY_NAME=\"Evil \x1b[2J\xff OS\"\n"
		  "VERSION_ID=\xc3\n",
		  &f);
	assert_string_equal(f.os_name, "Evil \\x1b[2J\\xff OS");
	assert_string_equal(f.os_id, "ev\\xffil");
	assert_string_equal(f.os_version, "\\xc3");

	/* Cut to the field, between two escapes, still sendable. */
	char text[600] = "PRETTY_NAME=";
	memset(text + 12, 0xff, 400);
	strcpy(text + 412, "\n");
	read_with(*state, text, &f);
	assert_true(strlen(f.os_name) <= 255);
	assert_int_equal(strlen(f.os_name) % 4, 0);
	assert_memory_equal(f.os_name, "\\xff\\xff", 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_escape_sequence_sent,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_escaped,
						tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("unit.fingerprint", tests, NULL,
					   NULL);
}
