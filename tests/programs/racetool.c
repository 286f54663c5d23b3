// SPDX-License-Identifier: GPL-2.0
/*
 * racetool: races between attach, detach, removal and fork of shared memory,
 * for tests/cluster/races.scenario (issue 19). Plain SysV calls; nothing here
 * knows about dipc (the key policy makes the keys distributed). Each command
 * checks what Linux guarantees and exits 1 with a message when it did not
 * hold, 0 otherwise.
 *
 *   racetool rmid KEY ROUNDS
 *       Each round: P creates the segment, attaches it, stores to it and
 *       marks it for removal (IPC_RMID: it lives until its last detach);
 *       then, at the same moment, P detaches and another process Q attaches
 *       it by id. Linux lets Q's shmat either fail (EINVAL or EIDRM: the
 *       segment went first) or succeed, and then the segment lives until Q
 *       detaches: Q's loads and stores must work (no SIGBUS), and after Q's
 *       detach the id must be invalid (no leak).
 *   racetool nattch KEY ROUNDS PROCS
 *       P creates the segment and holds an attach. Each round PROCS children
 *       attach it, detach at the same moment, and wait; once every child
 *       has detached, IPC_STAT must say shm_nattch 1 (P's). Then the
 *       children exit.
 *   racetool detach KEY ITER
 *       One process, two attaches of the segment: A2 for the whole run and
 *       A1 made and dropped again and again by one thread. Two threads do
 *       ITER lock xadds each on this node's word (64-bit word NODE of page
 *       0, so page 0 moves between the nodes running this at once), each
 *       after a load of the word, through A2 and, every fourth, through A1
 *       when it is there; another thread
 *       forks children that add 1 through every attach of the segment they
 *       find in /proc/self/maps. At the end the node's word must have grown
 *       by the number of adds made (no store lost to an unchecked mapping).
 *   racetool stall KEY VALUE REFEREE_PID
 *       Attaches the segment, then stops the referee (SIGSTOP to
 *       REFEREE_PID, which runs on this node). A thread reads the 64-bit
 *       word at offset 0, which this node does not hold: its fault waits.
 *       Meanwhile the main thread mprotects the attach read-only and back
 *       (which needs the mmap lock and the VMA for writing): that must
 *       finish while the read still waits (a fault waiting for the network
 *       must not hold the process's memory map). Then the referee goes on
 *       (SIGCONT) and the read must return VALUE.
 *   racetool get KEY ROUNDS PROCS
 *       Each round PROCS processes shmget(KEY, IPC_CREAT) at the same moment
 *       (the first shmget of the key on this node): every one must get the
 *       same id; then the segment is removed. The scenario checks that the
 *       node's count of segments in use comes back to what it was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

static void die(const char *what)
{
	fprintf(stderr, "racetool: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Anonymous shared memory for the processes of one command (not SysV). */
static void *shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void spin_until(volatile int *v, int want)
{
	while (__atomic_load_n(v, __ATOMIC_ACQUIRE) != want)
		;
}

/* A short busy wait of 0..max_us microseconds, to sweep a race window. */
static void jitter(unsigned int *seed, unsigned int max_us)
{
	struct timespec a, b;
	long us = max_us ? rand_r(seed) % (max_us + 1) : 0;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

struct rmid_shared {
	int round;	/* P starts round r by setting this to r */
	int id;
	int q_done;	/* Q finished round r */
	int q_bus;	/* Q's touches that raised SIGBUS */
	int q_attached; /* rounds in which Q's shmat succeeded */
	int q_errno;	/* an unexpected shmat/shmdt errno, or 0 */
};

static void rmid_q(struct rmid_shared *sh, long rounds)
{
	struct sigaction sa = { .sa_handler = on_bus };
	unsigned int seed = 7;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	for (int r = 1; r <= rounds; r++) {
		volatile uint64_t *p;

		spin_until(&sh->round, r);
		jitter(&seed, 100);
		p = shmat(sh->id, NULL, 0);
		if (p == (void *)-1) {
			if (errno != EINVAL && errno != EIDRM)
				sh->q_errno = errno;
		} else {
			sh->q_attached++;
			if (sigsetjmp(bus_jmp, 1) == 0) {
				p[1] = (uint64_t)r;
				if (p[0] != (uint64_t)r || p[1] != (uint64_t)r)
					sh->q_errno = -1;
			} else {
				sh->q_bus++;
			}
			if (shmdt((void *)p) < 0)
				sh->q_errno = errno;
		}
		__atomic_store_n(&sh->q_done, r, __ATOMIC_RELEASE);
	}
	_exit(0);
}

static int rmid(long key, long rounds)
{
	struct rmid_shared *sh = shared(sizeof(*sh));
	unsigned int seed = 11;
	int leaked = 0, st;
	pid_t q = fork();

	if (q < 0)
		die("fork");
	if (q == 0)
		rmid_q(sh, rounds);
	for (int r = 1; r <= rounds; r++) {
		struct shmid_ds ds;
		int id = shmget((key_t)key, PAGE, IPC_CREAT | 0600);
		volatile uint64_t *p;

		if (id < 0)
			die("shmget");
		p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			die("shmat");
		p[0] = (uint64_t)r;
		if (shmctl(id, IPC_RMID, NULL) < 0)
			die("IPC_RMID");
		sh->id = id;
		__atomic_store_n(&sh->round, r, __ATOMIC_RELEASE);
		/* Q's shmat is a round trip to the referee: sweep across it. */
		jitter(&seed, 3000);
		if (shmdt((void *)p) < 0)
			die("shmdt");
		spin_until(&sh->q_done, r);
		/* Both detached: the segment must be gone. */
		if (shmctl(id, IPC_STAT, &ds) == 0) {
			fprintf(stderr, "racetool: rmid: round %d: segment still there, nattch %lu\n",
				r, (unsigned long)ds.shm_nattch);
			leaked++;
		}
	}
	waitpid(q, &st, 0);
	printf("rmid: %ld rounds, Q attached in %d, SIGBUS %d, leaked %d\n", rounds,
	       sh->q_attached, sh->q_bus, leaked);
	if (sh->q_errno)
		fprintf(stderr, "racetool: rmid: Q: unexpected error %d\n", sh->q_errno);
	return sh->q_bus || leaked || sh->q_errno;
}

struct nattch_shared {
	int attached;
	int go_detach;
	int detached;
	int go_exit;
};

static int nattch(long key, long rounds, long procs)
{
	struct nattch_shared *sh = shared(sizeof(*sh));
	int id = shmget((key_t)key, PAGE, IPC_CREAT | 0600);
	int bad = 0;
	void *mine;

	if (id < 0)
		die("shmget");
	mine = shmat(id, NULL, 0);
	if (mine == (void *)-1)
		die("shmat");
	for (int r = 1; r <= rounds; r++) {
		struct shmid_ds ds;

		memset(sh, 0, sizeof(*sh));
		for (int c = 0; c < procs; c++) {
			pid_t pid = fork();

			if (pid < 0)
				die("fork");
			if (pid == 0) {
				void *p;

				shmdt(mine);
				p = shmat(id, NULL, 0);
				if (p == (void *)-1)
					die("child shmat");
				__atomic_fetch_add(&sh->attached, 1, __ATOMIC_ACQ_REL);
				spin_until(&sh->go_detach, 1);
				if (shmdt(p) < 0)
					die("child shmdt");
				__atomic_fetch_add(&sh->detached, 1, __ATOMIC_ACQ_REL);
				spin_until(&sh->go_exit, 1);
				_exit(0);
			}
		}
		spin_until(&sh->attached, (int)procs);
		__atomic_store_n(&sh->go_detach, 1, __ATOMIC_RELEASE);
		spin_until(&sh->detached, (int)procs);
		if (shmctl(id, IPC_STAT, &ds) < 0)
			die("IPC_STAT");
		if (ds.shm_nattch != 1) {
			fprintf(stderr, "racetool: nattch: round %d: shm_nattch %lu after every child detached, want 1\n",
				r, (unsigned long)ds.shm_nattch);
			bad++;
		}
		__atomic_store_n(&sh->go_exit, 1, __ATOMIC_RELEASE);
		while (wait(NULL) > 0)
			;
	}
	printf("nattch: %ld rounds of %ld detaches at once, %d wrong counts\n", rounds, procs, bad);
	shmdt(mine);
	return bad != 0;
}

static char *a2;
static char *volatile a1;
static int seg_id;
static long iters, node;
static volatile int done;
static uint64_t adds;
static pthread_mutex_t a1_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t *word_of(char *base)
{
	return (uint64_t *)(base + 8 * node);
}

static void *adder(void *arg)
{
	(void)arg;
	for (long i = 0; i < iters; i++) {
		char *base = a2;

		/*
		 * A load first: a read fault that lands while a shmdt is under
		 * way must not leave a writable mapping behind.
		 */
		(void)*(volatile uint64_t *)word_of(base);

		/* A1 is only detached with a1_lock held, so it stays while used. */
		if (i % 4 == 3 && pthread_mutex_trylock(&a1_lock) == 0) {
			if (a1)
				base = a1;
			__atomic_fetch_add(word_of(base), 1, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&a1_lock);
		} else {
			__atomic_fetch_add(word_of(base), 1, __ATOMIC_SEQ_CST);
		}
		__atomic_fetch_add(&adds, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *detacher(void *arg)
{
	(void)arg;
	while (!done) {
		char *p = shmat(seg_id, NULL, 0);

		if (p == (char *)-1)
			die("shmat A1");
		pthread_mutex_lock(&a1_lock);
		a1 = p;
		pthread_mutex_unlock(&a1_lock);
		pthread_mutex_lock(&a1_lock);
		a1 = NULL;
		if (shmdt(p) < 0)
			die("shmdt A1");
		pthread_mutex_unlock(&a1_lock);
	}
	return NULL;
}

/* In a forked child: add 1 through every attach of the key in our maps. */
static int child_adds(long key)
{
	char want[32], line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "/SYSV%08lx", key);
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, off;

		if (!strstr(line, want))
			continue;
		if (sscanf(line, "%lx-%*x %*s %lx", &start, &off) != 2 || off != 0)
			continue;
		__atomic_fetch_add(word_of((char *)start), 1, __ATOMIC_SEQ_CST);
		n++;
	}
	fclose(f);
	return n;
}

static long child_key;

static void *forker(void *arg)
{
	(void)arg;
	while (!done) {
		pid_t pid = fork();
		int st;

		if (pid == 0)
			_exit(child_adds(child_key));
		if (pid < 0)
			die("fork");
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
			die("child");
		__atomic_fetch_add(&adds, WEXITSTATUS(st), __ATOMIC_RELAXED);
	}
	return NULL;
}

static int detach(long key)
{
	pthread_t add[2], det, frk;
	uint64_t got, before;

	seg_id = shmget((key_t)key, 0, 0);
	if (seg_id < 0)
		die("shmget");
	a2 = shmat(seg_id, NULL, 0);
	if (a2 == (char *)-1)
		die("shmat A2");
	child_key = key;
	/* Only this node adds to its word: count from what it holds now. */
	before = __atomic_load_n(word_of(a2), __ATOMIC_SEQ_CST);
	if (pthread_create(&det, NULL, detacher, NULL) ||
	    pthread_create(&frk, NULL, forker, NULL))
		die("pthread_create");
	for (int i = 0; i < 2; i++)
		if (pthread_create(&add[i], NULL, adder, NULL))
			die("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(add[i], NULL);
	done = 1;
	pthread_join(det, NULL);
	pthread_join(frk, NULL);
	got = __atomic_load_n(word_of(a2), __ATOMIC_SEQ_CST) - before;
	printf("detach: node %ld: %lu adds made, word says %lu\n", node, (unsigned long)adds,
	       (unsigned long)got);
	if (got != adds) {
		fprintf(stderr, "racetool: detach: %ld stores lost\n", (long)(adds - got));
		return 1;
	}
	return shmdt(a2) < 0;
}

struct get_shared {
	int ready;
	int go;
	int ids[64];
};

static int get(long key, long rounds, long procs)
{
	struct get_shared *sh = shared(sizeof(*sh));
	int bad = 0;

	if (procs < 2 || procs > 64)
		return fprintf(stderr, "racetool: get: PROCS 2..64\n"), 2;
	for (int r = 1; r <= rounds; r++) {
		memset(sh, 0, sizeof(*sh));
		for (int c = 0; c < procs; c++) {
			pid_t pid = fork();

			if (pid < 0)
				die("fork");
			if (pid == 0) {
				__atomic_fetch_add(&sh->ready, 1, __ATOMIC_ACQ_REL);
				spin_until(&sh->go, 1);
				sh->ids[c] = shmget((key_t)key, PAGE, IPC_CREAT | 0600);
				_exit(sh->ids[c] < 0);
			}
		}
		spin_until(&sh->ready, (int)procs);
		__atomic_store_n(&sh->go, 1, __ATOMIC_RELEASE);
		while (wait(NULL) > 0)
			;
		for (int c = 1; c < procs; c++)
			if (sh->ids[c] != sh->ids[0] || sh->ids[c] < 0) {
				fprintf(stderr, "racetool: get: round %d: ids %d and %d\n", r,
					sh->ids[0], sh->ids[c]);
				bad++;
				break;
			}
		if (sh->ids[0] >= 0 && shmctl(sh->ids[0], IPC_RMID, NULL) < 0)
			die("IPC_RMID");
	}
	printf("get: %ld rounds of %ld shmget()s at once, %d disagreed\n", rounds, procs, bad);
	return bad != 0;
}

static volatile int stall_started, stall_done;
static uint64_t stall_value;

static void *stall_reader(void *arg)
{
	(void)arg;
	stall_started = 1;
	stall_value = *(volatile uint64_t *)a2;
	__atomic_store_n(&stall_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int stall(long key, uint64_t want, pid_t referee)
{
	pthread_t th;
	int early;

	seg_id = shmget((key_t)key, 0, 0);
	if (seg_id < 0)
		die("shmget");
	a2 = shmat(seg_id, NULL, 0);
	if (a2 == (char *)-1)
		die("shmat");
	if (kill(referee, SIGSTOP) < 0)
		die("SIGSTOP");
	if (pthread_create(&th, NULL, stall_reader, NULL))
		die("pthread_create");
	while (!stall_started)
		;
	usleep(300000);
	if (mprotect(a2, PAGE, PROT_READ) < 0 || mprotect(a2, PAGE, PROT_READ | PROT_WRITE) < 0)
		die("mprotect");
	early = !__atomic_load_n(&stall_done, __ATOMIC_ACQUIRE);
	if (kill(referee, SIGCONT) < 0)
		die("SIGCONT");
	pthread_join(th, NULL);
	printf("stall: mprotect %s the waiting read; read %lu\n",
	       early ? "finished before" : "waited for", (unsigned long)stall_value);
	if (!early)
		fprintf(stderr, "racetool: stall: mprotect waited for a fault that waited for the referee\n");
	if (stall_value != want)
		fprintf(stderr, "racetool: stall: read %lu, want %lu\n", (unsigned long)stall_value,
			(unsigned long)want);
	return !early || stall_value != want || shmdt(a2) < 0;
}

int main(int argc, char **argv)
{
	const char *n = getenv("NODE");

	node = n ? atol(n) : 1;
	if (node < 1 || node > 500)
		return fprintf(stderr, "racetool: bad NODE\n"), 2;
	if (argc == 4 && !strcmp(argv[1], "rmid"))
		return rmid(strtol(argv[2], NULL, 0), atol(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "nattch"))
		return nattch(strtol(argv[2], NULL, 0), atol(argv[3]), atol(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "stall"))
		return stall(strtol(argv[2], NULL, 0), strtoull(argv[3], NULL, 0),
			     (pid_t)atol(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "get"))
		return get(strtol(argv[2], NULL, 0), atol(argv[3]), atol(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "detach")) {
		iters = atol(argv[3]);
		return detach(strtol(argv[2], NULL, 0));
	}
	fprintf(stderr, "usage: see the comment in racetool.c\n");
	return 2;
}
