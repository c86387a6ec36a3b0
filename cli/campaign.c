/* flotilla campaign ...: patch campaigns over the hosts a query finds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flotilla/pkg.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define POLL_MS 500
/* How long a watch keeps retrying a coordinator that is away. */
#define AWAY_MS (5 * 60 * 1000)
/* The spec's durations are uint32 milliseconds. */
#define SPEC_DURATION_MAX_MS 0xffffffffull
/* Hosts per wave or failures: a number or a percentage. */
#define HOSTS_MAX 1000000u
/* Waves a terminal shows one line each; the others are folded. */
#define WAVE_LINES_MAX 8
/* A watch lists every target only up to this many (per-wave lines);
 * beyond, it shows the current wave from the counts alone. */
#define WATCH_TARGETS_MAX 20000u

static const Flotilla__CampaignCounts no_counts =
	FLOTILLA__CAMPAIGN_COUNTS__INIT;

static const char *campaign_state(Flotilla__CampaignState s)
{
	return flt_pb_enum_name(&flotilla__campaign_state__descriptor, s);
}

static const char *target_state(Flotilla__TargetState s)
{
	return flt_pb_enum_name(&flotilla__target_state__descriptor, s);
}

static bool campaign_over(const Flotilla__Campaign *k)
{
	return k->state == FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_COMPLETE ||
	       k->state == FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_ABORTED;
}

static const char *host_name(const Flotilla__CampaignTarget *t)
{
	return *t->node_name ? t->node_name : t->node_id;
}

static int by_wave_then_host(const void *a, const void *b)
{
	const Flotilla__CampaignTarget *x =
		*(Flotilla__CampaignTarget *const *)a;
	const Flotilla__CampaignTarget *y =
		*(Flotilla__CampaignTarget *const *)b;
	bool lx = x->state == FLOTILLA__TARGET_STATE__TARGET_STATE_LATE;
	bool ly = y->state == FLOTILLA__TARGET_STATE__TARGET_STATE_LATE;
	if (lx != ly)
		return lx ? 1 : -1;
	if (x->wave != y->wave)
		return x->wave < y->wave ? -1 : 1;
	int r = strcmp(host_name(x), host_name(y));
	return r ? r : strcmp(x->node_id, y->node_id);
}

static void sort_targets(Flotilla__CampaignGetResponse *r)
{
	if (r->n_targets > 1)
		qsort(r->targets, r->n_targets, sizeof(*r->targets),
		      by_wave_then_host);
}

/* " (canary)" after the first wave's number when the campaign has
 * canaries (--canary 0: its first wave is a batch like the others). */
static const char *canary_mark(const Flotilla__Campaign *k, size_t wave)
{
	return wave == 0 && k->spec && k->spec->canary ? " (canary)" : "";
}

/* "1 (canary)", "2"; "-" for a late target. */
static void target_wave(const Flotilla__Campaign *k,
			const Flotilla__CampaignTarget *t, char *buf,
			size_t len)
{
	if (t->state == FLOTILLA__TARGET_STATE__TARGET_STATE_LATE)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%u%s", t->wave + 1,
			 canary_mark(k, t->wave));
}

/* "wave 2 of 4", "wave 1 of 4 (canary)": waves count from 1 in what
 * people read (the canary is the first); the wire counts from 0. */
static void wave_str(const Flotilla__Campaign *k, char *buf, size_t len)
{
	uint32_t w = k->wave + 1 > k->waves ? k->waves : k->wave + 1;
	if (!k->waves)
		snprintf(buf, len, "no waves");
	else
		snprintf(buf, len, "wave %u of %u%s", w, k->waves,
			 canary_mark(k, k->wave));
}

/* "campaign 1a2b3c4d (log4j-fix 2.17.1) running: wave 2 of 4" (no wave
 * once it is over). */
static void campaign_head(const Flotilla__Campaign *k, char *buf, size_t len)
{
	char wave[64] = "";
	const Flotilla__CampaignSpec *s = k->spec;
	if (!campaign_over(k)) {
		strcpy(wave, ": ");
		wave_str(k, wave + 2, sizeof(wave) - 2);
	}
	snprintf(buf, len, "campaign %.8s (%s %s) %s%s", k->id,
		 s ? s->package : "?", s ? s->version : "?",
		 campaign_state(k->state), wave);
}

/* "5/12 remediated, 1 failed (limit 2)" */
static void hosts_str(const Flotilla__Campaign *k,
		      const Flotilla__CampaignCounts *n, char *buf, size_t len)
{
	snprintf(buf, len, "%u/%u remediated, %u failed (limit %u%s)",
		 n->remediated, n->total, n->failed, k->failure_limit,
		 k->tripped ? ", tripped" : "");
}

/* The head, the hosts and the message on one line. */
static void campaign_line(const Flotilla__Campaign *k,
			  const Flotilla__CampaignCounts *n, char *buf,
			  size_t len)
{
	char head[256], hosts[128];
	campaign_head(k, head, sizeof(head));
	hosts_str(k, n, hosts, sizeof(hosts));
	snprintf(buf, len, "%s%s%s%s%s", head, campaign_over(k) ? ": " : ", ",
		 hosts, *k->message ? ": " : "", k->message);
}

static const Flotilla__CampaignCounts *counts_of(
	const Flotilla__CampaignGetResponse *r)
{
	return r->counts ? r->counts : &no_counts;
}

/* ---- Calls ------------------------------------------------------------- */

static int campaign_call(cli_t *c, Flotilla__Method m, const char *id,
			 bool targets, Flotilla__CampaignGetResponse **resp)
{
	Flotilla__CampaignGetRequest req = FLOTILLA__CAMPAIGN_GET_REQUEST__INIT;
	req.id = (char *)id;
	req.targets = targets;
	int rc = cli_call(c, m, &req.base,
			  &flotilla__campaign_get_response__descriptor,
			  (ProtobufCMessage **)resp);
	if (rc == 0 && !(*resp)->campaign)
		return cli_bad_reply((ProtobufCMessage **)resp, "campaign");
	return rc;
}

/* ---- Per-wave counts --------------------------------------------------- */

typedef struct wave_counts {
	unsigned total, pending, in_flight, remediated, failed, skipped,
		rolled_back;
} wave_counts_t;

static void wave_add(wave_counts_t *w, Flotilla__TargetState s)
{
	w->total++;
	switch (s) {
	case FLOTILLA__TARGET_STATE__TARGET_STATE_PENDING: w->pending++; break;
	case FLOTILLA__TARGET_STATE__TARGET_STATE_DISPATCHED:
	case FLOTILLA__TARGET_STATE__TARGET_STATE_APPLYING:
	case FLOTILLA__TARGET_STATE__TARGET_STATE_ROLLING_BACK:
		w->in_flight++;
		break;
	case FLOTILLA__TARGET_STATE__TARGET_STATE_REMEDIATED:
		w->remediated++;
		break;
	case FLOTILLA__TARGET_STATE__TARGET_STATE_FAILED:
	case FLOTILLA__TARGET_STATE__TARGET_STATE_FAILED_OFFLINE:
	case FLOTILLA__TARGET_STATE__TARGET_STATE_STILL_EXPOSED:
		w->failed++;
		break;
	case FLOTILLA__TARGET_STATE__TARGET_STATE_SKIPPED: w->skipped++; break;
	case FLOTILLA__TARGET_STATE__TARGET_STATE_ROLLED_BACK:
		w->rolled_back++;
		break;
	default: break;
	}
}

static void wave_sum(wave_counts_t *into, const wave_counts_t *w)
{
	into->total += w->total;
	into->pending += w->pending;
	into->in_flight += w->in_flight;
	into->remediated += w->remediated;
	into->failed += w->failed;
	into->skipped += w->skipped;
	into->rolled_back += w->rolled_back;
}

/* Counts per wave (calloc'd, *n of them: the campaign's waves, or more if
 * a target says so). Late targets belong to no wave. */
static wave_counts_t *count_waves(const Flotilla__CampaignGetResponse *r,
				  size_t *n)
{
	size_t waves = r->campaign->waves;
	for (size_t i = 0; i < r->n_targets; i++)
		if (r->targets[i]->state !=
			    FLOTILLA__TARGET_STATE__TARGET_STATE_LATE &&
		    r->targets[i]->wave >= waves)
			waves = (size_t)r->targets[i]->wave + 1;
	wave_counts_t *w = flt_xcalloc(waves ? waves : 1, sizeof(*w));
	for (size_t i = 0; i < r->n_targets; i++) {
		const Flotilla__CampaignTarget *t = r->targets[i];
		if (t->state != FLOTILLA__TARGET_STATE__TARGET_STATE_LATE)
			wave_add(&w[t->wave], t->state);
	}
	*n = waves;
	return w;
}

static void wave_label(const Flotilla__Campaign *k, size_t from, size_t to,
		       char *buf, size_t len)
{
	if (from == to)
		snprintf(buf, len, "wave %zu%s", from + 1,
			 canary_mark(k, from));
	else
		snprintf(buf, len, "waves %zu-%zu", from + 1, to + 1);
}

/* "  wave 2  [#####---------] 2/5 done  2 remediated  0 failed  3 in
 * flight" */
static char *wave_line(const char *label, int label_w, const wave_counts_t *w,
		       bool tty)
{
	char b[CLI_BAR_SIZE] = "", extra[128] = "", line[512];
	unsigned done = w->total - w->pending - w->in_flight;
	size_t off = 0;
	if (tty)
		cli_progress_bar(b, done, w->total);
	if (w->in_flight)
		off += (size_t)snprintf(extra + off, sizeof(extra) - off,
					"  %u in flight", w->in_flight);
	if (w->skipped && off < sizeof(extra))
		off += (size_t)snprintf(extra + off, sizeof(extra) - off,
					"  %u skipped", w->skipped);
	if (w->rolled_back && off < sizeof(extra))
		snprintf(extra + off, sizeof(extra) - off, "  %u rolled back",
			 w->rolled_back);
	snprintf(line, sizeof(line),
		 "  %-*s %s%u/%u done  %u remediated  %u failed%s", label_w,
		 label, b, done, w->total, w->remediated, w->failed, extra);
	return flt_xstrdup(line);
}

/*
 * The watch's lines: the campaign's, then one per wave. Waves far from the
 * current one are folded (earlier ones into one line, later ones into
 * another) so that the lines fit a terminal.
 */
static char **watch_lines(const Flotilla__CampaignGetResponse *r,
			  const wave_counts_t *w, size_t nw, bool tty,
			  size_t *n)
{
	const Flotilla__Campaign *k = r->campaign;
	char buf[1200];
	/* The campaign, its hosts, a fold before, the waves shown, a fold
	 * after. */
	char **lines = flt_xcalloc(WAVE_LINES_MAX + 5, sizeof(*lines));
	size_t cur = k->wave < nw ? k->wave : (nw ? nw - 1 : 0);
	size_t lo = 0, hi = nw ? nw - 1 : 0;

	const Flotilla__CampaignCounts *c = counts_of(r);
	char hosts[128];
	*n = 0;
	campaign_head(k, buf, sizeof(buf));
	if (*k->message)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ": %s",
			 k->message);
	lines[(*n)++] = flt_xstrdup(buf);
	hosts_str(k, c, hosts, sizeof(hosts));
	snprintf(buf, sizeof(buf), "  hosts: %s, %u in flight, %u pending",
		 hosts, c->in_flight, c->pending);
	if (c->late)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			 ", %u late", c->late);
	lines[(*n)++] = flt_xstrdup(buf);
	if (!w) {
		/* Too many targets to fetch each time: the current wave from
		 * the counts alone. */
		char label[64], b[CLI_BAR_SIZE] = "";
		wave_label(k, k->wave, k->wave, label, sizeof(label));
		if (tty)
			cli_progress_bar(b, c->wave_done, c->wave_total);
		snprintf(buf, sizeof(buf), "  %s %s%u/%u done", label, b,
			 c->wave_done, c->wave_total);
		lines[(*n)++] = flt_xstrdup(buf);
		return lines;
	}
	if (nw > WAVE_LINES_MAX) {
		/* The current wave, the one after it, and those before. */
		hi = cur + 1 < nw ? cur + 1 : nw - 1;
		lo = hi + 1 >= WAVE_LINES_MAX - 2
			     ? hi + 1 - (WAVE_LINES_MAX - 2)
			     : 0;
		if (lo == 1) /* a fold of one wave is a wave */
			lo = 0;
		if (hi + 2 == nw)
			hi = nw - 1;
	}
	/* Rows: waves [from, to], folded when from < to. */
	struct {
		size_t from, to;
		char label[64];
	} rows[WAVE_LINES_MAX + 2];
	size_t nrows = 0;
	int label_w = 0;
	if (lo > 0)
		rows[nrows].from = 0, rows[nrows++].to = lo - 1;
	for (size_t i = lo; i <= hi && i < nw; i++)
		rows[nrows].from = i, rows[nrows++].to = i;
	if (hi + 1 < nw)
		rows[nrows].from = hi + 1, rows[nrows++].to = nw - 1;
	for (size_t i = 0; i < nrows; i++) {
		wave_label(k, rows[i].from, rows[i].to, rows[i].label,
			   sizeof(rows[i].label));
		if ((int)strlen(rows[i].label) > label_w)
			label_w = (int)strlen(rows[i].label);
	}
	for (size_t i = 0; i < nrows; i++) {
		wave_counts_t sum = { 0 };
		for (size_t j = rows[i].from; j <= rows[i].to; j++)
			wave_sum(&sum, &w[j]);
		lines[(*n)++] = wave_line(rows[i].label, label_w, &sum, tty);
	}
	return lines;
}

/* ---- Watch ------------------------------------------------------------- */

/* A poll that retries a coordinator that is away for up to away_ms. */
static int get_polled(cli_t *c, const char *id, bool targets, int64_t away_ms,
		      cli_progress_t *p, Flotilla__CampaignGetResponse **resp)
{
	Flotilla__CampaignGetRequest req = FLOTILLA__CAMPAIGN_GET_REQUEST__INIT;
	req.id = (char *)id;
	req.targets = targets;
	int rc = cli_poll_call(
		c, FLOTILLA__METHOD__METHOD_CAMPAIGN_GET, &req.base,
		&flotilla__campaign_get_response__descriptor,
		(ProtobufCMessage **)resp, flt_now_mono_ms() + away_ms, p);
	if (rc == 0 && !(*resp)->campaign)
		return cli_bad_reply((ProtobufCMessage **)resp, "campaign");
	return rc;
}

/* True when what a watch shows may have changed since last. */
static bool changed(const Flotilla__CampaignGetResponse *r,
		    const Flotilla__CampaignGetResponse *last)
{
	if (!last)
		return true;
	const Flotilla__Campaign *a = r->campaign, *b = last->campaign;
	const Flotilla__CampaignCounts *x = counts_of(r), *y = counts_of(last);
	return a->index != b->index || a->state != b->state ||
	       a->wave != b->wave || strcmp(a->message, b->message) != 0 ||
	       x->total != y->total || x->pending != y->pending ||
	       x->in_flight != y->in_flight || x->remediated != y->remediated ||
	       x->failed != y->failed || x->skipped != y->skipped ||
	       x->rolled_back != y->rolled_back || x->late != y->late ||
	       x->wave_done != y->wave_done || x->wave_total != y->wave_total;
}

/* How a watch ends: what happened, what to do next, the exit status. */
static int watch_result(const Flotilla__CampaignGetResponse *r)
{
	const Flotilla__Campaign *k = r->campaign;
	const Flotilla__CampaignCounts *n = counts_of(r);
	char id[9];
	snprintf(id, sizeof(id), "%.8s", k->id);
	switch (k->state) {
	case FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_COMPLETE:
		cli_printf(
			"campaign %s complete: %u of %u hosts remediated, %u "
			"failed (flotilla campaign report %s lists every "
			"host)\n",
			id, n->remediated, n->total, n->failed, id);
		return CLI_EXIT_OK;
	case FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_ABORTED:
		cli_printf(
			"campaign %s aborted%s%s (flotilla campaign report %s "
			"lists every host)\n",
			id, *k->message ? ": " : "", FLT_ESC(k->message), id);
		return CLI_EXIT_FAIL;
	default: /* paused */
		cli_printf("campaign %s paused%s%s\n", id,
			   *k->message ? ": " : "", FLT_ESC(k->message));
		cli_printf(
			"flotilla campaign resume %s goes on; flotilla campaign "
			"abort %s rolls back what it changed\n",
			id, id);
		return CLI_EXIT_FAIL;
	}
}

/* The end of watch --json: the reply with every target, and the exit
 * status watch_result would give. */
static int watch_json(cli_t *c, const Flotilla__CampaignGetResponse *r)
{
	cleanup_pb Flotilla__CampaignGetResponse *full = NULL;
	if (campaign_call(c, FLOTILLA__METHOD__METHOD_CAMPAIGN_GET,
			  r->campaign->id, true, &full) != 0)
		return CLI_EXIT_FAIL;
	sort_targets(full);
	cli_print_json(flt_pb_to_json(&full->base));
	return full->campaign->state ==
			       FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_COMPLETE
		       ? CLI_EXIT_OK
		       : CLI_EXIT_FAIL;
}

/*
 * Shows the progress of campaign id until it is complete (0), aborted or
 * paused (1); with json, nothing until then, and then the reply as JSON.
 * The cheap reply (counts) is polled; the targets are fetched again only
 * when it changed. A coordinator away at the first poll is an error,
 * unless it has just created the campaign (created).
 */
static int watch(cli_t *c, const char *id, bool json, bool created)
{
	int64_t away_ms = created ? AWAY_MS : 0;
	cli_progress_t p;
	Flotilla__CampaignGetResponse *last = NULL;
	wave_counts_t *waves = NULL;
	size_t nwaves = 0;
	int rc = CLI_EXIT_FAIL;

	cli_catch_interrupt();
	cli_progress_init(&p, stdout);
	for (;;) {
		Flotilla__CampaignGetResponse *r;
		if (get_polled(c, id, false, away_ms, &p, &r) != 0)
			break;
		away_ms = AWAY_MS;
		if (json) {
			/* Only the end matters; its targets come below. */
		} else if (changed(r, last) &&
			   counts_of(r)->total <= WATCH_TARGETS_MAX) {
			flotilla__campaign_get_response__free_unpacked(r, NULL);
			if (get_polled(c, id, true, away_ms, &p, &r) != 0)
				break;
			free(waves);
			waves = count_waves(r, &nwaves);
		} else if (counts_of(r)->total > WATCH_TARGETS_MAX) {
			free(waves);
			waves = NULL;
		}
		if (last)
			flotilla__campaign_get_response__free_unpacked(last,
								       NULL);
		last = r;
		if (!json) {
			size_t n;
			char **lines = watch_lines(r, waves, nwaves, p.tty, &n);
			cli_progress_lines(&p, lines, n);
		}
		Flotilla__CampaignState s = r->campaign->state;
		if (campaign_over(r->campaign) ||
		    s == FLOTILLA__CAMPAIGN_STATE__CAMPAIGN_STATE_PAUSED) {
			rc = json ? watch_json(c, r) : watch_result(r);
			break;
		}
		cli_sleep_ms(POLL_MS);
		if (cli_interrupted()) {
			cli_fail("stopped watching; the campaign goes on "
				 "(flotilla campaign watch %.8s)",
				 r->campaign->id);
			rc = CLI_EXIT_INTERRUPTED;
			break;
		}
	}
	cli_progress_end(&p);
	free(waves);
	if (last)
		flotilla__campaign_get_response__free_unpacked(last, NULL);
	return rc;
}

/* ---- create ------------------------------------------------------------ */

/* "log4j-fix@2.17.1" into spec->package and spec->version (pointing into
 * buf). */
static int parse_install(const cli_cmd_t *cmd, char *buf,
			 Flotilla__CampaignSpec *spec)
{
	char *at = strchr(buf, '@');
	if (!at)
		return cli_usage_fail(cmd,
				      "--install: \"%s\": expected "
				      "NAME@VERSION (log4j-fix@2.17.1)",
				      buf);
	*at = '\0';
	if (!flt_pkg_name_valid(buf)) {
		*at = '@';
		return cli_usage_fail(
			cmd,
			"--install: \"%s\": not a package name "
			"before @ (1-64 of A-Z a-z 0-9 . _ -, not "
			"starting with . or -)",
			buf);
	}
	if (!flt_pkg_version_valid(at + 1)) {
		*at = '@';
		return cli_usage_fail(cmd,
				      "--install: \"%s\": not a package "
				      "version after @ (1-128 of A-Z a-z 0-9 . "
				      "+ ~ : _ -, not starting with .)",
				      buf);
	}
	spec->package = buf;
	spec->version = at + 1;
	return -1;
}

/*
 * "10" (hosts) or "25%" into *n or *pct. Counts are at least min_n;
 * percentages from min_pct to 100. Returns 0, or -EINVAL with the reason
 * in err.
 */
static int parse_hosts(const char *s, unsigned min_n, unsigned min_pct,
		       uint32_t *n, uint32_t *pct, flt_error_t *err)
{
	unsigned long v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > HOSTS_MAX)
			return flt_err(err, -EINVAL, "\"%s\": more than %u", s,
				       HOSTS_MAX);
	}
	if (*p == '%' && p[1] == '\0') {
		if (v < min_pct || v > 100)
			return flt_err(err, -EINVAL,
				       "\"%s\": a percentage from %u%% to "
				       "100%%",
				       s, min_pct);
		*pct = (uint32_t)v;
		*n = 0;
		return 0;
	}
	if (*p)
		goto bad;
	if (v < min_n)
		return flt_err(err, -EINVAL, "\"%s\": must be at least %u", s,
			       min_n);
	*n = (uint32_t)v;
	*pct = 0;
	return 0;
bad:
	return flt_err(err, -EINVAL,
		       "\"%s\": expected a number of hosts or a percentage "
		       "(e.g. 10 or 25%%)",
		       s);
}

static int parse_ms(const cli_cmd_t *cmd, const char *flag, const char *s,
		    uint32_t *out)
{
	uint64_t ms;
	flt_error_t err;
	if (flt_duration_parse(s, SPEC_DURATION_MAX_MS, &ms, &err) < 0)
		return cli_usage_fail(cmd, "--%s: %s", flag, err.msg);
	*out = (uint32_t)ms;
	return -1;
}

typedef struct create_opts {
	const char *target, *install, *name, *batch, *max_failures, *on_failure,
		*min_healthy, *host_timeout;
	long canary;
	bool manual_promote, no_restart, allow_empty, dry_run, detach, json;
} create_opts_t;

/* The spec from the flags; strings point into argv (install into buf). */
static int build_spec(const cli_cmd_t *cmd, const create_opts_t *o, char *buf,
		      Flotilla__CampaignSpec *spec)
{
	flt_error_t err;
	int rc;
	if (!o->target)
		return cli_usage_fail(cmd, "missing --target QUERY");
	if (!o->install)
		return cli_usage_fail(cmd, "missing --install NAME@VERSION");
	spec->target = (char *)o->target;
	if ((rc = parse_install(cmd, buf, spec)) >= 0)
		return rc;
	if (o->name)
		spec->name = (char *)o->name;
	/* Sent even when not given: the coordinator takes 0 as "no canary
	 * wave". */
	spec->canary = o->canary < 0 ? 1 : (uint32_t)o->canary;
	if (o->batch && parse_hosts(o->batch, 1, 1, &spec->batch,
				    &spec->batch_percent, &err) < 0)
		return cli_usage_fail(cmd, "--batch: %s", err.msg);
	if (o->max_failures &&
	    parse_hosts(o->max_failures, 0, 0, &spec->max_failures,
			&spec->max_failures_percent, &err) < 0)
		return cli_usage_fail(cmd, "--max-failures: %s", err.msg);
	if (o->on_failure) {
		if (strcmp(o->on_failure, "pause") != 0 &&
		    strcmp(o->on_failure, "abort") != 0)
			return cli_usage_fail(cmd,
					      "--on-failure: \"%s\": expected "
					      "pause or abort",
					      o->on_failure);
		spec->on_failure = (char *)o->on_failure;
	}
	if (o->min_healthy && (rc = parse_ms(cmd, "min-healthy", o->min_healthy,
					     &spec->min_healthy_ms)) >= 0)
		return rc;
	if (o->host_timeout &&
	    (rc = parse_ms(cmd, "host-timeout", o->host_timeout,
			   &spec->host_timeout_ms)) >= 0)
		return rc;
	if (o->manual_promote && spec->canary == 0)
		return cli_usage_fail(cmd,
				      "--manual-promote: not with --canary "
				      "0 (there is no canary wave to "
				      "promote)");
	spec->manual_promote = o->manual_promote;
	spec->no_restart = o->no_restart;
	spec->allow_empty = o->allow_empty;
	return -1;
}

static void print_plan(Flotilla__CampaignGetResponse *r)
{
	const Flotilla__Campaign *k = r->campaign;
	const Flotilla__CampaignSpec *s = k->spec;
	sort_targets(r);
	if (r->n_targets) {
		cli_table_t t;
		cli_table_init(&t, 4, "WAVE", "HOST", "MATCHED", "PATHS");
		for (size_t i = 0; i < r->n_targets; i++) {
			const Flotilla__CampaignTarget *x = r->targets[i];
			char wave[32];
			target_wave(k, x, wave, sizeof(wave));
			cli_table_row(&t, wave, host_name(x), x->before,
				      x->paths);
		}
		cli_table_print(&t, "");
	}
	cli_printf(
		"dry run: %s %s on %zu host%s in %u wave%s, failure limit %u "
		"(nothing was changed)\n",
		s ? s->package : "?", s ? s->version : "?", r->n_targets,
		r->n_targets == 1 ? "" : "s", k->waves,
		k->waves == 1 ? "" : "s", k->failure_limit);
}

static int campaign_create(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	Flotilla__CampaignCreateRequest req =
		FLOTILLA__CAMPAIGN_CREATE_REQUEST__INIT;
	Flotilla__CampaignSpec spec = FLOTILLA__CAMPAIGN_SPEC__INIT;
	cleanup_pb Flotilla__CampaignGetResponse *resp = NULL;
	cleanup_free char *install = NULL;
	create_opts_t o = { .canary = -1 };
	const flt_flag_t flags[] = {
		{ "target", FLT_FLAG_STRING, &o.target, "QUERY",
		  "the hosts to fix: an inventory query (required)", 0, 0,
		  NULL },
		{ "install", FLT_FLAG_STRING, &o.install, "NAME@VERSION",
		  "the package version to install (required)", 0, 0, NULL },
		{ "name", FLT_FLAG_STRING, &o.name, "TEXT",
		  "a name for people to read", 0, 0, NULL },
		{ "canary", FLT_FLAG_INT, &o.canary, "N",
		  "hosts of the first wave (default 1; 0: no canary wave)", 0,
		  HOSTS_MAX, NULL },
		{ "batch", FLT_FLAG_STRING, &o.batch, "N|N%",
		  "hosts per later wave, or a percentage of the targets", 0, 0,
		  NULL },
		{ "max-failures", FLT_FLAG_STRING, &o.max_failures, "N|N%",
		  "failures allowed before the gate trips (count or "
		  "percentage of the targets)",
		  0, 0, NULL },
		{ "on-failure", FLT_FLAG_STRING, &o.on_failure, "pause|abort",
		  "what a tripped gate does (default pause)", 0, 0, NULL },
		{ "min-healthy", FLT_FLAG_STRING, &o.min_healthy, "DURATION",
		  "how long a host's tasks stay healthy after the switch "
		  "(default 10s)",
		  0, 0, NULL },
		{ "host-timeout", FLT_FLAG_STRING, &o.host_timeout, "DURATION",
		  "how long one host may take (default 10m)", 0, 0, NULL },
		{ "manual-promote", FLT_FLAG_BOOL, &o.manual_promote, NULL,
		  "pause after the canary wave", 0, 0, NULL },
		{ "no-restart", FLT_FLAG_BOOL, &o.no_restart, NULL,
		  "do not restart the tasks that use the package", 0, 0, NULL },
		{ "allow-empty", FLT_FLAG_BOOL, &o.allow_empty, NULL,
		  "create it even when no host matches the target yet", 0, 0,
		  NULL },
		{ "dry-run", FLT_FLAG_BOOL, &o.dry_run, NULL,
		  "show the targets and waves; change nothing", 0, 0, NULL },
		{ "detach", FLT_FLAG_BOOL, &o.detach, NULL,
		  "return once the campaign is created", 0, 0, NULL },
		CLI_FLAG_JSON(&o.json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if (o.install)
		install = flt_xstrdup(o.install);
	if ((rc = build_spec(cmd, &o, install, &spec)) >= 0)
		return rc;
	req.spec = &spec;
	req.dry_run = o.dry_run;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_CAMPAIGN_CREATE,
			   &req.base,
			   &flotilla__campaign_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (!resp->campaign)
		return cli_bad_reply((ProtobufCMessage **)&resp, "campaign");
	if (o.json) {
		cli_print_json(flt_pb_to_json(&resp->base));
		return 0;
	}
	if (o.dry_run) {
		print_plan(resp);
		return 0;
	}
	const Flotilla__Campaign *k = resp->campaign;
	const Flotilla__CampaignCounts *n = counts_of(resp);
	char id[9];
	snprintf(id, sizeof(id), "%.8s", k->id);
	cli_printf(
		"campaign %s created: %s %s on %u host%s in %u wave%s, failure "
		"limit %u\n",
		id, spec.package, spec.version, n->total,
		n->total == 1 ? "" : "s", k->waves, k->waves == 1 ? "" : "s",
		k->failure_limit);
	if (o.detach) {
		cli_printf("(flotilla campaign watch %s follows it)\n", id);
		return 0;
	}
	fflush(stdout);
	return watch(c, k->id, false, true);
}

/* ---- status, watch, list, report --------------------------------------- */

static void settings_str(const Flotilla__CampaignSpec *s, char *buf, size_t len)
{
	char batch[32], fails[32], healthy[32], timeout[32];
	if (s->batch_percent)
		snprintf(batch, sizeof(batch), "%u%%", s->batch_percent);
	else if (s->batch)
		snprintf(batch, sizeof(batch), "%u", s->batch);
	else
		snprintf(batch, sizeof(batch), "default");
	if (s->max_failures_percent)
		snprintf(fails, sizeof(fails), "%u%%", s->max_failures_percent);
	else
		snprintf(fails, sizeof(fails), "%u", s->max_failures);
	cli_format_duration(s->min_healthy_ms ? s->min_healthy_ms : 10000,
			    healthy, sizeof(healthy));
	cli_format_duration(s->host_timeout_ms ? s->host_timeout_ms : 600000,
			    timeout, sizeof(timeout));
	snprintf(buf, len,
		 "canary %u, batch %s, max failures %s, on failure %s, min "
		 "healthy %s, host timeout %s, restart %s, manual promote %s",
		 s->canary, batch, fails,
		 *s->on_failure ? s->on_failure : "pause", healthy, timeout,
		 cli_yes(!s->no_restart), cli_yes(s->manual_promote));
}

static void print_waves(const Flotilla__CampaignGetResponse *r)
{
	size_t nw;
	cleanup_free wave_counts_t *w = count_waves(r, &nw);
	cli_table_t t;
	cli_table_init(&t, 8, "WAVE", "HOSTS", "PENDING", "IN FLIGHT",
		       "REMEDIATED", "FAILED", "SKIPPED", "ROLLED BACK");
	for (size_t i = 0; i < nw; i++) {
		char c[8][32];
		snprintf(c[0], 32, "%zu%s", i + 1, canary_mark(r->campaign, i));
		snprintf(c[1], 32, "%u", w[i].total);
		snprintf(c[2], 32, "%u", w[i].pending);
		snprintf(c[3], 32, "%u", w[i].in_flight);
		snprintf(c[4], 32, "%u", w[i].remediated);
		snprintf(c[5], 32, "%u", w[i].failed);
		snprintf(c[6], 32, "%u", w[i].skipped);
		snprintf(c[7], 32, "%u", w[i].rolled_back);
		cli_table_row(&t, c[0], c[1], c[2], c[3], c[4], c[5], c[6],
			      c[7]);
	}
	cli_table_print(&t, "  ");
}

static void print_status(const Flotilla__CampaignGetResponse *r)
{
	const Flotilla__Campaign *k = r->campaign;
	const Flotilla__CampaignSpec *s = k->spec;
	const Flotilla__CampaignCounts *n = counts_of(r);
	char wave[64], when[40], age[32], updated[32], settings[512];

	wave_str(k, wave, sizeof(wave));
	flt_format_time(k->created_at_ms, when, sizeof(when));
	cli_age(k->created_at_ms, age, sizeof(age));
	cli_age(k->updated_at_ms, updated, sizeof(updated));
	cli_kv("ID", "%s", k->id);
	cli_kv("Name", "%s", cli_dash(s ? s->name : NULL));
	cli_kv("State", "%s", campaign_state(k->state));
	cli_kv("Target", "%s", s ? s->target : "-");
	if (k->package) {
		char sig[64], size[32];
		const Flotilla__PackageManifest *m = k->package;
		cli_format_size(m->size, size, sizeof(size));
		if (m->signature.len)
			snprintf(sig, sizeof(sig), "signed by key %s",
				 cli_dash(m->key_id));
		else
			snprintf(sig, sizeof(sig), "unsigned");
		cli_kv("Package", "%s %s (%s, %s, sha256 %.12s, %s)", m->name,
		       m->version, m->format, size, m->sha256, sig);
	} else {
		cli_kv("Package", "%s %s", s ? s->package : "?",
		       s ? s->version : "?");
	}
	cli_kv("Wave", "%s", strncmp(wave, "wave ", 5) ? wave : wave + 5);
	cli_kv("Hosts",
	       "%u total, %u pending, %u in flight, %u remediated, %u "
	       "failed, %u skipped, %u rolled back, %u late",
	       n->total, n->pending, n->in_flight, n->remediated, n->failed,
	       n->skipped, n->rolled_back, n->late);
	/* failed counts the offline and still exposed hosts too. */
	unsigned other = n->failed;
	other -= n->failed_offline < other ? n->failed_offline : other;
	other -= n->still_exposed < other ? n->still_exposed : other;
	cli_kv("Failed", "%u (%u step failed, %u offline, %u still exposed)",
	       n->failed, other, n->failed_offline, n->still_exposed);
	cli_kv("Failure limit", "%u allowed, %s", k->failure_limit,
	       k->tripped ? "tripped" : "not tripped");
	if (s) {
		settings_str(s, settings, sizeof(settings));
		cli_kv("Settings", "%s", settings);
	}
	cli_kv("Message", "%s", cli_dash(k->message));
	cli_kv("Created", "%s (%s)", k->created_at_ms ? when : "-", age);
	cli_kv("Updated", "%s", updated);
	if (k->waves || r->n_targets) {
		cli_printf("\nWaves\n");
		print_waves(r);
	}
}

static int campaign_status(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	cleanup_pb Flotilla__CampaignGetResponse *resp = NULL;
	bool json = false;
	const char *id;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	/* The targets give the per-wave counts; --json stays the short
	 * reply (campaign report --json has every target). */
	if ((rc = campaign_call(c, FLOTILLA__METHOD__METHOD_CAMPAIGN_GET, id,
				!json, &resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		print_status(resp);
	return 0;
}

static int campaign_watch(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	bool json = false;
	const char *id;
	const flt_flag_t flags[] = {
		{ "json", FLT_FLAG_BOOL, &json, NULL,
		  "print nothing until the campaign ends or pauses, then "
		  "the campaign and every target as JSON",
		  0, 0, NULL },
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	return watch(c, id, json, false);
}

/* pause, resume, abort: one call, then the campaign's line. */
static int campaign_act(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv,
			Flotilla__Method m)
{
	cleanup_pb Flotilla__CampaignGetResponse *resp = NULL;
	bool json = false;
	const char *id;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if ((rc = campaign_call(c, m, id, false, &resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		char line[1200];
		campaign_line(resp->campaign, counts_of(resp), line,
			      sizeof(line));
		cli_puts(line);
	}
	return 0;
}

static int campaign_pause(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return campaign_act(c, cmd, argc, argv,
			    FLOTILLA__METHOD__METHOD_CAMPAIGN_PAUSE);
}

static int campaign_resume(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	return campaign_act(c, cmd, argc, argv,
			    FLOTILLA__METHOD__METHOD_CAMPAIGN_RESUME);
}

static int campaign_abort(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return campaign_act(c, cmd, argc, argv,
			    FLOTILLA__METHOD__METHOD_CAMPAIGN_ABORT);
}

static int campaign_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__CampaignListRequest req =
		FLOTILLA__CAMPAIGN_LIST_REQUEST__INIT;
	cleanup_pb Flotilla__CampaignListResponse *resp = NULL;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_CAMPAIGN_LIST, &req.base,
			   &flotilla__campaign_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		/* Each campaign with its counts, as campaign status --json
		 * shows one. */
		json_t *a = json_array();
		for (size_t i = 0; i < resp->n_campaigns; i++) {
			const Flotilla__CampaignCounts *n =
				i < resp->n_counts ? resp->counts[i]
						   : &no_counts;
			json_array_append_new(
				a,
				json_pack("{s:o, s:o}", "campaign",
					  flt_pb_to_json(
						  &resp->campaigns[i]->base),
					  "counts", flt_pb_to_json(&n->base)));
		}
		cli_print_json(a);
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 9, "ID", "NAME", "STATE", "PACKAGE", "WAVE", "HOSTS",
		       "REMEDIATED", "FAILED", "CREATED");
	for (size_t i = 0; i < resp->n_campaigns; i++) {
		const Flotilla__Campaign *k = resp->campaigns[i];
		const Flotilla__CampaignSpec *s = k->spec;
		const Flotilla__CampaignCounts *n =
			i < resp->n_counts ? resp->counts[i] : &no_counts;
		char id[9], pkg[256], wave[32], hosts[16], rem[16], failed[16],
			age[32];
		snprintf(id, sizeof(id), "%.8s", k->id);
		snprintf(pkg, sizeof(pkg), "%s %s", s ? s->package : "?",
			 s ? s->version : "?");
		snprintf(wave, sizeof(wave), "%u/%u",
			 k->wave + 1 > k->waves ? k->waves : k->wave + 1,
			 k->waves);
		snprintf(hosts, sizeof(hosts), "%u", n->total);
		snprintf(rem, sizeof(rem), "%u", n->remediated);
		snprintf(failed, sizeof(failed), "%u", n->failed);
		cli_age(k->created_at_ms, age, sizeof(age));
		cli_table_row(&t, id, s ? s->name : "",
			      campaign_state(k->state), pkg, wave, hosts, rem,
			      failed, age);
	}
	cli_table_print(&t, "");
	return 0;
}

/* RFC 3339 to the second ("2026-01-01T12:00:03Z"); "-" for 0. */
static void time_s(int64_t ms, char *buf, size_t len)
{
	char full[40];
	if (!ms) {
		snprintf(buf, len, "-");
		return;
	}
	flt_format_time(ms, full, sizeof(full));
	snprintf(buf, len, "%.19sZ", full);
}

/* One CSV field (RFC 4180): quoted when it holds a comma, quote or line
 * break. */
static void csv_field(const char *s, bool last)
{
	/* Data, raw into a file or a pipe; escaped on a terminal (no
	 * field may write control sequences into it). */
	cleanup_free char *shown =
		isatty(STDOUT_FILENO) ? flt_escape_dup(s, strlen(s), 0) : NULL;
	if (shown)
		s = shown;
	if (strpbrk(s, ",\"\r\n")) {
		putchar('"');
		for (; *s; s++) {
			if (*s == '"')
				putchar('"');
			putchar(*s);
		}
		putchar('"');
	} else {
		fputs(s, stdout);
	}
	putchar(last ? '\n' : ',');
}

static void print_csv(const Flotilla__CampaignGetResponse *r)
{
	cli_printf("host,node_id,wave,before,after,result,started,finished,"
		   "message,paths,from_version,step_id\n");
	for (size_t i = 0; i < r->n_targets; i++) {
		const Flotilla__CampaignTarget *t = r->targets[i];
		char wave[16] = "", started[40] = "", finished[40] = "";
		if (t->state != FLOTILLA__TARGET_STATE__TARGET_STATE_LATE)
			snprintf(wave, sizeof(wave), "%u", t->wave + 1);
		if (t->started_at_ms)
			flt_format_time(t->started_at_ms, started,
					sizeof(started));
		if (t->finished_at_ms)
			flt_format_time(t->finished_at_ms, finished,
					sizeof(finished));
		csv_field(host_name(t), false);
		csv_field(t->node_id, false);
		csv_field(wave, false);
		csv_field(t->before, false);
		csv_field(t->after, false);
		csv_field(target_state(t->state), false);
		csv_field(started, false);
		csv_field(finished, false);
		csv_field(t->message, false);
		csv_field(t->paths, false);
		csv_field(t->from_version, false);
		csv_field(t->step_id, true);
	}
}

static void print_report(const Flotilla__CampaignGetResponse *r)
{
	char line[1200];
	cli_table_t t;
	campaign_line(r->campaign, counts_of(r), line, sizeof(line));
	cli_puts(line);
	if (!r->n_targets)
		return;
	cli_table_init(&t, 8, "HOST", "WAVE", "BEFORE", "AFTER", "RESULT",
		       "STARTED", "FINISHED", "MESSAGE");
	for (size_t i = 0; i < r->n_targets; i++) {
		const Flotilla__CampaignTarget *x = r->targets[i];
		char wave[32], started[32], finished[32];
		target_wave(r->campaign, x, wave, sizeof(wave));
		time_s(x->started_at_ms, started, sizeof(started));
		time_s(x->finished_at_ms, finished, sizeof(finished));
		cli_table_row(&t, host_name(x), wave, x->before, x->after,
			      target_state(x->state), started, finished,
			      x->message);
	}
	cli_table_print(&t, "");
}

static int campaign_report(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	cleanup_pb Flotilla__CampaignGetResponse *resp = NULL;
	bool json = false, csv = false;
	const char *id;
	const flt_flag_t flags[] = {
		{ "csv", FLT_FLAG_BOOL, &csv, NULL,
		  "print CSV (a header line, then one line per host)", 0, 0,
		  NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if (json && csv)
		return cli_usage_fail(cmd, "--json and --csv do not mix");
	if ((rc = campaign_call(c, FLOTILLA__METHOD__METHOD_CAMPAIGN_GET, id,
				true, &resp)) != 0)
		return rc;
	sort_targets(resp);
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else if (csv)
		print_csv(resp);
	else
		print_report(resp);
	return 0;
}

const cli_cmd_t cli_campaign_cmds[] = {
	{ "campaign", "create",
	  "--target QUERY --install NAME@VERSION [--name TEXT] [--canary N] "
	  "[--batch N|N%] [--max-failures N|N%] [--on-failure pause|abort] "
	  "[--min-healthy DURATION] [--host-timeout DURATION] "
	  "[--manual-promote] [--no-restart] [--allow-empty] [--dry-run] "
	  "[--detach] [--json]",
	  "install a package version on every host a query finds, in waves",
	  campaign_create },
	{ "campaign", "status", "ID [--json]",
	  "show a campaign: state, wave, counts, failure gate",
	  campaign_status },
	{ "campaign", "watch", "ID [--json]",
	  "follow a campaign wave by wave until it ends or pauses",
	  campaign_watch },
	{ "campaign", "pause", "ID [--json]", "pause a running campaign",
	  campaign_pause },
	{ "campaign", "resume", "ID [--json]", "resume a paused campaign",
	  campaign_resume },
	{ "campaign", "abort", "ID [--json]",
	  "stop a campaign and roll back the hosts it changed",
	  campaign_abort },
	{ "campaign", "list", "[--json]", "list the campaigns", campaign_list },
	{ "campaign", "report", "ID [--csv] [--json]",
	  "one row per host: wave, versions before and after, result",
	  campaign_report },
	{ NULL, NULL, NULL, NULL, NULL },
};
