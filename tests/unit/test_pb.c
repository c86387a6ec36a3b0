/* Unit tests for common/pb.c: copies, comparison and string fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla.pb-c.h"
#include "flotilla/pb.h"

static Flotilla__Campaign *campaign_new(void)
{
	Flotilla__Campaign *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	flotilla__campaign__init(c);
	c->id = strdup("c1");
	c->message = strdup("");
	c->spec = calloc(1, sizeof(*c->spec));
	assert_non_null(c->spec);
	flotilla__campaign_spec__init(c->spec);
	c->spec->target = strdup("log4j-core < 2.17.1");
	c->state = FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_RUNNING;
	c->wave = 2;
	return c;
}

static void campaign_free(Flotilla__Campaign *c)
{
	free(c->id);
	free(c->message);
	free(c->spec->target);
	free(c->spec);
	free(c);
}

static void test_dup_equal(void **state)
{
	(void)state;
	Flotilla__Campaign *c = campaign_new();
	Flotilla__Campaign *d = flt_pb_dup(&c->base);
	assert_ptr_not_equal(d, c);
	assert_ptr_not_equal(d->spec, c->spec);
	assert_string_equal(d->id, "c1");
	assert_string_equal(d->spec->target, "log4j-core < 2.17.1");
	assert_int_equal(d->wave, 2);
	assert_true(flt_pb_equal(&c->base, &d->base));

	/* Deep: changing the copy leaves the original. */
	flt_pb_set_str(&d->spec->target, "bash < 5");
	assert_string_equal(c->spec->target, "log4j-core < 2.17.1");
	assert_false(flt_pb_equal(&c->base, &d->base));
	flt_pb_set_str(&d->spec->target, c->spec->target);
	assert_true(flt_pb_equal(&c->base, &d->base));
	d->wave = 3;
	assert_false(flt_pb_equal(&c->base, &d->base));

	assert_true(flt_pb_equal(NULL, NULL));
	assert_false(flt_pb_equal(&c->base, NULL));
	assert_false(flt_pb_equal(NULL, &c->base));

	/* An empty message copies too. */
	Flotilla__CampaignTarget t = FLOTILLA__CAMPAIGN_TARGET__INIT;
	Flotilla__CampaignTarget *u = flt_pb_dup(&t.base);
	assert_true(flt_pb_equal(&t.base, &u->base));
	/* set_str never frees protobuf-c's shared default, and NULL is "". */
	assert_ptr_equal(t.message, protobuf_c_empty_string);
	flt_pb_set_str(&t.message, NULL);
	assert_string_equal(t.message, "");
	assert_ptr_not_equal(t.message, protobuf_c_empty_string);
	free(t.message);

	flotilla__campaign_target__free_unpacked(u, NULL);
	flotilla__campaign__free_unpacked(d, NULL);
	campaign_free(c);
}

static void test_enum_names(void **state)
{
	(void)state;
	const ProtobufCEnumDescriptor *d = &flotilla__target_state__descriptor;
	assert_string_equal(
		flt_pb_enum_name(
			d, FLOTILLA__TARGET_STATE__TARGET_STATE_FAILED_OFFLINE),
		"failed_offline");
	assert_string_equal(flt_pb_enum_name(d, 999), "unknown");
	int v = 0;
	assert_int_equal(flt_pb_enum_value(d, "still_exposed", &v), 0);
	assert_int_equal(v, FLOTILLA__TARGET_STATE__TARGET_STATE_STILL_EXPOSED);
	assert_int_equal(flt_pb_enum_value(d, "still-exposed", &v),
			 FLT_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dup_equal),
		cmocka_unit_test(test_enum_names),
	};
	return cmocka_run_group_tests_name("unit.pb", tests, NULL, NULL);
}
