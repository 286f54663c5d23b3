// SPDX-License-Identifier: GPL-2.0
/*
 * rexec: runs a command on another test guest, for MPICH's mpiexec, which
 * starts its proxies through ssh; the guests have no ssh. As mpiexec's
 * launcher (`mpiexec -launcher rsh -launcher-exec /bin/rexec`) it is called
 * as `rexec HOST COMMAND ARGS...`, like rsh.
 *
 *   rexec serve PORT              accept commands on PORT (a daemon for
 *                                 the test guests: no authentication)
 *   rexec [-p PORT] HOST CMD ...  run CMD on HOST (an IPv4 address; port
 *                                 7801 by default),
 *                                 copy its stdout and stderr here, exit
 *                                 with its status. As with rsh and ssh,
 *                                 the words are joined with spaces and run
 *                                 by the remote shell (sh -c)
 *
 * The request is the argument count and the NUL-terminated arguments. The
 * answer is frames: a byte (1 stdout, 2 stderr, 3 exit status), a 32-bit
 * length, the data (for 3, the 32-bit status). When the caller goes away,
 * the command's process group is killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_PORT 7801
#define MAX_ARGS 256
#define MAX_REQUEST 65536

static void die(const char *what)
{
	fprintf(stderr, "rexec: %s: %s\n", what, strerror(errno));
	exit(255);
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
	}
	return 0;
}

static int frame(int fd, uint8_t type, const void *data, uint32_t len)
{
	uint8_t head[5] = { type };

	memcpy(head + 1, &len, 4);
	return write_all(fd, head, 5) || write_all(fd, data, len) ? -1 : 0;
}

/* One connection: read the command, run it, forward its output and status. */
static void serve_one(int s)
{
	static char req[MAX_REQUEST], line[MAX_REQUEST];
	char *argv[4] = { "/bin/sh", "-c", line, NULL };
	int out[2], err[2], status = 255;
	uint32_t argc, len;
	pid_t pid;
	char *p;

	if (read_all(s, &argc, 4) || read_all(s, &len, 4) || argc < 1 || argc > MAX_ARGS ||
	    len > MAX_REQUEST || read_all(s, req, len) || (len && req[len - 1]))
		exit(1);
	/* The words joined with spaces: NULs become spaces (the last ends it). */
	p = req;
	for (uint32_t i = 0; i < argc; i++) {
		if (p >= req + len)
			exit(1);
		p += strlen(p) + 1;
	}
	memcpy(line, req, len);
	for (uint32_t i = 0; i + 1 < len; i++)
		if (!line[i])
			line[i] = ' ';
	if (pipe(out) || pipe(err))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		setpgid(0, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]), close(out[1]), close(err[0]), close(err[1]), close(s);
		execvp(argv[0], argv);
		fprintf(stderr, "rexec: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	{
		struct pollfd fds[3] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 }, { s, POLLIN, 0 } };
		int open_pipes = 2;

		while (open_pipes) {
			char buf[16384];

			if (poll(fds, 3, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			/* The caller went away (or sent something): end the command. */
			if (fds[2].revents) {
				kill(-pid, SIGKILL);
				fds[2].fd = -1;
			}
			for (int i = 0; i < 2; i++) {
				ssize_t r;

				if (fds[i].fd < 0 || !fds[i].revents)
					continue;
				r = read(fds[i].fd, buf, sizeof(buf));
				if (r <= 0) {
					close(fds[i].fd);
					fds[i].fd = -1;
					open_pipes--;
				} else if (fds[2].fd >= 0 && frame(s, (uint8_t)(i + 1), buf, (uint32_t)r)) {
					kill(-pid, SIGKILL);
					fds[2].fd = -1;
				}
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	frame(s, 3, &status, 4);
	exit(0);
}

static __attribute__((noreturn)) void serve(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0)
		die("socket");
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 64))
		die("bind/listen");
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		int s = accept(l, NULL, NULL);

		if (s < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (fork() == 0) {
			close(l);
			signal(SIGCHLD, SIG_DFL);
			serve_one(s);
		}
		close(s);
	}
}

static int run(const char *host, int port, int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char req[MAX_REQUEST];
	uint32_t n = (uint32_t)argc, len = 0;
	int s, one = 1;

	if (argc > MAX_ARGS)
		return fprintf(stderr, "rexec: too many arguments\n"), 255;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;

		if (len + l > MAX_REQUEST)
			return fprintf(stderr, "rexec: the command is too long\n"), 255;
		memcpy(req + len, argv[i], l);
		len += (uint32_t)l;
	}
	/* Static, so no name service: HOST is an IPv4 address. */
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return fprintf(stderr, "rexec: %s is not an IPv4 address\n", host), 255;
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		die(host);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (write_all(s, &n, 4) || write_all(s, &len, 4) || write_all(s, req, len))
		die("send");
	for (;;) {
		static char buf[65536];
		uint8_t head[5];
		uint32_t l;

		if (read_all(s, head, 5))
			return fprintf(stderr, "rexec: %s closed the connection\n", host), 255;
		memcpy(&l, head + 1, 4);
		if (l > sizeof(buf) || read_all(s, buf, l))
			return fprintf(stderr, "rexec: a bad answer from %s\n", host), 255;
		if (head[0] == 3 && l == 4) {
			int status;

			memcpy(&status, buf, 4);
			return status;
		}
		if ((head[0] == 1 || head[0] == 2) && write_all(head[0], buf, l) && errno != EPIPE)
			die("write");
	}
}

int main(int argc, char **argv)
{
	int port = DEFAULT_PORT, i = 1;

	if (argc == 3 && !strcmp(argv[1], "serve"))
		serve(atoi(argv[2]));
	if (argc > 2 && !strcmp(argv[1], "-p")) {
		port = atoi(argv[2]);
		i = 3;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: rexec serve PORT\n       rexec [-p PORT] HOST COMMAND [ARGS...]\n");
		return 255;
	}
	return run(argv[i], port, argc - i - 1, argv + i + 1);
}
