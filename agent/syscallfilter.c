/* The seccomp-bpf filter of sandboxed tasks: compile, store, install. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/seccomp.h>
#include <seccomp.h>

#include "flotilla/util.h"
#include "syscallfilter.h"

/* A job spec's list is outside input: more names than syscalls is junk. */
#define ALLOW_MAX 1024

#define INSN_SIZE sizeof(struct sock_filter)

/*
 * Allowed unconditionally: the names Docker's default profile allows
 * without a capability condition, less those that reach kernel state
 * shared with the host or with other tasks, which the agent refuses even
 * though Docker allows them: adjtimex and clock_adjtime (read the clock
 * but also step it with CAP_SYS_TIME), io_uring_* (a large attack surface
 * that bypasses this filter for the I/O it performs, behind many kernel
 * CVEs), name_to_handle_at (the first half of the open_by_handle_at
 * container escape, "shocker"), and ptrace and process_vm_* (reading other
 * processes of the same user). socket is allowed for every family.
 *
 * Names that libseccomp does not know or that do not exist on the native
 * architecture (chown32 and the other i386 names on x86_64, the *_time64
 * names on 64-bit ABIs) are skipped, so that one table serves every
 * architecture, as Docker's does.
 */
static const char *const default_allow[] = {
	"accept", "accept4", "access", "alarm", "bind", "brk", "capget",
	"capset", "chdir", "chmod", "chown", "chown32", "clock_getres",
	"clock_getres_time64", "clock_gettime", "clock_gettime64",
	"clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
	"connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
	"epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
	"eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
	"faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
	"fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32",
	"fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
	"flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
	"fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
	"ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat",
	"getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
	"geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
	"getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
	"getpid", "getppid", "getpriority", "getrandom", "getresgid",
	"getresgid32", "getresuid", "getresuid32", "getrlimit",
	"get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
	"get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
	"getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
	"inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
	"io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
	"io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
	"landlock_create_ruleset", "landlock_restrict_self", "lchown",
	"lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
	"llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
	"lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret",
	"mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
	"mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify",
	"mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
	"mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget",
	"msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
	"nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
	"pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
	"pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll",
	"ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
	"process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
	"pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
	"readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
	"remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
	"restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
	"rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sched_getaffinity", "sched_getattr", "sched_getparam",
	"sched_get_priority_max", "sched_get_priority_min",
	"sched_getscheduler", "sched_rr_get_interval",
	"sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
	"sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
	"select", "semctl", "semget", "semop", "semtimedop",
	"semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
	"sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
	"setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
	"setpgid", "setpriority", "setregid", "setregid32", "setresgid",
	"setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
	"setrlimit", "set_robust_list", "setsid", "setsockopt",
	"set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
	"shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
	"signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket",
	"socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
	"statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
	"syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
	"timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
	"timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
	"timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
	"tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
	"unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
	"utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
	"writev",
	/* Architecture-specific, as Docker allows them on their arches. */
	"arch_prctl", "modify_ldt", /* x86 */
	"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
	"breakpoint", "cacheflush", "set_tls", /* arm */
	"swapcontext", /* ppc */
	"s390_pci_mmio_read", "s390_pci_mmio_write",
	"s390_runtime_instr", /* s390 */
	"riscv_flush_icache", /* riscv */
};

/* clone may not create namespaces: they are the agent's to set up. */
#define CLONE_NS_FLAGS                                               \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
	 CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

/*
 * personality values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 and
 * their union, and the query 0xffffffff. Others (READ_IMPLIES_EXEC,
 * ADDR_NO_RANDOMIZE...) weaken the task's own hardening.
 */
static const scmp_datum_t personality_ok[] = {
	0x0, 0x0008, 0x20000, 0x20008, 0xffffffff,
};

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define cleanup_seccomp __attribute__((cleanup(seccomp_releasep)))

static bool nr_in(int nr, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == nr)
			return true;
	return false;
}

static int rule_err(flt_error_t *err, int rc, const char *name)
{
	return flt_err(err, rc, "seccomp: cannot add rule for %s: %s", name,
		       strerror(-rc));
}

static int add_profile(scmp_filter_ctx ctx, const int *extra, size_t nextra,
		       flt_error_t *err)
{
	int nr, rc;

	for (size_t i = 0; i < FLT_ARRAY_SIZE(default_allow); i++) {
		nr = seccomp_syscall_resolve_name(default_allow[i]);
		/* Unknown (__NR_SCMP_ERROR) or another arch's (__PNR_*). */
		if (nr < 0 || nr_in(nr, extra, nextra))
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0)
			return rule_err(err, rc, default_allow[i]);
	}

	/*
	 * The namespace flags of clone are only visible to seccomp as an
	 * argument; clone3 passes them in memory, which a filter cannot
	 * read, so clone3 fails with ENOSYS and libc falls back to clone.
	 * unshare and setns are absent from the allowlist for the same
	 * reason; CLONE_NEWTIME exists only for those three.
	 */
	if (!nr_in(SCMP_SYS(clone), extra, nextra)) {
#if defined(__s390__) || defined(__s390x__)
		rc = seccomp_rule_add(
			ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			SCMP_A1(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0));
#else
		rc = seccomp_rule_add(
			ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0));
#endif
		if (rc < 0)
			return rule_err(err, rc, "clone");
	}
	if (!nr_in(SCMP_SYS(clone3), extra, nextra)) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
				      SCMP_SYS(clone3), 0);
		if (rc < 0)
			return rule_err(err, rc, "clone3");
	}
	if (!nr_in(SCMP_SYS(personality), extra, nextra)) {
		for (size_t i = 0; i < FLT_ARRAY_SIZE(personality_ok); i++) {
			rc = seccomp_rule_add(
				ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
				SCMP_A0(SCMP_CMP_EQ, personality_ok[i], 0));
			if (rc < 0)
				return rule_err(err, rc, "personality");
		}
	}
	return 0;
}

static int set_attrs(scmp_filter_ctx ctx, flt_error_t *err)
{
	int rc;

	/* The supervisor sets no_new_privs itself, before it installs. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	/* A binary tree over syscall numbers: fewer instructions run per
	 * syscall, and the filter installs faster. Older libseccomp lacks
	 * it; the linear filter is as correct. */
	if (rc == 0)
		seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc < 0)
		return flt_err(err, rc, "seccomp: cannot set attribute: %s",
			       strerror(-rc));
	/*
	 * Another ABI's syscall numbers mean other syscalls (x32 and i386
	 * on x86_64): letting them through would bypass every rule, so the
	 * whole process dies, not only the thread. libseccomp refuses
	 * KILL_PROCESS where the running kernel predates it (4.14); there
	 * killing the thread is the best the kernel offers.
	 */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			      SCMP_ACT_KILL_PROCESS);
	if (rc == -EINVAL)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
				      SCMP_ACT_KILL_THREAD);
	if (rc < 0)
		return flt_err(err, rc,
			       "seccomp: cannot set bad-arch action: %s",
			       strerror(-rc));
	return 0;
}

/* pread until n bytes or EOF; returns the count or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

/*
 * Reads a whole program from fd, whose size must be a non-zero multiple
 * of an instruction and at most BPF_MAXINSNS of them.
 */
static int read_program(int fd, const char *what, agent_bpf_t *out,
			flt_error_t *err)
{
	cleanup_free struct sock_filter *insns = NULL;
	struct stat st;
	ssize_t r;

	if (fstat(fd, &st) < 0)
		return flt_err(err, -errno, "%s: %s", what, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return flt_err(err, -EINVAL, "%s: not a regular file", what);
	if (st.st_size == 0 || st.st_size % INSN_SIZE != 0 ||
	    st.st_size / INSN_SIZE > BPF_MAXINSNS)
		return flt_err(err, -EINVAL,
			       "%s: size %lld is not 1 to %d BPF instructions",
			       what, (long long)st.st_size, BPF_MAXINSNS);
	insns = flt_xmalloc(st.st_size);
	r = pread_full(fd, insns, st.st_size);
	if (r < 0)
		return flt_err(err, r, "%s: %s", what, strerror(-r));
	if (r != st.st_size)
		return flt_err(err, -EINVAL, "%s: changed while read", what);
	out->len = st.st_size / INSN_SIZE;
	out->insns = steal_ptr(&insns);
	return 0;
}

static int export_bpf(scmp_filter_ctx ctx, agent_bpf_t *out, flt_error_t *err)
{
	/* libseccomp 2.5 exports only to a file descriptor. */
	cleanup_close int fd = memfd_create("flt-seccomp", MFD_CLOEXEC);
	int rc;

	if (fd < 0)
		return flt_err(err, -errno, "seccomp: memfd_create: %s",
			       strerror(errno));
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return flt_err(err, rc, "seccomp: cannot export filter: %s",
			       strerror(-rc));
	return read_program(fd, "seccomp: exported filter", out, err);
}

int agent_seccomp_compile(const char *profile, const char *const *allow,
			  size_t nallow, agent_bpf_t *out, flt_error_t *err)
{
	cleanup_seccomp scmp_filter_ctx ctx = NULL;
	cleanup_free int *extra = NULL;
	size_t nextra = 0;
	bool unconfined;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!profile || !*profile || strcmp(profile, "default") == 0)
		unconfined = false;
	else if (strcmp(profile, "unconfined") == 0)
		unconfined = true;
	else
		return flt_err(err, -EINVAL,
			       "seccomp.profile: unknown profile \"%s\" "
			       "(want \"default\" or \"unconfined\")",
			       profile);
	if (nallow > ALLOW_MAX)
		return flt_err(err, -EINVAL,
			       "seccomp.allow: %zu names, at most %d", nallow,
			       ALLOW_MAX);

	/* Checked even when unconfined, so that a typo shows at once. */
	if (nallow)
		extra = flt_xcalloc(nallow, sizeof(*extra));
	for (size_t i = 0; i < nallow; i++) {
		const char *name = allow[i] ? allow[i] : "";
		int nr = seccomp_syscall_resolve_name(name);

		if (nr == __NR_SCMP_ERROR)
			return flt_err(err, -EINVAL,
				       "seccomp.allow[%zu]: unknown syscall "
				       "\"%s\"",
				       i, name);
		if (nr >= 0 && !nr_in(nr, extra, nextra))
			extra[nextra++] = nr;
	}
	if (unconfined)
		return 0;

	/* seccomp_init adds the native architecture only. */
	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return flt_err(err, -ENOMEM, "seccomp: cannot create filter");
	if ((rc = set_attrs(ctx, err)) < 0)
		return rc;
	if ((rc = add_profile(ctx, extra, nextra, err)) < 0)
		return rc;
	for (size_t i = 0; i < nextra; i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, extra[i], 0);
		if (rc < 0) {
			cleanup_free char *name =
				seccomp_syscall_resolve_num_arch(
					SCMP_ARCH_NATIVE, extra[i]);
			return rule_err(err, rc, name ? name : "?");
		}
	}
	return export_bpf(ctx, out, err);
}

int agent_seccomp_compile_deny(const char *const *deny, size_t ndeny,
			       agent_bpf_t *out, flt_error_t *err)
{
	cleanup_seccomp scmp_filter_ctx ctx = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return flt_err(err, -ENOMEM, "seccomp: cannot create filter");
	if ((rc = set_attrs(ctx, err)) < 0)
		return rc;
	for (size_t i = 0; i < ndeny; i++) {
		int nr = seccomp_syscall_resolve_name(deny[i]);
		if (nr < 0)
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc < 0)
			return rule_err(err, rc, deny[i]);
	}
	return export_bpf(ctx, out, err);
}

void agent_bpf_free(agent_bpf_t *p)
{
	if (!p)
		return;
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}

static int fsync_dir_of(const char *path)
{
	cleanup_free char *copy = flt_xstrdup(path);
	cleanup_close int fd =
		open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int agent_bpf_save(const agent_bpf_t *p, const char *path, flt_error_t *err)
{
	cleanup_free char *tmp = NULL;
	cleanup_close int fd = -1;
	int rc;

	if (p->len == 0 || p->len > BPF_MAXINSNS || !p->insns)
		return flt_err(err, -EINVAL,
			       "%s: no program to save (%u instructions)", path,
			       p->len);
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
		abort();
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return flt_err(err, rc, "%s: cannot create temporary file: %s",
			       path, strerror(-rc));
	}
	rc = flt_write_all(fd, p->insns, (size_t)p->len * INSN_SIZE, NULL);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return flt_err(err, rc, "%s: cannot write: %s", path,
			       strerror(-rc));
	}
	/* The rename is durable only once the directory is. */
	if ((rc = fsync_dir_of(path)) < 0)
		return flt_err(err, rc, "%s: cannot sync directory: %s", path,
			       strerror(-rc));
	return 0;
}

int agent_bpf_load_file(const char *path, agent_bpf_t *out, flt_error_t *err)
{
	cleanup_close int fd = -1;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return flt_err(err, -errno, "%s: %s", path, strerror(errno));
	return read_program(fd, path, out, err);
}

int agent_bpf_install(const agent_bpf_t *p)
{
	struct sock_fprog prog;
	long rc;

	if (p->len == 0)
		return 0;
	prog.len = p->len;
	prog.filter = p->insns;
	rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		     SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (rc == 0)
		return 0;
	if (rc > 0) /* the id of a thread that could not be synchronised */
		return -EBUSY;
	if (errno != ENOSYS)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0)
		return 0;
	return -errno;
}
