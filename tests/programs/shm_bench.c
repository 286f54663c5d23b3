// SPDX-License-Identifier: GPL-2.0
/*
 * shm_bench: DSM figures beside the network floor between the same guests.
 * Prints figures; checks nothing (benchmarks are not tests).
 *
 *   shm_bench server PORT              TCP peer for "tcp": answers 'p' with 8
 *                                      bytes, 'g' with 4096, 's' + MiB (u32)
 *                                      with that many MiB
 *   shm_bench tcp IP PORT N MIB        median/mean of N 8-byte round trips
 *                                      and N 4 KiB fetches, then a MIB MiB
 *                                      stream
 *   shm_bench own KEY FIRST N          store to pages FIRST..FIRST+N-1: this
 *                                      node owns them
 *   shm_bench readmiss KEY FIRST N     time the first load of each page
 *                                      (owned by another node)
 *   shm_bench writemiss KEY FIRST N    time the first store to each page
 *                                      (owned by another node)
 *
 * Per-operation times come from CLOCK_MONOTONIC; the clock source is
 * printed because a TCG guest may fall back to a coarse one, in which case
 * the means (total time / N) are the figures to read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n, double total)
{
	qsort(t, n, sizeof(*t), cmp);
	printf("%-28s median %8.1f us  p99 %8.1f us  mean %8.1f us  (n=%d)\n", what,
	       t[n / 2] * 1e6, t[n * 99 / 100] * 1e6, total / n * 1e6, n);
}

static void clocksource(void)
{
	char buf[64] = "?";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
	printf("clocksource %s\n", buf);
}

static int full(int fd, void *p, size_t n, int rd)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = rd ? read(fd, (char *)p + done, n - done)
			       : write(fd, (char *)p + done, n - done);
		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

static int server(int port)
{
	static char buf[1 << 20];
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (void *)&a, sizeof(a)) || listen(s, 4))
		return 1;
	for (;;) {
		int c = accept(s, NULL, NULL);
		char cmd;

		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (read(c, &cmd, 1) == 1) {
			if (cmd == 'p' && full(c, buf, 8, 0))
				break;
			if (cmd == 'g' && full(c, buf, PAGE, 0))
				break;
			if (cmd == 's') {
				uint32_t mib;
				if (full(c, &mib, 4, 1))
					break;
				for (uint32_t i = 0; i < mib; i++)
					if (full(c, buf, sizeof(buf), 0))
						break;
			}
		}
		close(c);
	}
}

static int tcp(const char *ip, int port, int n, uint32_t mib)
{
	static char buf[1 << 20];
	double *t = calloc(n, sizeof(double));
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (connect(s, (void *)&a, sizeof(a)))
		return 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	clocksource();
	for (int pass = 0; pass < 2; pass++) {
		char cmd = pass ? 'g' : 'p';
		size_t len = pass ? PAGE : 8;
		double t0 = now();
		for (int i = 0; i < n; i++) {
			double s0 = now();
			if (full(s, &cmd, 1, 0) || full(s, buf, len, 1))
				return 1;
			t[i] = now() - s0;
		}
		report(pass ? "tcp 4 KiB fetch" : "tcp round trip (8 B)", t, n, now() - t0);
	}
	char cmd = 's';
	double t0 = now();
	if (full(s, &cmd, 1, 0) || full(s, &mib, 4, 0))
		return 1;
	for (uint32_t i = 0; i < mib; i++)
		if (full(s, buf, sizeof(buf), 1))
			return 1;
	double dt = now() - t0;
	printf("%-28s %8.1f MB/s (%u MiB in %.3f s)\n", "tcp stream", mib * 1048576.0 / dt / 1e6,
	       mib, dt);
	return 0;
}

static volatile char *attach(const char *key)
{
	int id = shmget((key_t)strtoul(key, NULL, 0), 0, 0);
	void *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);

	if (p == (void *)-1) {
		perror("shm");
		exit(1);
	}
	return p;
}

static int pages(const char *key, const char *mode, long first, int n)
{
	volatile char *p = attach(key);
	double *t = calloc(n, sizeof(double)), t0 = now();
	unsigned sum = 0;

	for (int i = 0; i < n; i++) {
		volatile char *q = p + (first + i) * PAGE;
		double s0 = now();
		if (!strcmp(mode, "readmiss"))
			sum += *q;
		else
			*q = (char)i;
		t[i] = now() - s0;
	}
	double total = now() - t0;
	if (strcmp(mode, "own")) {
		clocksource();
		report(!strcmp(mode, "readmiss") ? "dsm read miss" : "dsm write ownership", t, n,
		       total);
	}
	(void)sum;
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "tcp"))
		return tcp(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (argc == 5)
		return pages(argv[2], argv[1], atol(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: see the comment in shm_bench.c\n");
	return 2;
}
