#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "devices.h"

const agent_device_t agent_devices[] = {
	{ "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
	{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};
const size_t agent_ndevices = sizeof(agent_devices) / sizeof(agent_devices[0]);

static int write_rule(const char *dir, const char *file, const char *rule)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, rule, strlen(rule)) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int agent_devices_v1(const char *dir, char *why, size_t whylen)
{
	char rule[64];
	/* Deny first: a cgroup starts with its parent's rules, on most
	 * hosts "a *:* rwm". */
	int rc = write_rule(dir, "devices.deny", "a");
	if (rc < 0) {
		snprintf(why, whylen, "%s/devices.deny: %s", dir,
			 strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < agent_ndevices; i++) {
		snprintf(rule, sizeof(rule), "c %u:%u rw",
			 agent_devices[i].major, agent_devices[i].minor);
		if ((rc = write_rule(dir, "devices.allow", rule)) < 0) {
			snprintf(why, whylen, "%s/devices.allow %s: %s", dir,
				 rule, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

#define INSN(c, d, s, o, i)                 \
	((struct bpf_insn){ .code = (c),    \
			    .dst_reg = (d), \
			    .src_reg = (s), \
			    .off = (o),     \
			    .imm = (i) })

int agent_devices_bpf_build(struct bpf_insn *insns, size_t max)
{
	size_t need = 8 + 5 * agent_ndevices + 2, n = 0;
	if (max < need)
		return -ENOSPC;
	/* r1 points to struct bpf_cgroup_dev_ctx: access_type holds the
	 * access (<< 16) and the device type, then major, then minor. */
	insns[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1,
			  offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	insns[n++] =
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
	insns[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
	insns[n++] = INSN(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
	insns[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1,
			  offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	insns[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1,
			  offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	/* Creating a node is never allowed, whatever the device. */
	insns[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_3, 0, 0,
			  BPF_DEVCG_ACC_MKNOD);
	/* Jump over every rule to the refusal at the end. */
	insns[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0,
			  (short)(5 * agent_ndevices), 0);
	for (size_t i = 0; i < agent_ndevices; i++) {
		/* Not this device: on to the next rule, 4 instructions on. */
		insns[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 4,
				  BPF_DEVCG_DEV_CHAR);
		insns[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 3,
				  (int)agent_devices[i].major);
		insns[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 2,
				  (int)agent_devices[i].minor);
		insns[n++] =
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
		insns[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	}
	insns[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	insns[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return (int)n;
}

int agent_devices_bpf_attach(int cgroup_fd, char *why, size_t whylen)
{
	struct bpf_insn insns[64];
	static char log[4096];
	int n = agent_devices_bpf_build(insns, 64);
	if (n < 0) {
		snprintf(why, whylen, "device program: too many devices");
		return n;
	}
	union bpf_attr load = { 0 };
	load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	load.insns = (uint64_t)(uintptr_t)insns;
	load.insn_cnt = (uint32_t)n;
	/* The program calls no helper: its license field binds nothing. */
	load.license = (uint64_t)(uintptr_t) "GPL";
	load.log_buf = (uint64_t)(uintptr_t)log;
	load.log_size = sizeof(log);
	load.log_level = 1;
	log[0] = '\0';
	int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
	if (prog < 0) {
		int e = errno;
		log[strcspn(log, "\n")] = '\0';
		snprintf(why, whylen, "load the device program: %s%s%s",
			 strerror(e), log[0] ? ": " : "", log);
		return -e;
	}
	/*
	 * No BPF_F_ALLOW_MULTI: attached alone, a second attach to the same
	 * cgroup (a restart reusing it) replaces ours instead of stacking
	 * one more program on every restart. Programs that ancestors attached
	 * with BPF_F_ALLOW_MULTI (systemd's DeviceAllow) still run as well:
	 * the kernel lets a device through only when every one does.
	 */
	union bpf_attr at = { 0 };
	at.target_fd = (uint32_t)cgroup_fd;
	at.attach_bpf_fd = (uint32_t)prog;
	at.attach_type = BPF_CGROUP_DEVICE;
	int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof(at));
	int e = errno;
	close(prog); /* the attachment holds the program */
	if (rc < 0) {
		snprintf(why, whylen, "attach the device program: %s",
			 strerror(e));
		return -e;
	}
	return 0;
}
