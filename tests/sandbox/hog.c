/*
 * flt-hog: a task that takes all of one resource, for
 * tests/integration/sandbox_limits.sh. Static and without sanitizers, like
 * flt-escape.
 *
 *   flt-hog mem MAX_MB     touch memory 1 MiB at a time, reporting every
 *                          4 MiB; exits 3 if MAX_MB were reached unharmed
 *   flt-hog fork SECONDS   a fork bomb for SECONDS; then reports the most
 *                          processes seen at once and why forks failed
 *   flt-hog cpu SECONDS    spin for SECONDS of wall time; then reports the
 *                          CPU time it got
 *
 * Reports are single lines of key=value fields on stdout.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hog_mem(long max_mb)
{
	long mb;
	for (mb = 1; mb <= max_mb; mb++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("mem mmap_failed allocated_mb=%ld errno=%s\n",
			       mb - 1, strerrorname_np(errno));
			return 4;
		}
		/* Touched, so that the pages are charged to the cgroup. */
		memset(p, 0xa5, 1 << 20);
		if (mb % 4 == 0) {
			printf("mem allocated_mb=%ld\n", mb);
			fflush(stdout);
		}
	}
	printf("mem survived allocated_mb=%ld\n", max_mb);
	return 3;
}

/* Processes of the task: its pid namespace shows no others. */
static int count_procs(void)
{
	DIR *d = opendir("/proc");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] >= '1' && e->d_name[0] <= '9';
	if (d)
		closedir(d);
	return n;
}

static void __attribute__((noreturn)) bomb(void)
{
	for (;;)
		fork();
}

static int hog_fork(long seconds)
{
	long long end = mono_ms() + seconds * 1000;
	int max = 0, last_errno = 0;
	long forks = 0, failures = 0;
	while (mono_ms() < end) {
		pid_t pid = fork();
		if (pid == 0)
			bomb();
		if (pid > 0) {
			forks++;
		} else {
			failures++;
			last_errno = errno;
		}
		int n = count_procs();
		if (n > max)
			max = n;
	}
	printf("fork procs_max=%d forks=%ld failures=%ld fork_errno=%s\n", max,
	       forks, failures,
	       last_errno ? strerrorname_np(last_errno) : "none");
	fflush(stdout);
	/* Leaving ends pid 1 and with it every bomb in the namespace. */
	return 0;
}

static int hog_cpu(long seconds)
{
	long long start = mono_ms(), end = start + seconds * 1000;
	volatile unsigned long spin = 0;
	while (mono_ms() < end)
		spin++;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long long wall = mono_ms() - start;
	long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000LL +
			(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	printf("cpu wall_ms=%lld cpu_ms=%lld percent=%lld\n", wall, cpu,
	       wall ? cpu * 100 / wall : 0);
	return 0;
}

int main(int argc, char **argv)
{
	char *end;
	long n = argc == 3 ? strtol(argv[2], &end, 10) : 0;
	if (argc != 3 || *end || n <= 0) {
		fprintf(stderr, "usage: flt-hog mem MAX_MB | fork SECONDS | "
				"cpu SECONDS\n");
		return 2;
	}
	if (!strcmp(argv[1], "mem"))
		return hog_mem(n);
	if (!strcmp(argv[1], "fork"))
		return hog_fork(n);
	if (!strcmp(argv[1], "cpu"))
		return hog_cpu(n);
	fprintf(stderr, "flt-hog: unknown mode \"%s\"\n", argv[1]);
	return 2;
}
