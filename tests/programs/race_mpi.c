// SPDX-License-Identifier: GPL-2.0
/*
 * race_mpi: the MPI side of `make bench`'s race against MPI: the same two
 * computations as race.c, on the same blocks with the same arithmetic
 * (race.h), written as an MPI programmer would. Built with MPICH's mpicc
 * and started by mpiexec.
 *
 *   race_mpi pi INTERVALS [T=V...]
 *       each rank sums its block; rank 0 gathers the parts and adds them in
 *       rank order.
 *   race_mpi jacobi N ITERS [T=V...]
 *       each rank keeps its block of rows and one ghost row on each side;
 *       after each sweep it exchanges its edge rows with its neighbours
 *       (MPI_Sendrecv).
 *
 * Rank 0 prints the time from a barrier at the start to the result (for
 * jacobi, to a barrier after the last sweep; the rows are gathered after
 * the clock stops, as race.c reads them) as a BENCH line with impl=mpi
 * (for jacobi also sweep=, rank 0's seconds in its sweeps).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "race.h"

static int pi(long intervals, int ranks, int rank)
{
	double t0, t1, part, sum = 0, *parts = NULL;
	long lo, hi;

	race_block(intervals, ranks, rank, &lo, &hi);
	if (rank == 0)
		parts = malloc(ranks * sizeof(*parts));
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	part = race_pi_part(intervals, lo, hi);
	MPI_Gather(&part, 1, MPI_DOUBLE, parts, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		for (int r = 0; r < ranks; r++)
			sum += parts[r];
		t1 = MPI_Wtime();
		bench_figure("race_pi", "s", t1 - t0, "impl=mpi ranks=%d intervals=%ld check=%a %s",
			     ranks, intervals, sum, bench_extra_args);
	}
	free(parts);
	return 0;
}

static int jacobi(int n, int iters, int ranks, int rank)
{
	long lo, hi, rows, y0;
	double *buf[2], t0, t1, t_sweep = 0;
	int up = rank > 0 ? rank - 1 : MPI_PROC_NULL, down = rank < ranks - 1 ? rank + 1 : MPI_PROC_NULL;

	/* Rows lo .. hi-1 of the grid (within 1 .. n-2), held with one ghost row each side. */
	race_block(n - 2, ranks, rank, &lo, &hi);
	lo++, hi++;
	rows = hi - lo;
	y0 = lo - 1; /* the grid row of local row 0 */
	for (int b = 0; b < 2; b++) {
		buf[b] = malloc((rows + 2) * n * sizeof(double));
		if (!buf[b]) {
			perror("race_mpi: malloc");
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		/* Ghost rows start as the grid does; the edges stay fixed. */
		for (long y = 0; y < rows + 2; y++)
			race_jacobi_init_row(buf[b] + y * n, n, y0 + y);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	for (int it = 0; it < iters; it++) {
		double *in = buf[it % 2], *out = buf[(it + 1) % 2], ts = MPI_Wtime();

		race_jacobi_sweep(in, out, n, 1, rows + 1);
		t_sweep += MPI_Wtime() - ts;
		/* My first row up, the row below me from below; and the other way. */
		MPI_Sendrecv(out + n, n, MPI_DOUBLE, up, 0, out + (rows + 1) * n, n, MPI_DOUBLE, down, 0,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		MPI_Sendrecv(out + rows * n, n, MPI_DOUBLE, down, 1, out, n, MPI_DOUBLE, up, 1,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	t1 = MPI_Wtime();
	{
		double *res = buf[iters % 2], *grid = NULL;
		int *counts = NULL, *displs = NULL;

		if (rank == 0) {
			grid = malloc((size_t)n * n * sizeof(double));
			counts = malloc(ranks * sizeof(int));
			displs = malloc(ranks * sizeof(int));
			for (int r = 0; r < ranks; r++) {
				long l, h;

				race_block(n - 2, ranks, r, &l, &h);
				counts[r] = (int)((h - l) * n);
				displs[r] = (int)((l + 1) * n);
			}
			if (!grid || !counts || !displs) {
				perror("race_mpi: malloc");
				MPI_Abort(MPI_COMM_WORLD, 1);
			}
			/* The fixed top and bottom rows, as every rank started them. */
			race_jacobi_init(grid, n, 0, 1);
			race_jacobi_init(grid, n, n - 1, n);
		}
		MPI_Gatherv(res + n, (int)(rows * n), MPI_DOUBLE, grid, counts, displs, MPI_DOUBLE, 0,
			    MPI_COMM_WORLD);
		if (rank == 0)
			bench_figure("race_jacobi", "s", t1 - t0,
				     "impl=mpi ranks=%d n=%d iters=%d sweep=%.3f check=%a %s", ranks, n,
				     iters, t_sweep, race_jacobi_sum(grid, n), bench_extra_args);
		free(grid);
		free(counts);
		free(displs);
	}
	free(buf[0]);
	free(buf[1]);
	return 0;
}

int main(int argc, char **argv)
{
	char *a[4];
	int n = bench_args(argc, argv, a, 4), ranks, rank, rc = 2;

	MPI_Init(&argc, &argv);
	MPI_Comm_size(MPI_COMM_WORLD, &ranks);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (n == 3 && !strcmp(a[1], "pi"))
		rc = pi(atol(a[2]), ranks, rank);
	else if (n == 4 && !strcmp(a[1], "jacobi"))
		rc = jacobi(atoi(a[2]), atoi(a[3]), ranks, rank);
	else if (rank == 0)
		fprintf(stderr, "usage: race_mpi pi INTERVALS [T=V...]\n"
				"       race_mpi jacobi N ITERS [T=V...]\n");
	MPI_Finalize();
	return rc;
}
