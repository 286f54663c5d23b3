// SPDX-License-Identifier: GPL-2.0
/*
 * badreferee PORT NODE_ID: a hostile referee for the module. It accepts the
 * module's connections one after another, reads each hello, and answers
 * each with one kind of bad input; the module must close that connection
 * (and reconnect). Prints one line per case and a summary; exits 0 only if
 * every case was closed by the module in time.
 *
 * badreferee --peer IP PORT: a hostile node for the module's peer port
 * (page transfers): it opens one connection per case, sends one kind of
 * bad input, and checks that the module closes it.
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
		     uint32_t len, uint32_t clock)
{
	memcpy(b, &magic, 4);
	memcpy(b + 4, &version, 2);
	memcpy(b + 6, &kind, 2);
	memcpy(b + 8, &req, 8);
	memcpy(b + 16, &len, 4);
	memcpy(b + 20, &clock, 4);
	return HDR;
}

static const uint32_t MAGIC = 0x43504944; /* "DIPC" little-endian */
/* The wire protocol version (dipcd/wire/src/wire.rs: VERSION). */
static const uint16_t VERSION = 8;
/* Bytes of a HelloAck payload: node id, features, session, token. */
#define ACK_LEN 36

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
		*what = "a ping one byte short";
		n = header(b, MAGIC, VERSION, 3, 0, 7, 0);
		memset(b + n, 0, 7);
		return n + 7;
	case 5:
		*what = "malformed hello ack (short payload)";
		n = header(b, MAGIC, VERSION, 2, 1, 3, 0);
		memset(b + n, 0, 3);
		return n + 3;
	case 6:
		*what = "hello ack for another node";
		n = header(b, MAGIC, VERSION, 2, 1, ACK_LEN, 0);
		node_id += 1;
		memset(b + n, 0, ACK_LEN);
		memcpy(b + n, &node_id, 4);
		return n + ACK_LEN;
	case 7:
		*what = "a reply before the hello ack";
		n = header(b, MAGIC, VERSION, 9, 5, 8, 0);
		memcpy(b + n, &zero, 8);
		return n + 8;
	case 8:
		*what = "truncated frame, then silence";
		n = header(b, MAGIC, VERSION, 2, 1, ACK_LEN, 0);
		memset(b + n, 0, 10);
		return n + 10;
	}
	return 0;
}

/*
 * Sends case `i` (n bytes of b) on c, then reads (and drops) anything until
 * the module closes c or 20 s pass; prints the outcome under `label`,
 * closes c, and returns whether the module closed it.
 */
static int send_and_await_close(int c, const uint8_t *b, size_t n, const char *label, int i,
				const char *what)
{
	uint8_t in[4096];
	struct timeval tv = { .tv_sec = 20 };
	int closed = 0;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(c, b, n, MSG_NOSIGNAL) != (ssize_t)n) {
		printf("%s %d (%s): send failed\n", label, i, what);
		close(c);
		return 0;
	}
	double t0 = now();
	ssize_t r;
	/* Anything the module sends (a ping) is read and dropped. */
	while ((r = recv(c, in, sizeof(in), 0)) > 0)
		;
	double dt = now() - t0;
	if (r == 0 || errno == ECONNRESET) {
		closed = 1;
		printf("%s %d (%s): closed by the module after %.2f s\n", label, i, what, dt);
	} else {
		printf("%s %d (%s): NOT closed after %.2f s (%s)\n", label, i, what, dt,
		       strerror(errno));
	}
	close(c);
	return closed;
}

/* Peer case `i` into b; returns its length (0: no such case). */
static size_t build_peer(int i, uint8_t *b, const char **what)
{
	size_t n;
	uint32_t me = 77;

	switch (i) {
	case 0:
		*what = "bad magic";
		return header(b, 0x12345678, VERSION, 31, 0, 0, 0);
	case 1:
		*what = "hello with a token the node does not hold";
		/* node id, a 16-byte token, a 32-byte nonce */
		n = header(b, MAGIC, VERSION, 31, 0, 4 + 16 + 32, 0);
		memcpy(b + n, &me, 4);
		memset(b + n + 4, 0x5a, 16 + 32);
		return n + 4 + 16 + 32;
	case 2:
		*what = "a page grant without a hello";
		/* oid, page, write, result, after, data tag (keep) */
		n = header(b, MAGIC, VERSION, 25, 3, 8 + 8 + 1 + 4 + 8 + 1, 0);
		memset(b + n, 0, 30);
		return n + 30;
	case 3:
		*what = "truncated hello, then silence";
		n = header(b, MAGIC, VERSION, 31, 0, 4 + 16 + 32, 0);
		memset(b + n, 0, 10);
		return n + 10;
	}
	return 0;
}

static int peer_cases(const char *ip, int port)
{
	int cases = 0, closed = 0;

	for (int i = 0;; i++) {
		uint8_t b[128];
		const char *what;
		size_t n = build_peer(i, b, &what);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

		if (!n)
			break;
		cases++;
		inet_pton(AF_INET, ip, &a.sin_addr);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
			printf("peer case %d (%s): connect: %s\n", i, what, strerror(errno));
			if (c >= 0)
				close(c);
			continue;
		}
		closed += send_and_await_close(c, b, n, "peer case", i, what);
	}
	printf("badreferee: %d of %d peer cases closed by the module\n", closed, cases);
	return closed == cases ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "--peer"))
		return peer_cases(argv[2], atoi(argv[3]));
	if (argc != 3) {
		fprintf(stderr, "usage: badreferee PORT NODE_ID | badreferee --peer IP PORT\n");
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
		closed += send_and_await_close(c, b, n, "case", i, what);
	}
	printf("badreferee: %d of %d cases closed by the module\n", closed, cases);
	return closed == cases ? 0 : 1;
}
