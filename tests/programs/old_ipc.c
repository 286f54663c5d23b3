// SPDX-License-Identifier: GPL-2.0
/*
 * old_ipc: a 32-bit program (-m32) that uses the oldest SysV IPC ABI, the
 * ipc(2) multiplexer with *ctl commands WITHOUT IPC_64, whose structures
 * (the kernel's struct compat_*id_ds) have 16-bit owners, modes, counts and
 * pids and 32-bit times. It creates a set, a queue and a segment on KEY,
 * reads and changes them through those structures and prints one line per
 * call, with nothing that depends on ids, pids or times, so the output on
 * a plain local kernel and under dipc must be identical.
 *
 *   old_ipc KEY
 *
 * Run as root. Also checks that an owner above 65535 (set through the
 * IPC_64 structure) reads back as the overflow uid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __i386__
#error "old_ipc is a 32-bit program: build it with -m32"
#endif

#define IPC_CREAT 01000
#define IPC_RMID 0
#define IPC_SET 1
#define IPC_STAT 2
#define IPC_64 0x100
#define SEM_STAT 18
#define MSG_STAT 11
#define SHM_STAT 13

enum { SEMGET = 2, SEMCTL = 3, MSGSND = 11, MSGGET = 13, MSGCTL = 14,
       SHMGET = 23, SHMCTL = 24 };

/* The kernel's struct compat_ipc_perm and friends (ipc/util.h, ipc/sem.c, ...). */
struct old_perm {
	int32_t key;
	uint16_t uid, gid, cuid, cgid, mode, seq;
};

struct old_semid {
	struct old_perm perm;
	int32_t otime, ctime;
	uint32_t base, pending, pending_last, undo;
	uint16_t nsems;
};

struct old_msqid {
	struct old_perm perm;
	uint32_t first, last;
	int32_t stime, rtime, ctime;
	uint32_t lcbytes, lqbytes;
	uint16_t cbytes, qnum, qbytes, lspid, lrpid;
};

struct old_shmid {
	struct old_perm perm;
	int32_t segsz, atime, dtime, ctime;
	uint16_t cpid, lpid, nattch, unused;
	uint32_t unused2, unused3;
};

/* struct compat_ipc64_perm: what IPC_64 reads the new owner from. */
struct perm64 {
	int32_t key;
	uint32_t uid, gid, cuid, cgid;
	uint16_t mode, pad1, seq, pad2;
	uint32_t unused1, unused2;
};

static long ipc(long call, long first, long second, long third, void *ptr, long fifth)
{
	return syscall(117, call, first, second, third, ptr, fifth);
}

static void show(const char *what, long r)
{
	printf("%-24s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
}

static void perm(const struct old_perm *p, int id)
{
	printf("  key %#x uid %u gid %u cuid %u cgid %u mode %o seq-of-id %d\n", (unsigned)p->key,
	       p->uid, p->gid, p->cuid, p->cgid, p->mode & 0777, p->seq == (uint16_t)(id >> 15));
}

static void sem_stat(int id, int cmd, long idx)
{
	struct old_semid ds;
	union { int val; void *buf; } arg = { .buf = &ds };
	long r;

	memset(&ds, 0x55, sizeof(ds));
	r = ipc(SEMCTL, cmd == IPC_STAT ? id : idx, 0, cmd, &arg, 0);
	show(cmd == IPC_STAT ? "sem IPC_STAT" : "sem SEM_STAT", r < 0 ? r : 0);
	if (r < 0)
		return;
	if (cmd != IPC_STAT)
		printf("  returns the id %d\n", r == id);
	perm(&ds.perm, id);
	printf("  nsems %u otime %d ctime>0 %d base %u undo %u\n", ds.nsems, ds.otime,
	       ds.ctime > 0, ds.base, ds.undo);
}

static void msg_stat(int id, int cmd, long idx)
{
	struct old_msqid ds;
	long r;

	memset(&ds, 0x55, sizeof(ds));
	r = ipc(MSGCTL, cmd == IPC_STAT ? id : idx, cmd, 0, &ds, 0);
	show(cmd == IPC_STAT ? "msg IPC_STAT" : "msg MSG_STAT", r < 0 ? r : 0);
	if (r < 0)
		return;
	if (cmd != IPC_STAT)
		printf("  returns the id %d\n", r == id);
	perm(&ds.perm, id);
	printf("  qnum %u cbytes %u qbytes %u lspid-me %d lrpid %u stime>0 %d rtime %d ctime>0 %d first %u lcbytes %u\n",
	       ds.qnum, ds.cbytes, ds.qbytes, ds.lspid == (uint16_t)getpid(), ds.lrpid,
	       ds.stime > 0, ds.rtime, ds.ctime > 0, ds.first, ds.lcbytes);
}

static void shm_stat(int id, int cmd, long idx)
{
	struct old_shmid ds;
	long r;

	memset(&ds, 0x55, sizeof(ds));
	r = ipc(SHMCTL, cmd == IPC_STAT ? id : idx, cmd, 0, &ds, 0);
	show(cmd == IPC_STAT ? "shm IPC_STAT" : "shm SHM_STAT", r < 0 ? r : 0);
	if (r < 0)
		return;
	if (cmd != IPC_STAT)
		printf("  returns the id %d\n", r == id);
	perm(&ds.perm, id);
	printf("  segsz %d nattch %u cpid-me %d lpid %u atime %d ctime>0 %d unused %u %u %u\n",
	       ds.segsz, ds.nattch, ds.cpid == (uint16_t)getpid(), ds.lpid, ds.atime,
	       ds.ctime > 0, ds.unused, ds.unused2, ds.unused3);
}

int main(int argc, char **argv)
{
	key_t key = argc > 1 ? (key_t)strtol(argv[1], NULL, 0) : 0x5c20;
	struct { int32_t mtype; char text[8]; } m = { 3, "hello" };
	int semid, msqid, shmid;

	semid = ipc(SEMGET, key, 2, IPC_CREAT | 0640, NULL, 0);
	msqid = ipc(MSGGET, key, IPC_CREAT | 0640, 0, NULL, 0);
	shmid = ipc(SHMGET, key, 8192, IPC_CREAT | 0640, NULL, 0);
	show("semget", semid);
	show("msgget", msqid);
	show("shmget", shmid);
	if (semid < 0 || msqid < 0 || shmid < 0)
		return 1;
	show("msgsnd 5 bytes", ipc(MSGSND, msqid, 5, 0, &m, 0));

	sem_stat(semid, IPC_STAT, 0);
	sem_stat(semid, SEM_STAT, semid & 0x7fff);
	msg_stat(msqid, IPC_STAT, 0);
	msg_stat(msqid, MSG_STAT, msqid & 0x7fff);
	shm_stat(shmid, IPC_STAT, 0);
	shm_stat(shmid, SHM_STAT, shmid & 0x7fff);

	/* IPC_SET through the old structures: 16-bit owner and mode. */
	{
		struct old_semid s = { .perm = { .uid = 1001, .gid = 1002, .mode = 0604 } };
		union { int val; void *buf; } arg = { .buf = &s };
		struct old_msqid q = { .perm = { .uid = 1003, .gid = 1004, .mode = 0602 },
				       .qbytes = 12345 };
		struct old_shmid h = { .perm = { .uid = 1005, .gid = 1006, .mode = 0660 } };

		show("sem IPC_SET", ipc(SEMCTL, semid, 0, IPC_SET, &arg, 0));
		show("msg IPC_SET", ipc(MSGCTL, msqid, IPC_SET, 0, &q, 0));
		show("shm IPC_SET", ipc(SHMCTL, shmid, IPC_SET, 0, &h, 0));
		show("sem IPC_SET bad pointer",
		     ipc(SEMCTL, semid, 0, IPC_SET, &(union { int v; void *b; }){ .b = (void *)8 }, 0));
		show("msg IPC_SET bad pointer", ipc(MSGCTL, msqid, IPC_SET, 0, (void *)8, 0));
	}
	sem_stat(semid, IPC_STAT, 0);
	msg_stat(msqid, IPC_STAT, 0);
	shm_stat(shmid, IPC_STAT, 0);

	/* An owner above 65535 (through IPC_64) shows as the overflow uid. */
	{
		struct perm64 p = { .uid = 70000, .gid = 70001, .mode = 0644 };
		char big[128];

		memset(big, 0, sizeof(big));
		memcpy(big, &p, sizeof(p));
		show("msg IPC_SET 64 uid 70000",
		     ipc(MSGCTL, msqid, IPC_SET | IPC_64, 0, big, 0));
	}
	msg_stat(msqid, IPC_STAT, 0);

	show("sem IPC_RMID", ipc(SEMCTL, semid, 0, IPC_RMID, &(int){ 0 }, 0));
	show("msg IPC_RMID", ipc(MSGCTL, msqid, IPC_RMID, 0, NULL, 0));
	show("shm IPC_RMID", ipc(SHMCTL, shmid, IPC_RMID, 0, NULL, 0));
	show("sem IPC_STAT removed", ipc(SEMCTL, semid, 0, IPC_STAT, &(int){ 0 }, 0));
	return 0;
}
