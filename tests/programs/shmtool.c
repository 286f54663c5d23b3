// SPDX-License-Identifier: GPL-2.0
/*
 * shmtool: shared-memory steps for the cluster scenarios, plain SysV calls
 * and plain loads and stores (no other synchronisation). Keys are numbers
 * (0x...). Segments are created 0666.
 *
 *   shmtool create KEY SIZE            create (or open) a segment
 *   shmtool put KEY OFF VALUE          store a 64-bit VALUE at byte OFF
 *   shmtool expect KEY OFF VALUE       the 64-bit value at OFF must be VALUE
 *   shmtool litmus KEY writer|reader ROUNDS
 *                                      message passing: the writer stores
 *                                      data (page 1) then a flag (page 0);
 *                                      the reader spins on the flag, then
 *                                      reads the data, which must be the
 *                                      round's; then acks (page 2)
 *   shmtool peterson KEY ME ITER       Peterson's mutual exclusion between
 *                                      processes ME=0 and ME=1 (on two nodes),
 *                                      ITER increments each of a shared counter
 *                                      that is read and written in two steps
 *   shmtool slots KEY SLOT NSLOTS ITER each node increments its own 64-bit
 *                                      slot of one page ITER times, reading
 *                                      the others; then waits for all
 *                                      NSLOTS slots to reach ITER
 *   shmtool await KEY OFF VALUE SECONDS  spin on the 64-bit value at OFF (a
 *                                      plain load) until it is VALUE; fail
 *                                      after SECONDS
 *   shmtool add KEY ITER SPIN_US       ITER atomic increments (lock xadd) of
 *                                      the 64-bit word at offset 0, spinning
 *                                      SPIN_US between them (so runs on
 *                                      several nodes overlap and the page
 *                                      moves often); the word must end at
 *                                      the sum of every node's ITER
 *   shmtool fill KEY SEED              write the whole segment sequentially
 *                                      with a pattern from SEED
 *   shmtool check KEY SEED             read it back; every byte must match
 *   shmtool rdonly KEY                 attach SHM_RDONLY: a load works, a
 *                                      store must raise SIGSEGV
 *   shmtool hold KEY SECONDS           attach and sleep (touching nothing)
 *   shmtool stat KEY                   print segsz, nattch, cpid/lpid set,
 *                                      and whether SHM_DEST is set
 *   shmtool nattch KEY N               wait (up to 20 s) until shm_nattch is N
 *   shmtool fork KEY                   a forked child stores, the parent
 *                                      must see it (and nattch counts both)
 *   shmtool kill-fault KEY PAGE        a child stores to page PAGE, which this
 *                                      node does not hold (the scenario stops
 *                                      the referee, so the fault waits); the
 *                                      parent kills it with SIGKILL: it must be
 *                                      gone within 5 s
 *   shmtool partial KEY                munmap/mprotect/madvise on part of an
 *                                      attached segment keep it coherent
 *   shmtool detach-off KEY             attach, switch dipc off
 *                                      (/proc/sys/dipc/enabled), detach: it
 *                                      must work; switch it back on
 *   shmtool count KEY N USEC           increment the 64-bit counter at offset 0
 *                                      N times, sleeping USEC between
 *   shmtool attach-loop KEY N          N times: attach, read the 64-bit
 *                                      counter at offset 0, detach; the
 *                                      values must never go down (another
 *                                      node keeps incrementing it)
 *   shmtool sum KEY FIRST N            print the sum of the N 64-bit words
 *                                      from offset FIRST
 *   shmtool rmid KEY
 *   shmtool noent KEY                  shmget(KEY, 0, 0) must fail ENOENT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static void die(const char *what)
{
	fprintf(stderr, "shmtool: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int get(const char *key, size_t size, int flags)
{
	int id = shmget((key_t)strtoul(key, NULL, 0), size, flags);

	if (id < 0)
		die("shmget");
	return id;
}

static void *attach(const char *key, int flags)
{
	void *p = shmat(get(key, 0, 0), NULL, flags);

	if (p == (void *)-1)
		die("shmat");
	return p;
}

static size_t segsz(const char *key)
{
	struct shmid_ds ds;

	if (shmctl(get(key, 0, 0), IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	return ds.shm_segsz;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i * 0xbf58476d1ce4e5b9ull);

	x ^= x >> 31;
	return x * 0x94d049bb133111ebull;
}

#define V(p, off) (*(volatile uint64_t *)((char *)(p) + (off)))

static int litmus(const char *key, const char *role, long rounds)
{
	char *p = attach(key, 0);
	volatile uint64_t *flag = (uint64_t *)p, *ack = (uint64_t *)(p + 2 * PAGE);
	uint64_t *data = (uint64_t *)(p + PAGE);
	long bad = 0;
	double t0 = now();

	for (long r = 1; r <= rounds; r++) {
		if (!strcmp(role, "writer")) {
			while (*ack != (uint64_t)r - 1)
				;
			for (int i = 0; i < 8; i++)
				((volatile uint64_t *)data)[i * 64] = r * 8 + i;
			*flag = r;
		} else {
			while (*flag != (uint64_t)r)
				;
			for (int i = 0; i < 8; i++)
				if (((volatile uint64_t *)data)[i * 64] != (uint64_t)(r * 8 + i))
					bad++;
			*ack = r;
		}
	}
	printf("litmus %s: %ld rounds, %ld violations (%.0f rounds/s)\n", role, rounds, bad,
	       rounds / (now() - t0));
	return bad != 0;
}

static int peterson(const char *key, int me, long iter)
{
	char *p = attach(key, 0);
	/* Each variable on its own page: every access may move a page. */
	volatile uint64_t *want = (uint64_t *)p; /* want[0] page 0, want[1] page 1 */
	volatile uint64_t *turn = (uint64_t *)(p + 2 * PAGE);
	volatile uint64_t *counter = (uint64_t *)(p + 3 * PAGE);
	volatile uint64_t *done = (uint64_t *)(p + 4 * PAGE);
	int other = 1 - me;

	for (long i = 0; i < iter; i++) {
		want[me * PAGE / 8] = 1;
		*turn = other;
		__sync_synchronize();
		while (want[other * PAGE / 8] && *turn == (uint64_t)other)
			;
		/* Critical section: a read-modify-write in two steps. */
		uint64_t c = *counter;
		*counter = c + 1;
		__sync_synchronize();
		want[me * PAGE / 8] = 0;
	}
	__sync_fetch_and_add(done, 1);
	while (*done < 2)
		usleep(1000);
	printf("peterson %d: counter %llu, expected %ld\n", me,
	       (unsigned long long)*counter, 2 * iter);
	return *counter != (uint64_t)(2 * iter);
}

static int slots(const char *key, int slot, int nslots, long iter)
{
	volatile uint64_t *s = attach(key, 0);
	uint64_t seen = 0;

	for (long i = 0; i < iter; i++) {
		s[slot] = s[slot] + 1;
		for (int k = 0; k < nslots; k++)
			seen += s[k];
	}
	for (int k = 0; k < nslots; k++)
		while (s[k] < (uint64_t)iter)
			usleep(1000);
	int bad = 0;
	for (int k = 0; k < nslots; k++) {
		printf("slot %d: %llu\n", k, (unsigned long long)s[k]);
		bad |= s[k] != (uint64_t)iter;
	}
	(void)seen;
	return bad;
}

static int fill(const char *key, uint64_t seed)
{
	size_t n = segsz(key);
	uint64_t *p = attach(key, 0);
	double t0 = now();

	for (size_t i = 0; i < n / 8; i++)
		p[i] = pattern(seed, i);
	double t = now() - t0;
	printf("fill: %zu bytes in %.3f s, %.1f MB/s\n", n, t, n / t / 1e6);
	return 0;
}

static int check(const char *key, uint64_t seed)
{
	size_t n = segsz(key);
	const uint64_t *p = attach(key, SHM_RDONLY);
	size_t bad = 0;
	double t0 = now();

	for (size_t i = 0; i < n / 8; i++)
		if (p[i] != pattern(seed, i))
			bad++;
	double t = now() - t0;
	printf("check: %zu bytes in %.3f s, %.1f MB/s, %zu bad words\n", n, t, n / t / 1e6,
	       bad);
	return bad != 0;
}

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static int rdonly(const char *key)
{
	volatile uint64_t *p = attach(key, SHM_RDONLY);
	uint64_t v = p[0];

	signal(SIGSEGV, on_segv);
	if (sigsetjmp(jb, 1)) {
		printf("rdonly: read %llu, store raised SIGSEGV\n", (unsigned long long)v);
		return 0;
	}
	p[0] = v + 1;
	printf("rdonly: store did not fault\n");
	return 1;
}

static int stat_seg(const char *key)
{
	struct shmid_ds ds;

	if (shmctl(get(key, 0, 0), IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	printf("segsz %zu nattch %lu mode %o dest %d cpid %s lpid %s\n", ds.shm_segsz,
	       (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777,
	       !!(ds.shm_perm.mode & SHM_DEST), ds.shm_cpid ? "set" : "0",
	       ds.shm_lpid ? "set" : "0");
	return 0;
}

static int wait_nattch(const char *key, unsigned long n)
{
	struct shmid_ds ds;

	for (int i = 0; i < 200; i++) {
		if (shmctl(get(key, 0, 0), IPC_STAT, &ds) < 0)
			die("IPC_STAT");
		if (ds.shm_nattch == n)
			return 0;
		usleep(100000);
	}
	printf("nattch %lu, expected %lu\n", (unsigned long)ds.shm_nattch, n);
	return 1;
}

static int fork_test(const char *key)
{
	volatile uint64_t *p = attach(key, 0);
	int id = get(key, 0, 0);
	struct shmid_ds ds;
	pid_t c = fork();

	if (c == 0) {
		p[100] = 4242;
		if (shmctl(id, IPC_STAT, &ds) < 0 || ds.shm_nattch < 2)
			_exit(2);
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		printf("fork: child failed (%d)\n", st);
		return 1;
	}
	printf("fork: parent sees %llu\n", (unsigned long long)p[100]);
	return p[100] != 4242;
}

/* A child faults on a page the referee will not grant for now; SIGKILL
 * must end it within 5 s. */
static int kill_fault(const char *key, long page)
{
	volatile uint64_t *p = attach(key, 0);

	/* Attached; the scenario stops the referee meanwhile. */
	sleep(2);
	pid_t c = fork();

	if (c == 0) {
		for (;;)
			p[page * PAGE / 8]++;
	}
	usleep(300000);
	double t0 = now();
	kill(c, SIGKILL);
	int st;
	waitpid(c, &st, 0);
	double t = now() - t0;
	printf("kill-fault: child gone after %.3f s, %s\n", t,
	       WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "killed" : "?");
	return !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) || t > 5;
}

/* munmap of the middle page, mprotect and madvise(DONTNEED) on part of an
 * attached segment: what remains stays coherent with the other nodes. */
static int partial(const char *key)
{
	char *p = attach(key, 0);
	int bad = 0;

	V(p, 0) = 11;
	V(p, 2 * PAGE) = 33;
	if (munmap(p + PAGE, PAGE) < 0)
		die("munmap");
	if (mprotect(p + 2 * PAGE, PAGE, PROT_READ) < 0)
		die("mprotect");
	if (madvise(p, PAGE, MADV_DONTNEED) < 0)
		die("madvise");
	bad |= V(p, 0) != 11;
	bad |= V(p, 2 * PAGE) != 33;
	if (mprotect(p + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE) < 0)
		die("mprotect");
	V(p, 2 * PAGE) = 34;
	if (shmdt(p) < 0)
		die("shmdt");
	printf("partial: %s\n", bad ? "lost data" : "ok");
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: see the comment in shmtool.c\n");
		return 2;
	}
	const char *cmd = argv[1], *key = argv[2];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "create") && argc == 4) {
		printf("%d\n", get(key, strtoul(argv[3], NULL, 0), IPC_CREAT | 0666));
		return 0;
	}
	if (!strcmp(cmd, "put") && argc == 5) {
		char *p = attach(key, 0);
		V(p, strtoul(argv[3], NULL, 0)) = strtoull(argv[4], NULL, 0);
		return shmdt(p) < 0;
	}
	if (!strcmp(cmd, "expect") && argc == 5) {
		char *p = attach(key, SHM_RDONLY);
		uint64_t v = V(p, strtoul(argv[3], NULL, 0));
		uint64_t want = strtoull(argv[4], NULL, 0);
		if (v != want) {
			printf("expect: %llu, not %llu\n", (unsigned long long)v,
			       (unsigned long long)want);
			return 1;
		}
		return shmdt(p) < 0;
	}
	if (!strcmp(cmd, "await") && argc == 6) {
		char *p = attach(key, SHM_RDONLY);
		unsigned long off = strtoul(argv[3], NULL, 0);
		uint64_t want = strtoull(argv[4], NULL, 0);
		double t0 = now(), limit = atof(argv[5]);

		printf("await: ready\n");
		fflush(stdout);
		while (V(p, off) != want) {
			if (now() - t0 > limit) {
				printf("await: still %llu after %g s\n",
				       (unsigned long long)V(p, off), limit);
				return 1;
			}
		}
		printf("await: %llu after %.3f s\n", (unsigned long long)want, now() - t0);
		return shmdt(p) < 0;
	}
	if (!strcmp(cmd, "add") && argc == 5) {
		uint64_t *w = attach(key, 0);
		long iter = atol(argv[3]);
		double spin = atof(argv[4]) / 1e6;

		for (long i = 0; i < iter; i++) {
			double t0 = now();

			__atomic_fetch_add(w, 1, __ATOMIC_SEQ_CST);
			while (now() - t0 < spin)
				;
		}
		printf("add: %ld increments\n", iter);
		return shmdt(w) < 0;
	}
	if (!strcmp(cmd, "litmus") && argc == 5)
		return litmus(key, argv[3], atol(argv[4]));
	if (!strcmp(cmd, "peterson") && argc == 5)
		return peterson(key, atoi(argv[3]), atol(argv[4]));
	if (!strcmp(cmd, "slots") && argc == 6)
		return slots(key, atoi(argv[3]), atoi(argv[4]), atol(argv[5]));
	if (!strcmp(cmd, "fill") && argc == 4)
		return fill(key, strtoull(argv[3], NULL, 0));
	if (!strcmp(cmd, "check") && argc == 4)
		return check(key, strtoull(argv[3], NULL, 0));
	if (!strcmp(cmd, "rdonly"))
		return rdonly(key);
	if (!strcmp(cmd, "hold") && argc == 4) {
		attach(key, 0);
		sleep(atoi(argv[3]));
		return 0;
	}
	if (!strcmp(cmd, "stat"))
		return stat_seg(key);
	if (!strcmp(cmd, "nattch") && argc == 4)
		return wait_nattch(key, strtoul(argv[3], NULL, 0));
	if (!strcmp(cmd, "fork"))
		return fork_test(key);
	if (!strcmp(cmd, "kill-fault") && argc == 4)
		return kill_fault(key, atol(argv[3]));
	if (!strcmp(cmd, "partial"))
		return partial(key);
	if (!strcmp(cmd, "count") && argc == 5) {
		char *p = attach(key, 0);
		long n = atol(argv[3]), us = atol(argv[4]);
		for (long i = 0; i < n; i++) {
			V(p, 0) = V(p, 0) + 1;
			usleep(us);
		}
		printf("count: %llu\n", (unsigned long long)V(p, 0));
		return 0;
	}
	if (!strcmp(cmd, "attach-loop") && argc == 4) {
		uint64_t last = 0;
		long n = atol(argv[3]), back = 0, changes = 0;
		for (long i = 0; i < n; i++) {
			char *p = attach(key, SHM_RDONLY);
			uint64_t v = V(p, 0);
			if (v < last)
				back++;
			changes += v != last;
			last = v;
			if (shmdt(p) < 0)
				die("shmdt");
		}
		printf("attach-loop: %ld attaches, %ld saw a new value, last %llu, %ld went back\n",
		       n, changes, (unsigned long long)last, back);
		return back != 0;
	}
	if (!strcmp(cmd, "detach-off")) {
		char *p = attach(key, 0);
		FILE *f = fopen("/proc/sys/dipc/enabled", "w");
		if (!f || fputs("0\n", f) < 0 || fclose(f))
			die("enabled");
		int r = shmdt(p);
		printf("detach with dipc off: %s\n", r ? strerror(errno) : "ok");
		f = fopen("/proc/sys/dipc/enabled", "w");
		if (!f || fputs("1\n", f) < 0 || fclose(f))
			die("enabled");
		return r != 0;
	}
	if (!strcmp(cmd, "sum") && argc == 5) {
		char *p = attach(key, SHM_RDONLY);
		unsigned long first = strtoul(argv[3], NULL, 0), n = strtoul(argv[4], NULL, 0);
		uint64_t sum = 0;

		for (unsigned long i = 0; i < n; i++)
			sum += V(p, first + 8 * i);
		printf("%llu\n", (unsigned long long)sum);
		return shmdt(p) < 0;
	}
	if (!strcmp(cmd, "rmid"))
		return shmctl(get(key, 0, 0), IPC_RMID, NULL) < 0;
	if (!strcmp(cmd, "noent")) {
		if (shmget((key_t)strtoul(key, NULL, 0), 0, 0) >= 0 || errno != ENOENT) {
			printf("noent: %s\n", strerror(errno));
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "shmtool: bad command\n");
	return 2;
}
