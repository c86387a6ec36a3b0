/* Following a rollout: a deployment's progress, or a job's allocations. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "flotilla/util.h"

#define POLL_MS 250

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void cli_catch_interrupt(void)
{
	/* No SA_RESTART: a sleep ends at once. */
	struct sigaction sa = { .sa_handler = on_sigint };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

bool cli_interrupted(void) { return interrupted != 0; }

void cli_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	if (!interrupted)
		nanosleep(&ts, NULL);
}

int cli_poll_call(cli_t *c, Flotilla__Method m, const ProtobufCMessage *req,
		  const ProtobufCMessageDescriptor *desc,
		  ProtobufCMessage **resp, int64_t deadline, cli_progress_t *p)
{
	bool said = false;
	for (;;) {
		flt_error_t err;
		int rc = cli_call_err(c, m, req, desc, resp, &err);
		if (rc == 0)
			return 0;
		bool away = rc == FLT_ETRANSPORT || rc == -ETIMEDOUT ||
			    rc == -EAGAIN;
		if (!away || flt_now_mono_ms() >= deadline || cli_interrupted())
			return cli_fail("%s", err.msg);
		if (!said) {
			cli_fail("%s (retrying)", err.msg);
			said = true;
			/* The progress lines start again below. */
			if (p)
				p->drawn = 0;
		}
		cli_sleep_ms(POLL_MS);
	}
}

static int get_deployment(cli_t *c, const char *id, int64_t deadline,
			  cli_progress_t *p,
			  Flotilla__DeploymentGetResponse **resp)
{
	Flotilla__DeploymentGetRequest req =
		FLOTILLA__DEPLOYMENT_GET_REQUEST__INIT;
	req.id = (char *)id;
	int rc = cli_poll_call(c, FLOTILLA__METHOD__METHOD_DEPLOYMENT_GET,
			       &req.base,
			       &flotilla__deployment_get_response__descriptor,
			       (ProtobufCMessage **)resp, deadline, p);
	if (rc == 0 && !(*resp)->deployment)
		return cli_bad_reply((ProtobufCMessage **)resp, "deployment");
	return rc;
}

/* The exit status for a finished deployment, after saying how it ended. */
static int deployment_result(const Flotilla__Deployment *d)
{
	if (d->status ==
	    FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_SUCCESSFUL)
		return CLI_EXIT_OK;
	if (d->reverted_to)
		cli_printf("job %s reverted to version %llu\n", d->job,
			   (unsigned long long)d->reverted_to);
	return CLI_EXIT_FAIL;
}

int cli_watch_deployment(cli_t *c, const char *id, long wait_s)
{
	cli_progress_t p;
	int64_t deadline = flt_now_mono_ms() + (int64_t)wait_s * 1000;
	int rc = CLI_EXIT_FAIL;

	cli_catch_interrupt();
	cli_progress_init(&p, stdout);
	for (;;) {
		Flotilla__DeploymentGetResponse *resp;
		if (get_deployment(c, id, deadline, &p, &resp) != 0)
			break;
		const Flotilla__Deployment *d = resp->deployment;
		cli_progress_draw(&p, d);
		bool done = cli_deployment_done(d);
		if (done)
			rc = deployment_result(d);
		char short_id[9];
		snprintf(short_id, sizeof(short_id), "%.8s", d->id);
		flotilla__deployment_get_response__free_unpacked(resp, NULL);
		if (done)
			break;
		if (flt_now_mono_ms() >= deadline) {
			cli_fail("deployment %s still running after %ld s "
				 "(flotilla deployment status %s --watch "
				 "follows it)",
				 short_id, wait_s, short_id);
			break;
		}
		cli_sleep_ms(POLL_MS);
		if (cli_interrupted()) {
			cli_fail("stopped watching; the deployment goes on "
				 "(flotilla deployment status %s --watch)",
				 short_id);
			rc = CLI_EXIT_INTERRUPTED;
			break;
		}
	}
	cli_progress_end(&p);
	return rc;
}

/* Settled: the evaluation is done (when the reply still lists it), every
 * allocation to run has left pending, every allocation to stop has
 * finished. */
static bool allocs_settled(const Flotilla__JobGetResponse *j,
			   const char *eval_id)
{
	for (size_t i = 0; eval_id && *eval_id && i < j->n_evals; i++)
		if (strcmp(j->evals[i]->id, eval_id) == 0 &&
		    j->evals[i]->status ==
			    FLOTILLA__EVAL_STATUS__EVAL_STATUS_PENDING)
			return false;
	for (size_t i = 0; i < j->n_allocs; i++) {
		const Flotilla__Alloc *a = j->allocs[i];
		bool run =
			a->desired ==
			FLOTILLA__ALLOC_DESIRED_STATUS__ALLOC_DESIRED_STATUS_RUN;
		if (run &&
		    a->client_status ==
			    FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_PENDING)
			return false;
		if (!run && !cli_alloc_finished(a))
			return false;
	}
	return true;
}

static size_t allocs_failed(const Flotilla__JobGetResponse *j)
{
	size_t n = 0;
	for (size_t i = 0; i < j->n_allocs; i++) {
		const Flotilla__Alloc *a = j->allocs[i];
		n += a->desired ==
			     FLOTILLA__ALLOC_DESIRED_STATUS__ALLOC_DESIRED_STATUS_RUN &&
		     (a->client_status ==
			      FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_FAILED ||
		      a->client_status ==
			      FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_LOST);
	}
	return n;
}

int cli_watch_allocs(cli_t *c, const char *job, const char *eval_id,
		     long wait_s)
{
	Flotilla__JobGetRequest req = FLOTILLA__JOB_GET_REQUEST__INIT;
	Flotilla__JobGetResponse *resp = NULL;
	int64_t deadline = flt_now_mono_ms() + (int64_t)wait_s * 1000;
	bool settled = false;

	req.name = (char *)job;
	cli_catch_interrupt();
	for (;;) {
		if (cli_poll_call(
			    c, FLOTILLA__METHOD__METHOD_JOB_GET, &req.base,
			    &flotilla__job_get_response__descriptor,
			    (ProtobufCMessage **)&resp, deadline, NULL) != 0)
			return CLI_EXIT_FAIL;
		settled = allocs_settled(resp, eval_id);
		if (settled || flt_now_mono_ms() >= deadline)
			break;
		cli_sleep_ms(POLL_MS);
		if (cli_interrupted())
			break;
		flotilla__job_get_response__free_unpacked(resp, NULL);
	}
	cli_print_allocs(resp->allocs, resp->n_allocs, false);
	size_t failed = allocs_failed(resp);
	flotilla__job_get_response__free_unpacked(resp, NULL);
	if (cli_interrupted())
		return CLI_EXIT_INTERRUPTED;
	if (!settled)
		return cli_fail(
			"job %s: allocations still starting or stopping "
			"after %ld s",
			job, wait_s);
	if (failed)
		return cli_fail("job %s: %zu allocation%s failed", job, failed,
				failed == 1 ? "" : "s");
	return CLI_EXIT_OK;
}
