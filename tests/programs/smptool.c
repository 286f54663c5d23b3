// SPDX-License-Identifier: GPL-2.0
/*
 * smptool: shared-memory stress with several threads of one process, for the
 * SMP cluster scenario (tests/cluster/smp.scenario). Plain SysV calls, plain
 * loads, stores and lock-prefixed adds; nothing here knows about dipc (the
 * key policy makes the keys distributed). NODE (1..) comes from the
 * environment, so each node's threads use pages of their own.
 *
 *   smptool xadd KEY THREADS ITER SPIN_US
 *       THREADS threads; each does ITER times: lock xadd of 1 on the 64-bit
 *       word at offset 0 (page 0, which every thread of every node adds to),
 *       then stores the round number to its own word on its own page
 *       (1 + (NODE-1)*THREADS + t) and reads it back: it must be the value
 *       just stored (no stale copy); then spins SPIN_US (so the runs of all
 *       nodes overlap and page 0 moves between them all the time). At the
 *       end each thread's word must hold ITER. The segment needs
 *       1 + NODES*THREADS pages.
 *   smptool churn KEY KEY2 ITER SPIN_US
 *       a fault thread does ITER lock xadds on the word at offset 0 of KEY
 *       and reads pages 1..3 each round, spinning SPIN_US between rounds,
 *       while other threads of the same
 *       process, in parallel and until it is done: attach and detach KEY2
 *       (another distributed segment) and store to it; mprotect page 3 of
 *       KEY's attach read-only and back (splitting and merging its VMA);
 *       mmap, touch and munmap anonymous memory; fork a child that reads
 *       KEY's pages 0..3 and exits; start a thread that reads page 1 and
 *       exits. Every call must succeed; the fault thread's adds are checked
 *       by the scenario's total.
 *
 * Exits 0 when every check held, 1 otherwise (with a message).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_THREADS 64

static double spin_s;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Busy-waits spin_s seconds (a sleep would let the page sit still). */
static void spin(void)
{
	double t0 = now();

	while (now() - t0 < spin_s)
		;
}

static void die(const char *what)
{
	fprintf(stderr, "smptool: %s: %s\n", what, strerror(errno));
	exit(1);
}

static char *attach(long key)
{
	int id = shmget((key_t)key, 0, 0);
	void *p;

	if (id < 0)
		die("shmget");
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		die("shmat");
	return p;
}

static char *seg;
static long node, iters, nthreads;
static volatile int failed;

static void *xadd_thread(void *arg)
{
	long t = (long)arg;
	uint64_t *sum = (uint64_t *)seg;
	volatile uint64_t *mine = (uint64_t *)(seg + (1 + (node - 1) * nthreads + t) * PAGE);

	for (long i = 1; i <= iters && !failed; i++) {
		__atomic_fetch_add(sum, 1, __ATOMIC_SEQ_CST);
		*mine = i;
		if (*mine != (uint64_t)i) {
			fprintf(stderr, "smptool: thread %ld: stored %ld, read %lu\n", t, i,
				(unsigned long)*mine);
			failed = 1;
		}
		spin();
	}
	if (!failed && *mine != (uint64_t)iters) {
		fprintf(stderr, "smptool: thread %ld: own word %lu, want %ld\n", t,
			(unsigned long)*mine, iters);
		failed = 1;
	}
	return NULL;
}

static int xadd(long key)
{
	pthread_t th[MAX_THREADS];

	seg = attach(key);
	for (long t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, xadd_thread, (void *)t))
			die("pthread_create");
	for (long t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	if (failed)
		return 1;
	printf("xadd: %ld threads x %ld adds, own pages exact\n", nthreads, iters);
	return shmdt(seg) < 0;
}

static volatile int done;
static long key2;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "smptool: churn: %s: %s\n", what, strerror(errno));
		failed = 1;
		done = 1;
	}
}

static void *fault_thread(void *arg)
{
	uint64_t *sum = (uint64_t *)seg;
	volatile uint64_t sink = 0;

	(void)arg;
	for (long i = 0; i < iters && !failed; i++) {
		__atomic_fetch_add(sum, 1, __ATOMIC_SEQ_CST);
		for (int p = 1; p <= 3; p++)
			sink += *(volatile uint64_t *)(seg + p * PAGE);
		spin();
	}
	done = 1;
	return NULL;
}

static void *shmdt_thread(void *arg)
{
	(void)arg;
	while (!done) {
		char *p = attach(key2);

		*(volatile uint64_t *)p = 1;
		check(shmdt(p) == 0, "shmdt KEY2");
	}
	return NULL;
}

static void *mprotect_thread(void *arg)
{
	(void)arg;
	while (!done) {
		check(mprotect(seg + 3 * PAGE, PAGE, PROT_READ) == 0, "mprotect ro");
		check(mprotect(seg + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect rw");
	}
	return NULL;
}

static void *munmap_thread(void *arg)
{
	(void)arg;
	while (!done) {
		char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		check(p != MAP_FAILED, "mmap");
		if (p == MAP_FAILED)
			break;
		memset(p, 1, 4 * PAGE);
		check(munmap(p, 4 * PAGE) == 0, "munmap");
	}
	return NULL;
}

static void *short_thread(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)*(volatile uint64_t *)(seg + PAGE);
}

static void *fork_thread(void *arg)
{
	(void)arg;
	while (!done) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			volatile uint64_t sink = 0;

			for (int p = 0; p <= 3; p++)
				sink += *(volatile uint64_t *)(seg + p * PAGE);
			_exit(0);
		}
		check(pid > 0, "fork");
		if (pid < 0)
			break;
		check(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child");
	}
	return NULL;
}

static void *spawn_thread(void *arg)
{
	(void)arg;
	while (!done) {
		pthread_t t;

		check(pthread_create(&t, NULL, short_thread, NULL) == 0, "pthread_create");
		pthread_join(t, NULL);
	}
	return NULL;
}

static int churn(long key)
{
	void *(*fns[])(void *) = { fault_thread, shmdt_thread, mprotect_thread,
				   munmap_thread, fork_thread, spawn_thread };
	pthread_t th[6];

	seg = attach(key);
	for (int i = 0; i < 6; i++)
		if (pthread_create(&th[i], NULL, fns[i], NULL))
			die("pthread_create");
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	if (failed)
		return 1;
	printf("churn: %ld adds with shmdt, mprotect, munmap, fork and thread exits alongside\n",
	       iters);
	return shmdt(seg) < 0;
}

int main(int argc, char **argv)
{
	const char *n = getenv("NODE");

	node = n ? atol(n) : 1;
	if (argc == 6 && !strcmp(argv[1], "xadd")) {
		nthreads = atol(argv[3]);
		iters = atol(argv[4]);
		spin_s = atof(argv[5]) / 1e6;
		if (nthreads < 1 || nthreads > MAX_THREADS || node < 1)
			return fprintf(stderr, "smptool: bad THREADS or NODE\n"), 2;
		return xadd(strtol(argv[2], NULL, 0));
	}
	if (argc == 6 && !strcmp(argv[1], "churn")) {
		key2 = strtol(argv[3], NULL, 0);
		iters = atol(argv[4]);
		spin_s = atof(argv[5]) / 1e6;
		return churn(strtol(argv[2], NULL, 0));
	}
	fprintf(stderr, "usage: see the comment in smptool.c\n");
	return 2;
}
