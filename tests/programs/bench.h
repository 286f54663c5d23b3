/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every benchmark program in the test guests shares: the clock, and the
 * one line format that `dipc-bench` (dipcd/bench) reads back from the
 * cluster's output:
 *
 *   BENCH NAME unit=UNIT value=V [n=N] [q=Q0,Q1,...,Q100] [KEY=VALUE ...]
 *
 * VALUE is the figure (a median for latencies, a rate for throughputs);
 * q= carries the 101 percentiles p0..p100 of a latency distribution.
 * Benchmarks print figures; they check nothing about speed.
 */
#ifndef DIPC_BENCH_H
#define DIPC_BENCH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Prints the latency distribution of the n samples in s (microseconds;
 * sorted in place) as NAME, with extra "key=value" words appended.
 */
static inline void bench_latency(const char *name, double *s, int n, const char *extra, ...)
{
	va_list ap;
	double sum = 0;
	int i;

	if (n <= 0)
		return;
	qsort(s, n, sizeof(*s), bench_cmp);
	for (i = 0; i < n; i++)
		sum += s[i];
	printf("BENCH %s unit=us value=%.1f n=%d mean=%.1f p99=%.1f q=", name, s[n / 2], n, sum / n,
	       s[(long)(n - 1) * 99 / 100]);
	for (i = 0; i <= 100; i++)
		printf("%s%.1f", i ? "," : "", s[(long)(n - 1) * i / 100]);
	if (extra && *extra) {
		va_start(ap, extra);
		putchar(' ');
		vprintf(extra, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

/* Prints a single figure: NAME, its unit and value, and extra words. */
static inline void bench_figure(const char *name, const char *unit, double value, const char *extra,
				...)
{
	va_list ap;

	printf("BENCH %s unit=%s value=%.3f", name, unit, value);
	if (extra && *extra) {
		va_start(ap, extra);
		putchar(' ');
		vprintf(extra, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

#endif
