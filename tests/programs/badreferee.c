// SPDX-License-Identifier: GPL-2.0
/*
 * badreferee PORT NODE_ID: a hostile referee for the module. It accepts the
 * module's connections one after another, reads each hello, and answers
 * each with one kind of bad input; the module must close that connection
 * (and reconnect). Prints one line per case and a summary; exits 0 only if
 * every case was closed by the module in time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HDR 24

static size_t header(uint8_t *b, uint32_t magic, uint16_t version, uint16_t kind, uint64_t req,
		     uint32_t len, uint32_t reserved)
{
	memcpy(b, &magic, 4);
	memcpy(b + 4, &version, 2);
	memcpy(b + 6, &kind, 2);
	memcpy(b + 8, &req, 8);
	memcpy(b + 16, &len, 4);
	memcpy(b + 20, &reserved, 4);
	return HDR;
}

static const uint32_t MAGIC = 0x43504944; /* "DIPC" little-endian */
/* The wire protocol version (dipcd/wire/src/wire.rs: VERSION). */
static const uint16_t VERSION = 4;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Builds case `i` into b; returns its length (0: no such case). */
static size_t build(int i, uint8_t *b, uint32_t node_id, const char **what)
{
	size_t n;
	uint64_t zero = 0;

	switch (i) {
	case 0:
		*what = "bad magic";
		return header(b, 0x12345678, VERSION, 2, 1, 0, 0);
	case 1:
		*what = "bad version";
		return header(b, MAGIC, 9, 2, 1, 20, 0);
	case 2:
		*what = "unknown kind";
		return header(b, MAGIC, VERSION, 999, 1, 0, 0);
	case 3:
		*what = "oversized length";
		return header(b, MAGIC, VERSION, 2, 1, 0xffffffffu, 0);
	case 4:
		*what = "reserved field set";
		return header(b, MAGIC, VERSION, 3, 0, 8, 7);
	case 5:
		*what = "malformed hello ack (short payload)";
		n = header(b, MAGIC, VERSION, 2, 1, 3, 0);
		memset(b + n, 0, 3);
		return n + 3;
	case 6:
		*what = "hello ack for another node";
		n = header(b, MAGIC, VERSION, 2, 1, 20, 0);
		node_id += 1;
		memcpy(b + n, &node_id, 4);
		memcpy(b + n + 4, &zero, 8);
		memcpy(b + n + 12, &zero, 8);
		return n + 20;
	case 7:
		*what = "a reply before the hello ack";
		n = header(b, MAGIC, VERSION, 9, 5, 8, 0);
		memcpy(b + n, &zero, 8);
		return n + 8;
	case 8:
		*what = "truncated frame, then silence";
		n = header(b, MAGIC, VERSION, 2, 1, 20, 0);
		memset(b + n, 0, 10);
		return n + 10;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: badreferee PORT NODE_ID\n");
		return 2;
	}
	int port = atoi(argv[1]);
	uint32_t node_id = strtoul(argv[2], NULL, 0);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	setvbuf(stdout, NULL, _IOLBF, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4)) {
		perror("listen");
		return 1;
	}
	int cases = 0, closed = 0;
	for (int i = 0;; i++) {
		uint8_t b[128], in[4096];
		const char *what;
		size_t n = build(i, b, node_id, &what);

		if (!n)
			break;
		cases++;
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			perror("accept");
			return 1;
		}
		struct timeval tv = { .tv_sec = 20 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		/* The hello first. */
		if (recv(c, in, sizeof(in), 0) <= 0) {
			printf("case %d (%s): no hello\n", i, what);
			close(c);
			continue;
		}
		if (send(c, b, n, MSG_NOSIGNAL) != (ssize_t)n) {
			printf("case %d (%s): send failed\n", i, what);
			close(c);
			continue;
		}
		double t0 = now();
		ssize_t r;
		/* Anything the module sends (a ping) is read and dropped. */
		while ((r = recv(c, in, sizeof(in), 0)) > 0)
			;
		double dt = now() - t0;
		if (r == 0 || errno == ECONNRESET) {
			closed++;
			printf("case %d (%s): closed by the module after %.2f s\n", i, what, dt);
		} else {
			printf("case %d (%s): NOT closed after %.2f s (%s)\n", i, what, dt,
			       strerror(errno));
		}
		close(c);
	}
	printf("badreferee: %d of %d cases closed by the module\n", closed, cases);
	return closed == cases ? 0 : 1;
}
