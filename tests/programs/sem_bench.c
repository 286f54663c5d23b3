// SPDX-License-Identifier: GPL-2.0
/*
 * sem_bench: round-trip figures, not a test.
 *
 *   sem_bench serve PORT           echo 64-byte messages over TCP, forever
 *   sem_bench tcp HOST PORT N      N 64-byte ping-pongs; median round trip
 *   sem_bench sem KEY N            N semops (+1/-1, never blocking) on the
 *                                  set KEY; median time of one semop
 *   sem_bench local N              the same on a local IPC_PRIVATE set
 *
 * The test guests' clock ticks in milliseconds, too coarse to time one
 * round trip, so the N round trips run in 20 batches and each batch's mean
 * is one sample. Each prints "NAME median_us X p90_us Y batches 20 n N":
 * the median and 90th percentile of the batch means.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define BATCHES 20

/* s[i] holds the end time of round trip i, t0 the start of the first. */
static void report(const char *name, double t0, double *s, int n)
{
	double means[BATCHES];
	int per = n / BATCHES, b;

	for (b = 0; b < BATCHES; b++) {
		double start = b ? s[b * per - 1] : t0;

		means[b] = (s[(b + 1) * per - 1] - start) / per;
	}
	qsort(means, BATCHES, sizeof(double), cmp);
	printf("%s median_us %.1f p90_us %.1f batches %d n %d\n", name, means[BATCHES / 2],
	       means[BATCHES * 9 / 10], BATCHES, per * BATCHES);
}

static int full(int fd, char *buf, int len, int rd)
{
	int done = 0;

	while (done < len) {
		int r = rd ? read(fd, buf + done, len - done) : write(fd, buf + done, len - done);

		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

static int semloop(const char *name, int id, int n)
{
	double *s = calloc(n, sizeof(double)), t0 = now_us();
	int i;

	for (i = 0; i < n; i++) {
		struct sembuf b = { 0, (i & 1) ? -1 : 1, IPC_NOWAIT };

		if (semop(id, &b, 1) < 0) {
			perror("semop");
			return 1;
		}
		s[i] = now_us();
	}
	report(name, t0, s, n);
	return 0;
}

int main(int argc, char **argv)
{
	char buf[64];
	int one = 1;

	if (argc >= 3 && !strcmp(argv[1], "serve")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
		int l = socket(AF_INET, SOCK_STREAM, 0), c;

		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (void *)&a, sizeof(a)) || listen(l, 4)) {
			perror("bind/listen");
			return 1;
		}
		for (;;) {
			c = accept(l, NULL, NULL);
			setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			while (!full(c, buf, 64, 1) && !full(c, buf, 64, 0))
				;
			close(c);
		}
	}
	if (argc >= 5 && !strcmp(argv[1], "tcp")) {
		/* One warm-up round trip is made by connect(); n >= BATCHES. */
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		int n = atoi(argv[4]), fd = socket(AF_INET, SOCK_STREAM, 0), i;
		double *s = calloc(n, sizeof(double));

		inet_pton(AF_INET, argv[2], &a.sin_addr);
		if (connect(fd, (void *)&a, sizeof(a))) {
			perror("connect");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(buf, 'x', sizeof(buf));
		double t0 = now_us();

		for (i = 0; i < n; i++) {
			if (full(fd, buf, 64, 0) || full(fd, buf, 64, 1)) {
				perror("ping-pong");
				return 1;
			}
			s[i] = now_us();
		}
		report("tcp64_rtt", t0, s, n);
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "sem")) {
		int id = semget((key_t)strtol(argv[2], NULL, 0), 1, IPC_CREAT | 0600);

		if (id < 0) {
			perror("semget");
			return 1;
		}
		return semloop("semop_remote", id, atoi(argv[3]));
	}
	if (argc >= 3 && !strcmp(argv[1], "local")) {
		int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600), r;

		r = semloop("semop_local", id, atoi(argv[2]));
		semctl(id, 0, IPC_RMID);
		return r;
	}
	fprintf(stderr, "usage: see the source\n");
	return 2;
}
