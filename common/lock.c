/*
 * Lock levels, checked per thread (see lock.h). The check keeps a small
 * stack of the locks the thread holds; unlocking may happen in any order.
 */
#include <stdio.h>
#include <stdlib.h>

#include "flotilla/lock.h"

#ifdef FLT_LOCK_CHECK
#define MAX_HELD 16

typedef struct held {
	const void *lock;
	unsigned level;
	const char *name;
} held_t;

static __thread held_t held[MAX_HELD];
static __thread unsigned n_held;

static void acquiring(const void *lock, unsigned level, const char *name)
{
	(void)lock;
	for (unsigned i = 0; i < n_held; i++) {
		if (held[i].level >= level) {
			fprintf(stderr,
				"lock order violated: taking %s (level %u) "
				"while holding %s (level %u)\n",
				name, level, held[i].name, held[i].level);
			abort();
		}
	}
	if (n_held == MAX_HELD) {
		fprintf(stderr, "lock order: more than %d locks held\n",
			MAX_HELD);
		abort();
	}
}

static void acquired(const void *lock, unsigned level, const char *name)
{
	held[n_held++] = (held_t){ lock, level, name };
}

static void released(const void *lock)
{
	for (unsigned i = n_held; i-- > 0;) {
		if (held[i].lock == lock) {
			held[i] = held[--n_held];
			return;
		}
	}
	fprintf(stderr, "lock order: releasing a lock not held\n");
	abort();
}

unsigned flt_lock_held(void) { return n_held; }
#else
#define acquiring(l, v, n) ((void)0)
#define acquired(l, v, n) ((void)0)
#define released(l) ((void)0)
unsigned flt_lock_held(void) { return 0; }
#endif

void flt_mutex_init(flt_mutex_t *m, unsigned level, const char *name)
{
	pthread_mutex_init(&m->m, NULL);
	m->level = level;
	m->name = name;
}

void flt_mutex_destroy(flt_mutex_t *m) { pthread_mutex_destroy(&m->m); }

void flt_mutex_lock(flt_mutex_t *m)
{
	acquiring(m, m->level, m->name);
	pthread_mutex_lock(&m->m);
	acquired(m, m->level, m->name);
}

void flt_mutex_unlock(flt_mutex_t *m)
{
	released(m);
	pthread_mutex_unlock(&m->m);
}

/* The thread gives m up while it waits and holds it again after: its
 * place in the order does not change. */
int flt_cond_wait(pthread_cond_t *c, flt_mutex_t *m)
{
	return pthread_cond_wait(c, &m->m);
}

int flt_cond_timedwait(pthread_cond_t *c, flt_mutex_t *m,
		       const struct timespec *abstime)
{
	return pthread_cond_timedwait(c, &m->m, abstime);
}

void flt_rwlock_init(flt_rwlock_t *l, unsigned level, const char *name)
{
	pthread_rwlock_init(&l->l, NULL);
	l->level = level;
	l->name = name;
}

void flt_rwlock_destroy(flt_rwlock_t *l) { pthread_rwlock_destroy(&l->l); }

void flt_rwlock_rdlock(flt_rwlock_t *l)
{
	acquiring(l, l->level, l->name);
	pthread_rwlock_rdlock(&l->l);
	acquired(l, l->level, l->name);
}

void flt_rwlock_wrlock(flt_rwlock_t *l)
{
	acquiring(l, l->level, l->name);
	pthread_rwlock_wrlock(&l->l);
	acquired(l, l->level, l->name);
}

void flt_rwlock_unlock(flt_rwlock_t *l)
{
	released(l);
	pthread_rwlock_unlock(&l->l);
}
