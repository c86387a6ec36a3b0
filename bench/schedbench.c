/*
 * Scheduler throughput on stored synthetic fleets.
 *
 *   schedbench [--nodes N] [--allocs A] [--per-job J] [--sample K]
 *
 * Builds a fleet of N nodes (varied OS, CPU count, zone, rack), stores it
 * in a fresh LMDB as the coordinator stores nodes, loads it back into the
 * scheduler's view, then places A allocations in jobs of J allocations
 * each, every job with two constraints (attr.os_id != windows, attr.cpu_count
 * >= 4) and a spread over label.zone. Prints the placement rate and a JSON
 * line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flotilla.pb-c.h"
#include "flotilla/flags.h"
#include "flotilla/store.h"
#include "flotilla/util.h"
#include "scheduler.h"

#include "bench.h"

static long nodes = 10000, allocs = 100000, per_job = 100, sample;

static const flt_flag_t flags[] = {
	{ "nodes", FLT_FLAG_INT, &nodes, "N", "fleet size", 1, 10000000, NULL },
	{ "allocs", FLT_FLAG_INT, &allocs, "A", "allocations to place", 1,
	  100000000, NULL },
	{ "per-job", FLT_FLAG_INT, &per_job, "J", "allocations per job", 1,
	  1000000, NULL },
	{ "sample", FLT_FLAG_INT, &sample, "K",
	  "candidates scored per placement (0: automatic)", 0, 100000, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static double now_s(void) { return bench_now_ms() / 1e3; }

static int store_fleet(flt_store_t *s, flt_db_t db)
{
	static const char *const os[] = { "debian", "ubuntu", "rhel",
					  "windows" };
	static const uint32_t cpus[] = { 2, 4, 8, 16, 32, 64 };
	flt_txn_t *txn;
	flt_error_t err;
	if (flt_txn_begin(s, true, &txn, &err) < 0)
		return -1;
	for (long i = 0; i < nodes; i++) {
		Flotilla__NodeRecord rec = FLOTILLA__NODE_RECORD__INIT;
		Flotilla__Fingerprint fp = FLOTILLA__FINGERPRINT__INIT;
		Flotilla__NodeRecord__LabelsEntry zone, rack, *labels[2];
		char id[37], name[32], z[16], r[16];
		flt_uuid_v4(id);
		snprintf(name, sizeof(name), "node-%ld", i);
		snprintf(z, sizeof(z), "zone-%ld", i % 7);
		snprintf(r, sizeof(r), "rack-%ld", i % 97);
		flotilla__node_record__labels_entry__init(&zone);
		flotilla__node_record__labels_entry__init(&rack);
		zone.key = "zone";
		zone.value = z;
		rack.key = "rack";
		rack.value = r;
		labels[0] = &zone;
		labels[1] = &rack;
		fp.hostname = name;
		fp.os_id = (char *)os[i % 4];
		fp.arch = "x86_64";
		fp.cpu_count = cpus[i % 6];
		fp.memory_bytes = (uint64_t)fp.cpu_count
				  << 32; /* 4 GiB a CPU */
		rec.id = id;
		rec.name = name;
		rec.status = FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
		rec.fingerprint = &fp;
		rec.labels = labels;
		rec.n_labels = 2;
		if (flt_txn_put_pb(txn, db, id, &rec.base, &err) < 0) {
			flt_txn_abort(txn);
			return -1;
		}
	}
	return flt_txn_commit(txn, &err);
}

static int load_one(const void *k, size_t kl, const void *v, size_t vl,
		    void *arg)
{
	sched_fleet_t *f = arg;
	(void)k;
	(void)kl;
	Flotilla__NodeRecord *rec = flotilla__node_record__unpack(NULL, vl, v);
	if (!rec)
		return -1;
	const Flotilla__Fingerprint *fp = rec->fingerprint;
	char cpu_s[16];
	snprintf(cpu_s, sizeof(cpu_s), "%u", fp->cpu_count);
	const char *keys[8] = { "node.name", "node.id", "attr.os_id",
				"attr.arch", "attr.cpu_count" };
	const char *vals[8] = { rec->name, rec->id, fp->os_id, fp->arch,
				cpu_s };
	size_t n = 5;
	char lk[2][80];
	for (size_t i = 0; i < rec->n_labels && i < 2; i++) {
		snprintf(lk[i], sizeof(lk[i]), "label.%s", rec->labels[i]->key);
		keys[n] = lk[i];
		vals[n++] = rec->labels[i]->value;
	}
	sched_fleet_add(f, rec->id, n, keys, vals, fp->cpu_count * 100,
			fp->memory_bytes >> 20, 4194304,
			rec->status ==
				FLOTILLA__NODE_STATUS__NODE_STATUS_READY);
	flotilla__node_record__free_unpacked(rec, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const dbs[] = { "nodes", NULL };
	char dir[] = "/tmp/flt-schedbench-XXXXXX";
	flt_error_t err;
	flt_store_t *s;
	flt_db_t db;
	int next;

	int rc = flt_flags_main(flags, argc, argv, &next, "schedbench",
				"Usage: schedbench [OPTIONS]\n\nPlacements per "
				"second of the scheduler on a stored fleet.",
				false);
	if (rc >= 0)
		return rc;
	flt_store_opts_t so = { .dbs = dbs, .map_size = (size_t)8 << 30 };
	if (!mkdtemp(dir) || flt_store_open(dir, &so, &s, &err) < 0 ||
	    flt_store_db(s, "nodes", &db) < 0) {
		fprintf(stderr, "schedbench: store: %s\n", err.msg);
		return 1;
	}
	double t0 = now_s();
	if (store_fleet(s, db) < 0)
		return 1;
	double t_store = now_s() - t0;

	t0 = now_s();
	sched_fleet_t *f = sched_fleet_new();
	flt_txn_t *txn;
	if (flt_txn_begin(s, false, &txn, &err) < 0)
		return 1;
	flt_txn_foreach(txn, db, NULL, 0, load_one, f);
	flt_txn_abort(txn);
	double t_load = now_s() - t0;

	/* Every job: two constraints and a spread; one task of 10% CPU and
	 * 64 MiB. */
	Flotilla__Job job = FLOTILLA__JOB__INIT;
	Flotilla__TaskGroup g = FLOTILLA__TASK_GROUP__INIT, *gp = &g;
	Flotilla__TaskSpec t = FLOTILLA__TASK_SPEC__INIT, *tp = &t;
	Flotilla__Resources r = FLOTILLA__RESOURCES__INIT;
	Flotilla__Constraint c1 = FLOTILLA__CONSTRAINT__INIT,
			     c2 = FLOTILLA__CONSTRAINT__INIT,
			     *cp[2] = { &c1, &c2 };
	Flotilla__Spread sp = FLOTILLA__SPREAD__INIT, *spp = &sp;
	r.cpu_quota_percent = 10;
	r.memory_mb = 64;
	r.max_pids = 64;
	t.resources = &r;
	g.tasks = &tp;
	g.n_tasks = 1;
	c1.attribute = "attr.os_id";
	c1.operator_ = "!=";
	c1.value = "windows";
	c2.attribute = "attr.cpu_count";
	c2.operator_ = ">=";
	c2.value = "4";
	g.constraints = cp;
	g.n_constraints = 2;
	sp.attribute = "label.zone";
	sp.weight = 50;
	g.spreads = &spp;
	g.n_spreads = 1;
	job.type = "service";
	job.groups = &gp;
	job.n_groups = 1;

	long placed = 0, unplaced = 0, jobs = 0;
	double worst_job = 0;
	t0 = now_s();
	for (long done = 0; done < allocs; done += per_job, jobs++) {
		sched_request_t rq = {
			.job = &job,
			.group = &g,
			.count = (uint32_t)(allocs - done < per_job
						    ? allocs - done
						    : per_job),
			.sample = (unsigned)sample,
			.seed = (uint64_t)jobs * 7919
		};
		sched_result_t res;
		double j0 = now_s();
		if (sched_place(f, &rq, &res, &err) < 0) {
			fprintf(stderr, "schedbench: %s\n", err.msg);
			return 1;
		}
		double dj = now_s() - j0;
		if (dj > worst_job)
			worst_job = dj;
		placed += (long)res.nplaced;
		unplaced += res.unplaced;
		sched_result_free(&res);
	}
	double t_place = now_s() - t0;
	double rate = (double)placed / t_place;
	printf("nodes %ld: stored in %.2f s, loaded in %.3f s; placed %ld "
	       "(%ld unplaced) in %ld jobs in %.3f s: %.0f placements/s, "
	       "%.2f us each, slowest job %.2f ms\n",
	       nodes, t_store, t_load, placed, unplaced, jobs, t_place, rate,
	       t_place / (double)(placed ? placed : 1) * 1e6, worst_job * 1e3);
	printf("{\"nodes\":%ld,\"allocs\":%ld,\"per_job\":%ld,\"placed\":%ld,"
	       "\"unplaced\":%ld,\"seconds\":%.4f,\"placements_per_s\":%.0f,"
	       "\"load_s\":%.4f,\"slowest_job_ms\":%.3f}\n",
	       nodes, allocs, per_job, placed, unplaced, t_place, rate, t_load,
	       worst_job * 1e3);
	sched_fleet_free(f);
	flt_store_close(s);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "schedbench: could not remove %s\n", dir);
	return 0;
}
