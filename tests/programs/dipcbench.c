// SPDX-License-Identifier: GPL-2.0
/*
 * dipcbench: the figures `make bench` collects, each in the format of
 * bench.h, beside the network floor between the same guests. It uses only
 * the plain SysV IPC calls and loads and stores, as any program would.
 *
 *   dipcbench serve PORT                  TCP peer for the tcp-* commands
 *   dipcbench tcp-rtt IP PORT SIZE N      N ping-pongs of SIZE bytes
 *   dipcbench tcp-fetch IP PORT N         N fetches of 4 KiB (1 byte asks)
 *   dipcbench tcp-stream IP PORT SIZE MIB a stream of SIZE-byte writes
 *   dipcbench sem-op KEY N                N semops, +1 then -1, IPC_NOWAIT
 *   dipcbench failover KEY SECONDS        semops as sem-op for SECONDS: the
 *                                         longest one (replicated referees:
 *                                         the leader killed meanwhile, it is
 *                                         the failover time), and how many
 *   dipcbench sem-pingpong KEY N a|b      hand-off through sems 0 and 1
 *   dipcbench msg-rt KEY SIZE N           msgsnd then msgrcv of it, N times
 *   dipcbench msg-pingpong KEY SIZE N a|b a sends type 1, b echoes type 2
 *   dipcbench msg-recv KEY SIZE COUNT     receive COUNT messages: rate
 *   dipcbench msg-send KEY SIZE COUNT P   P processes send COUNT in all
 *   dipcbench shm-own KEY FIRST N         store to pages FIRST..FIRST+N-1
 *   dipcbench shm-readmiss KEY FIRST N    time the first load of each page
 *                                         (in a stride of 7 or more: never
 *                                         read ahead)
 *   dipcbench shm-writemiss KEY FIRST N   time the first store to each page
 *   dipcbench shm-pingpong KEY N a|b      alternate stores to one word
 *   dipcbench shm-handoff KEY N a|b       a hand-off over three pages: a
 *                                         stores data (page 1) then a flag
 *                                         (page 0); b waits for the flag,
 *                                         checks the data, stores an ack
 *                                         (page 2) that a waits for
 *   dipcbench shm-seqread KEY MIB         read MIB MiB from page 0 on
 *   dipcbench sem-contend KEY K SECS      P/V on sem 0 of KEY after a
 *                                         barrier of K on sem 1, for SECS
 *   dipcbench shm-contend KEY K SECS      atomic increments of word 0 of
 *                                         segment KEY, same barrier
 *   dipcbench shm-word KEY                word 0 of segment KEY, as the figure
 *                                         scale_shm_total (the adds that landed)
 *   dipcbench hook-call N                 the cost of one local SysV call
 *                                         through the syscall hooks: N semops
 *                                         (+1, -1, IPC_NOWAIT) and N
 *                                         semctl(GETVAL) on a private set;
 *                                         ns per call, the best of 5 runs
 *   dipcbench create KEY N                creates N semaphore sets with keys
 *                                         KEY..KEY+N-1 (IPC_EXCL), then
 *                                         removes them; microseconds per
 *                                         object for each half, the cost
 *                                         per object of the first and of the
 *                                         last tenth created, and last ÷
 *                                         first
 *
 * Arguments of the form key=value are copied onto every BENCH line.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define CHUNK (1 << 20)

static void die(const char *what)
{
	fprintf(stderr, "dipcbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void full(int fd, void *p, size_t n, int rd)
{
	char *c = p;

	while (n) {
		ssize_t r = rd ? read(fd, c, n) : write(fd, c, n);

		if (r <= 0)
			die(rd ? "read" : "write");
		c += r;
		n -= r;
	}
}

/* What a tcp-* client asks the server for. */
struct req {
	uint32_t op; /* 'e' echo, 'f' fetch, 's' sink */
	uint32_t size;
	uint64_t count;
};

static __attribute__((noreturn)) void serve(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	static char buf[CHUNK];

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 8) < 0)
		die("listen");
	for (;;) {
		int c = accept(l, NULL, NULL);
		struct req r;

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (read(c, &r, sizeof(r)) != sizeof(r) || r.size > CHUNK) {
			close(c);
			continue;
		}
		if (fork() == 0) {
			for (uint64_t i = 0; i < r.count; i++) {
				if (r.op == 'e') {
					full(c, buf, r.size, 1);
					full(c, buf, r.size, 0);
				} else if (r.op == 'f') {
					full(c, buf, 1, 1);
					full(c, buf, r.size, 0);
				} else {
					full(c, buf, r.size, 1);
				}
			}
			full(c, "k", 1, 0);
			exit(0);
		}
		close(c);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

static int dial(const char *ip, int port, struct req r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	full(fd, &r, sizeof(r), 0);
	return fd;
}

static int tcp(const char *cmd, const char *ip, int port, int size, long n)
{
	static char buf[CHUNK];
	char name[64], ack;
	int fd;

	if (size <= 0 || size > CHUNK || n <= 0)
		return 2;
	if (!strcmp(cmd, "tcp-stream")) {
		/* n MiB in size-byte writes. */
		long writes = n * 1048576 / size;
		double t0;

		fd = dial(ip, port, (struct req){ 's', size, writes });
		t0 = bench_now_us();
		for (long i = 0; i < writes; i++)
			full(fd, buf, size, 0);
		full(fd, &ack, 1, 1);
		snprintf(name, sizeof(name), "tcp_stream_%d", size);
		bench_figure(name, "MB/s", (double)writes * size / (bench_now_us() - t0), "size=%d %s",
			     size, bench_extra_args);
		return 0;
	}
	double *s = calloc(n, sizeof(double));
	int fetch = !strcmp(cmd, "tcp-fetch");

	fd = dial(ip, port, (struct req){ fetch ? 'f' : 'e', size, n });
	for (long i = 0; i < n; i++) {
		double t0 = bench_now_us();

		if (fetch) {
			full(fd, buf, 1, 0);
			full(fd, buf, size, 1);
		} else {
			full(fd, buf, size, 0);
			full(fd, buf, size, 1);
		}
		s[i] = bench_now_us() - t0;
	}
	full(fd, &ack, 1, 1);
	snprintf(name, sizeof(name), fetch ? "tcp_fetch_%d" : "tcp_rtt_%d", size);
	bench_latency(name, s, n, "size=%d %s", size, bench_extra_args);
	return 0;
}

static int semset(const char *key, int nsems)
{
	int id = semget((key_t)strtol(key, NULL, 0), nsems, IPC_CREAT | 0600);

	if (id < 0)
		die("semget");
	return id;
}

static void sop(int id, int num, int op, int flags)
{
	struct sembuf b = { num, op, flags };

	while (semop(id, &b, 1) < 0)
		if (errno != EINTR)
			die("semop");
}

static int sem_op(const char *key, long n)
{
	int id = semset(key, 1);
	double *one = calloc(n, sizeof(double)), *pair = calloc(n / 2 + 1, sizeof(double));

	for (long i = 0; i < n; i++) {
		double t0 = bench_now_us();

		sop(id, 0, (i & 1) ? -1 : 1, IPC_NOWAIT);
		one[i] = bench_now_us() - t0;
		if (i & 1)
			pair[i / 2] = one[i] + one[i - 1];
	}
	bench_latency("sem_pv", pair, n / 2, "%s", bench_extra_args);
	bench_latency("sem_op", one, n, "%s", bench_extra_args);
	return 0;
}

/*
 * Semops as sem_op for `secs` seconds; the longest single call is the time
 * from the leader's loss to the first call its successor answered (plus one
 * call). The value must end where it began: every +1 was undone once.
 */
static int failover(const char *key, double secs)
{
	int id = semset(key, 1);
	double end = bench_now_us() + secs * 1e6, longest = 0;
	long n = 0;

	while (bench_now_us() < end) {
		double t0 = bench_now_us();

		sop(id, 0, (n & 1) ? -1 : 1, IPC_NOWAIT);
		t0 = bench_now_us() - t0;
		if (t0 > longest)
			longest = t0;
		n++;
	}
	if (n & 1)
		sop(id, 0, -1, IPC_NOWAIT);
	if (semctl(id, 0, GETVAL) != 0) {
		fprintf(stderr, "failover: the semaphore is %d after %ld ops, not 0\n",
			semctl(id, 0, GETVAL), n);
		return 1;
	}
	bench_figure("failover", "ms", longest / 1e3, "ops=%ld %s", n, bench_extra_args);
	return 0;
}

/* a: V(0) then P(1); b: P(0) then V(1). a times each round. */
static int sem_pingpong(const char *key, long n, int a)
{
	int id = semset(key, 2);
	double *s = calloc(n, sizeof(double));

	for (long i = 0; i < n; i++) {
		double t0 = bench_now_us();

		if (a) {
			sop(id, 0, 1, 0);
			sop(id, 1, -1, 0);
		} else {
			sop(id, 0, -1, 0);
			sop(id, 1, 1, 0);
		}
		s[i] = bench_now_us() - t0;
	}
	if (a)
		bench_latency("sem_pingpong", s, n, "%s", bench_extra_args);
	return 0;
}

struct msg {
	long mtype;
	char text[65536];
};

static struct msg m;

static int queue(const char *key)
{
	int id = msgget((key_t)strtol(key, NULL, 0), IPC_CREAT | 0600);

	if (id < 0)
		die("msgget");
	return id;
}

static void snd(int id, long type, int size)
{
	m.mtype = type;
	while (msgsnd(id, &m, size, 0) < 0)
		if (errno != EINTR)
			die("msgsnd");
}

static void rcv(int id, long type, int size)
{
	ssize_t r;

	while ((r = msgrcv(id, &m, size, type, 0)) < 0)
		if (errno != EINTR)
			die("msgrcv");
	if (r != size) {
		fprintf(stderr, "dipcbench: msgrcv: %zd bytes, expected %d\n", r, size);
		exit(1);
	}
}

static int msg_rt(const char *key, int size, long n, int mode)
{
	int id = queue(key);
	double *s = calloc(n, sizeof(double));
	char name[64];

	for (long i = 0; i < n; i++) {
		double t0 = bench_now_us();

		if (mode == 'r') {
			snd(id, 1, size);
			rcv(id, 1, size);
		} else if (mode == 'a') {
			snd(id, 1, size);
			rcv(id, 2, size);
		} else {
			rcv(id, 1, size);
			snd(id, 2, size);
		}
		s[i] = bench_now_us() - t0;
	}
	snprintf(name, sizeof(name), mode == 'r' ? "msg_rt_%d" : "msg_pingpong_%d", size);
	if (mode != 'b')
		bench_latency(name, s, n, "size=%d %s", size, bench_extra_args);
	return 0;
}

static int msg_recv(const char *key, int size, long count)
{
	int id = queue(key);
	struct msqid_ds ds;
	double t0 = 0;
	char name[64];

	/* Room for many messages, so the senders can run ahead. */
	if (msgctl(id, IPC_STAT, &ds) < 0)
		die("msgctl IPC_STAT");
	unsigned long qbytes = ds.msg_qbytes;

	ds.msg_qbytes = 1 << 20;
	if (msgctl(id, IPC_SET, &ds) < 0)
		fprintf(stderr, "dipcbench: msg_qbytes stays %lu: %s\n", qbytes, strerror(errno));
	printf("ready\n");
	fflush(stdout);
	for (long i = 0; i < count; i++) {
		rcv(id, 0, size);
		if (i == 0)
			t0 = bench_now_us();
	}
	/* The first message starts the clock: count - 1 intervals. */
	double us = bench_now_us() - t0;

	snprintf(name, sizeof(name), "msg_tput_%d", size);
	bench_figure(name, "MB/s", (double)(count - 1) * size / us, "size=%d msgs_per_s=%.0f %s",
		     size, (count - 1) / us * 1e6, bench_extra_args);
	return 0;
}

static int msg_send(const char *key, int size, long count, int procs)
{
	int id = queue(key);

	for (int p = 0; p < procs; p++) {
		if (fork() == 0) {
			for (long i = p; i < count; i += procs)
				snd(id, 1, size);
			exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}

static volatile char *attach(const char *key)
{
	int id = shmget((key_t)strtoul(key, NULL, 0), 0, 0);
	void *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);

	if (p == (void *)-1)
		die("shmat");
	return p;
}

static long gcd(long a, long b)
{
	return b ? gcd(b, a % b) : a;
}

/*
 * shm-own touches pages first..first+n-1 in order. The misses visit them
 * with a stride of 7 or more (coprime with n): never the page after the
 * last one, so read-ahead never applies and each is the cost of one miss.
 */
static int pages(const char *mode, const char *key, long first, long n)
{
	volatile char *p = attach(key);
	double *s = calloc(n, sizeof(double));
	unsigned sum = 0;
	int rd = !strcmp(mode, "shm-readmiss");
	long stride = 1;

	if (strcmp(mode, "shm-own"))
		for (stride = 7; gcd(stride, n) != 1; stride++)
			;
	for (long i = 0; i < n; i++) {
		volatile char *q = p + (first + (i * stride) % n) * PAGE;
		double t0 = bench_now_us();

		if (rd)
			sum += *q;
		else
			*q = (char)i;
		s[i] = bench_now_us() - t0;
	}
	if (strcmp(mode, "shm-own"))
		bench_latency(rd ? "dsm_read_miss" : "dsm_write_miss", s, n, "%s", bench_extra_args);
	return (int)(sum & 0);
}

/* Alternate stores to word 0: a waits for an even value, b for an odd one. */
static int shm_pingpong(const char *key, long n, int a)
{
	volatile long *w = (volatile long *)attach(key);
	double *s = calloc(n, sizeof(double));

	for (long i = 0; i < n; i++) {
		long want = 2 * i + !a;
		double t0 = bench_now_us();

		while (*w != want)
			;
		*w = want + 1;
		s[i] = bench_now_us() - t0;
	}
	if (a)
		bench_latency("dsm_pingpong", s + 1, n - 1, "%s", bench_extra_args);
	return 0;
}

/* The message-passing hand-off of shmtool litmus, timed per round. */
static int shm_handoff(const char *key, long n, int a)
{
	volatile char *p = attach(key);
	volatile long *flag = (volatile long *)p, *data = (volatile long *)(p + PAGE),
		      *ack = (volatile long *)(p + 2 * PAGE);
	double *s = calloc(n, sizeof(double));

	for (long i = 1; i <= n; i++) {
		double t0 = bench_now_us();

		if (a) {
			*data = i;
			*flag = i;
			while (*ack != i)
				;
		} else {
			while (*flag != i)
				;
			if (*data != i) {
				fprintf(stderr, "shm-handoff: round %ld read data %ld\n", i, *data);
				return 1;
			}
			*ack = i;
		}
		s[i - 1] = bench_now_us() - t0;
	}
	if (a)
		bench_latency("dsm_handoff", s + 1, n - 1, "%s", bench_extra_args);
	return 0;
}

static int shm_seqread(const char *key, long mib)
{
	volatile uint64_t *p = (volatile uint64_t *)attach(key);
	long words = mib * 1048576 / 8;
	uint64_t sum = 0;
	double t0 = bench_now_us();

	for (long i = 0; i < words; i++)
		sum += p[i];
	double us = bench_now_us() - t0;

	bench_figure("dsm_seqread", "MB/s", mib * 1048576.0 / us, "mib=%ld sum=%llu %s", mib,
		     (unsigned long long)sum, bench_extra_args);
	return 0;
}

/* Every participant takes one from sem 1 (set to K), then waits for zero. */
static void barrier(int id)
{
	sop(id, 1, -1, 0);
	sop(id, 1, 0, 0);
}

static int contend(const char *what, const char *key, int k, int secs)
{
	int id = semset(key, 2);
	volatile long *w = NULL;
	long ops = 0;
	char name[64];

	if (!strcmp(what, "shm-contend"))
		w = (volatile long *)attach(key);
	barrier(id);
	double t0 = bench_now_us(), end = t0 + secs * 1e6, t1;

	do {
		for (int i = 0; i < 16; i++) {
			if (w) {
				__atomic_fetch_add(w, 1, __ATOMIC_SEQ_CST);
			} else {
				sop(id, 0, -1, 0);
				sop(id, 0, 1, 0);
			}
		}
		ops += 16;
		t1 = bench_now_us();
	} while (t1 < end);
	snprintf(name, sizeof(name), w ? "scale_shm" : "scale_sem");
	bench_figure(name, "ops/s", ops / (t1 - t0) * 1e6, "nodes=%d ops=%ld %s", k, ops, bench_extra_args);
	return 0;
}

/* ns per call of semop and of semctl(GETVAL) on an IPC_PRIVATE set. */
static int hook_call(long n)
{
	int id = semget(IPC_PRIVATE, 1, 0600);
	double best_op = 1e30, best_ctl = 1e30;

	if (id < 0)
		die("semget");
	for (int run = 0; run < 5; run++) {
		double t0 = bench_now_us(), t1;

		for (long i = 0; i < n; i++)
			sop(id, 0, (i & 1) ? -1 : 1, IPC_NOWAIT);
		t1 = bench_now_us();
		if ((t1 - t0) * 1e3 / n < best_op)
			best_op = (t1 - t0) * 1e3 / n;
		t0 = bench_now_us();
		for (long i = 0; i < n; i++)
			if (semctl(id, 0, GETVAL) < 0)
				die("semctl");
		t1 = bench_now_us();
		if ((t1 - t0) * 1e3 / n < best_ctl)
			best_ctl = (t1 - t0) * 1e3 / n;
	}
	semctl(id, 0, IPC_RMID);
	bench_figure("hook_semop", "ns", best_op, "n=%ld %s", n, bench_extra_args);
	bench_figure("hook_semctl", "ns", best_ctl, "n=%ld %s", n, bench_extra_args);
	return 0;
}

/* Create and remove n sets: the cost per object, and whether it grows. */
static int create_remove(const char *keyarg, long n)
{
	key_t key = (key_t)strtol(keyarg, NULL, 0);
	long tenth = n / 10 > 0 ? n / 10 : 1;
	int *ids = calloc(n, sizeof(*ids));
	double t0, t1, first = 0, last = 0, mark = 0;

	if (!ids)
		die("calloc");
	t0 = bench_now_us();
	for (long i = 0; i < n; i++) {
		if (i == tenth)
			first = bench_now_us() - t0;
		if (i == n - tenth)
			mark = bench_now_us();
		ids[i] = semget(key + (key_t)i, 1, IPC_CREAT | IPC_EXCL | 0600);
		if (ids[i] < 0)
			die("semget");
	}
	t1 = bench_now_us();
	last = t1 - mark;
	for (long i = 0; i < n; i++)
		if (semctl(ids[i], 0, IPC_RMID) < 0)
			die("semctl IPC_RMID");
	double t2 = bench_now_us();

	free(ids);
	bench_figure("create", "us", (t1 - t0) / n, "n=%ld %s", n, bench_extra_args);
	bench_figure("remove", "us", (t2 - t1) / n, "n=%ld %s", n, bench_extra_args);
	bench_figure("create_growth", "x", last / first, "n=%ld %s", n, bench_extra_args);
	bench_figure("create_first", "us", first / tenth, "n=%ld %s", n, bench_extra_args);
	bench_figure("create_last", "us", last / tenth, "n=%ld %s", n, bench_extra_args);
	return 0;
}

int main(int argc, char **argv)
{
	char *pos[16];
	int n = bench_args(argc, argv, pos, 16);

	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *cmd = n > 1 ? pos[1] : "";

	if (!strcmp(cmd, "serve") && n == 3)
		serve(atoi(pos[2]));
	if ((!strcmp(cmd, "tcp-rtt") || !strcmp(cmd, "tcp-stream")) && n == 6)
		return tcp(cmd, pos[2], atoi(pos[3]), atoi(pos[4]), atol(pos[5]));
	if (!strcmp(cmd, "tcp-fetch") && n == 5)
		return tcp(cmd, pos[2], atoi(pos[3]), PAGE, atol(pos[4]));
	if (!strcmp(cmd, "sem-op") && n == 4)
		return sem_op(pos[2], atol(pos[3]));
	if (!strcmp(cmd, "failover") && n == 4)
		return failover(pos[2], atof(pos[3]));
	if (!strcmp(cmd, "sem-pingpong") && n == 5)
		return sem_pingpong(pos[2], atol(pos[3]), pos[4][0] == 'a');
	if (!strcmp(cmd, "msg-rt") && n == 5)
		return msg_rt(pos[2], atoi(pos[3]), atol(pos[4]), 'r');
	if (!strcmp(cmd, "msg-pingpong") && n == 6)
		return msg_rt(pos[2], atoi(pos[3]), atol(pos[4]), pos[5][0] == 'a' ? 'a' : 'b');
	if (!strcmp(cmd, "msg-recv") && n == 5)
		return msg_recv(pos[2], atoi(pos[3]), atol(pos[4]));
	if (!strcmp(cmd, "msg-send") && n == 6)
		return msg_send(pos[2], atoi(pos[3]), atol(pos[4]), atoi(pos[5]));
	if (!strncmp(cmd, "shm-", 4) && strstr("shm-own shm-readmiss shm-writemiss", cmd) && n == 5)
		return pages(cmd, pos[2], atol(pos[3]), atol(pos[4]));
	if (!strcmp(cmd, "shm-pingpong") && n == 5)
		return shm_pingpong(pos[2], atol(pos[3]), pos[4][0] == 'a');
	if (!strcmp(cmd, "shm-handoff") && n == 5)
		return shm_handoff(pos[2], atol(pos[3]), pos[4][0] == 'a');
	if (!strcmp(cmd, "shm-seqread") && n == 4)
		return shm_seqread(pos[2], atol(pos[3]));
	if ((!strcmp(cmd, "sem-contend") || !strcmp(cmd, "shm-contend")) && n == 5)
		return contend(cmd, pos[2], atoi(pos[3]), atoi(pos[4]));
	if (!strcmp(cmd, "hook-call") && n == 3)
		return hook_call(atol(pos[2]));
	if (!strcmp(cmd, "create") && n == 4)
		return create_remove(pos[2], atol(pos[3]));
	if (!strcmp(cmd, "shm-word") && n == 3) {
		bench_figure("scale_shm_total", "ops", *(volatile long *)attach(pos[2]), "%s", bench_extra_args);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of dipcbench.c\n");
	return 2;
}
