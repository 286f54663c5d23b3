// SPDX-License-Identifier: GPL-2.0
/*
 * Syscall hooks: a kprobe on each SysV IPC syscall entry point whose
 * pre-handler hands the call to a trampoline in this module, which calls
 * dipc_rust_syscall(). The Rust side runs the original through
 * dipc_call_original(); the kprobe then lets that inner call through because
 * its return address lies inside this module.
 *
 * While dipc_enabled is 0 the pre-handler redirects nothing. A redirected call
 * holds a module reference, so `rmmod` is refused (EBUSY) while calls are in
 * flight rather than freeing code they will return into.
 */
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include "../dipc_helpers.h"

struct dipc_hook {
	struct kprobe kp;
	long (*trampoline)(const struct pt_regs *regs);
	bool optional;
	bool registered;
};

static void *dipc_hook_ctx;

/*
 * The Rust side's "may this id be a shadow?" bitmaps (sem, msg, shm), indexed
 * like the kernel's id table. A clear bit means the id is no distributed
 * object's shadow, so the call is the local kernel's alone.
 */
#define DIPC_IPCMNI 32768
static const u64 *dipc_shadow_bits[3];

static bool dipc_maybe_shadow(const u64 *bits, int id)
{
	u32 idx;

	if (id < 0)
		return false;
	idx = (u32)id % DIPC_IPCMNI;
	return READ_ONCE(bits[idx / 64]) & (1ULL << (idx % 64));
}

/*
 * Whether hook `id` with the syscall wrapper's registers `regs` needs the
 * module: the hot operations on an id that is no shadow (semop, msgsnd,
 * msgrcv, shmat) and shmdt while no distributed segment is mapped are
 * decided here, without leaving the kprobe, so local IPC pays one probe
 * and one bitmap load instead of a detour through the module and a second
 * probe hit for the original call.
 */
static bool dipc_needs_module(unsigned int id, const struct pt_regs *regs)
{
	/* The wrapper's argument: the user's registers. */
	const struct pt_regs *user = (const struct pt_regs *)regs->di;
	const u64 *bits;

	switch (id) {
	case DIPC_HOOK_SEMOP:
	case DIPC_HOOK_SEMTIMEDOP:
		bits = dipc_shadow_bits[0];
		break;
	case DIPC_HOOK_MSGSND:
	case DIPC_HOOK_MSGRCV:
		bits = dipc_shadow_bits[1];
		break;
	case DIPC_HOOK_SHMAT:
		bits = dipc_shadow_bits[2];
		break;
	case DIPC_HOOK_SHMDT:
		return dipc_shm_wrapped();
	default:
		return true;
	}
	return !bits || dipc_maybe_shadow(bits, (int)user->di);
}
NOKPROBE_SYMBOL(dipc_needs_module);

#define DIPC_TRAMPOLINE(id)                                                   \
	static long dipc_trampoline_##id(const struct pt_regs *regs)          \
	{                                                                     \
		long ret = dipc_rust_syscall(dipc_hook_ctx, id, regs);        \
		module_put(THIS_MODULE);                                      \
		return ret;                                                   \
	}

DIPC_TRAMPOLINE(DIPC_HOOK_SHMGET)
DIPC_TRAMPOLINE(DIPC_HOOK_SHMAT)
DIPC_TRAMPOLINE(DIPC_HOOK_SHMDT)
DIPC_TRAMPOLINE(DIPC_HOOK_SHMCTL)
DIPC_TRAMPOLINE(DIPC_HOOK_SEMGET)
DIPC_TRAMPOLINE(DIPC_HOOK_SEMOP)
DIPC_TRAMPOLINE(DIPC_HOOK_SEMTIMEDOP)
DIPC_TRAMPOLINE(DIPC_HOOK_SEMCTL)
DIPC_TRAMPOLINE(DIPC_HOOK_MSGGET)
DIPC_TRAMPOLINE(DIPC_HOOK_MSGSND)
DIPC_TRAMPOLINE(DIPC_HOOK_MSGRCV)
DIPC_TRAMPOLINE(DIPC_HOOK_MSGCTL)
DIPC_TRAMPOLINE(DIPC_HOOK_IPC)

#define DIPC_HOOK(id, sym, opt)                                               \
	[id] = { .kp = { .symbol_name = sym },                                \
		 .trampoline = dipc_trampoline_##id,                          \
		 .optional = opt }

static struct dipc_hook dipc_hooks[DIPC_NR_HOOKS] = {
	DIPC_HOOK(DIPC_HOOK_SHMGET, "__x64_sys_shmget", false),
	DIPC_HOOK(DIPC_HOOK_SHMAT, "__x64_sys_shmat", false),
	DIPC_HOOK(DIPC_HOOK_SHMDT, "__x64_sys_shmdt", false),
	DIPC_HOOK(DIPC_HOOK_SHMCTL, "__x64_sys_shmctl", false),
	DIPC_HOOK(DIPC_HOOK_SEMGET, "__x64_sys_semget", false),
	DIPC_HOOK(DIPC_HOOK_SEMOP, "__x64_sys_semop", false),
	DIPC_HOOK(DIPC_HOOK_SEMTIMEDOP, "__x64_sys_semtimedop", false),
	DIPC_HOOK(DIPC_HOOK_SEMCTL, "__x64_sys_semctl", false),
	DIPC_HOOK(DIPC_HOOK_MSGGET, "__x64_sys_msgget", false),
	DIPC_HOOK(DIPC_HOOK_MSGSND, "__x64_sys_msgsnd", false),
	DIPC_HOOK(DIPC_HOOK_MSGRCV, "__x64_sys_msgrcv", false),
	DIPC_HOOK(DIPC_HOOK_MSGCTL, "__x64_sys_msgctl", false),
	/* 32-bit programs' ipc(2) multiplexer; only with IA32 emulation. */
	DIPC_HOOK(DIPC_HOOK_IPC, "__ia32_compat_sys_ipc", true),
};

static int dipc_pre_handler(struct kprobe *kp, struct pt_regs *regs)
{
	struct dipc_hook *hook = container_of(kp, struct dipc_hook, kp);
	/* At the ftrace site the stack top is the syscall's return address. */
	unsigned long caller = *(unsigned long *)regs->sp;

	/*
	 * Switched off: pass through, except shmdt() while distributed
	 * segments are mapped, whose VMAs only the module can detach.
	 */
	if (!READ_ONCE(dipc_enabled) &&
	    !(hook == &dipc_hooks[DIPC_HOOK_SHMDT] && dipc_shm_wrapped()))
		return 0;
	/* Our own call of the original: let it run. */
	if (within_module(caller, THIS_MODULE))
		return 0;
	/* Certainly local: count it and let the original run. */
	if (!dipc_needs_module(hook - dipc_hooks, regs)) {
		dipc_counter_inc(hook - dipc_hooks);
		return 0;
	}
	/* The module is going away: pass through. */
	if (!try_module_get(THIS_MODULE))
		return 0;
	regs->ip = (unsigned long)hook->trampoline;
	return 1;
}
NOKPROBE_SYMBOL(dipc_pre_handler);

/*
 * exit_sem(tsk) runs in do_exit() after the thread group's live count was
 * dropped; when it is 0 this is the last thread, and the process's SEM_UNDO
 * adjustments are due, locally and at the referee.
 */
static int dipc_exit_pre_handler(struct kprobe *kp, struct pt_regs *regs)
{
	struct task_struct *tsk = (struct task_struct *)regs->di;

	if (tsk == current && atomic_read(&tsk->signal->live) == 0)
		dipc_rust_task_exit(dipc_hook_ctx, task_tgid_nr(tsk));
	return 0;
}
NOKPROBE_SYMBOL(dipc_exit_pre_handler);

static struct kprobe dipc_exit_kp = {
	.symbol_name = "exit_sem",
	.pre_handler = dipc_exit_pre_handler,
};
static bool dipc_exit_registered;

long dipc_call_original_args(unsigned int id, long a0, long a1, long a2, long a3)
{
	struct pt_regs regs = { .di = a0, .si = a1, .dx = a2, .r10 = a3 };

	return dipc_call_original(id, &regs);
}

long dipc_call_original(unsigned int id, const struct pt_regs *regs)
{
	long (*orig)(const struct pt_regs *) = (void *)dipc_hooks[id].kp.addr;

	return orig(regs);
}

bool dipc_hook_registered(unsigned int id)
{
	return id < DIPC_NR_HOOKS && dipc_hooks[id].registered;
}

int dipc_hooks_register(void *ctx, const u64 *sem_bits, const u64 *msg_bits,
			const u64 *shm_bits)
{
	unsigned int i;
	int err;

	dipc_hook_ctx = ctx;
	dipc_shadow_bits[0] = sem_bits;
	dipc_shadow_bits[1] = msg_bits;
	dipc_shadow_bits[2] = shm_bits;
	dipc_shm_init(ctx);
	for (i = 0; i < DIPC_NR_HOOKS; i++) {
		struct dipc_hook *hook = &dipc_hooks[i];

		hook->kp.pre_handler = dipc_pre_handler;
		err = register_kprobe(&hook->kp);
		if (err == -ENOENT && hook->optional) {
			/* A fresh kprobe struct for a later register attempt. */
			hook->kp.addr = NULL;
			hook->kp.flags = 0;
			continue;
		}
		if (err) {
			pr_err("dipc: cannot hook %s: %d\n", hook->kp.symbol_name, err);
			dipc_hooks_unregister();
			return err;
		}
		hook->registered = true;
	}
	err = register_kprobe(&dipc_exit_kp);
	if (err) {
		pr_err("dipc: cannot hook exit_sem: %d\n", err);
		dipc_hooks_unregister();
		return err;
	}
	dipc_exit_registered = true;
	return 0;
}

void dipc_hooks_unregister(void)
{
	unsigned int i;

	if (dipc_exit_registered) {
		unregister_kprobe(&dipc_exit_kp);
		dipc_exit_registered = false;
		dipc_exit_kp.addr = NULL;
		dipc_exit_kp.flags = 0;
	}
	for (i = 0; i < DIPC_NR_HOOKS; i++) {
		struct dipc_hook *hook = &dipc_hooks[i];

		if (!hook->registered)
			continue;
		unregister_kprobe(&hook->kp);
		hook->registered = false;
		hook->kp.addr = NULL;
		hook->kp.flags = 0;
	}
	/*
	 * A task may have dropped its module reference in a trampoline and not
	 * yet returned out of it; RCU Tasks waits until every task has passed
	 * a voluntary context switch or user mode, i.e. left our code.
	 */
	synchronize_rcu_tasks();
}
