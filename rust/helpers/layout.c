// SPDX-License-Identifier: GPL-2.0
/*
 * No code: the build fails here if the layouts src/layout.rs and
 * src/msg.rs write by offset (the kernel's Rust bindings lack struct
 * msqid64_ds, struct shmid64_ds and struct msginfo) are not the kernel's.
 * struct ipc64_perm, struct semid64_ds and the compat_*64 structures come
 * from the bindings; the old compat_*_ds ones are private to ipc/{sem,msg,shm}.c and
 * mirrored in src/layout.rs.
 */
#include <linux/build_bug.h>
#include <linux/msg.h>
#include <linux/shm.h>
#include <asm/shmbuf.h>
#include <linux/stddef.h>

/* src/layout.rs: mod msqid64; src/msg.rs: MSGINFO_LEN. */
static_assert(sizeof(struct msqid64_ds) == 120);
static_assert(offsetof(struct msqid64_ds, msg_stime) == 48);
static_assert(offsetof(struct msqid64_ds, msg_rtime) == 56);
static_assert(offsetof(struct msqid64_ds, msg_ctime) == 64);
static_assert(offsetof(struct msqid64_ds, msg_cbytes) == 72);
static_assert(offsetof(struct msqid64_ds, msg_qnum) == 80);
static_assert(offsetof(struct msqid64_ds, msg_qbytes) == 88);
static_assert(offsetof(struct msqid64_ds, msg_lspid) == 96);
static_assert(offsetof(struct msqid64_ds, msg_lrpid) == 100);
static_assert(sizeof(struct msginfo) == 32);

/* src/layout.rs: mod shmid64. */
static_assert(sizeof(struct shmid64_ds) == 112);
static_assert(offsetof(struct shmid64_ds, shm_segsz) == 48);
static_assert(offsetof(struct shmid64_ds, shm_atime) == 56);
static_assert(offsetof(struct shmid64_ds, shm_dtime) == 64);
static_assert(offsetof(struct shmid64_ds, shm_ctime) == 72);
static_assert(offsetof(struct shmid64_ds, shm_cpid) == 80);
static_assert(offsetof(struct shmid64_ds, shm_lpid) == 84);
static_assert(offsetof(struct shmid64_ds, shm_nattch) == 88);
