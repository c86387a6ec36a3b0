#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flotilla/log.h"
#include "flotilla/util.h"
#include "invscan.h"

#define DEFAULT_INTERVAL_MS (5 * 60 * 1000)

/* One scan's result and the readers holding it. */
typedef struct held {
	Flotilla__Inventory *inv;
	unsigned refs;
	struct held *next;
} held_t;

struct agent_invscan {
	agent_invscan_opts_t o;
	pthread_mutex_t mtx;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	bool started, stopping;
	held_t *cur; /* the latest result, or NULL */
	held_t *old; /* replaced results still held by readers */
	uint64_t asked; /* tickets handed out */
	uint64_t done; /* every ticket up to this one is served */
	int64_t next_ms; /* the next periodic scan */
};

static void deadline_of(struct timespec *ts, int64_t ms_from_now)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms_from_now / 1000;
	ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void held_free(held_t *h)
{
	flotilla__inventory__free_unpacked(h->inv, NULL);
	free(h);
}

/* Lock held: h is no longer the latest; freed once nobody holds it. */
static void retire(agent_invscan_t *s, held_t *h)
{
	if (!h)
		return;
	if (!h->refs) {
		held_free(h);
		return;
	}
	h->next = s->old;
	s->old = h;
}

static void *scan_main(void *arg)
{
	agent_invscan_t *s = arg;

	pthread_mutex_lock(&s->mtx);
	while (!s->stopping) {
		int64_t now = flt_now_mono_ms();
		if (s->asked == s->done && now < s->next_ms) {
			struct timespec ts;
			deadline_of(&ts, s->next_ms - now);
			pthread_cond_timedwait(&s->cond, &s->mtx, &ts);
			continue;
		}
		/* Tickets handed out before the scan starts are served by
		 * it; later ones wait for the next. */
		uint64_t serves = s->asked;
		pthread_mutex_unlock(&s->mtx);

		Flotilla__Inventory *inv = NULL;
		flt_error_t err;
		int64_t t0 = flt_now_mono_ms();
		int rc = agent_inventory_scan(&s->o.scan, &inv, &err);
		int64_t took = flt_now_mono_ms() - t0;

		pthread_mutex_lock(&s->mtx);
		s->next_ms = flt_now_mono_ms() +
			     (s->o.interval_ms ? s->o.interval_ms
					       : DEFAULT_INTERVAL_MS);
		if (rc < 0) {
			/* Only a programming error gets here; tickets are
			 * served so that nobody waits for ever. */
			flt_error("inventory scan failed: %s", err.msg);
			s->done = serves;
			pthread_cond_broadcast(&s->cond);
			continue;
		}
		bool changed = !s->cur ||
			       strcmp(s->cur->inv->digest, inv->digest) != 0;
		flt_log(changed ? FLT_LOG_INFO : FLT_LOG_DEBUG,
			"inventory scanned items=%zu errors=%zu digest=%.16s "
			"changed=%d ms=%lld",
			inv->n_items, inv->n_errors, inv->digest, changed,
			(long long)took);
		held_t *h = flt_xcalloc(1, sizeof(*h));
		h->inv = inv;
		retire(s, s->cur);
		s->cur = h;
		s->done = serves;
		pthread_cond_broadcast(&s->cond);
		if (changed && s->o.on_change) {
			pthread_mutex_unlock(&s->mtx);
			s->o.on_change(s->o.change_arg);
			pthread_mutex_lock(&s->mtx);
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

int agent_invscan_open(const agent_invscan_opts_t *o, agent_invscan_t **out,
		       flt_error_t *err)
{
	agent_invscan_t *s = flt_xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;

	s->o = *o;
	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&s->thread, NULL, scan_main, s);
	if (rc != 0) {
		agent_invscan_close(s);
		return flt_err(err, -rc, "inventory thread: %s", strerror(rc));
	}
	s->started = true;
	*out = s;
	return 0;
}

void agent_invscan_close(agent_invscan_t *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mtx);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
	if (s->started)
		pthread_join(s->thread, NULL);
	/* Readers are gone by now (their threads are joined first). */
	if (s->cur)
		held_free(s->cur);
	while (s->old) {
		held_t *h = s->old;
		s->old = h->next;
		held_free(h);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

void agent_invscan_digest(agent_invscan_t *s, char out[FLT_SHA256_HEX])
{
	pthread_mutex_lock(&s->mtx);
	snprintf(out, FLT_SHA256_HEX, "%s", s->cur ? s->cur->inv->digest : "");
	pthread_mutex_unlock(&s->mtx);
}

const Flotilla__Inventory *agent_invscan_get(agent_invscan_t *s)
{
	const Flotilla__Inventory *inv = NULL;
	pthread_mutex_lock(&s->mtx);
	if (s->cur) {
		s->cur->refs++;
		inv = s->cur->inv;
	}
	pthread_mutex_unlock(&s->mtx);
	return inv;
}

void agent_invscan_release(agent_invscan_t *s, const Flotilla__Inventory *inv)
{
	if (!inv)
		return;
	pthread_mutex_lock(&s->mtx);
	if (s->cur && s->cur->inv == inv) {
		s->cur->refs--;
	} else {
		for (held_t **pp = &s->old; *pp; pp = &(*pp)->next) {
			held_t *h = *pp;
			if (h->inv != inv)
				continue;
			if (--h->refs == 0) {
				*pp = h->next;
				held_free(h);
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->mtx);
}

uint64_t agent_invscan_request(agent_invscan_t *s)
{
	pthread_mutex_lock(&s->mtx);
	uint64_t ticket = ++s->asked;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
	return ticket;
}

int agent_invscan_wait(agent_invscan_t *s, uint64_t ticket,
		       char digest[FLT_SHA256_HEX], int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	deadline_of(&ts, timeout_ms);
	pthread_mutex_lock(&s->mtx);
	while (s->done < ticket && !s->stopping && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&s->cond, &s->mtx, &ts);
	if (s->done >= ticket) {
		rc = 0;
		if (digest)
			snprintf(digest, FLT_SHA256_HEX, "%s",
				 s->cur ? s->cur->inv->digest : "");
	} else {
		rc = s->stopping ? -ECANCELED : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&s->mtx);
	return rc;
}
