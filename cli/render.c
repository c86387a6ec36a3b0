/* What people read: tables, ages, progress of a deployment. */
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

/* Finished allocations of old versions shown by job status without --all. */
#define OLD_ALLOCS_SHOWN 10

const char *cli_dash(const char *s) { return s && *s ? s : "-"; }

const char *cli_state(const ProtobufCEnumDescriptor *d, int v)
{
	return v == 0 ? "" : flt_pb_enum_name(d, v);
}

int64_t cli_parse_time(const char *s)
{
	struct tm tm = { 0 };
	int ms = 0;
	if (!s || !*s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	const char *dot = strchr(s, '.');
	if (dot)
		ms = atoi(dot + 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

void cli_age(int64_t unix_ms, char *buf, size_t len)
{
	flt_format_age(unix_ms, flt_now_wall_ms(), buf, len);
}

void cli_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else if (ms < 3600000)
		snprintf(buf, len, "%lldm%02llds", (long long)(ms / 60000),
			 (long long)(ms / 1000 % 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(ms / 3600000),
			 (long long)(ms / 60000 % 60));
}

void cli_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;
	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return;
	}
	for (v /= 1024; v >= 1024 && u + 1 < FLT_ARRAY_SIZE(units); u++)
		v /= 1024;
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* ---- Terminal safety ---------------------------------------------------- */

/* The format is ours and holds no control character: whatever needs
 * escaping in the result came from a value. */
static char *vformat_escaped(unsigned flags, const char *fmt, va_list ap)
{
	cleanup_free char *raw = NULL;
	int n = vasprintf(&raw, fmt, ap);
	if (n < 0)
		abort();
	return flt_escape_dup(raw, (size_t)n, flags);
}

void cli_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *s = vformat_escaped(FLT_ESC_KEEP_LINES, fmt, ap);
	va_end(ap);
	fputs(s, stdout);
}

void cli_puts(const char *s)
{
	cleanup_free char *e = flt_escape_dup(s, strlen(s), 0);
	puts(e);
}

void cli_vprint_line(FILE *f, const char *fmt, va_list ap)
{
	cleanup_free char *s = vformat_escaped(0, fmt, ap);
	fputs(s, f);
}

void cli_kv(const char *key, const char *fmt, ...)
{
	va_list ap;
	printf("%-14s = ", key);
	va_start(ap, fmt);
	cli_vprint_line(stdout, fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- Tables ------------------------------------------------------------ */

static void table_add(cli_table_t *t, const char *s)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->cells = flt_xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	s = cli_dash(s);
	/* Escaped before the widths are measured, so columns line up. */
	t->cells[t->ncells++] = flt_escape_dup(s, strlen(s), 0);
}

void cli_table_init(cli_table_t *t, size_t ncols, ...)
{
	va_list ap;
	*t = (cli_table_t){ .ncols = ncols };
	va_start(ap, ncols);
	for (size_t i = 0; i < ncols; i++)
		table_add(t, va_arg(ap, const char *));
	va_end(ap);
}

void cli_table_row(cli_table_t *t, ...)
{
	va_list ap;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		table_add(t, va_arg(ap, const char *));
	va_end(ap);
}

void cli_table_print(cli_table_t *t, const char *indent)
{
	size_t w[t->ncols];
	memset(w, 0, sizeof(w));
	for (size_t i = 0; i < t->ncells; i++) {
		size_t l = strlen(t->cells[i]);
		if (l > w[i % t->ncols])
			w[i % t->ncols] = l;
	}
	for (size_t i = 0; i < t->ncells; i++) {
		size_t col = i % t->ncols;
		if (col == 0)
			fputs(indent, stdout);
		if (col + 1 == t->ncols)
			printf("%s\n", t->cells[i]);
		else
			printf("%-*s  ", (int)w[col], t->cells[i]);
		free(t->cells[i]);
	}
	free(t->cells);
	*t = (cli_table_t){ 0 };
}

/* ---- Tasks and allocations --------------------------------------------- */

/* "http ok, alive failing(3)" */
static void checks_str(const Flotilla__TaskStatus *t, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < t->n_checks && off < len; i++) {
		const Flotilla__CheckStatus *c = t->checks[i];
		if (c->healthy)
			off += (size_t)snprintf(buf + off, len - off, "%s%s ok",
						i ? ", " : "", c->name);
		else
			off += (size_t)snprintf(buf + off, len - off,
						"%s%s failing(%u)",
						i ? ", " : "", c->name,
						c->consecutive_failures);
	}
}

static void exit_str(const Flotilla__TaskStatus *t, char *buf, size_t len)
{
	if (t->oom_killed)
		snprintf(buf, len, "oom");
	else if (t->exit_signal)
		snprintf(buf, len, "sig%d", t->exit_signal);
	else if (t->exit_code >= 0)
		snprintf(buf, len, "%d", t->exit_code);
	else
		snprintf(buf, len, "-");
}

/* Adds a task row's eight cells, without ALLOC (the second) unless
 * alloc_col. */
static void task_cells(cli_table_t *t, const char *const cells[8],
		       bool alloc_col)
{
	for (size_t i = 0; i < 8; i++)
		if (i != 1 || alloc_col)
			table_add(t, cells[i]);
}

void cli_print_tasks(Flotilla__TaskStatus *const *tasks, size_t n)
{
	static const char *const head[8] = { "NAME",    "ALLOC",    "STATE",
					     "HEALTHY", "RESTARTS", "EXIT",
					     "CHECKS",  "MESSAGE" };
	bool allocs = false;
	for (size_t i = 0; i < n; i++)
		allocs = allocs || *tasks[i]->alloc_id;
	cli_table_t t = { .ncols = allocs ? 8 : 7 };
	task_cells(&t, head, allocs);
	for (size_t i = 0; i < n; i++) {
		const Flotilla__TaskStatus *s = tasks[i];
		char restarts[16], ex[16], checks[512], alloc[9];
		snprintf(restarts, sizeof(restarts), "%u", s->restarts);
		snprintf(alloc, sizeof(alloc), "%.8s", s->alloc_id);
		exit_str(s, ex, sizeof(ex));
		checks_str(s, checks, sizeof(checks));
		const char *cells[8] = {
			s->name,
			alloc,
			flt_pb_enum_name(&flotilla__task_state__descriptor,
					 s->state),
			cli_yes(s->healthy),
			restarts,
			ex,
			checks,
			s->message
		};
		task_cells(&t, cells, allocs);
	}
	cli_table_print(&t, "  ");
}

bool cli_alloc_finished(const Flotilla__Alloc *a)
{
	switch (a->client_status) {
	case FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_COMPLETE:
	case FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_FAILED:
	case FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_LOST:
		return true;
	default: return false;
	}
}

static bool alloc_old(const Flotilla__Alloc *a)
{
	return a->desired !=
		       FLOTILLA__ALLOC_DESIRED_STATUS__ALLOC_DESIRED_STATUS_RUN &&
	       cli_alloc_finished(a);
}

static int alloc_order(const void *x, const void *y)
{
	const Flotilla__Alloc *a = *(Flotilla__Alloc *const *)x;
	const Flotilla__Alloc *b = *(Flotilla__Alloc *const *)y;
	bool oa = alloc_old(a), ob = alloc_old(b);
	if (oa != ob)
		return oa ? 1 : -1;
	if (oa) /* newest first */
		return (a->modify_ms < b->modify_ms) -
		       (a->modify_ms > b->modify_ms);
	int r = strcmp(a->group, b->group);
	if (r)
		return r;
	if (a->index != b->index)
		return a->index < b->index ? -1 : 1;
	return (a->create_ms > b->create_ms) - (a->create_ms < b->create_ms);
}

static void alloc_row(cli_table_t *t, const Flotilla__Alloc *a)
{
	char id[9], group[160], version[24], age[32], health[32];
	snprintf(id, sizeof(id), "%.8s", a->id);
	snprintf(group, sizeof(group), "%s[%u]", a->group, a->index);
	snprintf(version, sizeof(version), "%llu",
		 (unsigned long long)a->job_version);
	snprintf(health, sizeof(health), "%s%s", cli_dash(CLI_ALLOC_HEALTH(a)),
		 a->canary ? " (canary)" : "");
	cli_age(a->create_ms, age, sizeof(age));
	cli_table_row(t, id, group, *a->node_name ? a->node_name : a->node_id,
		      version, CLI_ALLOC_DESIRED(a), CLI_ALLOC_STATUS(a),
		      health, age);
}

void cli_print_allocs(Flotilla__Alloc **allocs, size_t n, bool all)
{
	cli_table_t t;
	size_t old = 0, hidden = 0;
	if (n > 1)
		qsort(allocs, n, sizeof(*allocs), alloc_order);
	cli_table_init(&t, 8, "ID", "GROUP", "NODE", "VERSION", "DESIRED",
		       "STATUS", "HEALTH", "CREATED");
	for (size_t i = 0; i < n; i++) {
		if (alloc_old(allocs[i]) && !all && ++old > OLD_ALLOCS_SHOWN) {
			hidden++;
			continue;
		}
		alloc_row(&t, allocs[i]);
	}
	cli_table_print(&t, "");
	if (hidden)
		cli_printf(
			"(%zu older stopped allocations not shown: --all shows "
			"them)\n",
			hidden);
}

/* ---- Nodes and deployments --------------------------------------------- */

void cli_print_node_line(const Flotilla__Node *n)
{
	cli_printf("node %s (%.8s): %s, %s, ", n->name, n->id, n->status,
		   n->eligible ? "eligible" : "ineligible");
	if (n->draining)
		cli_printf("draining until %s\n", cli_dash(n->drain_deadline));
	else
		cli_printf("not draining\n");
}

void cli_deployment_line(const Flotilla__Deployment *d, char *buf, size_t len)
{
	int off = snprintf(buf, len, "deployment %.8s (%s version %llu) %s",
			   d->id, d->job, (unsigned long long)d->job_version,
			   CLI_DEPLOYMENT_STATUS(d->status));
	if (*d->status_description && off >= 0 && (size_t)off < len)
		snprintf(buf + off, len - (size_t)off, ": %s",
			 d->status_description);
}

bool cli_deployment_done(const Flotilla__Deployment *d)
{
	switch (d->status) {
	case FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_SUCCESSFUL:
	case FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_FAILED:
	case FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_CANCELLED:
		return true;
	default: return false;
	}
}

void cli_progress_bar(char buf[CLI_BAR_SIZE], unsigned done, unsigned total)
{
	unsigned fill =
		total ? (unsigned)((uint64_t)done * CLI_BAR_WIDTH / total) : 0;
	if (fill > CLI_BAR_WIDTH)
		fill = CLI_BAR_WIDTH;
	buf[0] = '[';
	memset(buf + 1, '#', fill);
	memset(buf + 1 + fill, '-', CLI_BAR_WIDTH - fill);
	buf[CLI_BAR_WIDTH + 1] = ']';
	buf[CLI_BAR_WIDTH + 2] = ' ';
	buf[CLI_BAR_WIDTH + 3] = '\0';
}

static void group_line(const Flotilla__DeploymentGroup *g, int name_w, bool tty,
		       char *buf, size_t len)
{
	char b[CLI_BAR_SIZE] = "", canary[64] = "";
	if (tty)
		cli_progress_bar(b, g->healthy, g->desired_total);
	if (g->desired_canaries)
		snprintf(canary, sizeof(canary), "  canary %zu/%u%s",
			 g->n_canaries, g->desired_canaries,
			 g->promoted ? " promoted" : "");
	snprintf(buf, len, "  %-*s %s%u/%u healthy  %u placed  %u unhealthy%s",
		 name_w, g->group, b, g->healthy, g->desired_total, g->placed,
		 g->unhealthy, canary);
}

void cli_progress_init(cli_progress_t *p, FILE *f)
{
	const char *term = getenv("TERM");
	*p = (cli_progress_t){ 0 };
	p->tty = isatty(fileno(f)) && !(term && strcmp(term, "dumb") == 0);
}

/* Columns of the terminal, so that no line wraps (which would break
 * redrawing in place). */
static size_t term_cols(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col;
	return 80;
}

static void progress_lines(const Flotilla__Deployment *d, bool tty,
			   char **lines)
{
	char buf[1024];
	int name_w = 0;
	for (size_t i = 0; i < d->n_groups; i++) {
		int l = (int)strlen(d->groups[i]->group);
		if (l > name_w)
			name_w = l;
	}
	cli_deployment_line(d, buf, sizeof(buf));
	lines[0] = flt_xstrdup(buf);
	for (size_t i = 0; i < d->n_groups; i++) {
		group_line(d->groups[i], name_w, tty, buf, sizeof(buf));
		lines[i + 1] = flt_xstrdup(buf);
	}
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static bool lines_same(const cli_progress_t *p, char **lines, size_t n)
{
	if (p->nlast != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(lines[i], p->last[i]) != 0)
			return false;
	return true;
}

/* Redraws every line in place, each cut to the terminal's width. */
static void redraw(cli_progress_t *p, char **lines, size_t n)
{
	size_t cols = term_cols();
	if (p->drawn)
		printf("\033[%dA", p->drawn);
	for (size_t i = 0; i < n; i++)
		printf("\r\033[2K%.*s\n", (int)(cols - 1), lines[i]);
	/* Fewer lines than last time: blank the rest and come back up. */
	if (p->drawn > (int)n) {
		for (int i = (int)n; i < p->drawn; i++)
			printf("\r\033[2K\n");
		printf("\033[%dA", p->drawn - (int)n);
	}
	p->drawn = (int)n;
}

void cli_progress_draw(cli_progress_t *p, const Flotilla__Deployment *d)
{
	size_t n = d->n_groups + 1;
	char **lines = flt_xcalloc(n, sizeof(*lines));
	progress_lines(d, p->tty, lines);
	cli_progress_lines(p, lines, n);
}

void cli_progress_lines(cli_progress_t *p, char **lines, size_t n)
{
	/* Only the redraw writes control sequences: none from a line. */
	for (size_t i = 0; i < n; i++) {
		char *e = flt_escape_dup(lines[i], strlen(lines[i]), 0);
		free(lines[i]);
		lines[i] = e;
	}
	if (p->tty) {
		if (!lines_same(p, lines, n))
			redraw(p, lines, n);
	} else {
		for (size_t i = 0; i < n; i++)
			if (i >= p->nlast || strcmp(lines[i], p->last[i]) != 0)
				cli_puts(lines[i]);
	}
	free_lines(p->last, p->nlast);
	p->last = lines;
	p->nlast = n;
	fflush(stdout);
}

void cli_progress_end(cli_progress_t *p)
{
	free_lines(p->last, p->nlast);
	*p = (cli_progress_t){ .tty = p->tty };
}
