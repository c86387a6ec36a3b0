/*
 * Unit tests for agent/devices.c: the device allowlist, enforced by the
 * kernel. A child joins a cgroup with the allowlist (the task cgroup of
 * agent/cgroup.c on v1; a cgroup v2 directory with the BPF program, on
 * whichever cgroup2 mount the host has, the hybrid one included), then
 * opens nodes the test made in a directory of its own: the allowed one
 * opens, the other and mknod are refused. The same nodes open outside the
 * cgroup, so that the refusal is the cgroup's.
 */
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
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/magic.h>

#include <cmocka.h>

#include "cgroup.h"
#include "devices.h"

static char dir[64]; /* holds "full" (1:7, allowed) and "kmsg" (1:11) */

static int try_open(const char *name)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int try_mknod(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/made", dir);
	int rc = mknod(p, S_IFCHR | 0600, makedev(1, 11)) < 0 ? -errno : 0;
	unlink(p);
	return rc;
}

/* Nodes on a filesystem that allows them; false (skip) when it cannot. */
static bool make_nodes(void)
{
	char p[128];
	if (getuid() != 0) {
		print_message("skipped: needs root (mknod, cgroups)\n");
		return false;
	}
	snprintf(dir, sizeof(dir), "/tmp/flt-unit-devices.XXXXXX");
	if (!mkdtemp(dir))
		return false;
	snprintf(p, sizeof(p), "%s/full", dir);
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 7)), 0);
	snprintf(p, sizeof(p), "%s/kmsg", dir);
	assert_int_equal(mknod(p, S_IFCHR | 0600, makedev(1, 11)), 0);
	if (try_open("full") < 0 || try_open("kmsg") < 0) {
		print_message("skipped: %s is on a nodev filesystem\n", dir);
		return false;
	}
	return true;
}

static void remove_nodes(void)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/full", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/kmsg", dir);
	unlink(p);
	rmdir(dir);
}

/*
 * Forks a child that writes its pid to procs (a cgroup.procs file), or
 * calls agent_cgroup_attach on cg; then reports what it could open.
 */
static void in_child(const char *procs, const agent_cgroup_t *cg, int res[3])
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int r[3] = { -1, -1, -1 }, rc = 0;
		if (procs) {
			FILE *f = fopen(procs, "we");
			rc = f && fprintf(f, "%d\n", (int)getpid()) > 0 ? 0
									: -1;
			if (f && fclose(f) != 0)
				rc = -1;
		} else {
			rc = agent_cgroup_attach(cg, getpid());
		}
		if (rc == 0) {
			r[0] = try_open("full");
			r[1] = try_open("kmsg");
			r[2] = try_mknod();
		}
		if (write(p[1], r, sizeof(r)) != sizeof(r))
			_exit(1);
		_exit(rc == 0 ? 0 : 2);
	}
	close(p[1]);
	assert_int_equal(read(p[0], res, 3 * sizeof(int)), 3 * sizeof(int));
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_program_shape(void **state)
{
	struct bpf_insn insns[64];
	(void)state;
	int n = agent_devices_bpf_build(insns, 64);
	assert_int_equal(n, (int)(8 + 5 * agent_ndevices + 2));
	/* Ends refusing; each rule ends allowing. */
	assert_int_equal(insns[n - 1].code, BPF_JMP | BPF_EXIT);
	assert_int_equal(insns[n - 2].imm, 0);
	for (size_t i = 0; i < agent_ndevices; i++) {
		assert_int_equal(insns[8 + 5 * i + 1].imm,
				 (int)agent_devices[i].major);
		assert_int_equal(insns[8 + 5 * i + 2].imm,
				 (int)agent_devices[i].minor);
		assert_int_equal(insns[8 + 5 * i + 3].imm, 1);
	}
	assert_int_equal(agent_devices_bpf_build(insns, 10), -ENOSPC);
}

static void test_v1_cgroup(void **state)
{
	(void)state;
	if (agent_cgroup_version() != 1) {
		print_message("skipped: no cgroup v1 hierarchy here\n");
		skip();
	}
	if (!make_nodes())
		skip();
	agent_cgroup_t cg;
	char why[256] = "", name[64];
	snprintf(name, sizeof(name), "unit-devices-%d", (int)getpid());
	int rc = agent_cgroup_create(&cg, name, 0, 0, 0, 0, why, sizeof(why));
	if (rc < 0)
		print_error("agent_cgroup_create: %s\n", why);
	assert_int_equal(rc, 0);
	int res[3];
	in_child(NULL, &cg, res);
	agent_cgroup_destroy(&cg);
	remove_nodes();
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], -EPERM);
	assert_int_equal(res[2], -EPERM);
}

static bool is_cgroup2(const char *p)
{
	struct statfs st;
	return statfs(p, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC &&
	       access(p, W_OK) == 0;
}

static void test_v2_program(void **state)
{
	(void)state;
	const char *root = is_cgroup2("/sys/fs/cgroup") ? "/sys/fs/cgroup"
			   : is_cgroup2("/sys/fs/cgroup/unified")
				   ? "/sys/fs/cgroup/unified"
				   : NULL;
	if (!root) {
		print_message("skipped: no writable cgroup2 mount (neither "
			      "/sys/fs/cgroup nor /sys/fs/cgroup/unified)\n");
		skip();
	}
	if (!make_nodes())
		skip();
	char cgdir[256], procs[300], why[4200] = "";
	snprintf(cgdir, sizeof(cgdir), "%s/flt-unit-devices-%d", root,
		 (int)getpid());
	assert_int_equal(mkdir(cgdir, 0755), 0);
	int fd = open(cgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	int rc = agent_devices_bpf_attach(fd, why, sizeof(why));
	if (rc < 0)
		print_error("agent_devices_bpf_attach: %s\n", why);
	assert_int_equal(rc, 0);
	/* Attached again, as for a restarted task: replaced, not stacked. */
	assert_int_equal(agent_devices_bpf_attach(fd, why, sizeof(why)), 0);
	close(fd);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgdir);
	int res[3];
	in_child(procs, NULL, res);
	rmdir(cgdir);
	remove_nodes();
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], -EPERM);
	assert_int_equal(res[2], -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_program_shape),
		cmocka_unit_test(test_v1_cgroup),
		cmocka_unit_test(test_v2_program),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
