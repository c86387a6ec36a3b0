/*
 * The device allowlist of a task: the character devices its /dev shows
 * (bound from the host) and the only ones the kernel lets it open, however
 * a node for another device reached its view. Enforced by the devices
 * cgroup on v1 and by a BPF_PROG_TYPE_CGROUP_DEVICE program on v2. libc
 * only: the shim uses it.
 */
#ifndef FLOTILLA_DEVICES_H
#define FLOTILLA_DEVICES_H

#include <stddef.h>

typedef struct agent_device {
	const char *name; /* below /dev */
	unsigned major, minor; /* character devices only */
} agent_device_t;

/* null, zero, full, random, urandom, tty: their numbers are fixed by the
 * kernel (Documentation/admin-guide/devices.txt). */
extern const agent_device_t agent_devices[];
extern const size_t agent_ndevices;

/*
 * Writes the allowlist into a cgroup v1 devices directory: "a" denied,
 * then read and write (never mknod) allowed for each device. Returns 0 or
 * -errno with why filled.
 */
int agent_devices_v1(const char *dir, char *why, size_t whylen);

/*
 * Builds the v2 device program into insns (room for max instructions):
 * read and write of the allowlist pass, everything else (mknod included)
 * is refused. Returns the number of instructions, or -ENOSPC.
 */
struct bpf_insn;
int agent_devices_bpf_build(struct bpf_insn *insns, size_t max);

/*
 * Loads the device program and attaches it to the cgroup v2 directory
 * open at cgroup_fd, replacing a program of ours attached before (a
 * restarted task reuses its cgroup). Returns 0 or -errno with why filled
 * (the verifier's log when it refused the program).
 */
int agent_devices_bpf_attach(int cgroup_fd, char *why, size_t whylen);

#endif
