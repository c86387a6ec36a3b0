/*
 * Unit tests for agent/syscallfilter.c.
 *
 * Two views of the same filter: an interpreter of classic BPF evaluates
 * the compiled program for chosen syscalls, which holds whatever the
 * privileges of the test; and probes run each syscall in a forked child
 * that installed the filter. Every probe's arguments are harmless even
 * if the filter let the call through as root (bad magic, missing paths,
 * invalid flags), and each dangerous probe is repeated without the filter
 * to show that its EPERM came from the filter.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <seccomp.h>

#include "flotilla/util.h"
#include "syscallfilter.h"
#include "testutil.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

#define RET_ALLOW SECCOMP_RET_ALLOW
#define RET_EPERM (SECCOMP_RET_ERRNO | EPERM)
#define RET_ENOSYS (SECCOMP_RET_ERRNO | ENOSYS)
#define RET_KILL SECCOMP_RET_KILL_PROCESS

/* A child exits with CHILD_SETUP + errno when it cannot install. */
#define CHILD_SETUP 200

#define NOPATH "/nonexistent-flt-seccomp"

static agent_bpf_t dflt; /* the default profile, compiled once */
static uint32_t native_arch;

/* ---- an interpreter of seccomp's classic BPF -------------------------- */

static uint32_t bpf_eval(const agent_bpf_t *p, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };

	for (unsigned pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->insns[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
		bool cond = false;

		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
			if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
				assert_true(f->k % 4 == 0 &&
					    f->k + 4 <= sizeof(*d));
				memcpy(&a, (const char *)d + f->k, 4);
			} else if (f->code == (BPF_LD | BPF_IMM)) {
				a = f->k;
			} else if (f->code == (BPF_LD | BPF_MEM)) {
				assert_true(f->k < BPF_MEMWORDS);
				a = mem[f->k];
			} else {
				fail_msg("ld 0x%x at %u", f->code, pc);
			}
			break;
		case BPF_LDX:
			if (f->code == (BPF_LDX | BPF_IMM)) {
				x = f->k;
			} else if (f->code == (BPF_LDX | BPF_MEM)) {
				assert_true(f->k < BPF_MEMWORDS);
				x = mem[f->k];
			} else {
				fail_msg("ldx 0x%x at %u", f->code, pc);
			}
			break;
		case BPF_ST:
		case BPF_STX:
			assert_true(f->k < BPF_MEMWORDS);
			mem[f->k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(f->code)) {
			case BPF_AND: a &= src; break;
			case BPF_OR: a |= src; break;
			case BPF_ADD: a += src; break;
			case BPF_SUB: a -= src; break;
			default: fail_msg("alu 0x%x at %u", f->code, pc);
			}
			break;
		case BPF_JMP:
			switch (BPF_OP(f->code)) {
			case BPF_JA: pc += f->k; continue;
			case BPF_JEQ: cond = a == src; break;
			case BPF_JGT: cond = a > src; break;
			case BPF_JGE: cond = a >= src; break;
			case BPF_JSET: cond = (a & src) != 0; break;
			default: fail_msg("jmp 0x%x at %u", f->code, pc);
			}
			pc += cond ? f->jt : f->jf;
			break;
		case BPF_RET: return BPF_RVAL(f->code) == BPF_A ? a : f->k;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		}
	}
	fail_msg("program ran off its end");
	return 0;
}

static uint32_t eval(const agent_bpf_t *p, uint32_t arch, int nr, uint64_t a0)
{
	struct seccomp_data d = { .nr = nr, .arch = arch };

	d.args[0] = a0;
	return bpf_eval(p, &d);
}

static int nr_of(const char *name)
{
	return seccomp_syscall_resolve_name(name);
}

/* ---- children --------------------------------------------------------- */

typedef int (*probe_fn)(const void *arg);

/*
 * Runs fn in a child, with filter p installed after no_new_privs, or
 * unfiltered if p is NULL; returns the wait status. fn returns the exit
 * code: 0 or an errno.
 */
static int run_child(const agent_bpf_t *p, probe_fn fn, const void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (p) {
			int rc;

			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				_exit(CHILD_SETUP + errno);
			if ((rc = agent_bpf_install(p)) < 0)
				_exit(CHILD_SETUP - rc);
		}
		_exit(fn(arg));
	}
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	return status;
}

/* The errno the child reported (0: success); fails on a signal. */
static int child_errno(const agent_bpf_t *p, probe_fn fn, const void *arg)
{
	int status = run_child(p, fn, arg);

	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) >= CHILD_SETUP)
		fail_msg("child could not install the filter: %s",
			 strerror(WEXITSTATUS(status) - CHILD_SETUP));
	return WEXITSTATUS(status);
}

struct call {
	const char *name;
	long nr;
	long a[6];
};

static int do_call(const void *arg)
{
	const struct call *c = arg;
	long r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4],
			 c->a[5]);

	return r < 0 ? errno : 0;
}

static const char *errname(int e)
{
	return e == 0 ? "ok" : strerrorname_np(e) ? strerrorname_np(e) : "?";
}

/* ---- compile ---------------------------------------------------------- */

static void test_compile_default(void **state)
{
	struct timespec t0, t1;
	double best = 1e9, total = 0;
	agent_bpf_t p, q;
	const int rounds = 20;

	(void)state;
	for (int i = 0; i < rounds; i++) {
		double ms;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(agent_seccomp_compile(NULL, NULL, 0, &p, NULL),
				 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1e3 +
		     (t1.tv_nsec - t0.tv_nsec) / 1e6;
		total += ms;
		if (ms < best)
			best = ms;
		assert_int_equal(p.len, dflt.len);
		assert_memory_equal(p.insns, dflt.insns,
				    dflt.len * sizeof(*dflt.insns));
		agent_bpf_free(&p);
		assert_null(p.insns);
		assert_int_equal(p.len, 0);
	}
	printf("[  INFO    ] default profile: %u BPF instructions, compiled "
	       "in %.2f ms (best of %d, mean %.2f ms)\n",
	       dflt.len, best, rounds, total / rounds);
	assert_true(dflt.len > 0 && dflt.len <= BPF_MAXINSNS);

	/* "" and "default" are the same profile. */
	assert_int_equal(agent_seccomp_compile("", NULL, 0, &p, NULL), 0);
	assert_int_equal(agent_seccomp_compile("default", NULL, 0, &q, NULL),
			 0);
	assert_int_equal(p.len, dflt.len);
	assert_int_equal(q.len, dflt.len);
	assert_memory_equal(q.insns, dflt.insns, dflt.len * sizeof(*q.insns));
	agent_bpf_free(&p);
	agent_bpf_free(&q);
	agent_bpf_free(NULL);
}

static void test_compile_errors(void **state)
{
	const char *bad[] = { "read", "write", "foo" };
	const char *null_name[] = { NULL };
	flt_error_t err = { 0 };
	agent_bpf_t p = { .insns = (void *)&err, .len = 9 };

	(void)state;
	assert_int_equal(agent_seccomp_compile(NULL, bad, 3, &p, &err),
			 -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_string_equal(err.msg,
			    "seccomp.allow[2]: unknown syscall \"foo\"");
	assert_null(p.insns);
	assert_int_equal(p.len, 0);

	/* Names are checked even when nothing is filtered. */
	assert_int_equal(agent_seccomp_compile("unconfined", bad, 3, &p, &err),
			 -EINVAL);
	assert_int_equal(agent_seccomp_compile(NULL, null_name, 1, &p, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "seccomp.allow[0]: unknown syscall \"\"");

	assert_int_equal(agent_seccomp_compile("strict", NULL, 0, &p, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "seccomp.profile"));
	assert_non_null(strstr(err.msg, "\"strict\""));
	assert_int_equal(agent_seccomp_compile("Default", NULL, 0, &p, NULL),
			 -EINVAL);
}

static void test_compile_allow_variants(void **state)
{
	const char *dup[] = { "kcmp",  "kcmp",   "read",
			      "clone", "clone3", "personality" };
	const char *foreign[] = { "chown32" };
	agent_bpf_t p;

	(void)state;
	assert_int_equal(agent_seccomp_compile(NULL, dup, 6, &p, NULL), 0);
	assert_int_equal(eval(&p, native_arch, nr_of("kcmp"), 0), RET_ALLOW);
	assert_int_equal(eval(&p, native_arch, nr_of("clone3"), 0), RET_ALLOW);
	assert_int_equal(
		eval(&p, native_arch, nr_of("clone"), CLONE_NEWUSER | SIGCHLD),
		RET_ALLOW);
	assert_int_equal(
		eval(&p, native_arch, nr_of("personality"), READ_IMPLIES_EXEC),
		RET_ALLOW);
	assert_int_equal(eval(&p, native_arch, nr_of("mount"), 0), RET_EPERM);
	agent_bpf_free(&p);

	/* Known to libseccomp but not on this arch: nothing to allow. */
	if (nr_of("chown32") < 0) {
		assert_int_equal(
			agent_seccomp_compile(NULL, foreign, 1, &p, NULL), 0);
		assert_int_equal(p.len, dflt.len);
		agent_bpf_free(&p);
	}
}

/* ---- the profile, read by the interpreter ----------------------------- */

/* Refused: Docker's list without a capability, plus the agent's extras. */
static const char *const refused[] = {
	"mount",
	"umount2",
	"unshare",
	"setns",
	"ptrace",
	"kexec_load",
	"kexec_file_load",
	"init_module",
	"finit_module",
	"delete_module",
	"bpf",
	"perf_event_open",
	"keyctl",
	"add_key",
	"request_key",
	"clock_settime",
	"clock_adjtime",
	"settimeofday",
	"adjtimex",
	"reboot",
	"swapon",
	"swapoff",
	"pivot_root",
	"open_by_handle_at",
	"name_to_handle_at",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"acct",
	"quotactl",
	"lookup_dcookie",
	"move_mount",
	"fsopen",
	"fsconfig",
	"fsmount",
	"fspick",
	"open_tree",
	"mount_setattr",
	"syslog",
	"vhangup",
	"sethostname",
	"setdomainname",
	"iopl",
	"ioperm",
	"create_module",
	"get_kernel_syms",
	"query_module",
	"uselib",
	"ustat",
	"sysfs",
	"_sysctl",
	"nfsservctl",
	"vm86",
	"vm86old",
	"process_vm_readv",
	"process_vm_writev",
	"kcmp",
	"chroot",
	"fanotify_init",
	"pidfd_getfd",
	"process_madvise",
};

static const char *const allowed_names[] = {
	"read",     "write",     "openat",      "close",        "execve",
	"execveat", "futex",     "epoll_pwait", "socket",       "connect",
	"setuid",   "setresgid", "exit_group",  "rt_sigreturn", "mmap",
	"wait4",    "seccomp",   "prctl",
};

static void test_profile_rules(void **state)
{
	const uint64_t ns[] = { CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
				CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
				CLONE_NEWCGROUP };
	const uint64_t persona_ok[] = { 0, 0x8, 0x20000, 0x20008, 0xffffffff };
	const uint64_t persona_bad[] = { ADDR_LIMIT_32BIT, READ_IMPLIES_EXEC,
					 ADDR_NO_RANDOMIZE, 0x1,
					 0xffffffffffffffffULL };
	int clone = nr_of("clone"), allowed = 0, maxnr = 0;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(refused); i++) {
		int nr = nr_of(refused[i]);

		if (nr < 0)
			continue; /* not on this architecture */
		if (eval(&dflt, native_arch, nr, 0) != RET_EPERM)
			fail_msg("%s is not refused with EPERM", refused[i]);
	}
	for (size_t i = 0; i < FLT_ARRAY_SIZE(allowed_names); i++)
		if (eval(&dflt, native_arch, nr_of(allowed_names[i]), 0) !=
		    RET_ALLOW)
			fail_msg("%s is not allowed", allowed_names[i]);
#ifdef __x86_64__
	assert_int_equal(eval(&dflt, native_arch, nr_of("arch_prctl"), 0),
			 RET_ALLOW);
#endif

	assert_int_equal(eval(&dflt, native_arch, clone, SIGCHLD), RET_ALLOW);
	assert_int_equal(
		eval(&dflt, native_arch, clone,
		     CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
			     CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
			     CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID),
		RET_ALLOW);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(ns); i++) {
		assert_int_equal(
			eval(&dflt, native_arch, clone, ns[i] | SIGCHLD),
			RET_EPERM);
		/* The kernel ignores the high word; the filter must too. */
		assert_int_equal(eval(&dflt, native_arch, clone,
				      ns[i] | 0xffffffff00000000ULL),
				 RET_EPERM);
	}
	assert_int_equal(eval(&dflt, native_arch, nr_of("clone3"), 0),
			 RET_ENOSYS);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(persona_ok); i++)
		assert_int_equal(eval(&dflt, native_arch, nr_of("personality"),
				      persona_ok[i]),
				 RET_ALLOW);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(persona_bad); i++)
		assert_int_equal(eval(&dflt, native_arch, nr_of("personality"),
				      persona_bad[i]),
				 RET_EPERM);

	/* Another ABI is killed whatever the number. */
	if (native_arch != AUDIT_ARCH_I386)
		assert_int_equal(eval(&dflt, AUDIT_ARCH_I386, 20, 0), RET_KILL);
	if (native_arch != AUDIT_ARCH_AARCH64)
		assert_int_equal(eval(&dflt, AUDIT_ARCH_AARCH64, 172, 0),
				 RET_KILL);
	if (native_arch == AUDIT_ARCH_X86_64) {
		for (int nr = 0; nr < 600; nr++)
			assert_int_equal(eval(&dflt, native_arch,
					      __X32_SYSCALL_BIT | nr, 0),
					 RET_KILL);
	}
	/* A number no syscall has yet is refused, not allowed. */
	assert_int_equal(eval(&dflt, native_arch, 4000, 0), RET_EPERM);

	for (int nr = 0; nr < 1024; nr++) {
		if (eval(&dflt, native_arch, nr, 0) == RET_ALLOW)
			allowed++;
		char *name =
			seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (name)
			maxnr = nr;
		free(name);
	}
	printf("[  INFO    ] default profile allows %d syscalls (with "
	       "argument 0) of the %d numbers up to %d\n",
	       allowed, maxnr + 1, maxnr);
}

/* ---- the profile, run by the kernel ----------------------------------- */

static void test_refused_in_kernel(void **state)
{
	char longname[100];
	struct call calls[] = {
		{ "mount", 0, { (long)NOPATH, (long)NOPATH, 0, MS_BIND } },
		{ "umount2", 0, { (long)NOPATH, 0 } },
		{ "unshare", 0, { 0 } },
		{ "setns", 0, { -1, 0 } },
		{ "ptrace", 0, { 0x7fff, 0, 0, 0 } },
		{ "kexec_load", 0, { 0, 0, 0, 0xdead0000 } },
		{ "kexec_file_load", 0, { -1, -1, 0, 0, 0x7fff0000 } },
		{ "init_module", 0, { 0, 0, (long)"" } },
		{ "finit_module", 0, { -1, (long)"", 0 } },
		{ "delete_module", 0, { (long)"flt_no_such_mod", O_NONBLOCK } },
		{ "bpf", 0, { 0x7fff, 0, 0 } },
		{ "perf_event_open", 0, { 0, 0, -1, -1, 0 } },
		{ "keyctl", 0, { 0x7fff } },
		{ "add_key", 0, { 0, 0, 0, 0, 0 } },
		{ "request_key", 0, { 0, 0, 0, 0 } },
		{ "clock_settime", 0, { 9999, 0 } },
		{ "clock_adjtime", 0, { 9999, 0 } },
		{ "settimeofday", 0, { 0, 0 } },
		{ "adjtimex", 0, { 0 } },
		{ "reboot", 0, { 0, 0, 0, 0 } },
		{ "swapon", 0, { (long)NOPATH, 0 } },
		{ "swapoff", 0, { (long)NOPATH } },
		{ "pivot_root", 0, { (long)NOPATH, (long)NOPATH } },
		{ "open_by_handle_at", 0, { -1, 0, 0 } },
		{ "name_to_handle_at", 0, { -1, 0, 0, 0, 0 } },
		{ "userfaultfd", 0, { 0x7fff0000 } },
		{ "io_uring_setup", 0, { 0, 0 } },
		{ "io_uring_enter", 0, { -1, 0, 0, 0, 0, 0 } },
		{ "io_uring_register", 0, { -1, 0, 0, 0 } },
		{ "acct", 0, { (long)NOPATH } },
		{ "quotactl", 0, { 0, (long)NOPATH, 0, 0 } },
		{ "move_mount", 0, { -1, 0, -1, 0, 0x7fff0000 } },
		{ "fsopen", 0, { 0, 0x7fff } },
		{ "fsmount", 0, { -1, 0x7fff, 0 } },
		{ "fspick", 0, { -1, 0, 0x7fff } },
		{ "open_tree", 0, { -1, 0, 0x7fff0000 } },
		{ "mount_setattr", 0, { -1, 0, 0x7fff0000, 0, 0 } },
		{ "syslog", 0, { 10 /* SIZE_BUFFER */, 0, 0 } },
		/* Too long: EINVAL, after the permission check. */
		{ "sethostname", 0, { (long)longname, sizeof(longname) } },
		{ "setdomainname", 0, { (long)longname, sizeof(longname) } },
		{ "iopl", 0, { 4 } },
		{ "ioperm", 0, { 0, 0, 0 } },
		{ "ustat", 0, { 0, 0 } },
		{ "sysfs", 0, { 99 } },
		{ "uselib", 0, { (long)NOPATH } },
		{ "process_vm_readv", 0, { 0, 0, 0, 0, 0, 1 } },
		{ "process_vm_writev", 0, { 0, 0, 0, 0, 0, 1 } },
		{ "kcmp", 0, { 0, 0, 0x7fff, 0, 0 } },
		{ "personality", 0, { ADDR_LIMIT_32BIT } },
	};
	int blind = 0;

	(void)state;
	memset(longname, 'x', sizeof(longname));
	for (size_t i = 0; i < FLT_ARRAY_SIZE(calls); i++) {
		struct call *c = &calls[i];
		int got, control;

		c->nr = nr_of(c->name);
		if (c->nr < 0) {
			printf("[  INFO    ] %s: not on this architecture\n",
			       c->name);
			continue;
		}
		got = child_errno(&dflt, do_call, c);
		control = child_errno(NULL, do_call, c);
		printf("[  INFO    ] %-18s filtered %-7s unfiltered %s%s\n",
		       c->name, errname(got), errname(control),
		       control == EPERM ? " (probe blind here)" : "");
		if (got != EPERM)
			fail_msg("%s: %s, want EPERM", c->name, errname(got));
		blind += control == EPERM;
	}
	if (blind)
		printf("[  INFO    ] %d probes refused anyway without the "
		       "filter; the interpreter test covers them\n",
		       blind);
}

static int do_clone_ns(const void *arg)
{
	long r;

	(void)arg;
	/* Like fork: with no stack the child runs on a copy of ours. */
	r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	if (r < 0)
		return errno;
	waitpid(r, NULL, 0);
	return 0;
}

static int do_fork(const void *arg)
{
	int status;
	pid_t pid;

	(void)arg;
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(7);
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : EPROTO;
}

static void *thread_main(void *arg) { return arg; }

/* glibc's pthread_create tries clone3 first, then falls back to clone. */
static int do_thread(const void *arg)
{
	pthread_t t;
	void *ret = NULL;
	int rc;

	(void)arg;
	if ((rc = pthread_create(&t, NULL, thread_main, (void *)arg)) != 0)
		return rc;
	if ((rc = pthread_join(t, &ret)) != 0)
		return rc;
	return ret == arg ? 0 : EPROTO;
}

static int do_read_status(const void *arg)
{
	char buf[4096];
	ssize_t n;
	int fd;

	(void)arg;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno;
	buf[n] = '\0';
	close(fd);
	/* The kernel agrees that a filter is in place. */
	return strstr(buf, "\nSeccomp:\t2\n") ? 0 : EPROTO;
}

static int do_socket(const void *arg)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)arg;
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int do_exec_true(const void *arg)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };

	(void)arg;
	execve("/bin/true", argv, envp);
	return errno;
}

static int do_seccomp_mode(const void *arg)
{
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == *(const int *)arg ? 0
								      : EPROTO;
}

static void test_allowed_in_kernel(void **state)
{
	struct call getpid_call = { "getpid", nr_of("getpid"), { 0 } };
	struct call query = { "personality",
			      nr_of("personality"),
			      { 0xffffffff } };
	struct call per_linux = { "personality",
				  nr_of("personality"),
				  { PER_LINUX } };
	struct call clone3 = { "clone3", nr_of("clone3"), { 0, 0 } };
	int mode = SECCOMP_MODE_FILTER;

	(void)state;
	assert_int_equal(child_errno(&dflt, do_call, &getpid_call), 0);
	assert_int_equal(child_errno(&dflt, do_call, &query), 0);
	assert_int_equal(child_errno(&dflt, do_call, &per_linux), 0);
	assert_int_equal(child_errno(&dflt, do_read_status, NULL), 0);
	assert_int_equal(child_errno(&dflt, do_socket, NULL), 0);
	assert_int_equal(child_errno(&dflt, do_exec_true, NULL), 0);
	assert_int_equal(child_errno(&dflt, do_fork, NULL), 0);
	assert_int_equal(child_errno(&dflt, do_thread, &mode), 0);
	assert_int_equal(child_errno(&dflt, do_seccomp_mode, &mode), 0);
	assert_int_equal(child_errno(&dflt, do_clone_ns, NULL), EPERM);
	assert_int_equal(child_errno(&dflt, do_call, &clone3), ENOSYS);
	/* Without the filter the kernel looks at clone3's arguments. */
	assert_int_not_equal(child_errno(NULL, do_call, &clone3), ENOSYS);
}

#ifdef __x86_64__
static int do_x32_getpid(const void *arg)
{
	long r;

	(void)arg;
	r = syscall(__X32_SYSCALL_BIT | SYS_getpid);
	return r < 0 ? errno : 0;
}

static int do_i386_getpid(const void *arg)
{
	long r = 20; /* getpid in the i386 table */

	(void)arg;
	__asm__ volatile("int $0x80"
			 : "+a"(r)
			 :
			 : "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
			   "r11", "memory", "cc");
	return r == getpid() ? 0 : r < 0 ? (int)-r : EPROTO;
}

static void describe(const char *what, int status)
{
	if (WIFSIGNALED(status))
		printf("[  INFO    ] %s: killed by %s\n", what,
		       sigabbrev_np(WTERMSIG(status)));
	else
		printf("[  INFO    ] %s: exit %s\n", what,
		       errname(WEXITSTATUS(status)));
}

/* A foreign ABI's numbers would bypass every rule: the process dies. */
static void test_foreign_abi(void **state)
{
	int st;

	(void)state;
	describe("x32 getpid, unfiltered", run_child(NULL, do_x32_getpid, 0));
	st = run_child(&dflt, do_x32_getpid, NULL);
	describe("x32 getpid, filtered", st);
	assert_true((WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) ||
		    (WIFEXITED(st) &&
		     (WEXITSTATUS(st) == ENOSYS || WEXITSTATUS(st) == EPERM)));

	describe("i386 getpid, unfiltered",
		 run_child(NULL, do_i386_getpid, NULL));
	st = run_child(&dflt, do_i386_getpid, NULL);
	describe("i386 getpid, filtered", st);
	assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* With IA32 emulation in the kernel, seccomp sees it and kills. */
	if (WIFSIGNALED(st))
		assert_true(WTERMSIG(st) == SIGSYS || WTERMSIG(st) == SIGSEGV);
}
#endif

static int do_kcmp(const void *arg)
{
	long r;

	(void)arg;
	r = syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0);
	return r < 0 ? errno : 0;
}

static void test_allow_addition(void **state)
{
	const char *allow[] = { "kcmp", "clone3" };
	struct call clone3 = { "clone3", nr_of("clone3"), { 0, 0 } };
	agent_bpf_t p;
	int got;

	(void)state;
	assert_int_equal(child_errno(&dflt, do_kcmp, NULL), EPERM);
	assert_int_equal(agent_seccomp_compile("default", allow, 2, &p, NULL),
			 0);
	/* 0 where the kernel has kcmp, ENOSYS where not: never EPERM. */
	got = child_errno(&p, do_kcmp, NULL);
	printf("[  INFO    ] kcmp with allow: %s\n", errname(got));
	assert_int_not_equal(got, EPERM);
	/* clone3(NULL, 0) reaches the kernel, which rejects the size. */
	assert_int_equal(child_errno(&p, do_call, &clone3), EINVAL);
	agent_bpf_free(&p);
}

static void test_unconfined(void **state)
{
	const char *allow[] = { "kcmp" };
	agent_bpf_t p = { .insns = (void *)&p, .len = 3 };
	int mode = SECCOMP_MODE_DISABLED;

	(void)state;
	assert_int_equal(
		agent_seccomp_compile("unconfined", allow, 1, &p, NULL), 0);
	assert_int_equal(p.len, 0);
	assert_null(p.insns);
	assert_int_equal(agent_bpf_install(&p), 0);
	assert_int_equal(child_errno(&p, do_seccomp_mode, &mode), 0);
	assert_int_not_equal(child_errno(&p, do_kcmp, NULL), EPERM);
	agent_bpf_free(&p);
}

/* Unconfined tasks still get the never-granted syscalls refused. */
static void test_unconfined_deny(void **state)
{
	const char *deny[] = { "open_by_handle_at", "kexec_load", "init_module",
			       "create_module", "no_such_call" };
	struct call obh = { "open_by_handle_at",
			    SYS_open_by_handle_at,
			    { -1, 0, 0 } };
	agent_bpf_t p;

	(void)state;
	assert_int_equal(agent_seccomp_compile_deny(deny, 5, &p, NULL), 0);
	assert_true(p.len > 0);
	/* Unfiltered, open_by_handle_at(-1, NULL) fails otherwise (EBADF,
	 * EFAULT or EPERM without CAP_DAC_READ_SEARCH); filtered, with
	 * EPERM before the kernel looks at it. */
	assert_int_equal(child_errno(&p, do_call, &obh), EPERM);
	/* Everything else goes through: kcmp reaches the kernel. */
	int got = child_errno(&p, do_kcmp, NULL);
	printf("[  INFO    ] kcmp unconfined with denials: %s\n", errname(got));
	assert_int_not_equal(got, EPERM);
	agent_bpf_free(&p);
}

/* Installs in a process with a second thread, which must be filtered. */
static void *mount_thread(void *arg)
{
	int *fds = arg;
	char c;
	long r;

	if (read(fds[0], &c, 1) != 1)
		return (void *)(intptr_t)EPROTO;
	r = syscall(SYS_umount2, NOPATH, 0);
	return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static int do_tsync(const void *arg)
{
	const agent_bpf_t *p = arg;
	pthread_t t;
	void *ret;
	int fds[2], rc;

	if (pipe(fds) < 0)
		return errno;
	if ((rc = pthread_create(&t, NULL, mount_thread, fds)) != 0)
		return rc;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errno;
	if ((rc = agent_bpf_install(p)) < 0)
		return -rc;
	if (write(fds[1], "x", 1) != 1)
		return errno;
	pthread_join(t, &ret);
	return (int)(intptr_t)ret;
}

static void test_install_tsync(void **state)
{
	(void)state;
	assert_int_equal(child_errno(NULL, do_tsync, &dflt), EPERM);
}

/* ---- save and load ---------------------------------------------------- */

static void test_save_load(void **state)
{
	const char *dir = *state;
	char path[256], bad[256];
	flt_error_t err = { 0 };
	agent_bpf_t q, none = { 0 };
	struct call umount = { "umount2",
			       nr_of("umount2"),
			       { (long)NOPATH, 0 } };
	struct stat st;
	char *big;

	snprintf(path, sizeof(path), "%s/task.bpf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.bpf", dir);

	assert_int_equal(agent_bpf_save(&dflt, path, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, dflt.len * sizeof(struct sock_filter));
	assert_int_equal(count_entries(dir), 1); /* no temporary left */
	assert_int_equal(agent_bpf_load_file(path, &q, &err), 0);
	assert_int_equal(q.len, dflt.len);
	assert_memory_equal(q.insns, dflt.insns, q.len * sizeof(*q.insns));
	/* What the supervisor loads is what it installs. */
	assert_int_equal(child_errno(&q, do_call, &umount), EPERM);
	agent_bpf_free(&q);

	/* Saving again replaces the file. */
	assert_int_equal(agent_bpf_save(&dflt, path, &err), 0);
	assert_int_equal(count_entries(dir), 1);

	/* Nothing to save for unconfined. */
	assert_int_equal(agent_bpf_save(&none, bad, &err), -EINVAL);
	assert_int_equal(access(bad, F_OK), -1);

	write_file(bad, dflt.insns, 12);
	assert_int_equal(agent_bpf_load_file(bad, &q, &err), -EINVAL);
	assert_non_null(strstr(err.msg, bad));
	assert_null(q.insns);
	write_file(bad, "", 0);
	assert_int_equal(agent_bpf_load_file(bad, &q, &err), -EINVAL);
	big = calloc(BPF_MAXINSNS + 1, sizeof(struct sock_filter));
	assert_non_null(big);
	write_file(bad, big, BPF_MAXINSNS * sizeof(struct sock_filter));
	assert_int_equal(agent_bpf_load_file(bad, &q, &err), 0);
	assert_int_equal(q.len, BPF_MAXINSNS);
	agent_bpf_free(&q);
	write_file(bad, big, (BPF_MAXINSNS + 1) * sizeof(struct sock_filter));
	assert_int_equal(agent_bpf_load_file(bad, &q, &err), -EINVAL);
	free(big);
	assert_int_equal(agent_bpf_load_file(dir, &q, &err), -EINVAL);
	snprintf(bad, sizeof(bad), "%s/missing.bpf", dir);
	assert_int_equal(agent_bpf_load_file(bad, &q, &err), -ENOENT);
	assert_int_equal(err.code, -ENOENT);

	snprintf(bad, sizeof(bad), "%s/no/such/dir/x.bpf", dir);
	assert_int_equal(agent_bpf_save(&dflt, bad, &err), -ENOENT);
}

/* ---- main ------------------------------------------------------------- */

static int group_setup(void **state)
{
	flt_error_t err = { 0 };

	(void)state;
	native_arch = seccomp_arch_native();
	if (agent_seccomp_compile(NULL, NULL, 0, &dflt, &err) < 0) {
		fprintf(stderr, "compile: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	agent_bpf_free(&dflt);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compile_default),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_compile_allow_variants),
		cmocka_unit_test(test_profile_rules),
		cmocka_unit_test(test_refused_in_kernel),
		cmocka_unit_test(test_allowed_in_kernel),
#ifdef __x86_64__
		cmocka_unit_test(test_foreign_abi),
#endif
		cmocka_unit_test(test_allow_addition),
		cmocka_unit_test(test_unconfined),
		cmocka_unit_test(test_unconfined_deny),
		cmocka_unit_test(test_install_tsync),
		cmocka_unit_test_setup_teardown(test_save_load, tmpdir_setup,
						tmpdir_teardown),
	};

	/*
	 * EFAULT means the kernel would take a filter; EINVAL that it has
	 * no seccomp filter mode.
	 */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL) == 0 ||
	    errno == EINVAL) {
		printf("seccomp filters are unavailable here; skipped\n");
		return 77;
	}
	return cmocka_run_group_tests_name("unit.seccomp", tests, group_setup,
					   group_teardown);
}
