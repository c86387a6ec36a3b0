/* The coordinator's method table (coordinator/api.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator.h"

/* Served by an agent on its own API address, not by the coordinator. */
static bool agent_own(int v)
{
	return v == FLOTILLA__METHOD__METHOD_AGENT_LOGS;
}

static void every_method_has_one_row(void **state)
{
	(void)state;
	const ProtobufCEnumDescriptor *d = &flotilla__method__descriptor;
	size_t n;
	const coord_method_t *rows = coord_api_methods(&n);
	size_t expected = 0;
	for (unsigned i = 0; i < d->n_values; i++) {
		int v = d->values[i].value;
		if (v == 0 || agent_own(v)) {
			assert_null(coord_api_method((Flotilla__Method)v));
			continue;
		}
		expected++;
		size_t found = 0;
		for (size_t k = 0; k < n; k++)
			found += rows[k].method == (Flotilla__Method)v;
		if (found != 1)
			fail_msg("%s: %zu rows", d->values[i].name, found);
		const coord_method_t *m = coord_api_method((Flotilla__Method)v);
		assert_non_null(m);
		assert_non_null(m->handler);
		assert_non_null(m->request);
		assert_non_null(m->response);
		/* Agent methods are numbered below 50, operator ones from
		 * 100 (flotilla.proto). */
		assert_int_equal(m->port, v < 50 ? COORD_PORT_AGENT
						 : COORD_PORT_OPERATOR);
		if (m->port == COORD_PORT_OPERATOR) {
			assert_true(m->perm != COORD_PERM_JOIN &&
				    m->perm != COORD_PERM_NODE_SELF);
		} else {
			assert_true(m->perm == COORD_PERM_JOIN ||
				    m->perm == COORD_PERM_NODE_SELF);
		}
		/* What changes state never needs only a read permission. */
		if (m->mutates)
			assert_null(strstr(coord_perm_name(m->perm), ":read"));
		assert_string_not_equal(coord_perm_name(m->perm), "?");
	}
	assert_int_equal(n, expected);
	/* In the order of the proto's enum. */
	for (size_t k = 1; k < n; k++)
		assert_true(rows[k - 1].method < rows[k].method);
}

static void reads_change_nothing(void **state)
{
	(void)state;
	const coord_method_t *m =
		coord_api_method(FLOTILLA__METHOD__METHOD_JOB_GET);
	assert_non_null(m);
	assert_false(m->mutates);
	assert_int_equal(m->perm, COORD_PERM_NS_READ_JOB);
	assert_true(coord_perm_namespaced(m->perm));
	m = coord_api_method(FLOTILLA__METHOD__METHOD_CAMPAIGN_ABORT);
	assert_true(m->mutates);
	assert_int_equal(m->perm, COORD_PERM_CAMPAIGN_WRITE);
	assert_false(coord_perm_namespaced(m->perm));
	m = coord_api_method(FLOTILLA__METHOD__METHOD_JOB_STOP);
	assert_int_equal(m->perm, COORD_PERM_NS_STOP_JOB);
	m = coord_api_method(FLOTILLA__METHOD__METHOD_ACL_TOKEN_CREATE);
	assert_int_equal(m->perm, COORD_PERM_MANAGEMENT);
	m = coord_api_method(FLOTILLA__METHOD__METHOD_ACL_BOOTSTRAP);
	assert_int_equal(m->perm, COORD_PERM_ANYONE);
	m = coord_api_method(FLOTILLA__METHOD__METHOD_REGISTER);
	assert_int_equal(m->perm, COORD_PERM_JOIN);
	assert_ptr_equal(m->request, &flotilla__register_request__descriptor);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_method_has_one_row),
		cmocka_unit_test(reads_change_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
