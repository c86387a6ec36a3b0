/*
 * flt-escape PROBE [ARG]: one attempt to get out of the task sandbox, run
 * as the task itself (tests/integration/sandbox_escape.sh starts one
 * sandbox per probe). It prints one line
 *
 *	PROBE refused|ESCAPED|unexpected errno=NAME [details]
 *
 * and exits 0 when the attempt failed with exactly the expected error, 1
 * when it succeeded (a hole in the sandbox), 2 when it failed some other
 * way. "flt-escape --list" prints each probe with the error it expects.
 *
 * Linked statically and without sanitizers: it must not depend on the
 * sandbox's view of shared libraries, and it runs under the task's seccomp
 * filter, where ASan's ptrace-based leak checker cannot.
 *
 * Every attempt is made harmless in case it succeeds: the clock is set to
 * the time just read, mounts go on the task's own tmpfs, reboot asks only
 * for Ctrl-Alt-Del handling. Even so, the program refuses to run outside a
 * task (no FLOTILLA_TASK, or a pid that is not a pid namespace's).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/securebits.h>
#include <netinet/in.h>

enum outcome { REFUSED = 0, ESCAPED = 1, UNEXPECTED = 2 };

static const char *const outcome_names[] = { "refused", "ESCAPED",
					     "unexpected" };

static const char *self_path; /* argv[0], absolute: the command of the task */
static const char *probe_arg; /* argv[2], if any */

static const char *errno_name(int e)
{
	const char *n = e ? strerrorname_np(e) : "none";
	return n ? n : "?";
}

static int __attribute__((format(printf, 4, 5)))
report(const char *probe, enum outcome o, int err, const char *fmt, ...)
{
	char detail[256] = "";
	if (fmt) {
		va_list ap;
		detail[0] = ' ';
		va_start(ap, fmt);
		vsnprintf(detail + 1, sizeof(detail) - 1, fmt, ap);
		va_end(ap);
	}
	printf("%s %s errno=%s%s\n", probe, outcome_names[o], errno_name(err),
	       detail);
	fflush(stdout);
	return o;
}

/* rc is a syscall's result, e its errno. */
static int judge(const char *probe, long rc, int e, int want)
{
	if (rc >= 0)
		return report(probe, ESCAPED, 0, "rc=%ld", rc);
	return report(probe, e == want ? REFUSED : UNEXPECTED, e, NULL);
}

/*
 * Syscalls the filter refuses. Each call returns the raw result with
 * errno set; raw syscalls are used where glibc would substitute another
 * syscall (settimeofday becomes clock_settime in glibc 2.31+).
 */

static long try_mount(void)
{
	mkdir("/tmp/flt-mnt", 0700);
	return mount("none", "/tmp/flt-mnt", "tmpfs", 0, "size=4k");
}

static long try_umount2(void) { return umount2("/tmp", MNT_DETACH); }

static long try_unshare_user(void) { return unshare(CLONE_NEWUSER); }

static long try_unshare_mnt(void) { return unshare(CLONE_NEWNS); }

static long try_setns(void)
{
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -2; /* errno from open: reported as unexpected */
	long rc = setns(fd, CLONE_NEWNET);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/*
 * After a clone with no stack, which works like fork: the child just
 * exits, the parent reaps it and gets pid back, errno kept.
 */
static long child_exits(long pid)
{
	if (pid == 0)
		_exit(0);
	if (pid > 0) {
		int e = errno;
		waitpid((pid_t)pid, NULL, 0);
		errno = e;
	}
	return pid;
}

static long raw_clone(unsigned long flags)
{
	return child_exits(
		syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0));
}

static long try_clone_newns(void) { return raw_clone(CLONE_NEWNS); }

static long try_clone_newuser(void) { return raw_clone(CLONE_NEWUSER); }

/* The layout of struct clone_args up to tls (CLONE_ARGS_SIZE_VER0). */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
		stack_size, tls;
};

/*
 * clone3 passes its flags in memory, out of the filter's sight, so the
 * filter answers ENOSYS for every call, which makes libc fall back to
 * clone: ENOSYS, not EPERM, is the refusal here.
 */
static long try_clone3(void)
{
	struct clone3_args a = { .flags = CLONE_NEWUSER,
				 .exit_signal = SIGCHLD };
	return child_exits(syscall(SYS_clone3, &a, sizeof(a)));
}

static long try_ptrace_traceme(void)
{
	return ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}

static long try_ptrace_attach(void)
{
	return ptrace(PTRACE_ATTACH, 1, NULL, NULL);
}

static long try_process_vm_readv(void)
{
	char buf[8], *remote = (char *)0x400000;
	struct iovec l = { buf, sizeof(buf) }, r = { remote, sizeof(buf) };
	return process_vm_readv(1, &l, 1, &r, 1, 0);
}

static long try_kexec_load(void)
{
	return syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL);
}

static long try_kexec_file_load(void)
{
	int fd = open(self_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -2;
	long rc = syscall(SYS_kexec_file_load, fd, -1, 1UL, "", 0UL);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static long try_init_module(void)
{
	static const char image[64] = "\177ELF";
	return syscall(SYS_init_module, image, sizeof(image), "");
}

/*
 * A kernel module file if this host has one, else this program: either way
 * the filter must answer before the kernel reads the file.
 */
static int module_fd(void)
{
	struct utsname u;
	char dir[512];
	if (uname(&u) == 0) {
		static const char *const tries[] = {
			"kernel/drivers/block/loop.ko",
			"kernel/drivers/block/loop.ko.xz",
			"kernel/drivers/block/loop.ko.zst",
			"kernel/fs/fat/fat.ko",
			"kernel/fs/fat/fat.ko.xz",
		};
		for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
			snprintf(dir, sizeof(dir), "/lib/modules/%s/%s",
				 u.release, tries[i]);
			int fd = open(dir, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
	return open(self_path, O_RDONLY | O_CLOEXEC);
}

static long try_finit_module(void)
{
	int fd = module_fd();
	if (fd < 0)
		return -2;
	long rc = syscall(SYS_finit_module, fd, "", 0);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static long try_delete_module(void)
{
	return syscall(SYS_delete_module, "loop", O_NONBLOCK);
}

static long try_bpf(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	return syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
}

/* Counting our own CPU clock: allowed by perf_event_paranoid 2, so the
 * refusal can only come from the filter. */
static long try_perf_event_open(void)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_CPU_CLOCK;
	a.disabled = 1;
	return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0UL);
}

static long try_keyctl(void)
{
	return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
		       KEY_SPEC_SESSION_KEYRING, 0);
}

static long try_add_key(void)
{
	return syscall(SYS_add_key, "user", "flt-escape", "x", 1,
		       KEY_SPEC_PROCESS_KEYRING);
}

static long try_request_key(void)
{
	return syscall(SYS_request_key, "user", "flt-escape", NULL, 0);
}

static long try_clock_settime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return syscall(SYS_clock_settime, CLOCK_REALTIME, &ts);
}

static long try_settimeofday(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return syscall(SYS_settimeofday, &tv, NULL);
}

static long try_reboot(void)
{
	return syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		       LINUX_REBOOT_CMD_CAD_ON, NULL);
}

static long try_swapon(void) { return syscall(SYS_swapon, "/dev/null", 0); }

static long try_swapoff(void) { return syscall(SYS_swapoff, "/dev/null"); }

static long try_pivot_root(void)
{
	return syscall(SYS_pivot_root, "/tmp", "/tmp");
}

/* The "shocker" escape: a handle names any inode of the filesystem, also
 * outside the bind mount it is opened through. */
static long try_open_by_handle_at(void)
{
	struct {
		unsigned int bytes;
		int type;
		unsigned char h[8];
	} fh = { 8, 1, { 2, 0, 0, 0, 0, 0, 0, 0 } };
	int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return -2;
	long rc = syscall(SYS_open_by_handle_at, mfd, &fh, O_RDONLY);
	int e = errno;
	if (rc >= 0)
		close((int)rc);
	close(mfd);
	errno = e;
	return rc;
}

static long try_name_to_handle_at(void)
{
	struct {
		unsigned int bytes;
		int type;
		unsigned char h[128];
	} fh = { 128, 0, { 0 } };
	int mnt;
	return syscall(SYS_name_to_handle_at, AT_FDCWD, "/etc", &fh, &mnt, 0);
}

static long try_userfaultfd(void)
{
	return syscall(SYS_userfaultfd, O_CLOEXEC);
}

static long try_personality(void)
{
	return syscall(SYS_personality, READ_IMPLIES_EXEC);
}

static long try_personality_norandom(void)
{
	return syscall(SYS_personality, ADDR_NO_RANDOMIZE);
}

static long try_io_uring_setup(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	return syscall(SYS_io_uring_setup, 1, &p);
}

/* The new mount API: as much a way to mount as mount(2) itself. */
static long try_fsopen(void) { return syscall(SYS_fsopen, "tmpfs", 0); }

static long try_open_tree(void)
{
	return syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE);
}

static long try_chroot(void) { return chroot("/tmp"); }

static long try_syslog(void)
{
	return syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
}

#if defined(__x86_64__) || defined(__i386__)
/* Port I/O reaches the host's hardware directly. */
static long try_iopl(void) { return syscall(SYS_iopl, 3); }

static long try_ioperm(void) { return syscall(SYS_ioperm, 0x80UL, 1UL, 1); }
#endif

static long try_sethostname(void) { return sethostname("evil", 4); }

static long try_setdomainname(void) { return setdomainname("evil", 4); }

/* Allowed by the filter: only the missing CAP_MKNOD refuses these. */
static long try_mknod_blk(void)
{
	return mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0));
}

static long try_mknod_chr(void)
{
	return mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1));
}

/* capset is allowed: raising a capability outside the permitted set is
 * what must fail. */
static long try_capset(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = 1u << CAP_SYS_ADMIN;
	return syscall(SYS_capset, &h, d);
}

static long try_setuid0(void) { return syscall(SYS_setuid, 0); }

/* The read-only root: creating a file needs a writable mount, so the
 * answer is EROFS whatever the directory's permissions. */
static long create_in(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/flt-escape.%d", dir, (int)getpid());
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0) {
		close(fd);
		unlink(p);
	}
	return fd;
}

static long try_write_root(void) { return create_in(""); }

static long try_write_etc(void) { return create_in("/etc"); }

static long try_write_usr(void) { return create_in("/usr"); }

/* The directory of this program: part of the host, seen read-only. */
static long try_write_bindir(void)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s", self_path);
	char *slash = strrchr(d, '/');
	if (!slash || slash == d)
		return create_in("");
	*slash = '\0';
	return create_in(d);
}

/* A new cgroup would be a way out of the task's limits. */
static long try_write_cgroup(void)
{
	struct stat st;
	const char *base = stat("/sys/fs/cgroup/pids", &st) == 0
				   ? "/sys/fs/cgroup/pids"
				   : "/sys/fs/cgroup";
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/flt-escape.%d", base, (int)getpid());
	long rc = mkdir(p, 0755);
	if (rc == 0)
		rmdir(p);
	return rc;
}

/* pid namespaces hide every host process: no pid outside exists here. */
static long try_kill_host(void)
{
	const char *s = getenv("FLT_HOST_PID");
	long pid = s ? strtol(s, NULL, 10) : 0;
	if (pid <= 10) {
		errno = EINVAL; /* the test did not name a host pid */
		return -2;
	}
	return kill((pid_t)pid, 0);
}

/* Opening is enough: nothing is ever read or written through these. */
static long try_raw_disk(void)
{
	static const char *const devs[] = {
		"/dev/sda",     "/dev/vda",     "/dev/xvda",
		"/dev/nvme0n1", "/dev/hda",     "/dev/mmcblk0",
		"/dev/loop0",   "/dev/dm-0",    "/dev/md0",
		"/dev/mem",     "/dev/kmem",    "/dev/port",
		"/dev/kmsg",    "/dev/console", "/dev/tty0",
		"/dev/ttyS0",   "/dev/fuse",    "/dev/mapper/control",
	};
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		int fd = open(devs[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0) {
			close(fd);
			fprintf(stderr, "flt-escape: opened %s\n", devs[i]);
			return fd;
		}
		if (errno != ENOENT) {
			int e = errno;
			fprintf(stderr, "flt-escape: %s: %s\n", devs[i],
				strerror(e));
			errno = e;
			return -1;
		}
	}
	errno = ENOENT;
	return -1;
}

/* Wide open to uid 0 by permissions alone: /proc/sys is global kernel
 * state (core_pattern runs a program as root on the host). */
static long try_proc_sys_write(void)
{
	return open("/proc/sys/kernel/core_pattern",
		    O_WRONLY | O_CLOEXEC | O_NOCTTY);
}

/* The task's /etc is curated: the host's shadow is not in it at all. */
static long try_read_shadow(void)
{
	return open("/etc/shadow", O_RDONLY | O_CLOEXEC);
}

/*
 * A Unix socket of a host daemon. The test listens on a path under
 * /var/tmp (FLT_HOST_SOCK): a read-only view of it would not stop
 * connect(), so the path must not be in the view at all.
 */
static long unix_connect(const char *path, bool abstract)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (!path || strlen(path) + 1 >= sizeof(a.sun_path)) {
		errno = EINVAL;
		return -2;
	}
	socklen_t len =
		sizeof(a.sun_family) + strlen(path) + (abstract ? 1 : 0);
	memcpy(a.sun_path + (abstract ? 1 : 0), path, strlen(path));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -2;
	long rc = connect(s, (struct sockaddr *)&a, len);
	int e = errno;
	close(s);
	errno = e;
	return rc;
}

static long try_host_unix_socket(void)
{
	return unix_connect(getenv("FLT_HOST_SOCK"), false);
}

/* Abstract sockets belong to a network namespace: one of its own (network
 * none or private) reaches none of the host's, such as a D-Bus or an X
 * server socket. The test listens on FLT_HOST_ABSTRACT. */
static long try_host_abstract_socket(void)
{
	return unix_connect(getenv("FLT_HOST_ABSTRACT"), true);
}

/*
 * A device node off the allowlist that reached the view through a mount
 * (the test makes one, 1:11 /dev/kmsg, and binds its directory in, which
 * it names in the argument): mounts of the spec are nodev.
 */
static long try_dev_node_mounted(void)
{
	if (!probe_arg) {
		errno = EINVAL;
		return -2;
	}
	return open(probe_arg, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

static long try_net_none(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9) };
	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -2;
	long rc = connect(s, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	close(s);
	errno = e;
	return rc;
}

typedef struct sys_probe {
	const char *name;
	long (*call)(void);
	int want;
} sys_probe_t;

static const sys_probe_t sys_probes[] = {
	{ "mount", try_mount, EPERM },
	{ "umount2", try_umount2, EPERM },
	{ "unshare_user", try_unshare_user, EPERM },
	{ "unshare_mnt", try_unshare_mnt, EPERM },
	{ "setns", try_setns, EPERM },
	{ "clone_newns", try_clone_newns, EPERM },
	{ "clone_newuser", try_clone_newuser, EPERM },
	{ "clone3", try_clone3, ENOSYS },
	{ "ptrace_traceme", try_ptrace_traceme, EPERM },
	{ "ptrace_attach", try_ptrace_attach, EPERM },
	{ "process_vm_readv", try_process_vm_readv, EPERM },
	{ "kexec_load", try_kexec_load, EPERM },
	{ "kexec_file_load", try_kexec_file_load, EPERM },
	{ "init_module", try_init_module, EPERM },
	{ "finit_module", try_finit_module, EPERM },
	{ "delete_module", try_delete_module, EPERM },
	{ "bpf", try_bpf, EPERM },
	{ "perf_event_open", try_perf_event_open, EPERM },
	{ "keyctl", try_keyctl, EPERM },
	{ "add_key", try_add_key, EPERM },
	{ "request_key", try_request_key, EPERM },
	{ "clock_settime", try_clock_settime, EPERM },
	{ "settimeofday", try_settimeofday, EPERM },
	{ "reboot", try_reboot, EPERM },
	{ "swapon", try_swapon, EPERM },
	{ "swapoff", try_swapoff, EPERM },
	{ "pivot_root", try_pivot_root, EPERM },
	{ "open_by_handle_at", try_open_by_handle_at, EPERM },
	{ "name_to_handle_at", try_name_to_handle_at, EPERM },
	{ "userfaultfd", try_userfaultfd, EPERM },
	{ "personality", try_personality, EPERM },
	{ "personality_norandom", try_personality_norandom, EPERM },
	{ "io_uring_setup", try_io_uring_setup, EPERM },
	{ "fsopen", try_fsopen, EPERM },
	{ "open_tree", try_open_tree, EPERM },
	{ "chroot", try_chroot, EPERM },
	{ "syslog", try_syslog, EPERM },
#if defined(__x86_64__) || defined(__i386__)
	{ "iopl", try_iopl, EPERM },
	{ "ioperm", try_ioperm, EPERM },
#endif
	{ "sethostname", try_sethostname, EPERM },
	{ "setdomainname", try_setdomainname, EPERM },
	{ "mknod_blk", try_mknod_blk, EPERM },
	{ "mknod_chr", try_mknod_chr, EPERM },
	{ "capset", try_capset, EPERM },
	{ "setuid0", try_setuid0, EPERM },
	{ "write_root", try_write_root, EROFS },
	{ "write_etc", try_write_etc, EROFS },
	{ "write_usr", try_write_usr, EROFS },
	{ "write_bindir", try_write_bindir, EROFS },
	{ "write_cgroup", try_write_cgroup, EROFS },
	{ "kill_host", try_kill_host, ESRCH },
	{ "raw_disk", try_raw_disk, ENOENT },
	{ "read_shadow", try_read_shadow, ENOENT },
	{ "net_none", try_net_none, ENETUNREACH },
	{ "host_unix_socket", try_host_unix_socket, ENOENT },
	{ "host_abstract_socket", try_host_abstract_socket, ECONNREFUSED },
	{ "dev_node_mounted", try_dev_node_mounted, EACCES },
};

/*
 * Checks that are not one syscall. They return the exit status through
 * report(); "want" is what --list shows.
 */

/* Every numeric entry of /proc: the task's own processes only. */
static int probe_proc_pids(const char *name)
{
	DIR *d = opendir("/proc");
	if (!d)
		return report(name, UNEXPECTED, errno, "opendir /proc");
	int n = 0, maxpid = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name)
			continue;
		n++;
		if (pid > maxpid)
			maxpid = (int)pid;
	}
	closedir(d);

	const char *s = getenv("FLT_HOST_PID");
	long host = s ? strtol(s, NULL, 10) : 0;
	if (host <= 10)
		return report(name, UNEXPECTED, EINVAL, "FLT_HOST_PID unset");
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%ld", host);
	int e_host = stat(p, &st) < 0 ? errno : 0;
	/* pid 1 is the sandbox's init, pid 2 this program, nothing else. */
	if (e_host == 0 || n != 2 || maxpid != 2 || getpid() != 2 ||
	    getppid() != 1)
		return report(name, ESCAPED, e_host,
			      "pids=%d max=%d self=%d parent=%d host_pid=%ld",
			      n, maxpid, (int)getpid(), (int)getppid(), host);
	return report(name, e_host == ENOENT ? REFUSED : UNEXPECTED, e_host,
		      "pids=%d max=%d host_pid=%ld", n, maxpid, host);
}

/* /dev holds the minimal set and nothing else. */
static int probe_dev_list(const char *name)
{
	static const char *const ok[] = { "null",    "zero",   "full", "random",
					  "urandom", "tty",    "fd",   "stdin",
					  "stdout",  "stderr", "shm" };
	DIR *d = opendir("/dev");
	if (!d)
		return report(name, UNEXPECTED, errno, "opendir /dev");
	int n = 0, extra = 0;
	char first[64] = "";
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		bool known = false;
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			known = known || strcmp(ok[i], e->d_name) == 0;
		if (!known && !extra++)
			snprintf(first, sizeof(first), "%s", e->d_name);
	}
	closedir(d);
	if (extra)
		return report(name, ESCAPED, 0, "entries=%d unexpected=%d (%s)",
			      n, extra, first);
	return report(name, REFUSED, 0, "entries=%d", n);
}

/*
 * sysfs describes the host's disks (read-only here) but holds no device
 * nodes; and being mounted nodev, no node could be opened through it.
 */
static int probe_sys_block(const char *name)
{
	static const char *const dirs[] = { "/sys/block", "/sys/dev/block",
					    "/sys/class/block" };
	int seen = 0, nodes = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		DIR *d = opendir(dirs[i]);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[PATH_MAX];
			struct stat st;
			seen++;
			snprintf(p, sizeof(p), "%s/%s", dirs[i], e->d_name);
			if (stat(p, &st) == 0 &&
			    (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode)))
				nodes++;
			/* The directory's "dev" attribute is text
			 * ("253:0"), and opening the directory gives a
			 * directory. */
			int fd = open(p, O_RDWR | O_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				nodes++;
			}
		}
		closedir(d);
	}
	struct statvfs v;
	bool nodev = statvfs("/sys", &v) == 0 && (v.f_flag & ST_NODEV);
	bool ro = statvfs("/sys", &v) == 0 && (v.f_flag & ST_RDONLY);
	if (nodes || !nodev || !ro)
		return report(name, ESCAPED, 0,
			      "entries=%d openable=%d nodev=%d ro=%d", seen,
			      nodes, nodev, ro);
	return report(name, REFUSED, 0, "entries=%d openable=0 nodev=1 ro=1",
		      seen);
}

/* The agent's data directory (FLT_DATA_DIR) holds secrets: masked by an
 * empty tmpfs, the test's marker file must not be there. */
static int probe_hidden_data_dir(const char *name)
{
	const char *dir = getenv("FLT_DATA_DIR");
	if (!dir || dir[0] != '/')
		return report(name, UNEXPECTED, EINVAL, "FLT_DATA_DIR unset");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/flt-escape-secret", dir);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[64] = "";
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		return report(name, ESCAPED, 0, "read %s: %s", p, buf);
	}
	return report(name, errno == ENOENT ? REFUSED : UNEXPECTED, errno,
		      NULL);
}

/* /etc/flotilla: absent on the host (ENOENT) or an empty mask (none). */
static int probe_hidden_etc(const char *name)
{
	DIR *d = opendir("/etc/flotilla");
	if (!d)
		return report(name, errno == ENOENT ? REFUSED : UNEXPECTED,
			      errno, NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return report(name, n ? ESCAPED : REFUSED, 0, "entries=%d", n);
}

static bool status_field(const char *key, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	size_t kl = strlen(key);
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		char *v = line + kl + 1;
		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, len, "%s", v);
		found = true;
	}
	if (f)
		fclose(f);
	return found;
}

static int probe_caps(const char *name)
{
	static const char *const sets[] = { "CapInh", "CapPrm", "CapEff",
					    "CapBnd", "CapAmb" };
	char v[64], bad[128] = "";
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		if (!status_field(sets[i], v, sizeof(v)))
			return report(name, UNEXPECTED, 0, "no %s", sets[i]);
		if (strtoull(v, NULL, 16) != 0 && !bad[0])
			snprintf(bad, sizeof(bad), "%s=%s", sets[i], v);
	}
	if (bad[0])
		return report(name, ESCAPED, 0, "%s", bad);
	return report(name, REFUSED, 0, "CapInh=CapPrm=CapEff=CapBnd=CapAmb=0");
}

/* no_new_privs, the filter, and securebits that make uid 0 powerless. */
static int probe_nnp(const char *name)
{
	char nnp[16] = "", sc[16] = "";
	status_field("NoNewPrivs", nnp, sizeof(nnp));
	status_field("Seccomp", sc, sizeof(sc));
	int bits = prctl(PR_GET_SECUREBITS);
	int want = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
		   SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED;
	bool ok = !strcmp(nnp, "1") && !strcmp(sc, "2") && bits >= 0 &&
		  (bits & want) == want;
	return report(name, ok ? REFUSED : ESCAPED, 0,
		      "NoNewPrivs=%s Seccomp=%s securebits=%#x", nnp, sc, bits);
}

/*
 * A setuid-root program gains nothing: mounts are nosuid and the task has
 * no_new_privs. The host's own setuid programs (passwd, su, mount) cannot
 * say which euid they got without doing something privileged, so the test
 * puts a setuid-root copy of this program where the task sees it and
 * passes its path; the copy can only answer "whoami" (see main).
 */
static int probe_setuid_exec(const char *name)
{
	struct stat st;
	if (!probe_arg || stat(probe_arg, &st) < 0)
		return report(name, UNEXPECTED, probe_arg ? errno : EINVAL,
			      "no setuid program given");
	if (st.st_uid != 0 || !(st.st_mode & S_ISUID))
		return report(name, UNEXPECTED, 0,
			      "%s is not setuid root (test setup)", probe_arg);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return report(name, UNEXPECTED, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		return report(name, UNEXPECTED, errno, "fork");
	if (pid == 0) {
		dup2(p[1], 1);
		execl(probe_arg, probe_arg, "whoami", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[128] = "";
	ssize_t n, got = 0;
	while ((n = read(p[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	close(p[0]);
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	int status;
	waitpid(pid, &status, 0);
	unsigned ruid, euid, suid;
	int secure;
	if (sscanf(buf, "uid=%u euid=%u suid=%u secure=%d", &ruid, &euid, &suid,
		   &secure) != 4)
		return report(name, UNEXPECTED, 0, "no answer (status %d)",
			      status);
	if (euid == 0 || suid == 0)
		return report(name, ESCAPED, 0, "%s", buf);
	return report(name, REFUSED, 0, "%s", buf);
}

/*
 * The host's terminal: a task that shares it can read the operator's
 * keystrokes and, with TIOCSTI, type commands into the operator's shell
 * (CVE-2017-5226 in bubblewrap). A sandbox in its own session has no
 * controlling terminal: /dev/tty gives ENXIO. If there is one, TIOCSTI
 * pushes one space into its input to show that it works.
 */
static int probe_tty(const char *name)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return report(name, errno == ENXIO ? REFUSED : UNEXPECTED,
			      errno, NULL);
	char c = ' ';
	int rc = ioctl(fd, TIOCSTI, &c);
	int e = rc < 0 ? errno : 0;
	close(fd);
	return report(name, ESCAPED, e,
		      "controlling terminal open, "
		      "TIOCSTI %s",
		      rc == 0 ? "injected input" : "refused");
}

/* The exception: /proc/sys is refused by permissions (EACCES) for other
 * users, and only a read-only /proc/sys (EROFS) refuses uid 0. */
static int probe_proc_sys(const char *name)
{
	long fd = try_proc_sys_write();
	if (fd >= 0) {
		close((int)fd);
		return report(name, ESCAPED, 0,
			      "/proc/sys/kernel/core_pattern open for writing "
			      "(nothing written)");
	}
	return report(name,
		      errno == EACCES || errno == EROFS ? REFUSED : UNEXPECTED,
		      errno, NULL);
}

/* Of paths, those that exist (lstat: a link counts): "" when none. */
static void existing(const char *const *paths, size_t n, char *seen, size_t len)
{
	seen[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (lstat(paths[i], &st) == 0 || errno != ENOENT)
			snprintf(seen + strlen(seen), len - strlen(seen), " %s",
				 paths[i]);
	}
}

/* Whole host directories: none is in the view. */
static int probe_host_dirs(const char *name)
{
	static const char *const dirs[] = { "/var",  "/opt",       "/srv",
					    "/home", "/root",      "/run",
					    "/mnt",  "/media",     "/boot",
					    "/data", "/lost+found" };
	const size_t n = sizeof(dirs) / sizeof(dirs[0]);
	char seen[256];
	existing(dirs, n, seen, sizeof(seen));
	if (seen[0])
		return report(name, ESCAPED, 0, "visible:%s", seen);
	return report(name, REFUSED, ENOENT, "none of %zu is visible", n);
}

/* What /etc must not hold: secrets of the host and its identity. */
static int probe_etc_secrets(const char *name)
{
	static const char *const files[] = {
		"/etc/shadow",   "/etc/gshadow",    "/etc/sudoers",
		"/etc/ssh",      "/etc/machine-id", "/etc/ssl/private",
		"/etc/flotilla", "/etc/fstab",      "/etc/crontab",
	};
	const size_t n = sizeof(files) / sizeof(files[0]);
	char seen[256];
	existing(files, n, seen, sizeof(seen));
	if (seen[0])
		return report(name, ESCAPED, 0, "present:%s", seen);
	return report(name, REFUSED, ENOENT, "none of %zu is present", n);
}

/*
 * The private /tmp is bounded: writing stops with ENOSPC at its size
 * (the probe gives up at 256 MiB, which an unbounded tmpfs would take).
 */
static int probe_tmp_full(const char *name)
{
	static char buf[1 << 20];
	const size_t cap = 256;
	int fd = open("/tmp/flt-fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		      0600);
	if (fd < 0)
		return report(name, UNEXPECTED, errno, "create /tmp/flt-fill");
	memset(buf, 'x', sizeof(buf));
	size_t total = 0;
	int e = 0;
	while (total < cap << 20) {
		ssize_t n = write(fd, buf, sizeof(buf));
		if (n < 0) {
			e = errno;
			break;
		}
		total += (size_t)n;
	}
	close(fd);
	unlink("/tmp/flt-fill");
	struct statvfs v;
	unsigned long long size =
		statvfs("/tmp", &v) == 0
			? (unsigned long long)v.f_blocks * v.f_frsize >> 20
			: 0;
	if (!e)
		return report(name, ESCAPED, 0, "wrote %zu MiB", total >> 20);
	return report(name, e == ENOSPC ? REFUSED : UNEXPECTED, e,
		      "wrote_mib=%zu size_mib=%llu", total >> 20, size);
}

/*
 * Nothing runs from /dev (noexec, its /dev/shm too): a copy of this
 * program written there (ARG: another directory, for the control run)
 * fails to execute with EACCES.
 */
static int probe_exec_noexec(const char *name)
{
	const char *dir = probe_arg ? probe_arg : "/dev/shm";
	char dst[PATH_MAX];
	snprintf(dst, sizeof(dst), "%s/flt-exec.%d", dir, (int)getpid());
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (in < 0 || out < 0)
		return report(name, UNEXPECTED, errno, "copy to %s", dst);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return report(name, UNEXPECTED, errno, "write %s", dst);
	close(in);
	close(out);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return report(name, UNEXPECTED, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		return report(name, UNEXPECTED, errno, "fork");
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execl(dst, dst, "whoami", (char *)NULL);
		int e = errno;
		if (write(p[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(p[1]);
	int e = 0;
	ssize_t got = read(p[0], &e, sizeof(e));
	close(p[0]);
	waitpid(pid, NULL, 0);
	unlink(dst);
	if (got != (ssize_t)sizeof(e))
		return report(name, ESCAPED, 0, "executed %s", dst);
	return report(name, e == EACCES ? REFUSED : UNEXPECTED, e, "%s", dst);
}

/*
 * The devices cgroup (v1) holds exactly the allowlist, read and write
 * only; nothing else can be opened whatever node appears. On v2 the
 * allowlist is a BPF program, which a task cannot see: EOPNOTSUPP.
 */
static int probe_dev_cgroup(const char *name)
{
	static const char *const want[] = {
		"c 1:3 rw", "c 1:5 rw", "c 1:7 rw",
		"c 1:8 rw", "c 1:9 rw", "c 5:0 rw"
	};
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[512], path[600] = "";
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strstr(line, ":devices:");
		if (!c)
			continue;
		c += strlen(":devices:");
		c[strcspn(c, "\n")] = '\0';
		snprintf(path, sizeof(path),
			 "/sys/fs/cgroup/devices%s/devices.list", c);
	}
	if (f)
		fclose(f);
	if (!path[0])
		return report(name, REFUSED, EOPNOTSUPP,
			      "no v1 devices cgroup (v2: a BPF program)");
	f = fopen(path, "re");
	if (!f)
		return report(name, UNEXPECTED, errno, "%s", path);
	size_t n = 0, matched = 0;
	char extra[128] = "";
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		n++;
		bool ok = false;
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			ok = ok || !strcmp(line, want[i]);
		if (ok)
			matched++;
		else if (!extra[0])
			snprintf(extra, sizeof(extra), "%s", line);
	}
	fclose(f);
	if (extra[0] || matched != sizeof(want) / sizeof(want[0]))
		return report(name, ESCAPED, 0, "rules=%zu first_extra=\"%s\"",
			      n, extra);
	return report(name, REFUSED, 0, "rules=%zu (the allowlist)", n);
}

typedef struct check_probe {
	const char *name;
	int (*run)(const char *name);
	const char *want;
} check_probe_t;

static const check_probe_t checks[] = {
	{ "proc_pids", probe_proc_pids, "ENOENT" },
	{ "dev_list", probe_dev_list, "none" },
	{ "sys_block", probe_sys_block, "none" },
	{ "hidden_data_dir", probe_hidden_data_dir, "ENOENT" },
	{ "hidden_etc_flotilla", probe_hidden_etc, "ENOENT|none" },
	{ "caps", probe_caps, "none" },
	{ "nnp", probe_nnp, "none" },
	{ "setuid_exec", probe_setuid_exec, "none" },
	{ "tty", probe_tty, "ENXIO" },
	{ "proc_sys_write", probe_proc_sys, "EACCES|EROFS" },
	{ "host_dirs", probe_host_dirs, "ENOENT" },
	{ "etc_secrets", probe_etc_secrets, "ENOENT" },
	{ "tmp_full", probe_tmp_full, "ENOSPC" },
	{ "exec_noexec", probe_exec_noexec, "EACCES" },
	{ "dev_cgroup", probe_dev_cgroup, "none|EOPNOTSUPP" },
};

static void list(void)
{
	for (size_t i = 0; i < sizeof(sys_probes) / sizeof(sys_probes[0]); i++)
		printf("%s %s\n", sys_probes[i].name,
		       errno_name(sys_probes[i].want));
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		printf("%s %s\n", checks[i].name, checks[i].want);
}

/*
 * Host side, for the test: listens on a Unix socket (a path, or an
 * abstract name) as a host daemon would, prints "listening" and accepts
 * until killed.
 */
static int serve(const char *where, bool abstract)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t l = strlen(where);
	if (l + 2 > sizeof(a.sun_path)) {
		fprintf(stderr, "flt-escape: %s: name too long\n", where);
		return 2;
	}
	memcpy(a.sun_path + (abstract ? 1 : 0), where, l);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 ||
	    bind(s, (struct sockaddr *)&a,
		 (socklen_t)(sizeof(a.sun_family) + l + (abstract ? 1 : 0))) <
		    0 ||
	    listen(s, 16) < 0) {
		fprintf(stderr, "flt-escape: listen on %s: %s\n", where,
			strerror(errno));
		return 2;
	}
	if (!abstract)
		chmod(where,
		      0777); /* anyone may connect: only the view hides it */
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}

/* What a setuid copy reports: the kernel's view of this exec. */
static int whoami(void)
{
	uid_t r, e, s;
	getresuid(&r, &e, &s);
	printf("uid=%u euid=%u suid=%u secure=%lu\n", (unsigned)r, (unsigned)e,
	       (unsigned)s, getauxval(AT_SECURE));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: flt-escape PROBE [ARG] | --list\n");
		return 2;
	}
	/* Running with another's privileges (a setuid copy): say who we
	 * are, and nothing else, whatever was asked. */
	if (getuid() != geteuid() || getgid() != getegid() ||
	    strcmp(argv[1], "whoami") == 0)
		return whoami();
	if (strcmp(argv[1], "--list") == 0) {
		list();
		return 0;
	}
	if ((!strcmp(argv[1], "--serve-unix") ||
	     !strcmp(argv[1], "--serve-abstract")) &&
	    argc == 3)
		return serve(argv[2], !strcmp(argv[1], "--serve-abstract"));
	if (!getenv("FLOTILLA_TASK") || getpid() > 10) {
		fprintf(stderr, "flt-escape: refusing to run outside a "
				"flotilla task\n");
		return 2;
	}
	self_path = argv[0];
	probe_arg = argc > 2 ? argv[2] : NULL;
	const char *name = argv[1];

	for (size_t i = 0; i < sizeof(sys_probes) / sizeof(sys_probes[0]);
	     i++) {
		if (strcmp(sys_probes[i].name, name))
			continue;
		errno = 0;
		long rc = sys_probes[i].call();
		int e = errno;
		/* -2: a preparatory step failed, errno says which way. */
		if (rc == -2)
			return report(name, UNEXPECTED, e, "setup failed");
		return judge(name, rc, e, sys_probes[i].want);
	}
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (!strcmp(checks[i].name, name))
			return checks[i].run(name);
	fprintf(stderr, "flt-escape: unknown probe \"%s\"\n", name);
	return 2;
}
