/*
 * The store's own costs: writes, reads, iteration and opening.
 *
 *   storebench [--records N] [--value BYTES] [--batch B] [--rounds R]
 *
 * Each round stores N records of BYTES bytes (keys "job-%08d", values of
 * varied bytes) in write transactions of B records, closes the store,
 * opens it again (what a daemon does at start: with checksums, the walk
 * of every record is in here), reads every record by key in a shuffled
 * order in one read transaction, and iterates over all of them. Prints
 * the median of each over the rounds, and a JSON line. Uses the public
 * store API only: the same source builds against any version of the
 * library, for side-by-side runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/store.h"
#include "flotilla/util.h"

static long records = 10000, value_len = 2048, batch = 1000, rounds = 5;

static const flt_flag_t flags[] = {
	{ "records", FLT_FLAG_INT, &records, "N", "records stored", 1, 10000000,
	  NULL },
	{ "value", FLT_FLAG_INT, &value_len, "BYTES", "bytes per value", 0,
	  16 << 20, NULL },
	{ "batch", FLT_FLAG_INT, &batch, "B", "records per write transaction",
	  1, 10000000, NULL },
	{ "rounds", FLT_FLAG_INT, &rounds, "R", "rounds (medians are shown)", 1,
	  1000, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int iter_cb(const void *key, size_t klen, const void *val, size_t vlen,
		   void *arg)
{
	(void)key;
	(void)klen;
	*(unsigned long *)arg += vlen + ((const unsigned char *)val)[0];
	return 0;
}

static const char *const dbs[] = { "jobs", NULL };

static int one_round(double *t_put, double *t_open, double *t_get,
		     double *t_iter)
{
	char dir[] = "/tmp/storebench.XXXXXX";
	flt_store_opts_t so = { .dbs = dbs, .map_size = (size_t)16 << 30 };
	flt_error_t err = { 0 };
	flt_store_t *s = NULL;
	flt_txn_t *t = NULL;
	flt_db_t db;
	char key[32];
	unsigned char *val = flt_xmalloc((size_t)value_len + 1);
	long *order = flt_xmalloc((size_t)records * sizeof(*order));
	unsigned long sink = 0;
	int rc = -1;

	if (!mkdtemp(dir) || flt_store_open(dir, &so, &s, &err) < 0 ||
	    flt_store_db(s, "jobs", &db) < 0)
		goto out;
	double t0 = now_s();
	for (long i = 0; i < records; i++) {
		if (!t && flt_txn_begin(s, true, &t, &err) < 0)
			goto out;
		for (long j = 0; j < value_len; j++)
			val[j] = (unsigned char)(i * 31 + j);
		int kl = snprintf(key, sizeof(key), "job-%08ld", i);
		if (flt_txn_put(t, db, key, (size_t)kl, val, (size_t)value_len,
				&err) < 0)
			goto out;
		if ((i + 1) % batch == 0 || i + 1 == records) {
			rc = flt_txn_commit(t, &err);
			t = NULL;
			if (rc < 0)
				goto out;
		}
	}
	*t_put = now_s() - t0;
	flt_store_close(s);
	s = NULL;

	t0 = now_s();
	if (flt_store_open(dir, &so, &s, &err) < 0 ||
	    flt_store_db(s, "jobs", &db) < 0)
		goto out;
	*t_open = now_s() - t0;

	for (long i = 0; i < records; i++)
		order[i] = i;
	srand(1);
	for (long i = records - 1; i > 0; i--) {
		long j = rand() % (i + 1), x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	if (flt_txn_begin(s, false, &t, &err) < 0)
		goto out;
	t0 = now_s();
	for (long i = 0; i < records; i++) {
		const void *v;
		size_t vl;
		int kl = snprintf(key, sizeof(key), "job-%08ld", order[i]);
		if (flt_txn_get(t, db, key, (size_t)kl, &v, &vl) < 0 ||
		    vl != (size_t)value_len) {
			snprintf(err.msg, sizeof(err.msg), "get %s failed",
				 key);
			goto out;
		}
		sink += vl ? ((const unsigned char *)v)[vl - 1] : 0;
	}
	*t_get = now_s() - t0;
	t0 = now_s();
	if (flt_txn_foreach(t, db, NULL, 0, iter_cb, &sink) != 0)
		goto out;
	*t_iter = now_s() - t0;
	if (sink == 1)
		fprintf(stderr, "storebench: unlikely sum\n");
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "storebench: %s\n", err.msg);
	flt_txn_abort(t);
	flt_store_close(s);
	flt_rm_rf(dir, 0);
	free(val);
	free(order);
	return rc;
}

int main(int argc, char **argv)
{
	int next;
	int rc = flt_flags_main(flags, argc, argv, &next, "storebench",
				"storebench [--records N] [--value BYTES] "
				"[--batch B] [--rounds R]",
				false);
	if (rc >= 0)
		return rc;
	flt_log_init("storebench", FLT_LOG_WARN);
	double *put = flt_xcalloc((size_t)rounds, sizeof(double));
	double *opn = flt_xcalloc((size_t)rounds, sizeof(double));
	double *get = flt_xcalloc((size_t)rounds, sizeof(double));
	double *itr = flt_xcalloc((size_t)rounds, sizeof(double));
	for (long r = 0; r < rounds; r++)
		if (one_round(&put[r], &opn[r], &get[r], &itr[r]) < 0)
			return 1;
	double p = median(put, rounds), o = median(opn, rounds),
	       g = median(get, rounds), it = median(itr, rounds);
	double mib = (double)records * (double)value_len / (1 << 20);
	printf("%ld records of %ld bytes (%.1f MiB), %ld rounds (medians):\n"
	       "  put   %.3f s  %.2f us/record (transactions of %ld)\n"
	       "  open  %.3f s\n"
	       "  get   %.3f s  %.3f us/record (shuffled keys)\n"
	       "  iter  %.3f s  %.3f us/record\n",
	       records, value_len, mib, rounds, p, p * 1e6 / (double)records,
	       batch, o, g, g * 1e6 / (double)records, it,
	       it * 1e6 / (double)records);
	printf("{\"records\":%ld,\"value\":%ld,\"put_s\":%.4f,\"open_s\":%.4f,"
	       "\"get_s\":%.4f,\"iter_s\":%.4f}\n",
	       records, value_len, p, o, g, it);
	free(put);
	free(opn);
	free(get);
	free(itr);
	return 0;
}
