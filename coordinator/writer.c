/*
 * One writer thread owns every write transaction. Requests queue ops; the
 * writer takes all that are waiting and applies them in one transaction, so
 * a burst of thousands of changes costs a few fsyncs rather than thousands
 * (LMDB allows one writer at a time anyway).
 */
#include <errno.h>
#include <stdlib.h>

#include "coordinator.h"
#include "flotilla/lock.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

#define MAX_BATCH 4096

typedef struct op {
	coord_apply_fn apply;
	coord_done_fn done;
	void *arg;
	struct op *next;
} op_t;

struct coord_writer {
	flt_store_t *store;
	pthread_t thread;
	flt_mutex_t mtx;
	pthread_cond_t cond;
	op_t *head, **tail;
	bool stopping;
	bool stopped; /* thread gone: new ops fail at once */
};

static void finish(op_t *o, int rc, uint64_t index, const flt_error_t *err)
{
	if (o->done)
		o->done(o->arg, rc, index, err);
}

/* Applies ops[0..n) in one transaction; returns 0 when all committed. */
static int apply_batch(coord_writer_t *w, op_t **ops, size_t n, bool report)
{
	flt_error_t err = { 0 };
	flt_txn_t *txn;
	int rc = flt_txn_begin(w->store, true, &txn, &err);
	if (rc < 0)
		goto failed;
	for (size_t i = 0; i < n; i++) {
		rc = ops[i]->apply(txn, ops[i]->arg, &err);
		if (rc < 0) {
			flt_txn_abort(txn);
			goto failed;
		}
	}
	uint64_t index = flt_txn_index(txn);
	rc = flt_txn_commit(txn, &err);
	if (rc < 0)
		goto failed;
	for (size_t i = 0; i < n; i++)
		finish(ops[i], 0, index, NULL);
	return 0;
failed:
	if (report) {
		/* Room or the disk: the operator must act (the message names
		 * the data directory); a refused op is the requester's. */
		if (rc == -ENOSPC || rc == -EDQUOT || rc == -EIO ||
		    rc == FLT_ESTORE)
			flt_error("write failed, nothing of it stored "
				  "error=\"%s\"",
				  err.msg);
		else
			flt_warn("write failed error=\"%s\"", err.msg);
		for (size_t i = 0; i < n; i++)
			finish(ops[i], rc, 0, &err);
	}
	return rc;
}

static void *writer_main(void *arg)
{
	coord_writer_t *w = arg;
	op_t **batch = flt_xcalloc(MAX_BATCH, sizeof(*batch));

	for (;;) {
		flt_mutex_lock(&w->mtx);
		while (!w->head && !w->stopping)
			flt_cond_wait(&w->cond, &w->mtx);
		if (!w->head && w->stopping) {
			flt_mutex_unlock(&w->mtx);
			break;
		}
		size_t n = 0;
		while (w->head && n < MAX_BATCH) {
			batch[n++] = w->head;
			w->head = w->head->next;
		}
		if (!w->head)
			w->tail = &w->head;
		flt_mutex_unlock(&w->mtx);

		if (apply_batch(w, batch, n, n == 1) < 0 && n > 1) {
			/* Isolate the failing op: every other op still lands. */
			for (size_t i = 0; i < n; i++)
				apply_batch(w, &batch[i], 1, true);
		}
		for (size_t i = 0; i < n; i++)
			free(batch[i]);
	}
	free(batch);
	return NULL;
}

int coord_writer_start(flt_store_t *store, coord_writer_t **out,
		       flt_error_t *err)
{
	coord_writer_t *w = flt_xcalloc(1, sizeof(*w));
	w->store = store;
	w->tail = &w->head;
	flt_mutex_init(&w->mtx, COORD_LOCK_WRITER, "writer");
	pthread_cond_init(&w->cond, NULL);
	int rc = pthread_create(&w->thread, NULL, writer_main, w);
	if (rc != 0) {
		free(w);
		return flt_err(err, -rc, "writer thread: %s",
			       flt_strerror(-rc));
	}
	*out = w;
	return 0;
}

void coord_writer_submit(coord_writer_t *w, coord_apply_fn apply,
			 coord_done_fn done, void *arg)
{
	op_t *o = flt_xmalloc(sizeof(*o));
	o->apply = apply;
	o->done = done;
	o->arg = arg;
	o->next = NULL;
	flt_mutex_lock(&w->mtx);
	if (w->stopping) {
		flt_mutex_unlock(&w->mtx);
		flt_error_t err;
		flt_err(&err, -ESHUTDOWN, "coordinator is shutting down");
		finish(o, err.code, 0, &err);
		free(o);
		return;
	}
	*w->tail = o;
	w->tail = &o->next;
	pthread_cond_signal(&w->cond);
	flt_mutex_unlock(&w->mtx);
}

void coord_writer_stop(coord_writer_t *w)
{
	if (!w || w->stopped)
		return;
	flt_mutex_lock(&w->mtx);
	w->stopping = true;
	pthread_cond_signal(&w->cond);
	flt_mutex_unlock(&w->mtx);
	pthread_join(w->thread, NULL);
	w->stopped = true;
}

void coord_writer_free(coord_writer_t *w)
{
	if (!w)
		return;
	coord_writer_stop(w);
	flt_mutex_destroy(&w->mtx);
	pthread_cond_destroy(&w->cond);
	free(w);
}
