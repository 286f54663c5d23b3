// SPDX-License-Identifier: GPL-2.0
/*
 * shm_errno: runs the shmget/shmat/shmdt/shmctl cases of ipc/shm.c on one
 * key and prints one line per case: what the call returned (a value where
 * it means something) and its errno name. Nothing in the output depends on
 * ids, pids, addresses or times, so the output on a plain local kernel and
 * under dipc must be identical; the cluster test diffs them.
 *
 *   shm_errno KEY [dipc]     ("dipc": pass IPC_DIPC in every shmget)
 *
 * Run as root: it forks children that drop to uid/gid 1000 for the
 * permission cases.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../include/uapi/dipc.h"
/* -m32 builds: calls straight to the i386 entry points. */
#include "ipc32.h"

static int xflg;
static key_t key;

static void show(const char *what, long r)
{
	printf("%-36s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
}

static void stat_line(const char *what, int id)
{
	struct shmid_ds ds;

	if (shmctl(id, IPC_STAT, &ds) < 0) {
		show(what, -1);
		return;
	}
	printf("%-36s segsz %zu nattch %lu mode %o dest %d key-same %d atime %d dtime %d "
	       "ctime %d cpid %d lpid %d\n",
	       what, ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777,
	       !!(ds.shm_perm.mode & SHM_DEST), ds.shm_perm.__key == key, ds.shm_atime != 0,
	       ds.shm_dtime != 0, ds.shm_ctime != 0, ds.shm_cpid != 0, ds.shm_lpid != 0);
	fflush(stdout);
}

/* Runs f(id) in a child with uid/gid 1000; prints its line. */
static void as_user(const char *what, int id, long (*f)(int))
{
	pid_t c = fork();

	if (c == 0) {
		if (setgid(1000) || setuid(1000))
			_exit(99);
		show(what, f(id));
		_exit(0);
	}
	waitpid(c, NULL, 0);
}

static long u_attach(int id)
{
	void *p = shmat(id, NULL, 0);

	return p == (void *)-1 ? -1 : 0;
}

static long u_attach_ro(int id)
{
	void *p = shmat(id, NULL, SHM_RDONLY);

	return p == (void *)-1 ? -1 : 0;
}

static long u_stat(int id)
{
	struct shmid_ds ds;

	return shmctl(id, IPC_STAT, &ds);
}

static long u_rmid(int id)
{
	return shmctl(id, IPC_RMID, NULL);
}

static long u_set(int id)
{
	struct shmid_ds ds;

	memset(&ds, 0, sizeof(ds));
	ds.shm_perm.uid = 1000;
	ds.shm_perm.gid = 1000;
	ds.shm_perm.mode = 0666;
	return shmctl(id, IPC_SET, &ds);
}

static long u_lock(int id)
{
	return shmctl(id, SHM_LOCK, NULL);
}

static long u_get(int id)
{
	(void)id;
	return shmget(key, 0, 0600 | xflg);
}

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static void rdonly_store(void *q)
{
	signal(SIGSEGV, on_segv);
	if (sigsetjmp(jb, 1) == 0) {
		((volatile char *)q)[0] = 1;
		printf("%-36s no fault\n", "rdonly store");
	} else {
		printf("%-36s SIGSEGV\n", "rdonly store");
	}
	signal(SIGSEGV, SIG_DFL);
}

static long at(int id, const void *addr, int flg)
{
	void *p = shmat(id, addr, flg);

	if (p == (void *)-1)
		return -1;
	shmdt(p);
	return 0;
}

int main(int argc, char **argv)
{
	int id, id2;
	long r;
	struct shmid_ds ds;
	char *p;

	if (argc < 2)
		return 2;
	key = (key_t)strtoul(argv[1], NULL, 0);
	if (argc > 2 && !strcmp(argv[2], "dipc"))
		xflg = IPC_DIPC;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Leftovers of an earlier run. */
	id = shmget(key, 0, xflg);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);

	show("get missing", shmget(key, 4096, 0600 | xflg));
	show("get size 0 create", shmget(key, 0, IPC_CREAT | 0600 | xflg));
	id = shmget(key, 3 * 4096 + 100, IPC_CREAT | IPC_EXCL | 0640 | xflg);
	show("get create", id);
	show("get excl again", shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600 | xflg));
	show("get bigger", shmget(key, 4 * 4096, 0600 | xflg));
	show("get smaller", shmget(key, 4096, 0600 | xflg) == id ? 0 : -1);
	show("get size 0", shmget(key, 0, 0600 | xflg) == id ? 0 : -1);
	as_user("user get 0600", id, u_get);
	stat_line("stat new", id);

	/* Attach and addresses. */
	show("attach", (p = shmat(id, NULL, 0)) == (void *)-1 ? -1 : 0);
	stat_line("stat attached", id);
	strcpy(p + 5000, "hello");
	show("attach unaligned", at(id, (void *)0x7f0000001234ul, 0));
	show("attach unaligned rnd", at(id, (void *)0x7f0000001234ul, SHM_RND));
	show("attach remap no addr", at(id, NULL, SHM_REMAP));
	show("attach bad id", at(id + 1, NULL, 0));
	show("attach -1", at(-1, NULL, 0));
	void *q = shmat(id, NULL, SHM_RDONLY);
	show("attach rdonly", q == (void *)-1 ? -1 : 0);
	printf("%-36s %s\n", "rdonly read", strcmp((char *)q + 5000, "hello") ? "bad" : "hello");
	rdonly_store(q);
	stat_line("stat two attaches", id);
	show("detach rdonly", shmdt(q));
	show("detach again", shmdt(q));
	show("detach unaligned", shmdt(p + 1));
	show("detach not attached", shmdt((void *)0x7f0000000000ul));

	/* Permissions. */
	as_user("user attach 0640", id, u_attach);
	as_user("user attach rdonly 0640", id, u_attach_ro);
	as_user("user stat 0640", id, u_stat);
	as_user("user rmid", id, u_rmid);
	as_user("user set", id, u_set);

	/* IPC_SET. */
	memset(&ds, 0, sizeof(ds));
	show("stat", shmctl(id, IPC_STAT, &ds));
	ds.shm_perm.mode = 0604;
	show("set 0604", shmctl(id, IPC_SET, &ds));
	stat_line("stat after set", id);
	as_user("user attach 0604", id, u_attach);
	as_user("user attach rdonly 0604", id, u_attach_ro);
	ds.shm_perm.uid = (uid_t)-1;
	show("set uid -1", shmctl(id, IPC_SET, &ds));
	show("stat bad buf", shmctl(id, IPC_STAT, (struct shmid_ds *)8));
	show("set bad buf", shmctl(id, IPC_SET, (struct shmid_ds *)8));
	show("bad cmd", shmctl(id, 77, &ds));
	show("stat bad id", shmctl(id + 1, IPC_STAT, &ds));

	/* SHM_LOCK/SHM_UNLOCK act on the local shadow, as locally. */
	show("shm lock", shmctl(id, SHM_LOCK, NULL));
	show("shm unlock", shmctl(id, SHM_UNLOCK, NULL));
	as_user("user shm lock", id, u_lock);

	/* IPC_RMID while attached: SHM_DEST, key free, segment still usable. */
	show("rmid attached", shmctl(id, IPC_RMID, NULL));
	stat_line("stat dest", id);
	printf("%-36s %s\n", "read after rmid", strcmp(p + 5000, "hello") ? "bad" : "hello");
	show("get after rmid", shmget(key, 0, 0600 | xflg));
	id2 = shmget(key, 4096, IPC_CREAT | 0600 | xflg);
	show("get new after rmid", id2);
	show("new is other", id2 != id ? 0 : -1);
	show("detach last", shmdt(p));
	r = shmctl(id, IPC_STAT, &ds);
	show("stat destroyed", r);
	show("rmid new", shmctl(id2, IPC_RMID, NULL));
	show("stat new destroyed", shmctl(id2, IPC_STAT, &ds));
	show("get gone", shmget(key, 0, 0600 | xflg));
	return 0;
}
