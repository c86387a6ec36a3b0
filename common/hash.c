/* The hash function and the string map (see flotilla/hash.h). */
#include <stdlib.h>
#include <string.h>

#include "flotilla/hash.h"
#include "flotilla/util.h"

uint64_t flt_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

uint64_t flt_hash_str(const char *s)
{
	return flt_hash_bytes(FLT_HASH_INIT, s, strlen(s));
}

/* The slot of key, or of the free slot that ends its probe chain. */
static size_t slot_of(const flt_map_t *m, const char *key, uint64_t h)
{
	size_t mask = m->nslots - 1, s = h & mask;
	while (m->keys[s] &&
	       (m->hashes[s] != h || strcmp(m->keys[s], key) != 0))
		s = (s + 1) & mask;
	return s;
}

void *flt_map_get(const flt_map_t *m, const char *key)
{
	if (!m->n)
		return NULL;
	size_t s = slot_of(m, key, flt_hash_str(key));
	return m->keys[s] ? m->vals[s] : NULL;
}

static void grow(flt_map_t *m)
{
	flt_map_t old = *m;
	m->nslots = old.nslots ? old.nslots * 2 : 16;
	m->keys = flt_xcalloc(m->nslots, sizeof(*m->keys));
	m->vals = flt_xcalloc(m->nslots, sizeof(*m->vals));
	m->hashes = flt_xcalloc(m->nslots, sizeof(*m->hashes));
	for (size_t i = 0; i < old.nslots; i++) {
		if (!old.keys[i])
			continue;
		size_t s = old.hashes[i] & (m->nslots - 1);
		while (m->keys[s])
			s = (s + 1) & (m->nslots - 1);
		m->keys[s] = old.keys[i];
		m->vals[s] = old.vals[i];
		m->hashes[s] = old.hashes[i];
	}
	flt_map_free(&old);
}

void flt_map_put(flt_map_t *m, const char *key, void *val)
{
	if ((m->n + 1) * 2 > m->nslots)
		grow(m);
	uint64_t h = flt_hash_str(key);
	size_t s = slot_of(m, key, h);
	if (!m->keys[s]) {
		m->keys[s] = key;
		m->hashes[s] = h;
		m->n++;
	}
	m->vals[s] = val;
}

void *flt_map_del(flt_map_t *m, const char *key)
{
	if (!m->n)
		return NULL;
	size_t mask = m->nslots - 1;
	size_t s = slot_of(m, key, flt_hash_str(key));
	if (!m->keys[s])
		return NULL;
	void *val = m->vals[s];
	/*
	 * Backward shift: the entries after the hole that could have sat in
	 * it move back, so that every probe chain stays unbroken. An entry
	 * at j with home slot h may fill the hole i unless h lies cyclically
	 * in (i, j].
	 */
	size_t i = s;
	for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		size_t home = m->hashes[j] & mask;
		bool stays = i <= j ? (i < home && home <= j)
				    : (i < home || home <= j);
		if (stays)
			continue;
		m->keys[i] = m->keys[j];
		m->vals[i] = m->vals[j];
		m->hashes[i] = m->hashes[j];
		i = j;
	}
	m->keys[i] = NULL;
	m->vals[i] = NULL;
	m->n--;
	return val;
}

bool flt_map_next(const flt_map_t *m, size_t *pos, const char **key, void **val)
{
	for (size_t s = *pos; s < m->nslots; s++) {
		if (!m->keys[s])
			continue;
		*pos = s + 1;
		if (key)
			*key = m->keys[s];
		if (val)
			*val = m->vals[s];
		return true;
	}
	*pos = m->nslots;
	return false;
}

void flt_map_free(flt_map_t *m)
{
	free(m->keys);
	free(m->vals);
	free(m->hashes);
	memset(m, 0, sizeof(*m));
}
