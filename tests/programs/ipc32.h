/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ipc32.h: the errno programs built as 32-bit programs (-m32), making
 * every SysV IPC call straight to the kernel's i386 entry points, so that
 * bad pointers reach the kernel as they do in the 64-bit build (glibc's
 * 32-bit wrappers read some structures themselves first, and would fault).
 *
 *   -DIPC32_IPC     through the ipc(2) multiplexer, with IPC_64 on every
 *                   *ctl command: what glibc for i386 does.
 *   -DIPC32_DIRECT  through the direct entries (semget = 393 ... msgctl
 *                   = 402, semtimedop_time64 = 420): what musl and glibcs
 *                   built for Linux >= 5.1 do.
 *
 * The structures are glibc's 32-bit-time ones, which are the kernel's
 * struct compat_*id64_ds. Include after <sys/sem.h>, <sys/msg.h> or
 * <sys/shm.h>, and after the program's union semun.
 */
#ifndef IPC32_H
#define IPC32_H

#if defined(IPC32_IPC) || defined(IPC32_DIRECT)
#ifndef __i386__
#error "ipc32.h is for -m32 builds"
#endif
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define IPC32_NR_IPC 117
#define IPC32_64 0x100

/* ipc(2) calls (include/uapi/linux/ipc.h) */
enum { I32_SEMOP = 1, I32_SEMGET, I32_SEMCTL, I32_SEMTIMEDOP,
       I32_MSGSND = 11, I32_MSGRCV, I32_MSGGET, I32_MSGCTL,
       I32_SHMAT = 21, I32_SHMDT, I32_SHMGET, I32_SHMCTL };

static inline long ipc32(long call, long first, long second, long third, const void *ptr, long fifth)
{
	return syscall(IPC32_NR_IPC, call, first, second, third, ptr, fifth);
}

/* An address the program passes on purpose as a bad pointer. */
static inline int ipc32_bad(const void *p)
{
	return (uintptr_t)p < 4096;
}

#ifdef _SYS_SEM_H
static inline int ipc32_semtimedop(int id, struct sembuf *sops, size_t n, const struct timespec *ts)
{
#ifdef IPC32_IPC
	return ipc32(I32_SEMTIMEDOP, id, n, 0, sops, (long)ts);
#else
	struct { long long sec, nsec; } t64, *p = (void *)ts;

	if (ts && !ipc32_bad(ts)) {
		t64.sec = ts->tv_sec;
		t64.nsec = ts->tv_nsec;
		p = &t64;
	}
	return syscall(420, id, sops, n, p);
#endif
}

static inline int ipc32_semop(int id, struct sembuf *sops, size_t n)
{
#ifdef IPC32_IPC
	return ipc32(I32_SEMOP, id, n, 0, sops, 0);
#else
	return syscall(420, id, sops, n, NULL);
#endif
}

static inline int ipc32_semget(key_t key, int n, int flg)
{
#ifdef IPC32_IPC
	return ipc32(I32_SEMGET, key, n, flg, NULL, 0);
#else
	return syscall(393, key, n, flg);
#endif
}

static inline int ipc32_semctl(int id, int num, int cmd, union semun arg)
{
#ifdef IPC32_IPC
	return ipc32(I32_SEMCTL, id, num, cmd | IPC32_64, &arg, 0);
#else
	return syscall(394, id, num, cmd, arg.val);
#endif
}

#define semget ipc32_semget
#define semop ipc32_semop
#define semtimedop ipc32_semtimedop
/* semctl(id, num, cmd) or semctl(id, num, cmd, arg) */
#define ipc32_semctl_(a, b, c, d, ...) ipc32_semctl(a, b, c, d)
#define semctl(...) ipc32_semctl_(__VA_ARGS__, (union semun){ .val = 0 }, 0)
#endif /* _SYS_SEM_H */

#ifdef _SYS_MSG_H
static inline int ipc32_msgget(key_t key, int flg)
{
#ifdef IPC32_IPC
	return ipc32(I32_MSGGET, key, flg, 0, NULL, 0);
#else
	return syscall(399, key, flg);
#endif
}

static inline int ipc32_msgsnd(int id, const void *msgp, size_t sz, int flg)
{
#ifdef IPC32_IPC
	return ipc32(I32_MSGSND, id, sz, flg, msgp, 0);
#else
	return syscall(400, id, msgp, sz, flg);
#endif
}

static inline ssize_t ipc32_msgrcv(int id, void *msgp, size_t sz, long typ, int flg)
{
#ifdef IPC32_IPC
	/* version 0: struct ipc_kludge { msgp; msgtyp; }, as glibc passes it */
	long kludge[2] = { (long)msgp, typ };

	return ipc32(I32_MSGRCV, id, sz, flg, kludge, 0);
#else
	return syscall(401, id, msgp, sz, typ, flg);
#endif
}

static inline int ipc32_msgctl(int id, int cmd, struct msqid_ds *buf)
{
#ifdef IPC32_IPC
	return ipc32(I32_MSGCTL, id, cmd | IPC32_64, 0, buf, 0);
#else
	return syscall(402, id, cmd, buf);
#endif
}

#define msgget ipc32_msgget
#define msgsnd ipc32_msgsnd
#define msgrcv ipc32_msgrcv
#define msgctl ipc32_msgctl
#endif /* _SYS_MSG_H */

#ifdef _SYS_SHM_H
static inline int ipc32_shmget(key_t key, size_t size, int flg)
{
#ifdef IPC32_IPC
	return ipc32(I32_SHMGET, key, size, flg, NULL, 0);
#else
	return syscall(395, key, size, flg);
#endif
}

static inline void *ipc32_shmat(int id, const void *addr, int flg)
{
#ifdef IPC32_IPC
	unsigned long raddr;
	long r = ipc32(I32_SHMAT, id, flg, (long)&raddr, addr, 0);

	return r < 0 ? (void *)-1 : (void *)raddr;
#else
	return (void *)syscall(397, id, addr, flg);
#endif
}

static inline int ipc32_shmdt(const void *addr)
{
#ifdef IPC32_IPC
	return ipc32(I32_SHMDT, 0, 0, 0, addr, 0);
#else
	return syscall(398, addr);
#endif
}

static inline int ipc32_shmctl(int id, int cmd, struct shmid_ds *buf)
{
#ifdef IPC32_IPC
	return ipc32(I32_SHMCTL, id, cmd | IPC32_64, 0, buf, 0);
#else
	return syscall(396, id, cmd, buf);
#endif
}

#define shmget ipc32_shmget
#define shmat ipc32_shmat
#define shmdt ipc32_shmdt
#define shmctl ipc32_shmctl
#endif /* _SYS_SHM_H */

#endif /* IPC32_IPC || IPC32_DIRECT */
#endif /* IPC32_H */
