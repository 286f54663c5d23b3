// SPDX-License-Identifier: GPL-2.0
/*
 * msg_bench: message queue throughput beside the network it runs over.
 * Prints figures; checks nothing about speed.
 *
 *   msg_bench sink PORT                  TCP peer for "tcp" (runs forever)
 *   msg_bench tcp IP PORT SIZE COUNT     a raw TCP stream of COUNT writes of
 *                                        SIZE bytes, then COUNT ping-pongs of
 *                                        SIZE bytes
 *   msg_bench recv KEY SIZE COUNT        receive COUNT messages of SIZE bytes
 *                                        from the queue KEY; rate from the
 *                                        first message to the last
 *   msg_bench send KEY SIZE COUNT        send them
 *   msg_bench local SIZE COUNT           the same through a private local
 *                                        queue, sender and receiver on this
 *                                        node (the local kernel's figure)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct msg {
	long mtype;
	char text[65536];
};

static struct msg m;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "msg_bench: %s: %s\n", what, strerror(errno));
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

struct req {
	uint64_t total; /* stream bytes, or 0 */
	uint32_t size;  /* ping-pong size */
	uint32_t count; /* ping-pongs */
};

static __attribute__((noreturn)) void sink(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	static char buf[65536];

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
		die("listen");
	for (;;) {
		int c = accept(l, NULL, NULL);
		struct req r;

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		full(c, &r, sizeof(r), 1);
		while (r.total) {
			size_t n = r.total < sizeof(buf) ? r.total : sizeof(buf);

			full(c, buf, n, 1);
			r.total -= n;
		}
		full(c, "k", 1, 0);
		for (uint32_t i = 0; i < r.count && r.size <= sizeof(buf); i++) {
			full(c, buf, r.size, 1);
			full(c, buf, r.size, 0);
		}
		close(c);
	}
}

static int tcp(const char *ip, int port, int size, int count)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct req r = { (uint64_t)size * count, size, count };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	double t0, t1, t2;
	char ack;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	full(fd, &r, sizeof(r), 0);
	t0 = now();
	for (int i = 0; i < count; i++)
		full(fd, m.text, size, 0);
	full(fd, &ack, 1, 1);
	t1 = now();
	for (int i = 0; i < count; i++) {
		full(fd, m.text, size, 0);
		full(fd, m.text, size, 1);
	}
	t2 = now();
	printf("tcp stream: %d x %d bytes: %.0f writes/s, %.2f MB/s\n", count, size,
	       count / (t1 - t0), (double)size * count / (t1 - t0) / 1e6);
	printf("tcp ping-pong: %d bytes each way: %.0f round trips/s (%.0f us each)\n", size,
	       count / (t2 - t1), (t2 - t1) / count * 1e6);
	return 0;
}

static void rate(const char *what, int size, int count, double secs)
{
	printf("%s: %d x %d bytes: %.0f msgs/s, %.2f MB/s\n", what, count, size, count / secs,
	       (double)size * count / secs / 1e6);
}

static int recv_n(int id, int size, int count, const char *what)
{
	double t0 = 0;

	for (int i = 0; i < count; i++) {
		if (msgrcv(id, &m, size, 0, 0) != size)
			die("msgrcv");
		if (i == 0)
			t0 = now();
	}
	/* The first message starts the clock: count - 1 intervals. */
	rate(what, size, count - 1, now() - t0);
	return 0;
}

static int send_n(int id, int size, int count, const char *what)
{
	double t0 = now();

	m.mtype = 1;
	for (int i = 0; i < count; i++)
		if (msgsnd(id, &m, size, 0) < 0)
			die("msgsnd");
	rate(what, size, count, now() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int id, st;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "sink") && argc == 3)
		sink(atoi(argv[2]));
	if (!strcmp(cmd, "tcp") && argc == 6)
		return tcp(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if ((!strcmp(cmd, "recv") || !strcmp(cmd, "send")) && argc == 5) {
		id = msgget((key_t)strtol(argv[2], NULL, 0), 0);
		if (id < 0)
			die("msgget");
		if (cmd[0] == 'r')
			return recv_n(id, atoi(argv[3]), atoi(argv[4]), "dipc msgrcv");
		return send_n(id, atoi(argv[3]), atoi(argv[4]), "dipc msgsnd");
	}
	if (!strcmp(cmd, "local") && argc == 4) {
		id = msgget(IPC_PRIVATE, 0600);
		if (id < 0)
			die("msgget");
		pid = fork();
		if (pid == 0)
			exit(recv_n(id, atoi(argv[2]), atoi(argv[3]), "local msgrcv"));
		send_n(id, atoi(argv[2]), atoi(argv[3]), "local msgsnd");
		waitpid(pid, &st, 0);
		msgctl(id, IPC_RMID, NULL);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of msg_bench.c\n");
	return 2;
}
