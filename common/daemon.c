/*
 * The start and stop of a daemon (declared in flotilla/util.h): signals as
 * events of the main loop, logging and libsodium at start, the guard that
 * ends a shutdown that hangs. Apart from util.c so that the small helpers
 * log nothing and the log may use them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <sodium.h>

#include "flotilla/log.h"
#include "flotilla/util.h"

static void term_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

void flt_signals_block(void)
{
	sigset_t set;
	term_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int flt_signal_fd(void)
{
	sigset_t set;
	term_signals(&set);
	int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

bool flt_signal_stop(int sfd)
{
	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return false;
	flt_info("shutting down signal=%s", strsignal((int)si.ssi_signo));
	return true;
}

int flt_program_start(const char *program, const char *log_level)
{
	flt_log_level_t level;
	if (flt_log_level_parse(log_level, &level) < 0) {
		fprintf(stderr,
			"%s: --log-level: \"%s\" is not one of error, warn, "
			"info, debug\n",
			program, log_level);
		return 2;
	}
	flt_log_init(program, level);
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: libsodium cannot start\n", program);
		return 1;
	}
	flt_nofile_raise();
	return 0;
}

/* The soft limit the process started with, for its children. */
static struct rlimit nofile_start;
static bool nofile_raised;

void flt_nofile_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		flt_warn("cannot read the descriptor limit error=\"%s\"",
			 strerror(errno));
		return;
	}
	nofile_start = rl;
	if (rl.rlim_cur == rl.rlim_max) {
		flt_debug("descriptor limit nofile=%llu",
			  (unsigned long long)rl.rlim_cur);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		flt_warn("cannot raise the descriptor limit soft=%llu "
			 "hard=%llu error=\"%s\"",
			 (unsigned long long)nofile_start.rlim_cur,
			 (unsigned long long)rl.rlim_max, strerror(errno));
		return;
	}
	nofile_raised = true;
	flt_info("descriptor limit raised to the hard limit nofile=%llu "
		 "was=%llu",
		 (unsigned long long)rl.rlim_cur,
		 (unsigned long long)nofile_start.rlim_cur);
}

void flt_nofile_restore(void)
{
	if (nofile_raised)
		setrlimit(RLIMIT_NOFILE, &nofile_start);
}

static _Atomic(const char *) shutdown_step = "stopping";
static unsigned shutdown_limit;

void flt_shutdown_step(const char *step) { atomic_store(&shutdown_step, step); }

static void *shutdown_guard(void *arg)
{
	(void)arg;
	sleep(shutdown_limit);
	flt_error("shutdown did not finish within %u s, stuck %s; exiting",
		  shutdown_limit, atomic_load(&shutdown_step));
	_exit(1);
}

void flt_shutdown_guard(unsigned seconds)
{
	pthread_t t;
	shutdown_limit = seconds;
	if (pthread_create(&t, NULL, shutdown_guard, NULL) == 0)
		pthread_detach(t);
}
