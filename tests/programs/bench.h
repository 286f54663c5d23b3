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
#include <string.h>
#include <time.h>

/* The key=value arguments, copied onto every BENCH line. */
static char bench_extra_args[512];

/*
 * Splits argv: words of the form key=value (after argv[0]) are appended to
 * bench_extra_args, the others go to pos (at most max); returns their count.
 */
static inline int bench_args(int argc, char **argv, char **pos, int max)
{
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (i > 0 && strchr(argv[i], '=')) {
			size_t l = strlen(bench_extra_args);

			snprintf(bench_extra_args + l, sizeof(bench_extra_args) - l, "%s%s",
				 l ? " " : "", argv[i]);
		} else if (n < max) {
			pos[n++] = argv[i];
		}
	}
	return n;
}

/* Ends a BENCH line: " " and the extra words from fmt, then a newline. */
static inline void bench_end(const char *fmt, va_list ap)
{
	if (fmt && *fmt) {
		putchar(' ');
		vprintf(fmt, ap);
	}
	putchar('\n');
	fflush(stdout);
}

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
	va_start(ap, extra);
	bench_end(extra, ap);
	va_end(ap);
}

/* Prints a single figure: NAME, its unit and value, and extra words. */
static inline void bench_figure(const char *name, const char *unit, double value, const char *extra,
				...)
{
	va_list ap;

	printf("BENCH %s unit=%s value=%.3f", name, unit, value);
	va_start(ap, extra);
	bench_end(extra, ap);
	va_end(ap);
}

#endif
