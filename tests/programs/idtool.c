// SPDX-License-Identifier: GPL-2.0
/*
 * idtool: SysV calls by id, for the cluster-wide id scenario. An ordinary
 * program that knows nothing of dipc: `get` prints the id a key has, and
 * every other command takes an id (as a program that was handed one in
 * argv, a file or a message would), never a key. Prints what happened and
 * exits 0 when the call succeeded, 1 otherwise.
 *
 *   idtool get sem|msg|shm KEY [SIZE]   create if needed (0666); prints the id
 *   idtool semop ID NUM DELTA           one semop (IPC_NOWAIT)
 *   idtool semval ID NUM                prints GETVAL
 *   idtool send ID TYPE TEXT            msgsnd (IPC_NOWAIT)
 *   idtool recv ID TYPE                 msgrcv (IPC_NOWAIT); prints the text
 *   idtool put ID OFFSET TEXT           shmat, copies TEXT (with its NUL) in
 *   idtool read ID OFFSET               shmat; prints the string there
 *   idtool stat sem|msg|shm ID          IPC_STAT; prints key and mode
 *   idtool rmid sem|msg|shm ID          IPC_RMID
 *   idtool times sem|msg|shm ID         IPC_STAT; prints the time stamps:
 *                                       otime ctime, stime rtime ctime, or
 *                                       atime dtime ctime
 *   idtool fill N                       up to N private semaphore sets, until
 *                                       the table is full; prints "made N"
 *   idtool unfill LO HI                 removes the private sets in table
 *                                       slots LO..HI (found with SEM_STAT)
 *   idtool set sem|msg|shm ID UID GID MODE
 *                                       IPC_SET: new owner, group and mode
 *                                       (octal)
 *   idtool slot sem|msg|shm ID          SEM_STAT, MSG_STAT or SHM_STAT of
 *                                       the id's table slot (what ipcs
 *                                       does without /proc): prints id, key,
 *                                       uid, gid, mode and nsems, qnum or
 *                                       nattch
 *
 * `idtool -u UID ...` runs the command as user and group UID (no
 * supplementary groups), as an unprivileged program would.
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
#include <grp.h>
#include <unistd.h>

static int result(long r)
{
	if (r < 0) {
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int get(const char *class, key_t key, long size)
{
	int id;

	if (!strcmp(class, "sem"))
		id = semget(key, size ? (int)size : 1, IPC_CREAT | 0666);
	else if (!strcmp(class, "msg"))
		id = msgget(key, IPC_CREAT | 0666);
	else
		id = shmget(key, size ? (size_t)size : 4096, IPC_CREAT | 0666);
	if (id < 0)
		return result(id);
	printf("%d\n", id);
	return 0;
}

static int stat_by_id(const char *class, int id)
{
	struct semid_ds sds;
	struct msqid_ds mds;
	struct shmid_ds hds;
	struct ipc_perm *p;
	long r;

	if (!strcmp(class, "sem")) {
		r = semctl(id, 0, IPC_STAT, &sds);
		p = &sds.sem_perm;
	} else if (!strcmp(class, "msg")) {
		r = msgctl(id, IPC_STAT, &mds);
		p = &mds.msg_perm;
	} else {
		r = shmctl(id, IPC_STAT, &hds);
		p = &hds.shm_perm;
	}
	if (r < 0)
		return result(r);
	printf("key %#x mode %o\n", (unsigned)p->__key, p->mode & 0777);
	return 0;
}

static int times(const char *class, int id)
{
	struct semid_ds sds;
	struct msqid_ds mds;
	struct shmid_ds hds;

	if (!strcmp(class, "sem")) {
		if (semctl(id, 0, IPC_STAT, &sds) < 0)
			return result(-1);
		printf("%ld %ld\n", (long)sds.sem_otime, (long)sds.sem_ctime);
	} else if (!strcmp(class, "msg")) {
		if (msgctl(id, IPC_STAT, &mds) < 0)
			return result(-1);
		printf("%ld %ld %ld\n", (long)mds.msg_stime, (long)mds.msg_rtime, (long)mds.msg_ctime);
	} else {
		if (shmctl(id, IPC_STAT, &hds) < 0)
			return result(-1);
		printf("%ld %ld %ld\n", (long)hds.shm_atime, (long)hds.shm_dtime, (long)hds.shm_ctime);
	}
	return 0;
}

static int set(const char *class, int id, unsigned uid, unsigned gid, unsigned mode)
{
	struct semid_ds sds;
	struct msqid_ds mds;
	struct shmid_ds hds;

	if (!strcmp(class, "sem")) {
		if (semctl(id, 0, IPC_STAT, &sds) < 0)
			return result(-1);
		sds.sem_perm.uid = uid;
		sds.sem_perm.gid = gid;
		sds.sem_perm.mode = mode;
		return result(semctl(id, 0, IPC_SET, &sds));
	}
	if (!strcmp(class, "msg")) {
		if (msgctl(id, IPC_STAT, &mds) < 0)
			return result(-1);
		mds.msg_perm.uid = uid;
		mds.msg_perm.gid = gid;
		mds.msg_perm.mode = mode;
		return result(msgctl(id, IPC_SET, &mds));
	}
	if (shmctl(id, IPC_STAT, &hds) < 0)
		return result(-1);
	hds.shm_perm.uid = uid;
	hds.shm_perm.gid = gid;
	hds.shm_perm.mode = mode;
	return result(shmctl(id, IPC_SET, &hds));
}

/* The *_STAT command on the slot of `id` (ids are seq * 32768 + slot). */
static int slot(const char *class, int id)
{
	struct semid_ds sds;
	struct msqid_ds mds;
	struct shmid_ds hds;
	struct ipc_perm *p;
	unsigned long n;
	int idx = id % 32768, r;

	if (!strcmp(class, "sem")) {
		r = semctl(idx, 0, SEM_STAT, &sds);
		p = &sds.sem_perm;
		n = sds.sem_nsems;
	} else if (!strcmp(class, "msg")) {
		r = msgctl(idx, MSG_STAT, &mds);
		p = &mds.msg_perm;
		n = mds.msg_qnum;
	} else {
		r = shmctl(idx, SHM_STAT, &hds);
		p = &hds.shm_perm;
		n = hds.shm_nattch;
	}
	if (r < 0)
		return result(r);
	printf("id %d key %#x uid %u gid %u mode %o %s %lu\n", r, (unsigned)p->__key, p->uid,
	       p->gid, p->mode & 0777,
	       !strcmp(class, "sem") ? "nsems" : !strcmp(class, "msg") ? "qnum" : "nattch", n);
	return 0;
}

static int rmid(const char *class, int id)
{
	if (!strcmp(class, "sem"))
		return result(semctl(id, 0, IPC_RMID));
	if (!strcmp(class, "msg"))
		return result(msgctl(id, IPC_RMID, NULL));
	return result(shmctl(id, IPC_RMID, NULL));
}

int main(int argc, char **argv)
{
	const char *cmd;
	struct {
		long mtype;
		char mtext[256];
	} m;

	if (argc > 3 && !strcmp(argv[1], "-u")) {
		unsigned id = (unsigned)atoi(argv[2]);

		if (setgroups(0, NULL) || setgid(id) || setuid(id)) {
			perror("idtool: -u");
			return 2;
		}
		argc -= 2;
		argv += 2;
	}
	cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "get") && (argc == 4 || argc == 5))
		return get(argv[2], (key_t)strtol(argv[3], NULL, 0),
			   argc == 5 ? strtol(argv[4], NULL, 0) : 0);
	if (!strcmp(cmd, "semop") && argc == 5) {
		struct sembuf b = { .sem_num = (unsigned short)atoi(argv[3]),
				    .sem_op = (short)atoi(argv[4]),
				    .sem_flg = IPC_NOWAIT };

		return result(semop(atoi(argv[2]), &b, 1));
	}
	if (!strcmp(cmd, "semval") && argc == 4) {
		int v = semctl(atoi(argv[2]), atoi(argv[3]), GETVAL);

		if (v < 0)
			return result(v);
		printf("%d\n", v);
		return 0;
	}
	if (!strcmp(cmd, "send") && argc == 5) {
		m.mtype = atol(argv[3]);
		snprintf(m.mtext, sizeof(m.mtext), "%s", argv[4]);
		return result(msgsnd(atoi(argv[2]), &m, strlen(m.mtext) + 1, IPC_NOWAIT));
	}
	if (!strcmp(cmd, "recv") && argc == 4) {
		long n = msgrcv(atoi(argv[2]), &m, sizeof(m.mtext), atol(argv[3]), IPC_NOWAIT);

		if (n < 0)
			return result(n);
		printf("%.*s\n", (int)n, m.mtext);
		return 0;
	}
	if ((!strcmp(cmd, "put") && argc == 5) || (!strcmp(cmd, "read") && argc == 4)) {
		char *p = shmat(atoi(argv[2]), NULL, 0);

		if (p == (void *)-1)
			return result(-1);
		p += atol(argv[3]);
		if (argc == 5)
			strcpy(p, argv[4]);
		printf("%s\n", argc == 5 ? "ok" : p);
		return shmdt(p - atol(argv[3])) < 0 ? result(-1) : 0;
	}
	if (!strcmp(cmd, "stat") && argc == 4)
		return stat_by_id(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "rmid") && argc == 4)
		return rmid(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "set") && argc == 7)
		return set(argv[2], atoi(argv[3]), (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
			   (unsigned)strtoul(argv[6], NULL, 8));
	if (!strcmp(cmd, "slot") && argc == 4)
		return slot(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "times") && argc == 4)
		return times(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "fill") && argc == 3) {
		int n = atoi(argv[2]), i;

		for (i = 0; i < n; i++)
			if (semget(IPC_PRIVATE, 1, 0600) < 0)
				break;
		printf("made %d\n", i);
		return i > 0 && (i == n || errno == ENOSPC) ? 0 : result(-1);
	}
	if (!strcmp(cmd, "unfill") && argc == 4) {
		int lo = atoi(argv[2]), hi = atoi(argv[3]), n = 0, i;
		struct semid_ds ds;

		for (i = lo; i <= hi; i++) {
			int id = semctl(i, 0, SEM_STAT, &ds);

			if (id >= 0 && ds.sem_perm.__key == IPC_PRIVATE &&
			    semctl(id, 0, IPC_RMID) == 0)
				n++;
		}
		printf("removed %d\n", n);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of idtool.c\n");
	return 2;
}
