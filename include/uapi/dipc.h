/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dipc: the flag that makes a System V IPC object distributed.
 *
 * Pass IPC_DIPC in the flag word of semget() (and, as they are built,
 * msgget() and shmget()) to ask for an object that lives at the cluster's
 * referee and is shared by every node that uses its key:
 *
 *     int id = semget(key, nsems, IPC_CREAT | IPC_DIPC | 0600);
 *
 * The value is the one Linux still reserves for DIPC in
 * include/uapi/linux/ipc.h, so programs written for the original DIPC work
 * unchanged. semget() and msgget() ignore the bit, and for shmget() it is
 * SHM_NORESERVE (no swap reservation), so the same binary runs on a kernel
 * without dipc and gets an ordinary local object.
 *
 * Any flag word with this bit set asks for distribution, including one built
 * as ~0 or from random bits (as stress tools do). IPC_PRIVATE objects are
 * never distributed. Keys can also be made distributed without this flag,
 * for unmodified binaries: see /proc/sys/dipc/keys.
 */
#ifndef _UAPI_DIPC_H
#define _UAPI_DIPC_H

#ifndef IPC_DIPC
#define IPC_DIPC 00010000
#endif

#endif /* _UAPI_DIPC_H */
