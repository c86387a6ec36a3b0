/* Unit tests for the coordinator's lifecycle tables (coordinator/lifecycle.h)
 * and their stepping and rendering (common/fsm.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla.pb-c.h"
#include "lifecycle.h"

#define ST(x) FLOTILLA__TARGET_STATE__TARGET_STATE_##x
#define CS(x) FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_##x

static void test_tables_check(void **state)
{
	(void)state;
	size_t n = 0;
	for (const flt_fsm_t *const *f = coord_lifecycles; *f; f++, n++) {
		flt_error_t err = { 0 };
		if (flt_fsm_check(*f, NULL, &err) < 0)
			fail_msg("%s", err.msg);
		/* Every event has a name. */
		for (unsigned e = 0; e < (*f)->n_events; e++)
			assert_non_null((*f)->events[e]);
	}
	assert_true(n >= 2);
}

/* Steps *s on ev and checks the result and the state it leaves. */
static void step(const flt_fsm_t *f, int *s, int ev, int rc, int want)
{
	flt_error_t err = { 0 };
	assert_int_equal(flt_fsm_step(f, "1a2b3c4d", s, ev, &err), rc);
	assert_int_equal(*s, want);
}

static void test_campaign(void **state)
{
	const flt_fsm_t *f = &coord_campaign_fsm;
	int s = CS(UNKNOWN);
	(void)state;

	step(f, &s, CAMP_EV_CREATE, 1, CS(RUNNING));
	step(f, &s, CAMP_EV_PAUSE, 1, CS(PAUSED));
	/* The gate trips once more while paused: it stays paused. */
	step(f, &s, CAMP_EV_TRIP, 0, CS(PAUSED));
	step(f, &s, CAMP_EV_RESUME, 1, CS(RUNNING));
	step(f, &s, CAMP_EV_HOLD, 1, CS(PAUSED));
	step(f, &s, CAMP_EV_RESUME, 1, CS(RUNNING));
	step(f, &s, CAMP_EV_FINISH, 1, CS(COMPLETE));
	/* A complete campaign ignores the gate... */
	step(f, &s, CAMP_EV_TRIP_ABORT, 0, CS(COMPLETE));

	/* ...and refuses operators, with the table's message. */
	flt_error_t err = { 0 };
	assert_int_equal(flt_fsm_step(f, "1a2b3c4d", &s, CAMP_EV_RESUME, &err),
			 FLT_ECONFLICT);
	assert_int_equal(s, CS(COMPLETE));
	assert_string_equal(err.msg,
			    "campaign 1a2b3c4d: cannot resume when complete");
	assert_int_equal(flt_fsm_step(f, "1a2b3c4d", &s, CAMP_EV_PAUSE, &err),
			 FLT_ECONFLICT);
	assert_string_equal(err.msg,
			    "campaign 1a2b3c4d: cannot pause when complete");

	/* Abort, from running or paused, once. */
	s = CS(PAUSED);
	step(f, &s, CAMP_EV_ABORT, 1, CS(ABORTING));
	step(f, &s, CAMP_EV_ABORT, FLT_ECONFLICT, CS(ABORTING));
	step(f, &s, CAMP_EV_TRIP, 0, CS(ABORTING));
	step(f, &s, CAMP_EV_SETTLE, 1, CS(ABORTED));
	step(f, &s, CAMP_EV_ABORT, FLT_ECONFLICT, CS(ABORTED));
	s = CS(RUNNING);
	step(f, &s, CAMP_EV_TRIP_ABORT, 1, CS(ABORTING));
	/* Pausing is for running campaigns only. */
	s = CS(PAUSED);
	step(f, &s, CAMP_EV_PAUSE, FLT_ECONFLICT, CS(PAUSED));
}

static void test_target(void **state)
{
	const flt_fsm_t *f = &coord_target_fsm;
	int s = ST(UNKNOWN);
	(void)state;

	step(f, &s, TARGET_EV_PLAN, 1, ST(PENDING));
	/* Reports never reach a target without a step. */
	step(f, &s, TARGET_EV_START, FLT_ECONFLICT, ST(PENDING));
	step(f, &s, TARGET_EV_DISPATCH, 1, ST(DISPATCHED));
	/* Abort lets a host in flight finish. */
	step(f, &s, TARGET_EV_ABORT, 0, ST(DISPATCHED));
	step(f, &s, TARGET_EV_START, 1, ST(APPLYING));
	step(f, &s, TARGET_EV_START, 0, ST(APPLYING));
	step(f, &s, TARGET_EV_SUCCEED, 1, ST(REMEDIATED));
	/* A settled step's reports change nothing. */
	step(f, &s, TARGET_EV_FAIL, 0, ST(REMEDIATED));
	step(f, &s, TARGET_EV_ABORT, 1, ST(ROLLING_BACK));
	step(f, &s, TARGET_EV_START, 0, ST(ROLLING_BACK));
	step(f, &s, TARGET_EV_SUCCEED, 1, ST(ROLLED_BACK));
	step(f, &s, TARGET_EV_ABORT, 0, ST(ROLLED_BACK));

	/* The per-host timeout: offline only when the host never started. */
	s = ST(DISPATCHED);
	step(f, &s, TARGET_EV_FAIL_OFFLINE, 1, ST(FAILED_OFFLINE));
	s = ST(APPLYING);
	step(f, &s, TARGET_EV_FAIL_OFFLINE, 1, ST(FAILED));
	s = ST(ROLLING_BACK);
	step(f, &s, TARGET_EV_FAIL, 1, ST(FAILED));

	s = ST(APPLYING);
	step(f, &s, TARGET_EV_STAY_EXPOSED, 1, ST(STILL_EXPOSED));
	step(f, &s, TARGET_EV_ABORT, 1, ST(ROLLING_BACK));
	s = ST(PENDING);
	step(f, &s, TARGET_EV_ABORT, 1, ST(SKIPPED));
	s = ST(UNKNOWN);
	step(f, &s, TARGET_EV_LATE, 1, ST(LATE));
	step(f, &s, TARGET_EV_DISPATCH, FLT_ECONFLICT, ST(LATE));
}

static void test_markdown(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	(void)state;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	flt_fsm_markdown(&coord_target_fsm, out);
	fclose(out);
	assert_non_null(strstr(buf, "## campaign target\n"));
	assert_non_null(strstr(buf, "| *(new)* | → pending | → late |"));
	assert_non_null(strstr(buf, "| **dispatched** |"));
	assert_non_null(strstr(buf, "→ failed_offline |"));
	assert_null(strstr(buf, "**unknown**"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_check),
		cmocka_unit_test(test_campaign),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_markdown),
	};
	return cmocka_run_group_tests_name("unit.lifecycle", tests, NULL, NULL);
}
