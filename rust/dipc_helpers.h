/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dipc C shim: every function the Rust crate calls in C, and every function
 * C calls in Rust. The C files under helpers/ only forward to kernel APIs
 * that have no Rust abstraction yet (ftrace, kernel sockets, sysctl/procfs,
 * kthreads, per-CPU counters); all decisions are made in Rust.
 *
 * src/shim.rs holds the one `extern "C"` block that mirrors this header.
 */
#ifndef DIPC_HELPERS_H
#define DIPC_HELPERS_H

#include <linux/types.h>

struct file;
struct pt_regs;
struct seq_file;
struct socket;
struct task_struct;
struct vm_area_struct;

/* ---- syscall hooks (helpers/hooks.c) ---- */

/*
 * Hook numbers. The order is the order of the table in helpers/hooks.c and of
 * `Hook` in src/hooks.rs.
 */
enum dipc_hook_id {
	DIPC_HOOK_SHMGET,
	DIPC_HOOK_SHMAT,
	DIPC_HOOK_SHMDT,
	DIPC_HOOK_SHMCTL,
	DIPC_HOOK_SEMGET,
	DIPC_HOOK_SEMOP,
	DIPC_HOOK_SEMTIMEDOP,
	DIPC_HOOK_SEMCTL,
	DIPC_HOOK_MSGGET,
	DIPC_HOOK_MSGSND,
	DIPC_HOOK_MSGRCV,
	DIPC_HOOK_MSGCTL,
	DIPC_HOOK_IPC,
	DIPC_HOOK_SEMGET32,
	DIPC_HOOK_SEMTIMEDOP32,
	DIPC_HOOK_SEMCTL32,
	DIPC_HOOK_MSGGET32,
	DIPC_HOOK_MSGSND32,
	DIPC_HOOK_MSGRCV32,
	DIPC_HOOK_MSGCTL32,
	DIPC_HOOK_SHMGET32,
	DIPC_HOOK_SHMAT32,
	DIPC_HOOK_SHMDT32,
	DIPC_HOOK_SHMCTL32,
	DIPC_NR_HOOKS,
};

/*
 * Hooks every syscall entry point with the module's ftrace_ops (IPMODIFY,
 * arguments only) and exit_sem() with a second one; looks each up by name
 * and, on a kernel that enforces branch targets (x86 IBT, arm64 BTI),
 * refuses (-ENOEXEC) unless every function the module calls through a
 * pointer begins with the landing instruction (helpers/arch.h). The twelve ia32
 * entry points (absent without IA32 emulation) are skipped when none of
 * them exists, refused (-ENOENT) when only some do, and called through
 * static calls, as their endbr64 is sealed. `ctx` is passed to
 * dipc_rust_syscall(). The three bitmaps (one u64 per 64 ids, IPCMNI bits,
 * owned by the caller and alive until dipc_hooks_unregister() returns) say
 * which local ids may be shadows; calls on other ids skip the module.
 * Returns 0 or a negative errno (nothing registered).
 */
int dipc_hooks_register(void *ctx, const u64 *sem_bits, const u64 *msg_bits,
			const u64 *shm_bits);
/*
 * Unregisters every hook, then waits until no task can still be running in a
 * trampoline (RCU Tasks), so the module text may be freed.
 */
void dipc_hooks_unregister(void);
/* Whether hook `id` is registered. */
bool dipc_hook_registered(unsigned int id);
/*
 * The ftrace site and entry of kernel function `name` (helpers/hooks.c);
 * on a kernel that enforces branch targets, -ENOEXEC unless the entry
 * begins with the landing instruction (endbr64, bti c).
 */
int dipc_resolve_function(const char *name, unsigned long *fentry, unsigned long *entry);
/*
 * /proc/sysvipc (helpers/procipc.c): wraps sysvipc_proc_open() and the three
 * sysvipc_*_proc_show() so a shadow's line shows its object as the referee
 * has it. 0, or a negative errno (nothing registered; the files then show
 * the shadows' local values). `ctx` is passed to the Rust side.
 */
int dipc_proc_register(void *ctx);
void dipc_proc_unregister(void);
/* What a shadow's /proc/sysvipc line shows (src/procipc.rs: ProcStat). */
struct dipc_proc_stat {
	u64 size;    /* nsems, cbytes or segsz */
	u64 count;   /* qnum or nattch */
	u32 pid[2];  /* lspid, lrpid; or cpid, lpid */
	s64 time[3]; /* otime, ctime; stime, rtime, ctime; atime, dtime, ctime */
};
/* Implemented in Rust: asks the referee about the shadows of table `cls`. */
void dipc_rust_proc_refresh(void *ctx, int cls);
/* Implemented in Rust: what the line of shadow `id` of table `cls` shows. */
bool dipc_rust_proc_stat(void *ctx, int cls, int id, struct dipc_proc_stat *out);
/* How many arguments dipc_syscall_args() gives. */
#define DIPC_NR_ARGS 6
/*
 * The arguments of hook `id`'s call, read from the user's registers `regs`
 * as the architecture passes them (helpers/arch.h; the i386 ABI's for the
 * ia32 hooks), into out[0..DIPC_NR_ARGS).
 */
void dipc_syscall_args(unsigned int id, const struct pt_regs *regs, unsigned long *out);
/* Runs the original syscall function of hook `id` with the user's registers. */
long dipc_call_original(unsigned int id, const struct pt_regs *regs);
/* Implemented in Rust: handles a redirected syscall. */
long dipc_rust_syscall(void *ctx, unsigned int id, const struct pt_regs *regs);
/*
 * Runs the original syscall of hook `id` with register arguments built here
 * (a0..a3 as the syscall's first four arguments). For calls the module makes
 * on its own behalf, e.g. creating or removing a local shadow object; the
 * arguments must not be user pointers.
 */
long dipc_call_original_args(unsigned int id, long a0, long a1, long a2, long a3);
/*
 * Implemented in Rust: process `tgid` has exited (its last thread is in
 * exit_sem()). Called from an ftrace callback on exit_sem(): must not
 * sleep. Called whether or not dipc is enabled.
 */
void dipc_rust_task_exit(void *ctx, u32 tgid);

/* ---- the calling task (helpers/task.c) ---- */

#define DIPC_MAX_GROUPS 32
#define DIPC_CAP_IPC_OWNER 1
#define DIPC_CAP_SYS_ADMIN 2
#define DIPC_CAP_SYS_RESOURCE 4
/* The caller's credentials as the referee's permission checks need them. */
struct dipc_cred {
	u32 euid;
	u32 egid;
	u32 caps; /* DIPC_CAP_* */
	u32 ngroups; /* valid entries in groups[], at most DIPC_MAX_GROUPS */
	u32 groups[DIPC_MAX_GROUPS];
};
void dipc_current_cred(struct dipc_cred *out);
/* The caller's process id (tgid) in the initial pid namespace. */
u32 dipc_current_tgid(void);
int dipc_ns_semopm(void);
u32 dipc_real_seconds(void);
/*
 * ipc/util.h's IPCMNI_SHIFT and IPCMNI, without ipcmni_extend (the module
 * supports the default): an id is seq << 15 | slot. src/util.rs has the same.
 */
#define DIPC_IPCMNI_SHIFT 15
#define DIPC_IPCMNI (1 << DIPC_IPCMNI_SHIFT)
/* Moves the caller's local object old_id to new_id (helpers/ipcid.c): 0,
 * -ENOSPC when that slot is taken, -EINVAL when old_id names nothing. */
int dipc_ipc_move(int cls, int old_id, int new_id);
/* Gives the caller's local object `id` the owner, creator and mode bits
 * (S_IRWXUGO) the referee has (uids and gids of the initial user
 * namespace): 0, or -EINVAL when `id` names nothing. */
int dipc_ipc_set_perm(int cls, int id, u32 uid, u32 gid, u32 cuid, u32 cgid, u32 mode);
/*
 * Faults the caller's range [uaddr, uaddr + size) in for writing without
 * changing its contents (fault_in_safe_writeable()); returns the number of
 * bytes that could not be faulted in.
 */
size_t dipc_fault_in_writeable(unsigned long uaddr, size_t size);
/*
 * dipc_call_original() and dipc_call_original_args() with CAP_IPC_OWNER and
 * CAP_SYS_ADMIN raised: the local half of a call the referee has already
 * permitted (attaching a shadow segment, mirroring IPC_SET/IPC_RMID on it).
 */
long dipc_call_original_priv(unsigned int id, const struct pt_regs *regs);
long dipc_call_original_args_priv(unsigned int id, long a0, long a1, long a2, long a3);

/* ---- per-CPU counters (helpers/percpu.c) ---- */

#define DIPC_NR_COUNTERS 48
/* Adds one to counter `idx` on this CPU (idx < DIPC_NR_COUNTERS). */
void dipc_counter_inc(unsigned int idx);
/* Sum of counter `idx` over all CPUs. */
u64 dipc_counter_sum(unsigned int idx);

/* ---- trace events (helpers/trace.h, helpers/trace.c) ---- */

/* A request to the referee ended: frame kind, request id, 0 or -errno, ns. */
void dipc_trace_call(u16 kind, u64 req_id, int result, u64 ns);
/* A fault that asked the referee ended (outcome: a DIPC_FAULT_* value). */
void dipc_trace_fault(u64 oid, u64 page, bool write, int outcome, u32 requests, u64 ns);
/* The referee granted a page (data: 0 copy current, 1 zeroes, 2 bytes sent). */
void dipc_trace_grant(u64 oid, u64 page, bool write, u8 data);
/* The referee took a page back (keep_read: a downgrade; sent: bytes went back). */
void dipc_trace_inval(u64 oid, u64 page, bool keep_read, bool sent);

/* ---- sysctl and procfs (helpers/sysctl.c) ---- */

/* /proc/sys/dipc/enabled: 1 = hooks active, 0 = every hook a pure pass-through. */
extern int dipc_enabled;
/* The current value of dipc_enabled. */
int dipc_enabled_get(void);
/*
 * Creates /proc/sys/dipc/ and /proc/dipc/status; reading the status file
 * calls dipc_rust_status_show(m, ctx). Returns 0 or a negative errno.
 */
int dipc_control_register(void *ctx);
void dipc_control_unregister(void);
/*
 * Implemented in Rust: a new key policy was written to /proc/sys/dipc/keys
 * (len bytes, not NUL-terminated). Returns 0 or -EINVAL; on error the old
 * policy stays.
 */
int dipc_rust_policy_set(void *ctx, const char *buf, size_t len);
int dipc_rust_quanta_set(void *ctx, const char *buf, size_t len);
int dipc_rust_whole_set(void *ctx, const char *buf, size_t len);
unsigned int dipc_quantum_ms_get(void);
/* Must match policy::QUANTUM_MAX_MS. */
#define DIPC_QUANTUM_MAX_MS 1000
/* Implemented in Rust: prints /proc/dipc/status. */
int dipc_rust_status_show(struct seq_file *m, void *ctx);
/* Room for the key policy's text, NUL included. */
#define DIPC_KEYS_LEN 256
/*
 * The key policy (/proc/sys/dipc/keys): replaces it with `text` (0, or
 * -EINVAL leaving the old one), or copies its text into buf.
 */
int dipc_keys_set(const char *text);
void dipc_keys_get(char *buf, size_t len);

/* ---- the "dipc" generic netlink family (helpers/genl.c) ---- */

/* One distributed object, as DIPC_CMD_OBJECTS sends it. */
struct dipc_genl_object {
	u8 class;
	s32 id;
	u64 oid;
	u64 size;
	u64 pages_read;
	u64 pages_write;
	u64 nattch;
};
/* Registers the family (called by dipc_control_register). */
int dipc_genl_register(void *ctx);
void dipc_genl_unregister(void);
/*
 * Adds one status item to the reply msg: a number, or text when text is
 * not NULL. 0 or -EMSGSIZE.
 */
int dipc_genl_put_stat(void *msg, const char *name, u64 value, const char *text);
/* Implemented in Rust: fills msg with the status items (dipc_genl_put_stat). */
int dipc_rust_status_genl(void *ctx, void *msg);
/*
 * Implemented in Rust: DIPC_CMD_JOIN and DIPC_CMD_LEAVE (0 or -errno, see
 * include/uapi/dipc_netlink.h). referee and secret_file are NUL-terminated
 * (secret_file "" for none).
 */
int dipc_rust_join(void *ctx, const char *referee, u32 node_id, const char *secret_file);
int dipc_rust_leave(void *ctx, bool force);
/* Implemented in Rust: the first shadow at or after position pos, and the
 * position after it in *next (false past the last one). */
bool dipc_rust_object_at(void *ctx, long pos, long *next, struct dipc_genl_object *out);
/* The `referee` module parameter ("a.b.c.d:port[,...]" or empty), NUL-terminated. */
const char *dipc_referee_param(void);
/* The node name (utsname nodename) copied into buf, NUL-terminated. */
void dipc_nodename(char *buf, size_t len);

/* ---- node authentication (helpers/auth.c) ---- */

/* The `secret_file` module parameter (a path, or empty), NUL-terminated. */
const char *dipc_secret_file_param(void);
/*
 * Reads up to cap bytes of the regular file at path, which must belong to
 * root and be unreadable by group and others. Returns the byte count, or
 * -EPERM (ownership or mode), -EINVAL (not a regular file) or another
 * negative errno.
 */
int dipc_read_secret(const char *path, u8 *buf, size_t cap);
/* HMAC-SHA256 of data under key into out[32]. Returns 0 or a negative errno. */
int dipc_hmac_sha256(const u8 *key, size_t key_len, const u8 *data, size_t len, u8 *out);
/* len random bytes. */
void dipc_random_bytes(u8 *buf, size_t len);
/* Whether a and b are equal, in time independent of their contents. */
bool dipc_memeq_secret(const u8 *a, const u8 *b, size_t len);

/* ---- distributed shared memory (helpers/shm.c) ---- */

/* What dipc_rust_shm_acquire() tells the fault handler. */
#define DIPC_FAULT_OK 0	   /* access granted: run the original handler */
#define DIPC_FAULT_RETRY 1 /* return VM_FAULT_NOPAGE: the access faults again */
#define DIPC_FAULT_SIGBUS 2
/* The wait outlasted its budget: wait without the fault's lock, then retry. */
#define DIPC_FAULT_SLOW 3
/*
 * How long a fault that may be retried waits for the referee holding the
 * mmap or VMA lock before it lets go of it (ms).
 */
#define DIPC_FAULT_BUDGET_MS 20

/* Whether any VMA on this node is wrapped (a distributed segment is mapped). */
bool dipc_shm_wrapped(void);
/* Sets the context passed to the dipc_rust_shm_* callbacks. */
void dipc_shm_init(void *ctx);
/*
 * shm_mmap() as the ftrace hook runs it: the original, then the wrapper on a
 * distributed segment's new VMA (dipc_rust_shm_mmap() says which).
 */
int dipc_shm_mmap(struct file *file, struct vm_area_struct *vma);
/* The kernel's shm_mmap() (helpers/hooks.c). */
int dipc_shm_mmap_original(struct file *file, struct vm_area_struct *vma);
/*
 * shmdt(addr) of a distributed segment: unmaps the attach's VMAs, as
 * ksys_shmdt() would, and sets *mapping to the segment's address_space. If
 * the segment at addr is not distributed (or there is none), *mapping is
 * NULL and nothing was done. Returns 0 or -EINTR.
 */
long dipc_shm_detach(unsigned long addr, void **mapping);
/* Holds (and releases) the segment's inode, so its pages outlive it. */
void dipc_shm_mapping_get(void *mapping);
void dipc_shm_mapping_put(void *mapping);
/* Reads page idx in and locks it; returns the folio, NULL on failure. */
void *dipc_shm_page_lock(void *mapping, unsigned long idx);
void dipc_shm_page_unlock(void *folio);
/* Copies PAGE_SIZE bytes into the page (src NULL: zeroes) or out of it. */
void dipc_shm_page_copy_in(void *folio, unsigned long idx, const void *src);
void dipc_shm_page_copy_out(void *folio, unsigned long idx, void *dst);
/* Removes page idx from every process that maps it on this node. */
void dipc_shm_unmap(void *mapping, unsigned long idx);
/*
 * Sleeps (killable) until dipc_rust_shm_changed(seg, idx, word), at most
 * ms milliseconds; returns 1 (changed), 0 (timed out), or -ERESTARTSYS for a
 * fatal signal.
 */
int dipc_shm_wait(void *seg, unsigned long idx, u32 word, unsigned int ms);
/* Wakes the tasks in dipc_shm_wait() for page `idx` of `seg`. */
void dipc_shm_wake_page(void *seg, unsigned long idx);
/* Wakes every task in dipc_shm_wait(). */
void dipc_shm_wake(void);
bool dipc_fatal_signal_pending(void);
/* Implemented in Rust, called by the fault handlers (see helpers/shm.c). */
/* budget_ms: 0 waits as long as it takes, else returns DIPC_FAULT_SLOW after it. */
int dipc_rust_shm_acquire(void *ctx, void *mapping, unsigned long idx, bool write, bool user,
			  unsigned int budget_ms, bool cont);
bool dipc_rust_shm_valid(void *ctx, void *mapping, unsigned long idx, bool write);
/*
 * The first page in idx..idx+n (and within the segment) this node may not
 * access as asked, or -1.
 */
long dipc_rust_shm_first_invalid(void *ctx, void *mapping, unsigned long idx,
				 unsigned long n, bool write);
/*
 * shm_mmap() just set up a VMA of the shm segment behind mapping: whether it
 * is a distributed segment's (the VMA is then wrapped and counted).
 */
bool dipc_rust_shm_mmap(void *ctx, void *mapping);
void dipc_rust_shm_vma_open(void *ctx, void *mapping, int delta);
bool dipc_rust_shm_changed(void *seg, unsigned long idx, u32 word);

/* ---- kernel TCP sockets (helpers/net.c) ---- */

/*
 * Connects a TCP socket to addr:port (both in host byte order), waiting at
 * most timeout_ms. Sets TCP_NODELAY and a receive timeout of rcv_timeout_ms.
 * Returns the socket or NULL with *err set to a negative errno.
 */
struct socket *dipc_sock_connect(u32 addr, u16 port, unsigned int timeout_ms,
				 unsigned int rcv_timeout_ms, int *err);
/* Test only: whether to cut the frame about to be sent in half (net.c). */
int dipc_test_partial_send(unsigned int kind, bool oneway);
/* One send; returns bytes sent or a negative errno. */
int dipc_sock_send(struct socket *sock, const void *buf, size_t len);
/* All of buf without waiting, or nothing (-EAGAIN: no room now). */
int dipc_sock_send_nowait(struct socket *sock, const void *buf, size_t len);
/* One receive; returns bytes received (0 at EOF) or a negative errno (-EAGAIN on timeout). */
int dipc_sock_recv(struct socket *sock, void *buf, size_t len);
/* Shuts both directions down: blocked senders and receivers return. */
void dipc_sock_set_rcvtimeo(struct socket *sock, unsigned int ms);
void dipc_sock_shutdown(struct socket *sock);
void dipc_sock_release(struct socket *sock);
/* The peer_port module parameter. */
u16 dipc_peer_port(void);
/*
 * A TCP socket listening on port (host order) on every IPv4 address, whose
 * accept waits at most rcv_timeout_ms. NULL with *err set on failure.
 */
struct socket *dipc_sock_listen(u16 port, unsigned int rcv_timeout_ms, int *err);
/*
 * Accepts a connection on lsock (waiting at most its receive timeout: then
 * -EAGAIN), with TCP_NODELAY, a send timeout of timeout_ms and a receive
 * timeout of rcv_timeout_ms; *peer_ip is its IPv4 address (host order).
 */
struct socket *dipc_sock_accept(struct socket *lsock, unsigned int timeout_ms,
				unsigned int rcv_timeout_ms, u32 *peer_ip, int *err);

/* ---- kernel threads (helpers/kthread.c) ---- */

/*
 * Starts a kernel thread that runs dipc_rust_thread(data), holding a
 * reference on it. Returns the task or an ERR_PTR.
 */
struct task_struct *dipc_kthread_start(void *data, const char *name);
/* The same for a thread that runs fn(data). */
struct task_struct *dipc_kthread_start_fn(int (*fn)(void *), void *data, const char *name);
/* Tells the thread to stop, waits for it to return, drops the reference. */
void dipc_kthread_stop(struct task_struct *task);
bool dipc_kthread_should_stop(void);
/* Sleeps up to ms milliseconds; returns early when the thread is told to stop. */
void dipc_kthread_sleep_ms(unsigned int ms);
/*
 * Sleeps up to ms milliseconds in TASK_KILLABLE (only a fatal signal ends it
 * early); returns false when a fatal signal is pending.
 */
bool dipc_sleep_killable_ms(unsigned int ms);
/*
 * Sleeps about us microseconds (a high-resolution timer): interruptible by
 * any signal, or with killable only by a fatal one. Returns false when
 * such a signal is pending.
 */
bool dipc_sleep_us(unsigned int us, bool killable);
/* Implemented in Rust: a thread's body. */
int dipc_rust_thread(void *data);

#endif /* DIPC_HELPERS_H */
