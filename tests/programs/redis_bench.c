// SPDX-License-Identifier: GPL-2.0
/*
 * redis_bench: the same operations as dipcbench's, built the usual way on a
 * Redis server instead of dipc, for `make bench`'s side-by-side figures.
 * A semaphore is a list of tokens: V is RPUSH, P is BLPOP (which blocks
 * while the list is empty); a queue is a list: LPUSH sends, BRPOP receives.
 *
 *   redis_bench sem-op HOST PORT KEY N          N ops, V then P (never blocks)
 *   redis_bench sem-pingpong HOST PORT KEY N a|b  hand-off through KEY:0, KEY:1
 *   redis_bench msg-rt HOST PORT KEY SIZE N     LPUSH then BRPOP of it, N times
 *   redis_bench msg-pingpong HOST PORT KEY SIZE N a|b
 *
 * Arguments of the form key=value are copied onto every BENCH line.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <hiredis/hiredis.h>
#include <string.h>

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "redis_bench: %s: %s\n", fmt, r ? r->str : c->errstr);
		exit(1);
	}
	return r;
}

static void run(redisContext *c, const char *fmt, const char *key, const char *val, size_t len)
{
	redisReply *r = val ? cmd(c, fmt, key, val, len) : cmd(c, fmt, key);

	freeReplyObject(r);
}

int main(int argc, char **argv)
{
	char *pos[16], k0[128], k1[128];
	static char payload[65536];
	int n = bench_args(argc, argv, pos, 16);

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (n < 6) {
		fprintf(stderr, "usage: see the comment at the top of redis_bench.c\n");
		return 2;
	}
	const char *what = pos[1], *key = pos[4];
	redisContext *c = redisConnect(pos[2], atoi(pos[3]));

	if (!c || c->err) {
		fprintf(stderr, "redis_bench: connect: %s\n", c ? c->errstr : "no memory");
		return 1;
	}
	snprintf(k0, sizeof(k0), "%s:0", key);
	snprintf(k1, sizeof(k1), "%s:1", key);
	memset(payload, 'x', sizeof(payload));
	if (!strcmp(what, "sem-op") && n == 6) {
		long cnt = atol(pos[5]);
		double *one = calloc(cnt, sizeof(double)), *pair = calloc(cnt / 2 + 1, sizeof(double));

		run(c, "DEL %s", key, NULL, 0);
		for (long i = 0; i < cnt; i++) {
			double t0 = bench_now_us();

			run(c, (i & 1) ? "BLPOP %s 0" : "RPUSH %s 1", key, NULL, 0);
			one[i] = bench_now_us() - t0;
			if (i & 1)
				pair[i / 2] = one[i] + one[i - 1];
		}
		bench_latency("redis_sem_pv", pair, cnt / 2, "%s", bench_extra_args);
		bench_latency("redis_sem_op", one, cnt, "%s", bench_extra_args);
		return 0;
	}
	if (!strcmp(what, "sem-pingpong") && n == 7) {
		long cnt = atol(pos[5]);
		int a = pos[6][0] == 'a';
		double *s = calloc(cnt, sizeof(double));

		for (long i = 0; i < cnt; i++) {
			double t0 = bench_now_us();

			if (a) {
				run(c, "RPUSH %s 1", k0, NULL, 0);
				run(c, "BLPOP %s 0", k1, NULL, 0);
			} else {
				run(c, "BLPOP %s 0", k0, NULL, 0);
				run(c, "RPUSH %s 1", k1, NULL, 0);
			}
			s[i] = bench_now_us() - t0;
		}
		if (a)
			bench_latency("redis_sem_pingpong", s, cnt, "%s", bench_extra_args);
		return 0;
	}
	if ((!strcmp(what, "msg-rt") && n == 7) || (!strcmp(what, "msg-pingpong") && n == 8)) {
		int size = atoi(pos[5]), rt = n == 7, a = !rt && pos[7][0] == 'a';
		long cnt = atol(pos[6]);
		double *s = calloc(cnt, sizeof(double));
		char name[64];

		if (size <= 0 || size > (int)sizeof(payload))
			return 2;
		for (long i = 0; i < cnt; i++) {
			double t0 = bench_now_us();

			if (rt) {
				run(c, "LPUSH %s %b", k0, payload, size);
				run(c, "BRPOP %s 0", k0, NULL, 0);
			} else if (a) {
				run(c, "LPUSH %s %b", k0, payload, size);
				run(c, "BRPOP %s 0", k1, NULL, 0);
			} else {
				run(c, "BRPOP %s 0", k0, NULL, 0);
				run(c, "LPUSH %s %b", k1, payload, size);
			}
			s[i] = bench_now_us() - t0;
		}
		snprintf(name, sizeof(name), rt ? "redis_msg_rt_%d" : "redis_msg_pingpong_%d", size);
		if (rt || a)
			bench_latency(name, s, cnt, "size=%d %s", size, bench_extra_args);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of redis_bench.c\n");
	return 2;
}
