/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The arithmetic both sides of the race against MPI share (race.c with SysV
 * IPC, race_mpi.c with MPI): the same blocks, the same sums in the same
 * order, so both give the same result to the last bit for the same number
 * of ranks, and `make bench` checks that they do.
 */
#ifndef DIPC_RACE_H
#define DIPC_RACE_H

/* Rank r's block [*lo, *hi) of n items dealt to ranks in order. */
static inline void race_block(long n, int ranks, int r, long *lo, long *hi)
{
	*lo = n * r / ranks;
	*hi = n * (r + 1) / ranks;
}

/* The midpoint rule's sum for intervals [lo, hi) of `intervals`, times h. */
static inline double race_pi_part(long intervals, long lo, long hi)
{
	double h = 1.0 / (double)intervals, sum = 0;

	for (long i = lo; i < hi; i++) {
		double x = ((double)i + 0.5) * h;

		sum += 4.0 / (1.0 + x * x);
	}
	return sum * h;
}

/* Grid row y of an n x n grid at its start: the top edge 100, else 0. */
static inline void race_jacobi_init_row(double *row, int n, long y)
{
	for (int x = 0; x < n; x++)
		row[x] = y == 0 && x > 0 && x < n - 1 ? 100.0 : 0.0;
}

/* Rows [lo, hi) of an n x n grid at their start. */
static inline void race_jacobi_init(double *g, int n, long lo, long hi)
{
	for (long y = lo; y < hi; y++)
		race_jacobi_init_row(g + y * n, n, y);
}

/* One sweep of rows [lo, hi) (within 1 .. n-2) from `in` into `out`. */
static inline void race_jacobi_sweep(const double *in, double *out, int n, long lo, long hi)
{
	for (long y = lo; y < hi; y++) {
		const double *up = in + (y - 1) * n, *row = in + y * n, *down = in + (y + 1) * n;
		double *o = out + y * n;

		o[0] = row[0];
		for (int x = 1; x < n - 1; x++)
			o[x] = 0.25 * (up[x] + down[x] + row[x - 1] + row[x + 1]);
		o[n - 1] = row[n - 1];
	}
}

/* The sum of every cell, row by row. */
static inline double race_jacobi_sum(const double *g, int n)
{
	double sum = 0;

	for (long i = 0; i < (long)n * n; i++)
		sum += g[i];
	return sum;
}

#endif
