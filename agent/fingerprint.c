/* The host fingerprint: what the scheduler will match constraints against. */
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/magic.h>

#include "agent.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

static void unquote_copy(char *dst, size_t len, const char *v)
{
	size_t n = strlen(v);
	while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
		n--;
	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		v++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static void read_os_release(agent_fingerprint_t *f, const char *path)
{
	FILE *fp = fopen(path, "re");
	char line[512];
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "ID=", 3) == 0)
			unquote_copy(f->os_id, sizeof(f->os_id), line + 3);
		else if (strncmp(line, "VERSION_ID=", 11) == 0)
			unquote_copy(f->os_version, sizeof(f->os_version),
				     line + 11);
		else if (strncmp(line, "PRETTY_NAME=", 12) == 0)
			unquote_copy(f->os_name, sizeof(f->os_name), line + 12);
	}
	fclose(fp);
}

/*
 * A host must never be kept out of the fleet by a display string: what
 * the coordinator would refuse (invalid UTF-8 from os-release, a hostname
 * of raw bytes) is sent escaped instead (flt_escape, "\xff"), cut to the
 * field. Control characters are valid text and go as they are: the
 * coordinator stores them and every display escapes them.
 */
static void make_sendable(const char *what, char *s, size_t size)
{
	const char *why;
	size_t len = strlen(s);
	if (flt_text_check(s, len, FLT_TEXT_CONTROLS, &why) == len)
		return;
	/* From a copy of the original: the cut falls between two escapes. */
	cleanup_free char *orig = flt_xstrdup(s);
	flt_escape(orig, len, 0, s, size);
	flt_warn("fingerprint: %s is not valid UTF-8, sent escaped value=%s",
		 what, s);
}

const char *agent_cgroup_version(const char *root)
{
	struct statfs st;
	char unified[512];

	if (statfs(root, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
		return "v2";
	snprintf(unified, sizeof(unified), "%s/unified", root);
	/* v1 controllers with a (possibly empty) v2 hierarchy beside them. */
	if (statfs(unified, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC)
		return "hybrid";
	return "v1";
}

void agent_fingerprint_read(agent_fingerprint_t *f, const char *os_release)
{
	struct utsname u;

	memset(f, 0, sizeof(*f));
	flotilla__fingerprint__init(&f->fp);
	if (gethostname(f->hostname, sizeof(f->hostname) - 1) != 0)
		snprintf(f->hostname, sizeof(f->hostname), "unknown");
	read_os_release(f, os_release);
	if (uname(&u) == 0) {
		snprintf(f->kernel, sizeof(f->kernel), "%s", u.release);
		snprintf(f->arch, sizeof(f->arch), "%s", u.machine);
	}
	snprintf(f->cgroup, sizeof(f->cgroup), "%s",
		 agent_cgroup_version("/sys/fs/cgroup"));
	make_sendable("hostname", f->hostname, sizeof(f->hostname));
	make_sendable("os_id", f->os_id, sizeof(f->os_id));
	make_sendable("os_version", f->os_version, sizeof(f->os_version));
	make_sendable("os_name", f->os_name, sizeof(f->os_name));
	make_sendable("kernel", f->kernel, sizeof(f->kernel));
	make_sendable("arch", f->arch, sizeof(f->arch));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	f->fp.hostname = f->hostname;
	f->fp.os_id = f->os_id;
	f->fp.os_version = f->os_version;
	f->fp.os_name = f->os_name;
	f->fp.kernel = f->kernel;
	f->fp.arch = f->arch;
	f->fp.cpu_count = cpus > 0 ? (uint32_t)cpus : 1;
	f->fp.memory_bytes =
		pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
	f->fp.cgroup_version = f->cgroup;
	f->fp.agent_version = (char *)FLT_VERSION;
}
