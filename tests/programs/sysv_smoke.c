// SPDX-License-Identifier: GPL-2.0
/*
 * An ordinary SysV IPC program: one shared memory segment, one semaphore set
 * and one message queue, each created, used, checked and removed. Exits 0 when
 * every call behaved as the kernel documents, 1 otherwise.
 *
 *   sysv_smoke [KEY]    (default: IPC_PRIVATE)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", __FILE__, \
				__LINE__, #cond, errno, strerror(errno));        \
			failures++;                                              \
		}                                                                \
	} while (0)

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msg {
	long mtype;
	char mtext[64];
};

int main(int argc, char **argv)
{
	key_t key = argc > 1 ? (key_t)strtol(argv[1], NULL, 0) : IPC_PRIVATE;

	/* shared memory */
	int shmid = shmget(key, 8192, IPC_CREAT | 0600);
	CHECK(shmid >= 0);
	char *p = shmat(shmid, NULL, 0);
	CHECK(p != (char *)-1);
	if (p != (char *)-1) {
		strcpy(p, "hello dipc");
		CHECK(strcmp(p, "hello dipc") == 0);
		struct shmid_ds ds;
		CHECK(shmctl(shmid, IPC_STAT, &ds) == 0);
		CHECK(ds.shm_segsz == 8192 && ds.shm_nattch == 1);
		CHECK(shmdt(p) == 0);
	}
	CHECK(shmctl(shmid, IPC_RMID, NULL) == 0);
	errno = 0;
	CHECK(shmdt((void *)4096) == -1 && errno == EINVAL);

	/* semaphores */
	int semid = semget(key, 2, IPC_CREAT | 0600);
	CHECK(semid >= 0);
	union semun arg = { .val = 1 };
	CHECK(semctl(semid, 0, SETVAL, arg) == 0);
	struct sembuf ops[2] = { { 0, -1, 0 }, { 1, 1, 0 } };
	/* glibc implements semop() with the semtimedop syscall: also make the
	 * semop syscall itself, as other C libraries do. */
	CHECK(semop(semid, ops, 2) == 0);
	struct sembuf undo_ops[2] = { { 0, 1, 0 }, { 1, -1, 0 } };
	CHECK(syscall(SYS_semop, semid, undo_ops, 2) == 0);
	CHECK(semop(semid, ops, 2) == 0);
	CHECK(semctl(semid, 0, GETVAL) == 0);
	CHECK(semctl(semid, 1, GETVAL) == 1);
	struct sembuf wait_op = { 0, -1, IPC_NOWAIT };
	errno = 0;
	CHECK(semop(semid, &wait_op, 1) == -1 && errno == EAGAIN);
	struct timespec ts = { 0, 1000000 };
	errno = 0;
	CHECK(semtimedop(semid, &(struct sembuf){ 0, -1, 0 }, 1, &ts) == -1 && errno == EAGAIN);
	CHECK(semctl(semid, 0, IPC_RMID) == 0);

	/* message queues */
	int msqid = msgget(key, IPC_CREAT | 0600);
	CHECK(msqid >= 0);
	struct msg m = { .mtype = 7 };
	strcpy(m.mtext, "a message");
	CHECK(msgsnd(msqid, &m, sizeof(m.mtext), 0) == 0);
	struct msqid_ds qds;
	CHECK(msgctl(msqid, IPC_STAT, &qds) == 0 && qds.msg_qnum == 1);
	memset(&m, 0, sizeof(m));
	CHECK(msgrcv(msqid, &m, sizeof(m.mtext), 7, 0) == sizeof(m.mtext));
	CHECK(m.mtype == 7 && strcmp(m.mtext, "a message") == 0);
	errno = 0;
	CHECK(msgrcv(msqid, &m, sizeof(m.mtext), 0, IPC_NOWAIT) == -1 && errno == ENOMSG);
	CHECK(msgctl(msqid, IPC_RMID, NULL) == 0);

	if (failures) {
		fprintf(stderr, "sysv_smoke: %d check(s) failed\n", failures);
		return 1;
	}
	printf("sysv_smoke: ok\n");
	return 0;
}
