/*
 * The task sandbox, modelled on bubblewrap and crun: namespaces, a
 * read-only root view built on a private tmpfs (the host's /usr and a
 * curated /etc, nothing else of the host), a fresh /proc, a minimal /dev
 * with a device allowlist, a bounded /tmp, cgroup limits, an unprivileged
 * user with no capabilities, rlimits, no_new_privs and a seccomp filter.
 * Everything here runs in the shim's children, which are single-threaded;
 * setup errors are sent to the shim as text over a pipe and the child
 * exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <linux/securebits.h>
#include <sys/capability.h>

#include "devices.h"
#include "sandbox.h"
#include "syscallfilter.h"

/*
 * The host's top-level entries a task sees: programs and their libraries.
 * On a merged-/usr host bin, sbin and lib* are links into usr and are
 * copied as links; elsewhere they are directories, bound read-only. Nothing
 * else of the host is shown: /var, /run, /opt, /srv, /home, /mnt, /root
 * hold the sockets of host daemons (a read-only mount does not stop
 * connect() on a socket file: a docker.sock is root on the host), other
 * users' files and the host's state.
 */
static const char *const shown_top[] = { "usr",   "bin",   "sbin",  "lib",
					 "lib32", "lib64", "libx32" };

/*
 * What ordinary programs read in /etc: users and groups by name, name
 * resolution, the dynamic linker's cache, time zone, TLS roots, the
 * distribution's identity and its alternatives. Each is bound read-only
 * into an /etc of the task's own; never shadow, gshadow, sudoers, ssh host
 * keys, ssl/private, the host's machine-id (a stable identifier of the
 * host that tasks have no need of) or anything of the agent's.
 */
static const char *const etc_shown[] = {
	"passwd",
	"group",
	"nsswitch.conf",
	"hosts",
	"host.conf",
	"resolv.conf",
	"gai.conf",
	"services",
	"protocols",
	"networks",
	"ld.so.cache",
	"ld.so.conf",
	"ld.so.conf.d",
	"localtime",
	"timezone",
	"os-release",
	"lsb-release",
	"debian_version",
	"alternatives",
	"ssl/certs",
	"ssl/openssl.cnf",
	"ca-certificates",
	"ca-certificates.conf",
	"pki/tls/certs",
	"pki/ca-trust",
	"crypto-policies",
	"mime.types",
	"shells",
	"inputrc",
	"bash.bashrc",
	"profile",
	"locale.alias",
};

static int err_fd = -1; /* where setup failures are reported */

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int e = errno;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (e && (size_t)n + 3 < sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s",
			      strerror(e));
	if (err_fd >= 0 && write(err_fd, buf, (size_t)n) < 0)
		_exit(126);
	_exit(126);
}

static void mkdir_p_in(const char *root, const char *rel)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		die("create mount point %s", rel);
}

/*
 * Opens rel (components under root), creating missing directories when
 * create is set, without ever following a symlink or a magic link: a path
 * chosen by a spec (a mount target, the allocation directory) must land
 * inside the new root, not wherever a link in a bound host directory
 * points. Returns an O_PATH descriptor, or -errno (-ENOENT when missing
 * and not created).
 */
static int open_beneath(const char *root, const char *rel, bool create)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_BENEATH,
	};
	int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char comp[256];
	for (const char *s = rel; *s;) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		size_t n = strcspn(s, "/");
		if (n >= sizeof(comp)) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, s, n);
		comp[n] = '\0';
		s += n;
		int next =
			(int)syscall(SYS_openat2, fd, comp, &how, sizeof(how));
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				int e = -errno;
				close(fd);
				return e;
			}
			next = (int)syscall(SYS_openat2, fd, comp, &how,
					    sizeof(how));
		}
		int e = -errno;
		close(fd);
		if (next < 0)
			return e;
		fd = next;
	}
	return fd;
}

/*
 * Binds src at root/target, nosuid and nodev down the tree, and read-only
 * unless writable (a host volume the agent allows read-write).
 */
static void bind_at(const char *src, const char *root, const char *target,
		    bool writable)
{
	char dst[1024];
	struct mount_attr attr = {
		.attr_set = (writable ? 0 : MOUNT_ATTR_RDONLY) |
			    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};
	int fd = open_beneath(root, target, true);
	if (fd < 0) {
		errno = -fd;
		die("mount point /%s (it must not go through a symlink or a "
		    "read-only host directory)",
		    target);
	}
	/* Mount on exactly the directory resolved above. */
	snprintf(dst, sizeof(dst), "/proc/self/fd/%d", fd);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		die("bind %s", src);
	/* Recursive read-only (Linux 5.12): submounts of src are covered
	 * too, which a plain MS_RDONLY remount would miss. */
	close(fd);
	/* The new mount sits on root/target now: no link left to follow. */
	snprintf(dst, sizeof(dst), "%s/%s", root, target);
	if (mount_setattr(AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		die("make %s read-only", src);
}

static void bind_ro(const char *src, const char *root, const char *target)
{
	bind_at(src, root, target, false);
}

/*
 * Binds the host's node of an allowlisted device. The number is checked:
 * a host whose /dev/null were something else must not hand that on.
 */
static void bind_dev(const char *root, const agent_device_t *d)
{
	char src[64], dst[1024];
	struct stat st;
	snprintf(src, sizeof(src), "/dev/%s", d->name);
	snprintf(dst, sizeof(dst), "%s/dev/%s", root, d->name);
	if (stat(src, &st) < 0)
		die("%s", src);
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != d->major ||
	    minor(st.st_rdev) != d->minor) {
		errno = 0;
		die("%s is not the character device %u:%u", src, d->major,
		    d->minor);
	}
	int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
	if (fd < 0)
		die("create %s", dst);
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		die("bind %s", src);
}

/* The sets of attributes each kind of mount ends with. */
#define ATTR_RO_ALL                                                 \
	(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | \
	 MOUNT_ATTR_NOEXEC)

static void set_attr(const char *path, uint64_t set, bool recursive)
{
	struct mount_attr attr = { .attr_set = set };
	if (mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr,
			  sizeof(attr)) < 0)
		die("mount attributes of %s", path);
}

static bool shown_in_view(const char *real)
{
	for (size_t i = 0; i < sizeof(shown_top) / sizeof(shown_top[0]); i++) {
		size_t n = strlen(shown_top[i]);
		if (real[0] == '/' && !strncmp(real + 1, shown_top[i], n) &&
		    (real[n + 1] == '/' || real[n + 1] == '\0'))
			return true;
	}
	return false;
}

/*
 * The task's /etc, a directory of the root tmpfs (read-only with it in the
 * end): each entry of etc_shown the host has, bound read-only, noexec. A
 * link that resolves into the view (localtime into /usr/share/zoneinfo,
 * os-release into /usr/lib) stays a link, so that programs reading the
 * link (the zone's name) see what they expect; any other link is bound
 * as the file it resolves to (resolv.conf in /run under systemd-resolved).
 */
static void build_etc(const char *root)
{
	char src[512], dst[1024], real[PATH_MAX], target[PATH_MAX];
	struct stat st;

	mkdir_p_in(root, "etc");
	/* The mount table of the task itself, as on any host. */
	snprintf(dst, sizeof(dst), "%s/etc/mtab", root);
	if (symlink("../proc/self/mounts", dst) < 0)
		die("symlink %s", dst);
	for (size_t i = 0; i < sizeof(etc_shown) / sizeof(etc_shown[0]); i++) {
		const char *rel = etc_shown[i];
		snprintf(src, sizeof(src), "/etc/%s", rel);
		if (lstat(src, &st) < 0)
			continue;
		char sub[600];
		snprintf(sub, sizeof(sub), "etc/%s", rel);
		char *slash = strrchr(sub, '/');
		*slash = '\0';
		if (strcmp(sub, "etc") != 0)
			mkdir_p_in(root, sub);
		snprintf(dst, sizeof(dst), "%s/etc/%s", root, rel);
		if (S_ISLNK(st.st_mode)) {
			if (!realpath(src, real))
				continue; /* dangling on the host too */
			ssize_t n = readlink(src, target, sizeof(target) - 1);
			if (n > 0 && shown_in_view(real)) {
				target[n] = '\0';
				if (symlink(target, dst) < 0)
					die("symlink %s", dst);
				continue;
			}
			if (stat(real, &st) < 0)
				continue;
		} else {
			snprintf(real, sizeof(real), "%s", src);
		}
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(dst, 0755) < 0 && errno != EEXIST)
				die("create %s", dst);
		} else if (S_ISREG(st.st_mode)) {
			int fd =
				open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
			if (fd < 0)
				die("create %s", dst);
			close(fd);
		} else {
			continue; /* no sockets, fifos or nodes from /etc */
		}
		if (mount(real, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
			die("bind %s", real);
		set_attr(dst, ATTR_RO_ALL, true);
	}
}

static void build_root(const shim_conf_t *c, const char *root)
{
	char p[1024];

	/* Nothing mounted here may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("make mounts private");
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=0755,size=1m") < 0)
		die("mount root tmpfs");

	for (size_t i = 0; i < sizeof(shown_top) / sizeof(shown_top[0]); i++) {
		struct stat st;
		snprintf(p, sizeof(p), "/%s", shown_top[i]);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			char target[1024], dst[1024];
			ssize_t n = readlink(p, target, sizeof(target) - 1);
			if (n < 0)
				continue;
			target[n] = '\0';
			snprintf(dst, sizeof(dst), "%s/%s", root, shown_top[i]);
			if (symlink(target, dst) < 0)
				die("symlink %s", dst);
		} else if (S_ISDIR(st.st_mode)) {
			mkdir_p_in(root, shown_top[i]);
			bind_ro(p, root, shown_top[i]);
		}
	}
	/* sysfs, read-only and nodev: programs read the CPUs and memory
	 * from it; it holds no sockets and no device nodes. */
	mkdir_p_in(root, "sys");
	bind_ro("/sys", root, "sys");
	build_etc(root);

	for (size_t i = 0; i < c->nmounts; i++)
		bind_at(c->mounts[i].source, root, c->mounts[i].target + 1,
			c->mounts[i].writable);

	/* Agent state and configuration hold secrets: hide them, after the
	 * spec's mounts, and fail closed. (The agent gives canonical paths
	 * and refuses mounts that would show them elsewhere.) */
	for (size_t i = 0; i < c->nmasks; i++) {
		int fd = open_beneath(root, c->masks[i] + 1, false);
		if (fd == -ENOENT || fd == -ENOTDIR)
			continue; /* nothing there to hide */
		if (fd < 0) {
			errno = -fd;
			die("hide %s", c->masks[i]);
		}
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
			  "size=4k,mode=0755") < 0)
			die("hide %s", c->masks[i]);
		close(fd);
	}

	/* A fresh /proc: the new pid namespace shows only the task. */
	mkdir_p_in(root, "proc");
	snprintf(p, sizeof(p), "%s/proc", root);
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
	    0)
		die("mount /proc");

	/*
	 * The parts of /proc that reach the kernel itself, as container
	 * runtimes guard them: sysctls, sysrq and friends read-only; kernel
	 * memory, keys and timers hidden. (Writing /proc/sys needs only
	 * file ownership, and core_pattern would run a program on the host.)
	 */
	static const char *const proc_ro[] = { "bus", "fs", "irq", "sys",
					       "sysrq-trigger" };
	static const char *const proc_hidden[] = {
		"kcore",       "keys",        "latency_stats", "timer_list",
		"timer_stats", "sched_debug", "acpi",          "asound",
		"scsi",        "kallsyms",    "kpagecount",    "kpageflags",
		"kpagecgroup"
	};
	for (size_t i = 0; i < sizeof(proc_ro) / sizeof(proc_ro[0]); i++) {
		char q[1100];
		snprintf(q, sizeof(q), "proc/%s", proc_ro[i]);
		snprintf(p, sizeof(p), "%s/%s", root, q);
		if (access(p, F_OK) == 0) {
			struct mount_attr attr = {
				.attr_set =
					MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
			};
			if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
			    mount_setattr(AT_FDCWD, p, AT_RECURSIVE, &attr,
					  sizeof(attr)) < 0)
				die("make /%s read-only", q);
		}
	}
	for (size_t i = 0; i < sizeof(proc_hidden) / sizeof(proc_hidden[0]);
	     i++) {
		struct stat st;
		snprintf(p, sizeof(p), "%s/proc/%s", root, proc_hidden[i]);
		if (stat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)
			    ? mount("tmpfs", p, "tmpfs",
				    MS_RDONLY | MS_NOSUID | MS_NODEV |
					    MS_NOEXEC,
				    "size=4k") < 0
			    : mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
			die("hide /proc/%s", proc_hidden[i]);
	}

	/*
	 * A minimal /dev: the allowlisted nodes bound from the host, nothing
	 * else, and read-only. The tmpfs itself is nodev: a node that got
	 * into it could not be opened (creating one needs CAP_MKNOD, which
	 * tasks lack, and the devices cgroup refuses every device off the
	 * allowlist anyway). The binds keep the host /dev's own flags (not
	 * nodev), then lose suid and exec.
	 */
	mkdir_p_in(root, "dev");
	snprintf(p, sizeof(p), "%s/dev", root);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k") < 0)
		die("mount /dev");
	for (size_t i = 0; i < agent_ndevices; i++)
		bind_dev(root, &agent_devices[i]);
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" },
		{ "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" },
		{ "/proc/self/fd/2", "stderr" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(p, sizeof(p), "%s/dev/%s", root, links[i][1]);
		if (symlink(links[i][0], p) < 0)
			die("symlink %s", p);
	}
	mkdir_p_in(root, "dev/shm");
	snprintf(p, sizeof(p), "%s/dev", root);
	set_attr(p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, true);
	set_attr(p, ATTR_RO_ALL, false);

	/*
	 * The task's own writable places, each bounded (tmpfs pages are
	 * memory, charged to the task's memory limit only when it has one),
	 * none of them able to hold a setuid program or a usable device
	 * node; /dev/shm, as container runtimes mount it, not an executable
	 * either.
	 */
	char opts[64];
	unsigned mb =
		c->tmp_size_mb ? c->tmp_size_mb : SHIM_TMP_SIZE_MB_DEFAULT;
	snprintf(opts, sizeof(opts), "mode=1777,size=%um", mb);
	snprintf(p, sizeof(p), "%s/dev/shm", root);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) <
	    0)
		die("mount /dev/shm");

	mkdir_p_in(root, "tmp");
	snprintf(p, sizeof(p), "%s/tmp", root);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		die("mount /tmp");

	/* The allocation directory: the one writable place that lasts. */
	char alloc[SHIM_PATH_MAX + 8];
	snprintf(alloc, sizeof(alloc), "%s/alloc", c->task_dir);
	int afd = open_beneath(root, c->alloc_target + 1, true);
	if (afd < 0) {
		errno = -afd;
		die("allocation directory %s (it must not go through a symlink "
		    "or a read-only host directory)",
		    c->alloc_target);
	}
	snprintf(p, sizeof(p), "/proc/self/fd/%d", afd);
	if (mount(alloc, p, NULL, MS_BIND, NULL) < 0)
		die("bind the allocation directory at %s", c->alloc_target);
	close(afd);
	snprintf(p, sizeof(p), "%s%s", root, c->alloc_target);
	if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV,
		  NULL) < 0)
		die("bind the allocation directory at %s", c->alloc_target);

	/* Enter the new root; the old one is detached, not just hidden. */
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		die("pivot_root");
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		die("make / read-only");
}

static void loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("loopback");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("bring up loopback");
	close(s);
}

/*
 * From root to the task's user with only the kept capabilities; the
 * order matters: the bounding set needs CAP_SETPCAP (gone after setuid),
 * and the kept capabilities survive setuid only with KEEPCAPS, then reach
 * the program through the ambient set.
 */
static void drop_privileges(const shim_conf_t *c)
{
	for (size_t i = 0; i < c->nrlimits; i++) {
		struct rlimit rl = { c->rlimits[i].soft, c->rlimits[i].hard };
		if (setrlimit(c->rlimits[i].resource, &rl) < 0)
			die("rlimit %d", c->rlimits[i].resource);
	}
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
		if (!(c->caps & (1ull << v)) && cap_drop_bound(v) < 0 &&
		    errno != EINVAL)
			die("drop capability %d from the bounding set", v);
	/* Root inside the sandbox is no special case: no capabilities come
	 * back on execve for uid 0, and setuid transitions change nothing. */
	if (prctl(PR_SET_SECUREBITS,
		  SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_SETUID_FIXUP |
			  SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT |
			  SECBIT_NOROOT_LOCKED) < 0)
		die("securebits");
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		die("switch to uid %u gid %u", c->uid, c->gid);
	/* Trust but verify: (uid_t)-1 would have meant "unchanged". */
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != c->uid || eu != c->uid || su != c->uid || rg != c->gid ||
	    eg != c->gid || sg != c->gid || ru == 0 || rg == 0) {
		errno = 0;
		die("user switch did not take effect (uid %u gid %u)", c->uid,
		    c->gid);
	}

	cap_t caps = cap_init();
	cap_value_t keep[64];
	int n = 0;
	for (cap_value_t v = 0; v <= CAP_LAST_CAP && n < 64; v++)
		if (c->caps & (1ull << v))
			keep[n++] = v;
	if (n && (cap_set_flag(caps, CAP_PERMITTED, n, keep, CAP_SET) < 0 ||
		  cap_set_flag(caps, CAP_EFFECTIVE, n, keep, CAP_SET) < 0 ||
		  cap_set_flag(caps, CAP_INHERITABLE, n, keep, CAP_SET) < 0))
		die("capability set");
	if (cap_set_proc(caps) < 0)
		die("set capabilities");
	cap_free(caps);
	if (cap_reset_ambient() < 0 && errno != EINVAL)
		die("clear ambient capabilities");
	for (int i = 0; i < n; i++)
		if (cap_set_ambient(keep[i], CAP_SET) < 0)
			die("ambient capability %d", keep[i]);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");
}

/* Read while the host's paths are still in view (before pivot_root). */
static void read_seccomp(const shim_conf_t *c, agent_bpf_t *prog)
{
	flt_error_t err;
	memset(prog, 0, sizeof(*prog));
	if (!c->seccomp_file[0])
		return;
	if (agent_bpf_load_file(c->seccomp_file, prog, &err) < 0) {
		errno = 0;
		die("seccomp: %s", err.msg);
	}
}

static void install_seccomp(const agent_bpf_t *prog)
{
	int rc = agent_bpf_install(prog);
	if (rc < 0) {
		errno = -rc;
		die("install seccomp filter");
	}
}

/*
 * The task's pid 1 takes every signal it can and passes it on to the
 * program: the kernel drops a signal sent to a namespace's init that the
 * init does not handle, whatever the stop signal a spec chose.
 */
static void forwardable(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGKILL);
	sigdelset(set, SIGSTOP);
}

/*
 * pid 1 of the task: reaps every orphan, passes signals on to the program
 * (a pid 1 without handlers would ignore SIGTERM), and when the program
 * exits, hands its wait status to the shim and exits, which ends every
 * other process of the namespace.
 */
static void __attribute__((noreturn))
mini_init(pid_t prog, int result_fd, const sigset_t *set)
{
	int status = 0;
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(prog, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t w = waitpid(-1, &st, WNOHANG);
			if (w <= 0)
				break;
			if (w == prog) {
				status = st;
				if (write(result_fd, &status, sizeof(status)) <
				    0)
					_exit(125);
				_exit(WIFEXITED(st) ? WEXITSTATUS(st)
						    : 128 + WTERMSIG(st));
			}
		}
	}
}

typedef struct child_args {
	const shim_conf_t *c;
	int go_fd, err_fd, result_fd, out_fd, errout_fd;
	int life_fd; /* read end; EOF once the shim is gone */
	int life_w; /* the shim's write end: closed at once in the child */
} child_args_t;

/*
 * Die with the parent. The death signal must be set after the switch of
 * user (which clears it), and the parent may already be gone by then:
 * the life pipe, whose write end only the parent holds, tells.
 */
static void die_with_parent(int life_fd)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("pdeathsig");
	struct pollfd p = { .fd = life_fd, .events = POLLIN };
	if (poll(&p, 1, 0) != 0)
		_exit(126); /* hung up: the parent died */
	close(life_fd);
}

static int child_main(void *arg)
{
	child_args_t *a = arg;
	const shim_conf_t *c = a->c;
	char root[SHIM_PATH_MAX + 16];

	err_fd = a->err_fd;
	close(a->life_w);
	signal(SIGPIPE, SIG_DFL); /* the shim ignores it, the task must not */
	/* A session of its own: no controlling terminal, so no TIOCSTI
	 * into the operator's shell (CVE-2017-5226 in bubblewrap). */
	if (setsid() < 0)
		die("setsid");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("pdeathsig");
	agent_bpf_t prog_filter;
	read_seccomp(c, &prog_filter);
	snprintf(root, sizeof(root), "%s/rootfs", c->task_dir);
	build_root(c, root);
	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		die("sethostname");
	if (c->net == SHIM_NET_PRIVATE)
		loopback_up();
	drop_privileges(c);
	die_with_parent(a->life_fd);

	sigset_t set;
	forwardable(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);

	/* The cgroup join (a slow write for the shim: the kernel waits out
	 * an RCU grace period) overlapped everything above; the program
	 * must not start before it is done. */
	char go;
	if (read(a->go_fd, &go, 1) != 1)
		_exit(126);
	close(a->go_fd);

	/* Once, for pid 1 and (inherited over fork and exec) the program:
	 * a task must not be able to use pid 1 either. */
	install_seccomp(&prog_filter);

	pid_t prog = fork();
	if (prog < 0)
		die("fork");
	if (prog == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(a->out_fd, 1) < 0 ||
		    dup2(a->errout_fd, 2) < 0)
			die("standard streams");
		if (chdir(c->workdir[0] ? c->workdir : "/") < 0)
			die("chdir %s", c->workdir);
		execve(c->argv[0], c->argv, c->envp);
		die("exec %s", c->argv[0]);
	}
	close(a->out_fd);
	close(a->errout_fd);
	close(a->err_fd);
	err_fd = -1;
	mini_init(prog, a->result_fd, &set);
}

/* The shim keeps the write end for its whole life (closed only on exec):
 * its children see EOF on the read end exactly when it is gone. */
static int life[2] = { -1, -1 };

int sandbox_start(const shim_conf_t *c, const agent_cgroup_t *cg, int out_fd,
		  int errout_fd, sandbox_proc_t *p, char *why, size_t whylen)
{
	int go[2], errp[2], res[2];
	static char stack[256 * 1024] __attribute__((aligned(16)));

	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(errp, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		return e;
	}
	if (life[0] < 0 && pipe2(life, O_CLOEXEC) < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		close(errp[0]);
		close(errp[1]);
		close(res[0]);
		close(res[1]);
		return e;
	}
	child_args_t a = { c,      go[0],     errp[1], res[1],
			   out_fd, errout_fd, life[0], life[1] };
	int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
		    SIGCHLD;
	if (c->net != SHIM_NET_HOST)
		flags |= CLONE_NEWNET;
	pid_t pid = clone(child_main, stack + sizeof(stack), flags, &a);
	int e = errno;
	close(go[0]);
	close(errp[1]);
	close(res[1]);
	if (pid < 0) {
		snprintf(why, whylen, "clone: %s", strerror(e));
		close(go[1]);
		close(errp[0]);
		close(res[0]);
		return -e;
	}
	int rc = cg ? agent_cgroup_attach(cg, pid) : 0;
	if (rc < 0) {
		snprintf(why, whylen, "join cgroup: %s", strerror(-rc));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(go[1]);
		close(errp[0]);
		close(res[0]);
		return rc;
	}
	if (write(go[1], "g", 1) != 1) {
		rc = -errno;
		snprintf(why, whylen, "start: %s", strerror(errno));
	}
	close(go[1]);
	/* EOF: the program was executed (the pipe closes on exec in the
	 * program and on exit in pid 1); text: why the setup failed. */
	char msg[512];
	ssize_t n, got = 0;
	while ((n = read(errp[0], msg + got, sizeof(msg) - 1 - (size_t)got)) >
	       0)
		got += n;
	close(errp[0]);
	if (got > 0) {
		msg[got] = '\0';
		snprintf(why, whylen, "%s", msg);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(res[0]);
		return -EINVAL;
	}
	if (rc < 0) {
		close(res[0]);
		return rc;
	}
	p->init = pid;
	p->result_fd = res[0];
	return 0;
}

void sandbox_enter_exec(const shim_conf_t *c, const agent_cgroup_t *cg,
			pid_t init, char *const argv[])
{
	static const struct {
		const char *name;
		int type;
	} nss[] = { { "ipc", CLONE_NEWIPC },
		    { "uts", CLONE_NEWUTS },
		    { "net", CLONE_NEWNET },
		    { "pid", CLONE_NEWPID },
		    { "mnt", CLONE_NEWNS } };
	int fds[5];
	char p[64];

	agent_bpf_t filter;
	err_fd = 2;
	read_seccomp(c, &filter);
	if (cg && agent_cgroup_attach(cg, getpid()) < 0)
		die("join the task's cgroup");
	/* Open all first: after entering the mount namespace, the host's
	 * /proc is out of reach. */
	for (size_t i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)init,
			 nss[i].name);
		fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			die("open %s", p);
	}
	for (size_t i = 0; i < 5; i++) {
		if (nss[i].type == CLONE_NEWNET && c->net == SHIM_NET_HOST)
			continue;
		if (setns(fds[i], nss[i].type) < 0)
			die("enter the task's %s namespace", nss[i].name);
		close(fds[i]);
	}
	if (chdir("/") < 0)
		die("chdir /");
	/* A pid namespace applies to children: fork into it. */
	int alive[2];
	if (pipe2(alive, O_CLOEXEC) < 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid > 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	close(alive[1]);
	if (setsid() < 0)
		die("setsid");
	drop_privileges(c);
	/* Killed with the check process when its timeout passes. */
	die_with_parent(alive[0]);
	if (chdir(c->workdir[0] ? c->workdir : "/") < 0)
		die("chdir %s", c->workdir);
	install_seccomp(&filter);
	execve(argv[0], argv, c->envp);
	die("exec %s", argv[0]);
}
