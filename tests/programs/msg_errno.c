// SPDX-License-Identifier: GPL-2.0
/*
 * msg_errno: runs the msgget/msgsnd/msgrcv/msgctl cases of ipc/msg.c on one
 * key and prints one line per case: what the call returned (a value where
 * it means something) and its errno name. Nothing in the output depends on
 * ids, pids or times, so the output on a plain local kernel and under dipc
 * must be identical; the cluster test diffs them. The limits it prints
 * (msgmax, msgmnb) come from IPC_INFO: locally the node's sysctls, under
 * dipc the referee's configuration.
 *
 *   msg_errno KEY [dipc]     ("dipc": pass IPC_DIPC in every msgget)
 *
 * Run as root: it forks children that drop to uid/gid 1000 for the
 * permission cases, and children that block, for the wake-up cases.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../../include/uapi/dipc.h"
/* -m32 builds: calls straight to the i386 entry points. */
#include "ipc32.h"

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

struct buf {
	long mtype;
	char mtext[65536];
};

static int xflg;
static struct buf b;

static void show(const char *what, long r)
{
	printf("%-32s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
}

static void showv(const char *what, long r)
{
	if (r < 0)
		show(what, r);
	else
		printf("%-32s = %ld\n", what, r);
	fflush(stdout);
}

static long snd(int id, long type, const char *text, size_t len, int flg)
{
	b.mtype = type;
	memcpy(b.mtext, text, len);
	return msgsnd(id, &b, len, flg);
}

/* Receives and prints what came: length, type and text. */
static void rcv(const char *what, int id, size_t sz, long typ, int flg)
{
	long r;

	memset(&b, 0, sizeof(b));
	r = msgrcv(id, &b, sz, typ, flg);
	if (r < 0) {
		show(what, r);
		return;
	}
	printf("%-32s = %ld type %ld \"%.*s\"\n", what, r, b.mtype, (int)r, b.mtext);
	fflush(stdout);
}

static void stat_line(int id)
{
	struct msqid_ds ds;

	memset(&ds, 0, sizeof(ds));
	if (msgctl(id, IPC_STAT, &ds) < 0) {
		show("  IPC_STAT", -1);
		return;
	}
	printf("  qnum %lu cbytes %lu qbytes %lu mode %o uid %u cuid %u "
	       "lspid-me %d lrpid-me %d stime>0 %d rtime>0 %d ctime>0 %d\n",
	       (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
	       (unsigned long)ds.msg_qbytes, ds.msg_perm.mode & 0777, ds.msg_perm.uid,
	       ds.msg_perm.cuid, ds.msg_lspid == getpid(), ds.msg_lrpid == getpid(),
	       ds.msg_stime > 0, ds.msg_rtime > 0, ds.msg_ctime > 0);
	fflush(stdout);
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void as_user(int id, key_t key)
{
	struct msqid_ds ds;

	if (setgid(1000) || setuid(1000)) {
		perror("setuid");
		exit(1);
	}
	show("user get 0600", msgget(key, 0600 | xflg));
	show("user get 0 same id", msgget(key, xflg) == id ? 0 : (errno = EBADE, -1));
	show("user send", snd(id, 1, "u", 1, IPC_NOWAIT));
	rcv("user recv", id, 100, 0, IPC_NOWAIT);
	show("user IPC_STAT", msgctl(id, IPC_STAT, &ds));
	show("user MSG_STAT_ANY", msgctl(id & 0x7fff, MSG_STAT_ANY, &ds) == id ? 0 : -1);
	show("user MSG_STAT", msgctl(id & 0x7fff, MSG_STAT, &ds));
	memset(&ds, 0, sizeof(ds));
	ds.msg_qbytes = 100;
	show("user IPC_SET", msgctl(id, IPC_SET, &ds));
	show("user IPC_RMID", msgctl(id, IPC_RMID, NULL));
	exit(0);
}

/* A child that blocks in msgrcv (or msgsnd) and prints what it got. */
static pid_t blocked_child(int id, int sender, size_t sz)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (sender)
			show("  child send returned", snd(id, 3, "late", 4, 0));
		else
			rcv("  child recv returned", id, sz, 0, 0);
		exit(0);
	}
	/* Long enough to be asleep at the referee, even under TCG. */
	usleep(400000);
	return pid;
}

/* Waits for a child, keeping errno for the line printed after. */
static void reap(pid_t pid)
{
	int e = errno, st;

	waitpid(pid, &st, 0);
	errno = e;
}

int main(int argc, char **argv)
{
	key_t key = argc > 1 ? (key_t)strtol(argv[1], NULL, 0) : 0x4100;
	struct sigaction sa;
	struct msqid_ds ds;
	struct msginfo info;
	int id, st, msgmax, msgmnb, n;
	char *page;
	pid_t pid;

	if (argc > 2 && !strcmp(argv[2], "dipc"))
		xflg = IPC_DIPC;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: a signal gives EINTR */
	sigaction(SIGALRM, &sa, NULL);
	page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(page + 4096, 4096);

	show("get missing", msgget(key, xflg));
	id = msgget(key, IPC_CREAT | IPC_EXCL | 0644 | xflg);
	show("get create", id);
	if (id < 0)
		return 1;
	show("get excl", msgget(key, IPC_CREAT | IPC_EXCL | xflg));
	show("get creat same id", msgget(key, IPC_CREAT | 0600 | xflg) == id ? 0 : (errno = EBADE, -1));
	stat_line(id);

	memset(&info, 0, sizeof(info));
	n = msgctl(id, IPC_INFO, (struct msqid_ds *)&info);
	show("IPC_INFO", n);
	printf("  msgmax %d msgmnb %d msgmni %d msgssz %d msgseg %u msgpool %d msgmap %d msgtql %d\n",
	       info.msgmax, info.msgmnb, info.msgmni, info.msgssz, info.msgseg, info.msgpool,
	       info.msgmap, info.msgtql);
	msgmax = info.msgmax;
	msgmnb = info.msgmnb;
	memset(&info, 0, sizeof(info));
	show("MSG_INFO", msgctl(id, MSG_INFO, (struct msqid_ds *)&info));
	printf("  msgmax %d msgmnb %d\n", info.msgmax, info.msgmnb);
	show("IPC_INFO bad pointer", msgctl(id, IPC_INFO, (struct msqid_ds *)8));

	/* msgsnd, in ksys_msgsnd()'s order. */
	show("send bad pointer", msgsnd(id, (void *)8, 1, 0));
	b.mtype = 1;
	show("send size msgmax+1", msgsnd(id, &b, msgmax + 1, 0));
	show("send size -1", msgsnd(id, &b, (size_t)-1, 0));
	show("send type 0", snd(id, 0, "x", 1, 0));
	show("send type -3", snd(id, -3, "x", 1, 0));
	*(long *)(page + 4096 - sizeof(long)) = 1;
	show("send text unreadable", msgsnd(id, page + 4096 - sizeof(long), 10, 0));
	show("send bad type and pointer", msgsnd(id, page + 4096, 1, 0));
	show("send empty", snd(id, 2, "", 0, 0));
	show("send msgmax", msgsnd(id, &b, msgmax, IPC_NOWAIT));
	stat_line(id);
	rcv("recv empty one", id, 10, 2, IPC_NOWAIT);
	rcv("recv too small", id, 10, 0, IPC_NOWAIT);
	n = msgrcv(id, &b, msgmax, 0, IPC_NOWAIT);
	showv("recv msgmax", n);

	/* Selection: types 3 1 2 1 5. */
	show("send 3 a", snd(id, 3, "a", 1, 0));
	show("send 1 b", snd(id, 1, "b", 1, 0));
	show("send 2 c", snd(id, 2, "c", 1, 0));
	show("send 1 d", snd(id, 1, "d", 1, 0));
	show("send 5 e", snd(id, 5, "eeeeeeee", 8, 0));
	stat_line(id);
	rcv("recv MSG_COPY nowait", id, 100, 1, MSG_COPY | IPC_NOWAIT);
	rcv("recv MSG_COPY wait", id, 100, 1, MSG_COPY);
	rcv("recv MSG_COPY except", id, 100, 1, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT);
	rcv("recv size -1", id, (size_t)-1, 0, IPC_NOWAIT);
	rcv("recv type 4 none", id, 100, 4, IPC_NOWAIT);
	rcv("recv type 2", id, 100, 2, IPC_NOWAIT);
	rcv("recv except 3", id, 100, 3, MSG_EXCEPT | IPC_NOWAIT);
	rcv("recv any", id, 100, 0, IPC_NOWAIT);
	rcv("recv type <= 4", id, 100, -4, IPC_NOWAIT);
	rcv("recv 5 too small", id, 3, 5, IPC_NOWAIT);
	rcv("recv 5 noerror", id, 3, 5, MSG_NOERROR | IPC_NOWAIT);
	rcv("recv empty queue", id, 100, 0, IPC_NOWAIT);
	show("send f", snd(id, 6, "ffff", 4, 0));
	show("recv bad pointer", msgrcv(id, (void *)8, 100, 0, IPC_NOWAIT));
	stat_line(id);
	show("send g", snd(id, 6, "gggg", 4, 0));
	rcv("recv id -1", -1, 100, 0, IPC_NOWAIT);
	n = msgrcv(id, page + 4096 - sizeof(long), 100, 0, IPC_NOWAIT);
	show("recv text unwritable", n);
	stat_line(id);

	/* Blocking, and the signals that end it. */
	alarm(1);
	rcv("recv blocks, SIGALRM", id, 100, 0, 0);
	memset(&ds, 0, sizeof(ds));
	msgctl(id, IPC_STAT, &ds);
	ds.msg_qbytes = 10;
	show("IPC_SET qbytes 10", msgctl(id, IPC_SET, &ds));
	show("send 10 fits", snd(id, 1, "0123456789", 10, 0));
	show("send full nowait", snd(id, 1, "x", 1, IPC_NOWAIT));
	alarm(1);
	show("send full, SIGALRM", snd(id, 1, "x", 1, 0));
	/* A sleeping sender is released by a receive. */
	pid = blocked_child(id, 1, 0);
	n = msgrcv(id, &b, 100, 0, IPC_NOWAIT);
	reap(pid);
	showv("recv frees room", n);
	rcv("recv late", id, 100, 0, IPC_NOWAIT);
	/* A sleeping receiver with a small buffer gets E2BIG; the message stays. */
	pid = blocked_child(id, 0, 2);
	n = snd(id, 4, "long", 4, 0);
	reap(pid);
	show("send to small receiver", n);
	stat_line(id);
	/* A sleeping receiver gets the next message directly. */
	rcv("recv long", id, 100, 0, IPC_NOWAIT);
	pid = blocked_child(id, 0, 100);
	n = snd(id, 7, "direct", 6, 0);
	reap(pid);
	show("send to receiver", n);
	stat_line(id);

	/* msgctl. */
	show("IPC_STAT bad pointer", msgctl(id, IPC_STAT, (struct msqid_ds *)8));
	show("IPC_SET bad pointer", msgctl(id, IPC_SET, (struct msqid_ds *)8));
	show("cmd 99", msgctl(id, 99, &ds));
	show("id -1", msgctl(-1, IPC_STAT, &ds));
	showv("MSG_STAT returns id", msgctl(id & 0x7fff, MSG_STAT, &ds) == id);
	memset(&ds, 0, sizeof(ds));
	msgctl(id, IPC_STAT, &ds);
	ds.msg_qbytes = msgmnb + 1;
	ds.msg_perm.mode = 0640;
	show("IPC_SET above msgmnb (root)", msgctl(id, IPC_SET, &ds));
	stat_line(id);
	ds.msg_perm.uid = (uid_t)-1;
	show("IPC_SET uid -1", msgctl(id, IPC_SET, &ds));
	ds.msg_perm.uid = 0;
	ds.msg_qbytes = msgmnb;
	show("IPC_SET back", msgctl(id, IPC_SET, &ds));
	show("send for user", snd(id, 1, "q", 1, 0));

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		as_user(id, key);
	waitpid(pid, &st, 0);
	printf("user child exit %d\n", WEXITSTATUS(st));

	/* IPC_RMID wakes a sleeping receiver with EIDRM. */
	rcv("drain", id, 100, 0, IPC_NOWAIT);
	pid = blocked_child(id, 0, 100);
	n = msgctl(id, IPC_RMID, NULL);
	reap(pid);
	show("IPC_RMID", n);
	show("send removed", snd(id, 1, "x", 1, 0));
	rcv("recv removed", id, 100, 0, IPC_NOWAIT);
	show("IPC_STAT removed", msgctl(id, IPC_STAT, &ds));
	show("get after rmid", msgget(key, xflg));
	return 0;
}
