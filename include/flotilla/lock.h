/*
 * Mutexes with a place in a lock order. Each lock has a level; a thread
 * may take a lock only when every lock it already holds has a lower
 * level. Builds with FLT_LOCK_CHECK (the sanitizer build, and any build
 * configured with -DFLT_LOCK_CHECK=ON) check that on every lock and abort
 * with both locks' names when it is broken; other builds compile these
 * down to the pthread calls. The order of the coordinator's locks is
 * written in coordinator/coordinator.h.
 */
#ifndef FLOTILLA_LOCK_H
#define FLOTILLA_LOCK_H

#include <pthread.h>
#include <time.h>

typedef struct flt_mutex {
	pthread_mutex_t m;
	unsigned level;
	const char *name;
} flt_mutex_t;

typedef struct flt_rwlock {
	pthread_rwlock_t l;
	unsigned level;
	const char *name;
} flt_rwlock_t;

void flt_mutex_init(flt_mutex_t *m, unsigned level, const char *name);
void flt_mutex_destroy(flt_mutex_t *m);
void flt_mutex_lock(flt_mutex_t *m);
void flt_mutex_unlock(flt_mutex_t *m);
/* pthread_cond_wait and _timedwait on m (held, and held again after). */
int flt_cond_wait(pthread_cond_t *c, flt_mutex_t *m);
int flt_cond_timedwait(pthread_cond_t *c, flt_mutex_t *m,
		       const struct timespec *abstime);

void flt_rwlock_init(flt_rwlock_t *l, unsigned level, const char *name);
void flt_rwlock_destroy(flt_rwlock_t *l);
void flt_rwlock_rdlock(flt_rwlock_t *l);
void flt_rwlock_wrlock(flt_rwlock_t *l);
void flt_rwlock_unlock(flt_rwlock_t *l);

/* How many checked locks this thread holds (0 where nothing is checked). */
unsigned flt_lock_held(void);

#endif
