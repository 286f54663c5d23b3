// SPDX-License-Identifier: GPL-2.0
/*
 * semtool: one SysV semaphore operation per run, for cluster scenarios. An
 * ordinary program: it knows nothing of dipc (the key policy makes its keys
 * distributed), except `dcreate`, which passes IPC_DIPC from
 * include/uapi/dipc.h. Prints what happened; exits 0 when the outcome is the
 * one asked for (see each command), 1 otherwise.
 *
 *   semtool create KEY NSEMS [VAL...]   create (IPC_EXCL) and SETALL
 *   semtool dcreate KEY NSEMS           create with IPC_DIPC
 *   semtool open KEY                    semget(KEY, 0, 0) succeeds
 *   semtool expect KEY NUM VAL          GETVAL == VAL
 *   semtool noent KEY                   semget(KEY, 0, 0) fails with ENOENT
 *   semtool op KEY NUM DELTA [undo]     one semop, blocking
 *   semtool hold KEY                    P with SEM_UNDO, print "held", pause
 *   semtool p-exit KEY                  P with SEM_UNDO, then exit
 *   semtool wait KEY ERRNO              blocking P must fail with ERRNO
 *   semtool sigwait KEY                 P interrupted by SIGALRM after 1 s: EINTR
 *   semtool timed KEY MS                semtimedop P times out: EAGAIN
 *   semtool rmid KEY                    IPC_RMID
 *   semtool mutex KEY N                 N x { P(0); v=GETVAL(1); SETVAL(1,v+1); V(0) }
 *   semtool produce KEY N               N items through sems 0 (empty) 1 (full) 2 (item)
 *   semtool consume KEY N               takes N items, checks they come 0..N-1
 *   semtool ncnt KEY NUM VAL            GETNCNT == VAL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>
#include "../../include/uapi/dipc.h"

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int die(const char *what)
{
	printf("FAIL %s: %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	exit(1);
}

static int get(const char *key)
{
	int id = semget((key_t)strtol(key, NULL, 0), 0, 0);

	if (id < 0)
		die("semget");
	return id;
}

static int op(int id, int num, int delta, int flg)
{
	struct sembuf b = { .sem_num = num, .sem_op = delta, .sem_flg = flg };

	return semop(id, &b, 1);
}

static void on_alarm(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	key_t key = argc > 2 ? (key_t)strtol(argv[2], NULL, 0) : 0;
	int id, i, n;

	if (argc < 3) {
		fprintf(stderr, "usage: semtool CMD KEY ... (see the source)\n");
		return 2;
	}
	if (!strcmp(cmd, "create") || !strcmp(cmd, "dcreate")) {
		int nsems = atoi(argv[3]);
		int flg = IPC_CREAT | IPC_EXCL | 0666;
		unsigned short vals[64] = { 0 };

		if (!strcmp(cmd, "dcreate"))
			flg |= IPC_DIPC;
		id = semget(key, nsems, flg);
		if (id < 0)
			die("semget");
		for (i = 0; i < nsems && i + 4 < argc && i < 64; i++)
			vals[i] = atoi(argv[i + 4]);
		if (semctl(id, 0, SETALL, (union semun){ .array = vals }) < 0)
			die("SETALL");
		printf("created id %d\n", id);
		return 0;
	}
	if (!strcmp(cmd, "noent")) {
		if (semget(key, 0, 0) >= 0 || errno != ENOENT)
			die("semget should fail with ENOENT");
		printf("ENOENT\n");
		return 0;
	}
	id = get(argv[2]);
	if (!strcmp(cmd, "open")) {
		printf("id %d\n", id);
		return 0;
	}
	if (!strcmp(cmd, "expect") || !strcmp(cmd, "ncnt")) {
		int want = atoi(argv[4]);
		int got = semctl(id, atoi(argv[3]), !strcmp(cmd, "expect") ? GETVAL : GETNCNT);

		printf("%s %d (want %d)\n", cmd, got, want);
		return got == want ? 0 : 1;
	}
	if (!strcmp(cmd, "op")) {
		int undo = argc > 5 && !strcmp(argv[5], "undo") ? SEM_UNDO : 0;

		if (op(id, atoi(argv[3]), atoi(argv[4]), undo) < 0)
			die("semop");
		printf("done\n");
		return 0;
	}
	if (!strcmp(cmd, "hold") || !strcmp(cmd, "p-exit")) {
		if (op(id, 0, -1, SEM_UNDO) < 0)
			die("semop");
		printf("held\n");
		fflush(stdout);
		if (!strcmp(cmd, "hold"))
			for (;;)
				pause();
		return 0;
	}
	if (!strcmp(cmd, "wait")) {
		if (op(id, 0, -1, 0) == 0) {
			printf("FAIL: semop succeeded\n");
			return 1;
		}
		printf("%s\n", strerrorname_np(errno));
		return strcmp(strerrorname_np(errno), argv[3]) ? 1 : 0;
	}
	if (!strcmp(cmd, "sigwait")) {
		struct sigaction sa = { .sa_handler = on_alarm };

		sigaction(SIGALRM, &sa, NULL);
		alarm(1);
		if (op(id, 0, -1, 0) == 0) {
			printf("FAIL: semop succeeded\n");
			return 1;
		}
		printf("%s\n", strerrorname_np(errno));
		return errno == EINTR ? 0 : 1;
	}
	if (!strcmp(cmd, "timed")) {
		long ms = atol(argv[3]);
		struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
		struct sembuf b = { .sem_num = 0, .sem_op = -1 };
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (semtimedop(id, &b, 1, &ts) == 0) {
			printf("FAIL: semtimedop succeeded\n");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		n = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		printf("%s after %d ms\n", strerrorname_np(errno), n);
		return errno == EAGAIN && n >= ms ? 0 : 1;
	}
	if (!strcmp(cmd, "rmid")) {
		if (semctl(id, 0, IPC_RMID) < 0)
			die("IPC_RMID");
		printf("removed\n");
		return 0;
	}
	n = argc > 3 ? atoi(argv[3]) : 0;
	if (!strcmp(cmd, "mutex")) {
		for (i = 0; i < n; i++) {
			int v;

			if (op(id, 0, -1, SEM_UNDO) < 0)
				die("P");
			v = semctl(id, 1, GETVAL);
			if (v < 0 || semctl(id, 1, SETVAL, (union semun){ .val = v + 1 }) < 0)
				die("GETVAL/SETVAL");
			if (op(id, 0, 1, SEM_UNDO) < 0)
				die("V");
		}
		printf("mutex: %d rounds\n", n);
		return 0;
	}
	if (!strcmp(cmd, "produce")) {
		for (i = 0; i < n; i++) {
			if (op(id, 0, -1, 0) < 0)
				die("P(empty)");
			if (semctl(id, 2, SETVAL, (union semun){ .val = i }) < 0)
				die("SETVAL(item)");
			if (op(id, 1, 1, 0) < 0)
				die("V(full)");
		}
		printf("produced %d\n", n);
		return 0;
	}
	if (!strcmp(cmd, "consume")) {
		for (i = 0; i < n; i++) {
			int v;

			if (op(id, 1, -1, 0) < 0)
				die("P(full)");
			v = semctl(id, 2, GETVAL);
			if (v != i) {
				printf("FAIL: item %d, expected %d\n", v, i);
				return 1;
			}
			if (op(id, 0, 1, 0) < 0)
				die("V(empty)");
		}
		printf("consumed %d in order\n", n);
		return 0;
	}
	fprintf(stderr, "semtool: unknown command %s\n", cmd);
	return 2;
}
