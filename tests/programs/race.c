// SPDX-License-Identifier: GPL-2.0
/*
 * race: the SysV IPC side of `make bench`'s race against MPI (race_mpi.c is
 * the same two computations written with MPI). It is an ordinary SysV IPC
 * program: one shared segment, one semaphore set, one process per rank,
 * started separately on each machine. Under dipc, with its key distributed
 * (/proc/sys/dipc/keys), the ranks run on several nodes and the segment is
 * distributed shared memory.
 *
 *   race pi KEY RANKS RANK INTERVALS [T=V...]
 *       π by the midpoint rule on 4 / (1 + x²) over [0, 1]: rank r sums
 *       its block of the intervals and stores its part in the segment;
 *       rank 0 adds the parts in rank order.
 *   race jacobi KEY RANKS RANK N ITERS [T=V...]
 *       ITERS Jacobi sweeps of the 2-D heat equation on an N x N grid (top
 *       edge 100, the other edges 0). Both grids live in the segment; rank
 *       r sweeps its block of rows, and each sweep reads the rows next to
 *       its block that its neighbours wrote (through the DSM on other
 *       nodes). After each sweep a rank signals each neighbour and waits
 *       for theirs: one semop that posts, one that waits.
 *
 * Rank 0 creates the segment and the set (neither may exist), waits for
 * every rank, notes the time, lets them start, and after the last rank is
 * done prints the time from start to result and the result as a BENCH line
 * (`race_pi` or `race_jacobi`, with check= the result to the last bit, so
 * the bench can compare it with MPI's; for jacobi also sweep=, rank 0's
 * seconds in its sweeps, page faults included, the rest being the waits
 * for its neighbours), then removes both. The other ranks
 * wait for the segment and the set to appear.
 *
 * N * 8 bytes (one row) must be a multiple of 4096, so that no page holds
 * rows of two ranks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include "bench.h"
#include "race.h"

#define PAGE 4096
#define MAX_RANKS 16

/* The semaphores: start, done, and one per rank and side for the sweeps. */
enum { SEM_ARRIVED, SEM_GO, SEM_DONE, SEM_FROM_LEFT, SEM_FROM_RIGHT = SEM_FROM_LEFT + MAX_RANKS,
       NSEMS = SEM_FROM_RIGHT + MAX_RANKS };

static void die(const char *what)
{
	fprintf(stderr, "race: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void sem_ops(int semid, struct sembuf *sb, unsigned n)
{
	while (n && semop(semid, sb, n) < 0)
		if (errno != EINTR)
			die("semop");
}

static void sem_op1(int semid, unsigned short num, short op)
{
	struct sembuf sb = { .sem_num = num, .sem_op = op };

	sem_ops(semid, &sb, 1);
}

struct job {
	int shmid, semid;
	char *mem;
	int ranks, rank;
};

/* Rank 0 creates; the others wait until both objects exist. */
static struct job open_job(key_t key, int ranks, int rank, size_t size)
{
	struct job j = { .ranks = ranks, .rank = rank };

	if (rank == 0) {
		j.semid = semget(key, NSEMS, IPC_CREAT | IPC_EXCL | 0666);
		if (j.semid < 0)
			die("semget (IPC_CREAT | IPC_EXCL)");
		j.shmid = shmget(key, size, IPC_CREAT | IPC_EXCL | 0666);
		if (j.shmid < 0)
			die("shmget (IPC_CREAT | IPC_EXCL)");
	} else {
		/* The set first: rank 0 creates it first. */
		while ((j.semid = semget(key, NSEMS, 0)) < 0 || (j.shmid = shmget(key, size, 0)) < 0) {
			if (errno != ENOENT)
				die("semget/shmget");
			usleep(10000);
		}
	}
	j.mem = shmat(j.shmid, NULL, 0);
	if (j.mem == (void *)-1)
		die("shmat");
	return j;
}

/* Every rank has arrived: rank 0 notes the time and lets them go. */
static double start(struct job *j)
{
	double t0;

	if (j->rank) {
		sem_op1(j->semid, SEM_ARRIVED, 1);
		sem_op1(j->semid, SEM_GO, -1);
		return 0;
	}
	if (j->ranks > 1)
		sem_op1(j->semid, SEM_ARRIVED, (short)-(j->ranks - 1));
	t0 = bench_now_us();
	if (j->ranks > 1)
		sem_op1(j->semid, SEM_GO, (short)(j->ranks - 1));
	return t0;
}

/* Rank 0 waits for the others to be done; they leave. */
static void finish(struct job *j)
{
	if (j->rank) {
		sem_op1(j->semid, SEM_DONE, 1);
		shmdt(j->mem);
		exit(0);
	}
	if (j->ranks > 1)
		sem_op1(j->semid, SEM_DONE, (short)-(j->ranks - 1));
}

static void remove_job(struct job *j)
{
	shmdt(j->mem);
	if (shmctl(j->shmid, IPC_RMID, NULL) < 0)
		die("shmctl IPC_RMID");
	if (semctl(j->semid, 0, IPC_RMID) < 0)
		die("semctl IPC_RMID");
}

static int pi(key_t key, int ranks, int rank, long intervals)
{
	struct job j = open_job(key, ranks, rank, PAGE);
	volatile double *part = (volatile double *)j.mem;
	long lo, hi;
	double t0, t1, sum = 0;

	race_block(intervals, ranks, rank, &lo, &hi);
	t0 = start(&j);
	part[rank] = race_pi_part(intervals, lo, hi);
	finish(&j);
	for (int r = 0; r < ranks; r++)
		sum += part[r];
	t1 = bench_now_us();
	bench_figure("race_pi", "s", (t1 - t0) / 1e6, "impl=sysv ranks=%d intervals=%ld check=%a %s", ranks,
		     intervals, sum, bench_extra_args);
	remove_job(&j);
	return 0;
}

static int jacobi(key_t key, int ranks, int rank, int n, int iters)
{
	size_t grid = (size_t)n * n;
	struct job j;
	double *buf[2], t0, t1, sum, t_sweep = 0;
	long lo, hi;

	if (n < 3 || (n * sizeof(double)) % PAGE) {
		fprintf(stderr, "race: N * 8 must be a multiple of %d\n", PAGE);
		return 2;
	}
	/*
	 * The second grid one page after the first: grids exactly a power of
	 * two apart alias in caches and TLBs (under QEMU's TCG, whose software
	 * TLB is indexed by the low page-number bits, a sweep ran 1.8 times
	 * slower; the MPI side's two allocations are not so aligned).
	 */
	j = open_job(key, ranks, rank, 2 * grid * sizeof(double) + PAGE);
	buf[0] = (double *)j.mem;
	buf[1] = buf[0] + grid + PAGE / sizeof(double);
	/* Rows 1 .. n-2 are swept; rank 0 also sets row 0, the last rank row n-1. */
	race_block(n - 2, ranks, rank, &lo, &hi);
	lo++, hi++;
	for (int b = 0; b < 2; b++) {
		race_jacobi_init(buf[b], n, lo, hi);
		if (rank == 0)
			race_jacobi_init(buf[b], n, 0, 1);
		if (rank == ranks - 1)
			race_jacobi_init(buf[b], n, n - 1, n);
	}
	t0 = start(&j);
	for (int it = 0; it < iters; it++) {
		double ts = bench_now_us();

		struct sembuf post[2], wait[2];
		unsigned np = 0, nw = 0;

		race_jacobi_sweep(buf[it % 2], buf[(it + 1) % 2], n, lo, hi);
		t_sweep += bench_now_us() - ts;
		if (rank > 0) {
			post[np++] = (struct sembuf){ .sem_num = SEM_FROM_RIGHT + rank - 1, .sem_op = 1 };
			wait[nw++] = (struct sembuf){ .sem_num = SEM_FROM_LEFT + rank, .sem_op = -1 };
		}
		if (rank < ranks - 1) {
			post[np++] = (struct sembuf){ .sem_num = SEM_FROM_LEFT + rank + 1, .sem_op = 1 };
			wait[nw++] = (struct sembuf){ .sem_num = SEM_FROM_RIGHT + rank, .sem_op = -1 };
		}
		sem_ops(j.semid, post, np);
		sem_ops(j.semid, wait, nw);
	}
	finish(&j);
	t1 = bench_now_us();
	sum = race_jacobi_sum(buf[iters % 2], n);
	bench_figure("race_jacobi", "s", (t1 - t0) / 1e6,
		     "impl=sysv ranks=%d n=%d iters=%d sweep=%.3f check=%a %s", ranks, n, iters,
		     t_sweep / 1e6, sum, bench_extra_args);
	remove_job(&j);
	return 0;
}

int main(int argc, char **argv)
{
	char *a[8];
	int n = bench_args(argc, argv, a, 8);

	if (n == 6 && !strcmp(a[1], "pi")) {
		int ranks = atoi(a[3]), rank = atoi(a[4]);

		if (ranks < 1 || ranks > MAX_RANKS || rank < 0 || rank >= ranks)
			goto usage;
		return pi((key_t)strtol(a[2], NULL, 0), ranks, rank, atol(a[5]));
	}
	if (n == 7 && !strcmp(a[1], "jacobi")) {
		int ranks = atoi(a[3]), rank = atoi(a[4]);

		if (ranks < 1 || ranks > MAX_RANKS || rank < 0 || rank >= ranks)
			goto usage;
		return jacobi((key_t)strtol(a[2], NULL, 0), ranks, rank, atoi(a[5]), atoi(a[6]));
	}
usage:
	fprintf(stderr, "usage: race pi KEY RANKS RANK INTERVALS [T=V...]\n"
			"       race jacobi KEY RANKS RANK N ITERS [T=V...]   (RANKS <= %d)\n",
		MAX_RANKS);
	return 2;
}
