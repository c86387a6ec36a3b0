/*
 * startbench: start-to-exit latency of command lines, side by side.
 *
 *   startbench [-n RUNS] [-w WARMUP] [-g GAP_MS] [-o FILE] [-v]
 *              :: NAME ARGV... [:: NAME ARGV...]...
 *
 * Each contender is a name and an argv (run with execvp, no shell). The
 * contenders take turns, one run each per round in a new random order
 * (fixed seed), so that they all see the same machine state (page cache,
 * cgroup and mount churn, CPU frequency, other load) rather than one
 * after the other. Each run is timed from just before fork to just after
 * waitpid with CLOCK_MONOTONIC; WARMUP rounds run first and are not
 * counted. -g sleeps GAP_MS (untimed) before every run: starts spaced out
 * as on a real node, where kernel state that back-to-back starts keep
 * warm (the RCU-synchronised lock that cgroup migration takes, for one)
 * has gone cold again. Every run must exit 0: failures are counted,
 * reported, left out of the statistics and make startbench exit 1.
 *
 * "{n}" in an argument becomes a number unique to the run (container ids).
 *
 * Output: a table (count, failures, p50, p90, p99, mean, max in ms) and
 * one JSON object per contender on its own line, also appended to FILE
 * with -o. Children's stdout and stderr go to /dev/null unless -v.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_CONTENDERS 16

typedef struct contender {
	const char *name;
	char **argv; /* argc entries borrowed from main's argv */
	size_t argc;
	double *ms; /* successful runs */
	size_t n;
	size_t failures;
	int last_status;
} contender_t;

static bool verbose;
static long gap_ms;

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p) {
		perror("startbench");
		exit(2);
	}
	return p;
}

/* argv with every "{n}" replaced by run; the strings are leaked on
 * purpose only in the child, which execs or exits at once. */
static char **expand(const contender_t *c, unsigned long run)
{
	char **out = xcalloc(c->argc + 1, sizeof(*out));
	char num[32];
	snprintf(num, sizeof(num), "%lu", run);
	for (size_t i = 0; i < c->argc; i++) {
		const char *a = c->argv[i], *hit = strstr(a, "{n}");
		if (!hit) {
			out[i] = c->argv[i];
			continue;
		}
		size_t len = strlen(a) + strlen(num);
		out[i] = xcalloc(len + 1, 1);
		snprintf(out[i], len + 1, "%.*s%s%s", (int)(hit - a), a, num,
			 hit + 3);
	}
	return out;
}

/* One start; returns the wall time in ms, or -1 with *status set. */
static double run_once(const contender_t *c, unsigned long run, int *status)
{
	if (gap_ms > 0) {
		struct timespec gap = { gap_ms / 1000,
					(gap_ms % 1000) * 1000000 };
		while (nanosleep(&gap, &gap) < 0 && errno == EINTR)
			;
	}
	double t0 = bench_now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("startbench: fork");
		exit(2);
	}
	if (pid == 0) {
		char **argv = expand(c, run);
		/* Our own stderr stays open (close-on-exec) for the one
		 * message that matters: that the exec failed. */
		int err = fcntl(2, F_DUPFD_CLOEXEC, 3);
		if (!verbose) {
			int null = open("/dev/null", O_RDWR);
			if (null < 0 || dup2(null, 0) < 0 ||
			    dup2(null, 1) < 0 || dup2(null, 2) < 0)
				_exit(127);
		}
		execvp(argv[0], argv);
		dprintf(err, "startbench: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			perror("startbench: waitpid");
			exit(2);
		}
	double t1 = bench_now_ms();
	*status = st;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t1 - t0 : -1;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "status 0x%x", st);
}

typedef struct stats {
	double p50, p90, p99, mean, min, max;
} stats_t;

/* Sorts c->ms. */
static stats_t stats_of(contender_t *c)
{
	stats_t s = { 0 };
	double sum = 0;
	if (!c->n)
		return s;
	qsort(c->ms, c->n, sizeof(double), bench_cmp_double);
	for (size_t k = 0; k < c->n; k++)
		sum += c->ms[k];
	s.p50 = pct(c->ms, c->n, 50);
	s.p90 = pct(c->ms, c->n, 90);
	s.p99 = pct(c->ms, c->n, 99);
	s.mean = sum / (double)c->n;
	s.min = c->ms[0];
	s.max = c->ms[c->n - 1];
	return s;
}

static void report(contender_t *cs, size_t nc, FILE *json_out)
{
	stats_t st[MAX_CONTENDERS];
	printf("%-22s %6s %5s %8s %8s %8s %8s %8s\n", "contender", "count",
	       "fail", "p50", "p90", "p99", "mean", "max");
	for (size_t i = 0; i < nc; i++) {
		st[i] = stats_of(&cs[i]);
		printf("%-22s %6zu %5zu %8.2f %8.2f %8.2f %8.2f %8.2f\n",
		       cs[i].name, cs[i].n, cs[i].failures, st[i].p50,
		       st[i].p90, st[i].p99, st[i].mean, st[i].max);
	}
	for (size_t i = 0; i < nc; i++) {
		char line[1024];
		snprintf(line, sizeof(line),
			 "{\"name\":\"%s\",\"gap_ms\":%ld,\"count\":%zu,"
			 "\"failures\":%zu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
			 "\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"min_ms\":%.3f,"
			 "\"max_ms\":%.3f}",
			 cs[i].name, gap_ms, cs[i].n, cs[i].failures, st[i].p50,
			 st[i].p90, st[i].p99, st[i].mean, st[i].min,
			 st[i].max);
		printf("%s\n", line);
		if (json_out)
			fprintf(json_out, "%s\n", line);
	}
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: startbench [-n RUNS] [-w WARMUP] [-g GAP_MS] "
		"[-o FILE] [-v]\n"
		"                  :: NAME ARGV... [:: NAME ARGV...]...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	contender_t cs[MAX_CONTENDERS] = { 0 };
	size_t nc = 0, runs = 200, warmup = 10;
	const char *json_path = NULL;
	int i = 1;

	for (; i < argc && strcmp(argv[i], "::") != 0; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			runs = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-w") && i + 1 < argc)
			warmup = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-g") && i + 1 < argc)
			gap_ms = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "-v"))
			verbose = true;
		else
			usage();
	}
	while (i < argc) { /* argv[i] is "::" */
		if (nc == MAX_CONTENDERS) {
			fprintf(stderr, "startbench: at most %d contenders\n",
				MAX_CONTENDERS);
			return 2;
		}
		int start = ++i;
		while (i < argc && strcmp(argv[i], "::") != 0)
			i++;
		if (i - start < 2)
			usage();
		contender_t *c = &cs[nc++];
		c->name = argv[start];
		c->argv = argv + start + 1;
		c->argc = (size_t)(i - start - 1);
		c->ms = xcalloc(runs ? runs : 1, sizeof(double));
	}
	if (!nc || !runs)
		usage();

	unsigned long seq = (unsigned long)getpid() * 100000ul;
	int st;
	for (size_t r = 0; r < warmup; r++)
		for (size_t k = 0; k < nc; k++)
			if (run_once(&cs[k], seq++, &st) < 0) {
				char why[64];
				describe_status(st, why, sizeof(why));
				fprintf(stderr,
					"startbench: %s: warm-up run failed "
					"(%s)\n",
					cs[k].name, why);
			}
	/* A new random order every round: no contender always runs right
	 * after the same other one, whose leftovers (a cgroup migration's
	 * RCU state, dirty pages to sync) it would otherwise always meet. */
	size_t order[MAX_CONTENDERS];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	for (size_t k = 0; k < nc; k++)
		order[k] = k;
	for (size_t r = 0; r < runs; r++) {
		for (size_t k = nc - 1; k > 0; k--) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			size_t x = (size_t)(rng % (k + 1)), t = order[k];
			order[k] = order[x];
			order[x] = t;
		}
		for (size_t j = 0; j < nc; j++) {
			contender_t *c = &cs[order[j]];
			double ms = run_once(c, seq++, &st);
			if (ms < 0) {
				c->failures++;
				c->last_status = st;
				continue;
			}
			c->ms[c->n++] = ms;
		}
	}

	FILE *json_out = NULL;
	if (json_path && !(json_out = fopen(json_path, "a"))) {
		perror(json_path);
		return 2;
	}
	report(cs, nc, json_out);
	if (json_out)
		fclose(json_out);
	int rc = 0;
	for (size_t k = 0; k < nc; k++)
		if (cs[k].failures) {
			char why[64];
			describe_status(cs[k].last_status, why, sizeof(why));
			fprintf(stderr,
				"startbench: %s: %zu of %zu runs failed (last: "
				"%s)\n",
				cs[k].name, cs[k].failures, runs, why);
			rc = 1;
		}
	return rc;
}
