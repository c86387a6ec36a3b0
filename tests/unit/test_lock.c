/* Lock levels (common/lock.c): the order is checked per thread. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "flotilla/lock.h"

#ifdef FLT_LOCK_CHECK

static flt_mutex_t outer, inner;
static flt_rwlock_t rw;

static int setup(void **state)
{
	(void)state;
	flt_mutex_init(&outer, 10, "outer");
	flt_rwlock_init(&rw, 20, "rw");
	flt_mutex_init(&inner, 30, "inner");
	return 0;
}

static void in_order_is_fine(void **state)
{
	(void)state;
	flt_mutex_lock(&outer);
	flt_rwlock_rdlock(&rw);
	flt_mutex_lock(&inner);
	assert_int_equal(flt_lock_held(), 3);
	/* Released in any order. */
	flt_mutex_unlock(&outer);
	flt_mutex_unlock(&inner);
	flt_rwlock_unlock(&rw);
	assert_int_equal(flt_lock_held(), 0);
	/* A lower level again once nothing above it is held. */
	flt_mutex_lock(&inner);
	flt_mutex_unlock(&inner);
	flt_mutex_lock(&outer);
	flt_mutex_unlock(&outer);
}

/* Runs fn in a child; returns the signal that ended it (0: exited). */
static int in_child(void (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The abort message is expected: keep the log quiet. */
		freopen("/dev/null", "w", stderr);
		fn();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void inverted(void)
{
	flt_mutex_lock(&inner);
	flt_mutex_lock(&outer);
}

static void same_twice(void)
{
	flt_rwlock_rdlock(&rw);
	flt_rwlock_rdlock(&rw);
}

static void out_of_order_aborts(void **state)
{
	(void)state;
	assert_int_equal(in_child(inverted), SIGABRT);
	/* A recursive read lock is an order violation too: a writer queued
	 * between the two would deadlock it. */
	assert_int_equal(in_child(same_twice), SIGABRT);
}

#endif

int main(void)
{
#ifndef FLT_LOCK_CHECK
	printf("SKIP: unit.lock: the lock order is checked only in builds "
	       "with FLT_LOCK_CHECK (the sanitizer build)\n");
	return 77;
#else
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(in_order_is_fine),
		cmocka_unit_test(out_of_order_aborts),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
#endif
}
