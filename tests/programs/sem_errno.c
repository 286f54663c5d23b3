// SPDX-License-Identifier: GPL-2.0
/*
 * sem_errno: runs every semget/semop/semtimedop/semctl error case of
 * ipc/sem.c on one key and prints one line per case: what the call returned
 * and its errno name. Nothing in the output depends on ids, pids or times,
 * so the output on a plain local kernel and under dipc must be identical;
 * the cluster test diffs them.
 *
 *   sem_errno KEY [dipc]     ("dipc": pass IPC_DIPC in every semget)
 *
 * Run as root: it forks a child that drops to uid/gid 1000 for the
 * permission cases.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../../include/uapi/dipc.h"

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

/* -m32 builds: calls straight to the i386 entry points. */
#include "ipc32.h"

static int xflg;

static void show(const char *what, long r)
{
	printf("%-28s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
}

static void showv(const char *what, long r)
{
	if (r < 0)
		show(what, r);
	else
		printf("%-28s = %ld\n", what, r);
	fflush(stdout);
}

static void set_sem_limits(int msl, int mns, int opm, int mni)
{
	FILE *f = fopen("/proc/sys/kernel/sem", "w");

	if (!f || fprintf(f, "%d %d %d %d\n", msl, mns, opm, mni) < 0 || fclose(f)) {
		perror("/proc/sys/kernel/sem");
		exit(1);
	}
}

static long op1(int id, int num, int delta, int flg)
{
	struct sembuf b = { .sem_num = num, .sem_op = delta, .sem_flg = flg };

	return semop(id, &b, 1);
}

static void as_user(int id, key_t key)
{
	struct semid_ds ds;

	if (setgid(1000) || setuid(1000)) {
		perror("setuid");
		exit(1);
	}
	show("user get 0600", semget(key, 0, 0600 | xflg));
	show("user get 0", semget(key, 0, xflg) == id ? 0 : -1);
	show("user GETVAL", semctl(id, 0, GETVAL));
	show("user SETVAL", semctl(id, 0, SETVAL, (union semun){ .val = 1 }));
	show("user semop", op1(id, 0, 1, IPC_NOWAIT));
	show("user wait-zero", op1(id, 1, 0, IPC_NOWAIT));
	show("user IPC_STAT", semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds }));
	show("user IPC_SET", semctl(id, 0, IPC_SET, (union semun){ .buf = &ds }));
	show("user IPC_RMID", semctl(id, 0, IPC_RMID));
	exit(0);
}

int main(int argc, char **argv)
{
	key_t key = argc > 1 ? (key_t)strtol(argv[1], NULL, 0) : 0x5100;
	struct sembuf many[501];
	unsigned short vals[3];
	struct semid_ds ds;
	struct timespec ts;
	int id, id2, st;
	pid_t pid;

	if (argc > 2 && !strcmp(argv[2], "dipc"))
		xflg = IPC_DIPC;
	memset(many, 0, sizeof(many));

	show("get missing", semget(key, 1, xflg));
	show("get create nsems 0", semget(key, 0, IPC_CREAT | xflg));
	show("get create nsems 40000", semget(key, 40000, IPC_CREAT | xflg));
	show("get create nsems -1", semget(key, -1, IPC_CREAT | xflg));
	id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0644 | xflg);
	show("get create 3", id);
	if (id < 0)
		return 1;
	show("get excl", semget(key, 3, IPC_CREAT | IPC_EXCL | xflg));
	show("get more nsems", semget(key, 4, xflg));
	id2 = semget(key, 2, xflg);
	show("get fewer nsems same id", id2 == id ? 0 : (errno = EBADE, -1));
	show("get 0 same id", semget(key, 0, xflg) == id ? 0 : (errno = EBADE, -1));

	show("semop nsops 0", semop(id, many, 0));
	show("semop nsops 501", semop(id, many, 501));
	show("semop nsops 500", semop(id, many, 500));
	show("semop bad pointer", semop(id, (struct sembuf *)8, 1));
	/* E2BIG is decided before the copy that would fault. */
	show("semop 501 bad pointer", semop(id, (struct sembuf *)8, 501));
	{
		/* The namespace's SEMOPM (kernel.sem's third field) applies. */
		int msl, mns, opm, mni;
		FILE *f = fopen("/proc/sys/kernel/sem", "r");

		if (f && fscanf(f, "%d %d %d %d", &msl, &mns, &opm, &mni) == 4) {
			fclose(f);
			set_sem_limits(msl, mns, 2, mni);
			show("semop nsops 3 semopm 2", semop(id, many, 3));
			show("semop nsops 2 semopm 2", semop(id, many, 2));
			set_sem_limits(msl, mns, opm, mni);
		} else {
			printf("cannot read /proc/sys/kernel/sem\n");
			if (f)
				fclose(f);
		}
	}
	show("semop sem_num 3", op1(id, 3, 1, 0));
	show("semop P nowait", op1(id, 0, -1, IPC_NOWAIT));
	show("semop +32767", op1(id, 0, 32767, 0));
	show("semop +1 over max", op1(id, 0, 1, 0));
	show("semop zero nowait", op1(id, 0, 0, IPC_NOWAIT));
	show("semop zero ok", op1(id, 1, 0, IPC_NOWAIT));
	{
		struct sembuf two[2] = { { 1, 5, 0 }, { 0, 1, 0 } };

		show("semop atomic fail", semop(id, two, 2));
		showv("  sem1 after", semctl(id, 1, GETVAL));
		two[0].sem_op = 2;
		two[1].sem_num = 1;
		two[1].sem_op = -2;
		show("semop same sem twice", semop(id, two, 2));
		showv("  sem1 after", semctl(id, 1, GETVAL));
	}
	show("semop undo", op1(id, 2, 3, SEM_UNDO));
	showv("  sem2 after", semctl(id, 2, GETVAL));

	ts.tv_sec = 0;
	ts.tv_nsec = 2000000000L;
	{
		struct sembuf b = { 0, -1, 0 };

		show("timedop bad nsec", semtimedop(id, &b, 1, &ts));
		ts.tv_sec = -1;
		ts.tv_nsec = 0;
		show("timedop negative", semtimedop(id, &b, 1, &ts));
		ts.tv_sec = 0;
		ts.tv_nsec = 100000000;
		b.sem_num = 1;
		show("timedop timeout", semtimedop(id, &b, 1, &ts));
		show("timedop bad pointer", semtimedop(id, &b, 1, (struct timespec *)8));
		/* The timeout is copied before nsops is looked at. */
		show("timedop nsops 0 bad pointer", semtimedop(id, &b, 0, (struct timespec *)8));
		show("timedop 501 bad pointer", semtimedop(id, &b, 501, (struct timespec *)8));
		show("timedop bad sops and nsec", semtimedop(id, (struct sembuf *)8, 1, &(struct timespec){ 0, 2000000000L }));
		b.sem_op = 1;
		show("timedop no wait needed", semtimedop(id, &b, 1, &ts));
	}

	showv("GETVAL 0", semctl(id, 0, GETVAL));
	show("GETVAL semnum 3", semctl(id, 3, GETVAL));
	show("GETVAL semnum -1", semctl(id, -1, GETVAL));
	show("SETVAL -1", semctl(id, 0, SETVAL, (union semun){ .val = -1 }));
	show("SETVAL 32768", semctl(id, 0, SETVAL, (union semun){ .val = 32768 }));
	show("SETVAL semnum 9", semctl(id, 9, SETVAL, (union semun){ .val = 1 }));
	show("SETVAL 7", semctl(id, 0, SETVAL, (union semun){ .val = 7 }));
	showv("GETVAL 0", semctl(id, 0, GETVAL));
	showv("GETPID is me", semctl(id, 0, GETPID) == getpid());
	showv("GETNCNT", semctl(id, 0, GETNCNT));
	showv("GETZCNT", semctl(id, 0, GETZCNT));
	show("cmd 99", semctl(id, 0, 99));
	vals[0] = 1;
	vals[1] = 40000;
	vals[2] = 3;
	show("SETALL 40000", semctl(id, 0, SETALL, (union semun){ .array = vals }));
	vals[1] = 2;
	show("SETALL", semctl(id, 0, SETALL, (union semun){ .array = vals }));
	memset(vals, 0, sizeof(vals));
	show("GETALL", semctl(id, 0, GETALL, (union semun){ .array = vals }));
	printf("  values %u %u %u\n", vals[0], vals[1], vals[2]);
	show("GETALL bad pointer", semctl(id, 0, GETALL, (union semun){ .array = (void *)8 }));
	show("SETALL bad pointer", semctl(id, 0, SETALL, (union semun){ .array = (void *)8 }));

	memset(&ds, 0, sizeof(ds));
	show("IPC_STAT", semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds }));
	printf("  key %#x uid %u gid %u cuid %u mode %o nsems %lu otime>0 %d ctime>0 %d\n",
	       ds.sem_perm.__key, ds.sem_perm.uid, ds.sem_perm.gid, ds.sem_perm.cuid,
	       ds.sem_perm.mode & 0777, (unsigned long)ds.sem_nsems, ds.sem_otime > 0,
	       ds.sem_ctime > 0);
	show("IPC_STAT bad pointer", semctl(id, 0, IPC_STAT, (union semun){ .buf = (void *)8 }));
	ds.sem_perm.mode = 0604;
	show("IPC_SET", semctl(id, 0, IPC_SET, (union semun){ .buf = &ds }));
	semctl(id, 0, IPC_STAT, (union semun){ .buf = &ds });
	printf("  mode %o\n", ds.sem_perm.mode & 0777);

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		as_user(id, key);
	waitpid(pid, &st, 0);
	printf("user child exit %d\n", WEXITSTATUS(st));

	show("IPC_RMID", semctl(id, 0, IPC_RMID));
	show("GETVAL removed", semctl(id, 0, GETVAL));
	show("semop removed", op1(id, 0, 1, 0));
	show("get after rmid", semget(key, 0, xflg));
	return 0;
}
