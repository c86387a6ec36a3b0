/*
 * Helpers the benchmark programs share. Header only: startbench links
 * nothing of ours.
 */
#ifndef FLOTILLA_BENCH_H
#define FLOTILLA_BENCH_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC, with their fraction. */
static inline double bench_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* qsort's comparison for an array of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

#endif
