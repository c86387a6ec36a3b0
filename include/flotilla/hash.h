/*
 * The one hash function and the one hash table of the tree.
 *
 * flt_hash_* is 64-bit FNV-1a: fast on the short keys we hash (ids,
 * names, attribute values) and good enough for tables whose keys an
 * operator, not an attacker, chooses. Not for anything where collisions
 * would be a weakness an outsider could aim at.
 */
#ifndef FLOTILLA_HASH_H
#define FLOTILLA_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Where a chain starts: the hash of nothing. One digit short of FNV's
 * published offset basis (14695981039346656037), as the tree has always
 * had it: any odd-enough start hashes as well, and the agent names task
 * cgroups after these values, so they must not change.
 */
#define FLT_HASH_INIT 1469598103934665603ull

/* Continues hash h over n bytes at p (start with FLT_HASH_INIT). */
uint64_t flt_hash_bytes(uint64_t h, const void *p, size_t n);

/* The hash of a string, without its terminating NUL. */
uint64_t flt_hash_str(const char *s);

/*
 * A map from strings to pointers: open addressing with linear probing,
 * deletion by backward shift (no tombstones), at most half full.
 *
 * Keys are borrowed: each must stay unchanged and alive while it is in the
 * map (usually it points into its value). Values are the caller's. A NULL
 * value may be stored, but then flt_map_get cannot tell it from absence.
 * Small allocations: growing aborts on OOM. Not thread-safe: the owner's
 * lock covers it. A zeroed flt_map_t (FLT_MAP_INIT) is an empty map.
 */
typedef struct flt_map {
	const char **keys; /* NULL: a free slot */
	void **vals;
	uint64_t *hashes;
	size_t n; /* entries */
	size_t nslots; /* 0 or a power of two */
} flt_map_t;

#define FLT_MAP_INIT \
	{            \
		0    \
	}

/* The value of key, or NULL when absent. */
void *flt_map_get(const flt_map_t *m, const char *key);

/* Adds key, or replaces its value (then the map keeps the first key). */
void flt_map_put(flt_map_t *m, const char *key, void *val);

/* Removes key; returns its value, or NULL when it was absent. */
void *flt_map_del(flt_map_t *m, const char *key);

static inline size_t flt_map_count(const flt_map_t *m) { return m->n; }

/*
 * Iterates: set *pos = 0, then each call gives the next entry and returns
 * true, false after the last. The map must not change meanwhile, except
 * by flt_map_put on a key already present.
 */
bool flt_map_next(const flt_map_t *m, size_t *pos, const char **key,
		  void **val);

/* Frees the map's arrays (not the keys or the values); m is then empty. */
void flt_map_free(flt_map_t *m);

#endif
