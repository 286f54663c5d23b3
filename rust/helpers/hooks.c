// SPDX-License-Identifier: GPL-2.0
/*
 * Syscall hooks: one ftrace_ops of the module's own, with IPMODIFY and
 * arguments only (no SAVE_REGS), filtered on the ftrace sites of the SysV
 * IPC syscall entry points, as livepatch does. Its callback hands a call that
 * needs the module to a trampoline here, which calls dipc_rust_syscall(); the
 * Rust side runs the original through dipc_call_original(), and the callback
 * lets that inner call through because its caller lies inside this module.
 * A second ftrace_ops (no IPMODIFY: it only observes) sees exit_sem(). A
 * third (IPMODIFY) sends shm_mmap() to dipc_shm_mmap() (helpers/shm.c), which
 * wraps a distributed segment's VMA where shmat() creates it.
 *
 * Why not kprobes: a kprobe on an ftrace site saves every register and walks
 * the kprobe machinery on each call; its address is the ftrace site (function
 * + 4 after endbr64), which an IBT-enforcing CPU refuses as an indirect call
 * target; and re-registering the kernel's static kprobe_ftrace_ops after an
 * rmmod broke on kernels whose kprobe_ftrace_handler sits at an odd address
 * (Documentation/architecture.md, "Interception").
 *
 * Addresses: each entry point is looked up by name once at load (a kprobe
 * registered disabled, so never armed, resolves the name; arch.h turns that
 * into the function's entry and its ftrace site). The module calls only
 * entries, and on a kernel that enforces branch targets (x86 IBT, arm64
 * BTI) it refuses to load unless every entry it calls through a pointer
 * begins with the landing instruction (endbr64, bti c). The ia32 entries
 * are called through static calls instead (direct calls, patched at load):
 * nothing in the kernel calls them indirectly, so objtool seals their
 * endbr64. Registers and entry names differ by architecture: arch.h.
 *
 * Both ops are FTRACE_OPS_FL_PERMANENT, as livepatch's are: where
 * `sysctl kernel.ftrace_enabled=0` still switches ftrace off, it then fails
 * (EBUSY) while dipc is loaded instead of silently bypassing it, which would
 * send calls on distributed objects to their local shadows. (Linux 7.3
 * refuses that write in any case: the knob is deprecated.)
 *
 * While dipc_enabled is 0 the callback redirects nothing. A redirected call
 * holds a module reference, so `rmmod` is refused (EBUSY) while calls are in
 * flight rather than freeing code they will return into.
 */
#include <linux/ftrace.h>
#include <linux/ipc.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/static_call.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include "../dipc_helpers.h"
#include "arch.h"

/*
 * For the test that shows the IBT check refuses what it should: added to
 * every call target before the check only (tests/cluster/reload.scenario
 * loads with ibt_check_skew=4, a function's ftrace site, which an IBT CPU
 * would refuse). The targets the module calls never change.
 */
static uint ibt_check_skew;
module_param(ibt_check_skew, uint, 0444);
MODULE_PARM_DESC(ibt_check_skew, "Test only: check call targets at entry + this many bytes (the load must then fail on an IBT kernel)");

struct dipc_hook {
	const char *name;
	long (*trampoline)(const struct pt_regs *regs);
	/* The function's entry: what dipc_call_original() calls. */
	unsigned long entry;
	/* Its ftrace site: the ip the callback is given. */
	unsigned long fentry;
	bool optional;
	/*
	 * Called through a static call (a patched direct jmp), not through
	 * a function pointer: for entries no kernel code calls indirectly,
	 * whose endbr64 objtool seals on IBT kernels (the ia32 ones: 7.x
	 * dispatches 32-bit syscalls with a switch of direct calls).
	 */
	bool direct;
	bool registered;
};

static void *dipc_hook_ctx;

/*
 * The Rust side's "may this id be a shadow?" bitmaps (sem, msg, shm), indexed
 * like the kernel's id table. A clear bit means the id is no distributed
 * object's shadow, so the call is the local kernel's alone.
 */
static const u64 *dipc_shadow_bits[3];

/*
 * Ids from this slot up are where the referee hands out cluster-wide ids
 * (src/ids.rs, CLUSTER_FLOOR): a call on one that is no shadow here may
 * name another node's object, so it goes to the module, which runs it
 * locally and asks the referee only if the local kernel knows no such id.
 * The kernel gives local objects the lowest free slots, so plain local IPC
 * reaches these slots only with more than about 21 000 objects of a class.
 */
#define DIPC_CLUSTER_FLOOR (DIPC_IPCMNI / 2)

static notrace bool dipc_maybe_shadow(const u64 *bits, int id)
{
	u32 idx;

	if (id < 0)
		return false;
	idx = (u32)id % DIPC_IPCMNI;
	return idx >= DIPC_CLUSTER_FLOOR || (READ_ONCE(bits[idx / 64]) & (1ULL << (idx % 64)));
}

/*
 * Whether hook `id` with the user's registers `user` needs the module: every
 * call whose first argument is an id (semop, semtimedop, semctl, msgsnd,
 * msgrcv, msgctl, shmat, shmctl) on an id that is no shadow, and shmdt while
 * no distributed segment is mapped, are decided here, in the ftrace
 * callback, so local IPC pays one callback and one bitmap load instead of a
 * detour through the module and a second callback for the original call.
 * The *ctl commands that take an index instead of an id (SEM_STAT,
 * MSG_STAT, ...) index the same table, so the same bit answers for them;
 * the commands that take neither pass through in the module too. Ids in
 * the upper half always go to the module (DIPC_CLUSTER_FLOOR).
 */
static notrace bool dipc_needs_module(unsigned int id, const struct pt_regs *user)
{
	const u64 *bits;
	int obj;

	switch (id) {
	case DIPC_HOOK_SEMOP:
	case DIPC_HOOK_SEMTIMEDOP:
	case DIPC_HOOK_SEMCTL:
		bits = dipc_shadow_bits[0];
		obj = (int)dipc_sys_arg(user, 0);
		break;
	case DIPC_HOOK_MSGSND:
	case DIPC_HOOK_MSGRCV:
	case DIPC_HOOK_MSGCTL:
		bits = dipc_shadow_bits[1];
		obj = (int)dipc_sys_arg(user, 0);
		break;
	case DIPC_HOOK_SHMAT:
	case DIPC_HOOK_SHMCTL:
		bits = dipc_shadow_bits[2];
		obj = (int)dipc_sys_arg(user, 0);
		break;
	case DIPC_HOOK_SHMDT:
	case DIPC_HOOK_SHMDT32:
		return dipc_shm_wrapped();
	/* The ia32 entries: arguments in bx, cx, dx, si, di, bp (arch.h). */
	case DIPC_HOOK_SEMTIMEDOP32:
	case DIPC_HOOK_SEMCTL32:
		bits = dipc_shadow_bits[0];
		obj = (int)dipc_compat_arg(user, 0);
		break;
	case DIPC_HOOK_MSGSND32:
	case DIPC_HOOK_MSGRCV32:
	case DIPC_HOOK_MSGCTL32:
		bits = dipc_shadow_bits[1];
		obj = (int)dipc_compat_arg(user, 0);
		break;
	case DIPC_HOOK_SHMAT32:
	case DIPC_HOOK_SHMCTL32:
		bits = dipc_shadow_bits[2];
		obj = (int)dipc_compat_arg(user, 0);
		break;
	case DIPC_HOOK_IPC:
		/* ipc(call, first, ...): the id, where there is one, is first. */
		obj = (int)dipc_compat_arg(user, 1);
		switch ((u32)dipc_compat_arg(user, 0) & 0xffff) {
		case SEMOP:
		case SEMCTL:
		case SEMTIMEDOP:
			bits = dipc_shadow_bits[0];
			break;
		case MSGSND:
		case MSGRCV:
		case MSGCTL:
			bits = dipc_shadow_bits[1];
			break;
		case SHMAT:
		case SHMCTL:
			bits = dipc_shadow_bits[2];
			break;
		case SHMDT:
			return dipc_shm_wrapped();
		case SEMGET:
		case MSGGET:
		case SHMGET:
			return true;
		default: /* no SysV IPC call: the kernel's -ENOSYS */
			return false;
		}
		break;
	default:
		return true;
	}
	return !bits || dipc_maybe_shadow(bits, obj);
}

/* Whether hook `id` with the user's registers `user` is a shmdt(). */
static notrace bool dipc_is_shmdt(unsigned int id, const struct pt_regs *user)
{
	return id == DIPC_HOOK_SHMDT || id == DIPC_HOOK_SHMDT32 ||
	       (id == DIPC_HOOK_IPC && ((u32)dipc_compat_arg(user, 0) & 0xffff) == SHMDT);
}

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

/*
 * The hooks whose originals are called through static calls (see `direct`
 * in struct dipc_hook): the ia32 entries (x86-64 only; arm64 has none).
 */
#ifdef CONFIG_X86_64
#define DIPC_DIRECT_HOOKS(X)                                                  \
	X(DIPC_HOOK_IPC)                                                      \
	X(DIPC_HOOK_SEMGET32)                                                 \
	X(DIPC_HOOK_SEMTIMEDOP32)                                             \
	X(DIPC_HOOK_SEMCTL32)                                                 \
	X(DIPC_HOOK_MSGGET32)                                                 \
	X(DIPC_HOOK_MSGSND32)                                                 \
	X(DIPC_HOOK_MSGRCV32)                                                 \
	X(DIPC_HOOK_MSGCTL32)                                                 \
	X(DIPC_HOOK_SHMGET32)                                                 \
	X(DIPC_HOOK_SHMAT32)                                                  \
	X(DIPC_HOOK_SHMDT32)                                                  \
	X(DIPC_HOOK_SHMCTL32)
#else
#define DIPC_DIRECT_HOOKS(X)
#endif

DIPC_DIRECT_HOOKS(DIPC_TRAMPOLINE)

#define DIPC_HOOK(id, sym, opt)                                               \
	[id] = { .name = sym, .trampoline = dipc_trampoline_##id,             \
		 .optional = opt }
#define DIPC_HOOK_DIRECT(id, sym)                                             \
	[id] = { .name = sym, .trampoline = dipc_trampoline_##id,             \
		 .optional = true, .direct = true }

#ifdef CONFIG_X86_64
/*
 * The static calls of the direct hooks' originals. Until dipc_hooks_register()
 * points one at its entry it returns -ENOSYS (never called then: the hook
 * is not registered).
 */
static long dipc_no_original(const struct pt_regs *regs)
{
	return -ENOSYS;
}

#define DIPC_ORIGINAL(id) DEFINE_STATIC_CALL(dipc_orig_##id, dipc_no_original);
DIPC_DIRECT_HOOKS(DIPC_ORIGINAL)

/* Calls direct hook `id`'s original. */
static long dipc_direct_call(unsigned int id, const struct pt_regs *regs)
{
	switch (id) {
#define DIPC_CALL_CASE(id)                                                    \
	case id:                                                              \
		return static_call(dipc_orig_##id)(regs);
	DIPC_DIRECT_HOOKS(DIPC_CALL_CASE)
#undef DIPC_CALL_CASE
	}
	return -ENOSYS;
}

/* Points direct hook `id`'s static call at the original's entry. */
static void dipc_direct_point(unsigned int id, unsigned long entry)
{
	long (*fn)(const struct pt_regs *) = (void *)entry;

	switch (id) {
#define DIPC_POINT_CASE(id)                                                   \
	case id:                                                              \
		static_call_update(dipc_orig_##id, fn);                      \
		break;
	DIPC_DIRECT_HOOKS(DIPC_POINT_CASE)
#undef DIPC_POINT_CASE
	}
}
#endif /* CONFIG_X86_64 */

static struct dipc_hook dipc_hooks[DIPC_NR_HOOKS] = {
	DIPC_HOOK(DIPC_HOOK_SHMGET, DIPC_SYS("shmget"), false),
	DIPC_HOOK(DIPC_HOOK_SHMAT, DIPC_SYS("shmat"), false),
	DIPC_HOOK(DIPC_HOOK_SHMDT, DIPC_SYS("shmdt"), false),
	DIPC_HOOK(DIPC_HOOK_SHMCTL, DIPC_SYS("shmctl"), false),
	DIPC_HOOK(DIPC_HOOK_SEMGET, DIPC_SYS("semget"), false),
	DIPC_HOOK(DIPC_HOOK_SEMOP, DIPC_SYS("semop"), false),
	DIPC_HOOK(DIPC_HOOK_SEMTIMEDOP, DIPC_SYS("semtimedop"), false),
	DIPC_HOOK(DIPC_HOOK_SEMCTL, DIPC_SYS("semctl"), false),
	DIPC_HOOK(DIPC_HOOK_MSGGET, DIPC_SYS("msgget"), false),
	DIPC_HOOK(DIPC_HOOK_MSGSND, DIPC_SYS("msgsnd"), false),
	DIPC_HOOK(DIPC_HOOK_MSGRCV, DIPC_SYS("msgrcv"), false),
	DIPC_HOOK(DIPC_HOOK_MSGCTL, DIPC_SYS("msgctl"), false),
#ifdef CONFIG_X86_64
	/*
	 * 32-bit programs (only with IA32 emulation, so optional; but all of
	 * them or none, see dipc_hooks_resolve()): glibc for i386 makes every
	 * call through the ipc(2) multiplexer, other libcs use the direct
	 * entries (i386 has no semop of its own, and its semtimedop is the
	 * 64-bit-time one).
	 */
	DIPC_HOOK_DIRECT(DIPC_HOOK_IPC, "__ia32_compat_sys_ipc"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SEMGET32, "__ia32_sys_semget"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SEMTIMEDOP32, "__ia32_sys_semtimedop"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SEMCTL32, "__ia32_compat_sys_semctl"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_MSGGET32, "__ia32_sys_msgget"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_MSGSND32, "__ia32_compat_sys_msgsnd"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_MSGRCV32, "__ia32_compat_sys_msgrcv"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_MSGCTL32, "__ia32_compat_sys_msgctl"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SHMGET32, "__ia32_sys_shmget"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SHMAT32, "__ia32_compat_sys_shmat"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SHMDT32, "__ia32_sys_shmdt"),
	DIPC_HOOK_DIRECT(DIPC_HOOK_SHMCTL32, "__ia32_compat_sys_shmctl"),
#endif
};

/* exit_sem()'s ftrace site. */
static unsigned long dipc_exit_fentry;
/* shm_mmap()'s (ipc/shm.c: static, but the address of shm_file_operations' .mmap). */
static unsigned long dipc_shm_mmap_fentry, dipc_shm_mmap_entry;

/*
 * The callbacks are aligned: Linux 7.x's ftrace turns a call into a jmp when
 * its target address is odd (DYNAMIC_FTRACE_WITH_JMP), and a kernel built
 * with -Os leaves functions on any byte.
 */
static notrace __aligned(16) void dipc_ftrace_handler(unsigned long ip, unsigned long parent_ip,
						     struct ftrace_ops *op,
						     struct ftrace_regs *fregs)
{
	const struct pt_regs *user;
	unsigned int id;

	for (id = 0; id < DIPC_NR_HOOKS; id++)
		if (dipc_hooks[id].fentry == ip)
			break;
	if (id == DIPC_NR_HOOKS)
		return;
	/* The wrapper's argument: the user's registers. */
	user = (const struct pt_regs *)ftrace_regs_get_argument(fregs, 0);
	/*
	 * Switched off: pass through, except shmdt() while distributed
	 * segments are mapped, whose VMAs only the module can detach.
	 */
	if (!READ_ONCE(dipc_enabled) && !(dipc_is_shmdt(id, user) && dipc_shm_wrapped()))
		return;
	/*
	 * Certainly local: count it and let the original run (first, as the
	 * cheapest test and the common case; the module never needs to call
	 * an original on such an id, so nothing is counted twice).
	 */
	if (!dipc_needs_module(id, user)) {
		dipc_counter_inc(id);
		return;
	}
	/* Our own call of the original: let it run. */
	if (within_module(parent_ip, THIS_MODULE))
		return;
	/* The module is going away: pass through. */
	if (!try_module_get(THIS_MODULE))
		return;
	ftrace_regs_set_instruction_pointer(fregs, (unsigned long)dipc_hooks[id].trampoline);
}

static struct ftrace_ops dipc_ops = {
	.func = dipc_ftrace_handler,
	.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
};
static bool dipc_ops_registered;

/*
 * exit_sem(tsk) runs in do_exit() after the thread group's live count was
 * dropped; when it is 0 this is the last thread, and the process's SEM_UNDO
 * adjustments are due, locally and at the referee.
 */
static notrace __aligned(16) void dipc_exit_handler(unsigned long ip, unsigned long parent_ip,
						   struct ftrace_ops *op,
						   struct ftrace_regs *fregs)
{
	struct task_struct *tsk = (struct task_struct *)ftrace_regs_get_argument(fregs, 0);

	if (ip == dipc_exit_fentry && tsk == current && atomic_read(&tsk->signal->live) == 0)
		dipc_rust_task_exit(dipc_hook_ctx, task_tgid_nr(tsk));
}

static struct ftrace_ops dipc_exit_ops = {
	.func = dipc_exit_handler,
	.flags = FTRACE_OPS_FL_PERMANENT,
};
static bool dipc_exit_registered;

int dipc_shm_mmap_original(struct file *file, struct vm_area_struct *vma)
{
	/* The function's entry, checked for endbr64 at load. */
	int (*orig)(struct file *, struct vm_area_struct *) = (void *)dipc_shm_mmap_entry;

	return orig(file, vma);
}

static int dipc_shm_mmap_trampoline(struct file *file, struct vm_area_struct *vma)
{
	int ret = dipc_shm_mmap(file, vma);

	module_put(THIS_MODULE);
	return ret;
}

/*
 * shm_mmap() runs for shmat() (and remap_file_pages() of a shm VMA), with
 * the mmap write lock held: every call goes to dipc_shm_mmap(), which runs
 * the original (let through here: its caller lies inside the module) and
 * wraps the VMA if the segment is distributed. Also while switched off, so
 * a remap of a wrapped VMA is wrapped too.
 */
static notrace __aligned(16) void dipc_mmap_handler(unsigned long ip, unsigned long parent_ip,
						   struct ftrace_ops *op,
						   struct ftrace_regs *fregs)
{
	if (ip != dipc_shm_mmap_fentry || within_module(parent_ip, THIS_MODULE))
		return;
	if (!try_module_get(THIS_MODULE))
		return;
	ftrace_regs_set_instruction_pointer(fregs, (unsigned long)dipc_shm_mmap_trampoline);
}

static struct ftrace_ops dipc_mmap_ops = {
	.func = dipc_mmap_handler,
	.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
};
static bool dipc_mmap_registered;

long dipc_call_original_args(unsigned int id, long a0, long a1, long a2, long a3)
{
	struct pt_regs regs = {};

	dipc_set_sys_args(&regs, a0, a1, a2, a3);
	return dipc_call_original(id, &regs);
}

/* src/shim.rs: NR_ARGS. */
static_assert(DIPC_NR_ARGS == 6);

void dipc_syscall_args(unsigned int id, const struct pt_regs *regs, unsigned long *out)
{
	unsigned int n;

	for (n = 0; n < DIPC_NR_ARGS; n++)
		out[n] = id >= DIPC_HOOK_IPC ? dipc_compat_arg(regs, n) : dipc_sys_arg(regs, n);
}

long dipc_call_original(unsigned int id, const struct pt_regs *regs)
{
	/* The function's entry, checked for endbr64 at load. */
	long (*orig)(const struct pt_regs *) = (void *)dipc_hooks[id].entry;

#ifdef CONFIG_X86_64
	if (dipc_hooks[id].direct)
		return dipc_direct_call(id, regs);
#endif
	return orig(regs);
}

bool dipc_hook_registered(unsigned int id)
{
	return id < DIPC_NR_HOOKS && dipc_hooks[id].registered;
}

/*
 * The ftrace site and entry of function `name`, from the address `kp` a
 * kprobe on its name resolved to: kallsyms' "name+0xOFF/0xSIZE" for `kp`
 * gives its offset in the function, and arch.h the rest. False unless the
 * symbol found is `name` and the layout is what arch.h expects.
 */
static bool dipc_sites_of(const char *name, unsigned long kp, unsigned long *fentry,
			  unsigned long *entry)
{
	char buf[KSYM_SYMBOL_LEN];
	size_t len = strlen(name);
	unsigned long off;
	char *plus, *slash;

	sprint_symbol(buf, kp);
	if (strncmp(buf, name, len) || buf[len] != '+')
		return false;
	plus = buf + len + 1;
	slash = strchr(plus, '/');
	if (!slash)
		return false;
	*slash = '\0';
	if (kstrtoul(plus, 0, &off))
		return false;
	return dipc_arch_sites(kp, off, fentry, entry);
}

/*
 * Resolves every hooked symbol and exit_sem to their ftrace sites and
 * entries. The kprobes are registered disabled, so they are never armed:
 * only their address resolution is used. A missing optional symbol leaves
 * its hook with fentry 0.
 */
static int dipc_hooks_resolve(void)
{
	static struct kprobe kps[DIPC_NR_HOOKS + 2];
	struct kprobe *regd[DIPC_NR_HOOKS + 2];
	unsigned long fentry, entry;
	unsigned int i, n = 0;
	int err = 0;

	for (i = 0; i <= DIPC_NR_HOOKS + 1; i++) {
		struct kprobe *kp = &kps[i];
		const char *name = i < DIPC_NR_HOOKS ? dipc_hooks[i].name :
				   i == DIPC_NR_HOOKS ? "exit_sem" : "shm_mmap";

		/* No such entry on this architecture (the ia32 ones on arm64). */
		if (!name)
			continue;
		memset(kp, 0, sizeof(*kp));
		kp->symbol_name = name;
		kp->flags = KPROBE_FLAG_DISABLED;
		err = register_kprobe(kp);
		if (err == -ENOENT && i < DIPC_NR_HOOKS && dipc_hooks[i].optional) {
			err = 0;
			continue;
		}
		if (err) {
			pr_err("dipc: cannot find %s: %d\n", name, err);
			break;
		}
		regd[n++] = kp;
		if (!dipc_sites_of(name, (unsigned long)kp->addr, &fentry, &entry)) {
			pr_err("dipc: cannot find the entry and ftrace site of %s at %pS\n", name,
			       kp->addr);
			err = -ENOENT;
			break;
		}
		if (i < DIPC_NR_HOOKS) {
			struct dipc_hook *hook = &dipc_hooks[i];

			hook->fentry = fentry;
			hook->entry = entry;
			if (!hook->direct &&
			    !dipc_arch_call_target_ok(name, hook->entry + ibt_check_skew)) {
				err = -ENOEXEC;
				break;
			}
		} else if (i == DIPC_NR_HOOKS) {
			dipc_exit_fentry = fentry;
		} else {
			dipc_shm_mmap_fentry = fentry;
			dipc_shm_mmap_entry = entry;
			if (!dipc_arch_call_target_ok(name, dipc_shm_mmap_entry + ibt_check_skew)) {
				err = -ENOEXEC;
				break;
			}
		}
	}
	if (n)
		unregister_kprobes(regd, n);
	if (!err) {
		/* The ia32 entries come together: a 32-bit program must never
		 * reach a distributed object through one left unhooked. */
		unsigned int found = 0;

		for (i = DIPC_HOOK_IPC; i < DIPC_NR_HOOKS; i++)
			found += dipc_hooks[i].fentry != 0;
		if (found && found != DIPC_NR_HOOKS - DIPC_HOOK_IPC) {
			pr_err("dipc: only %u of the %u ia32 SysV IPC entry points found; not loading\n",
			       found, DIPC_NR_HOOKS - DIPC_HOOK_IPC);
			err = -ENOENT;
		}
	}
	return err;
}

int dipc_resolve_function(const char *name, unsigned long *fentry, unsigned long *entry)
{
	struct kprobe kp = { .symbol_name = name, .flags = KPROBE_FLAG_DISABLED };
	int err = register_kprobe(&kp);

	bool found;

	if (err)
		return err;
	found = dipc_sites_of(name, (unsigned long)kp.addr, fentry, entry);
	unregister_kprobe(&kp);
	if (!found)
		return -ENOENT;
	if (!dipc_arch_call_target_ok(name, *entry + ibt_check_skew))
		return -ENOEXEC;
	return 0;
}

static int dipc_ops_add(struct ftrace_ops *ops, unsigned long ip, const char *name)
{
	int err = ftrace_set_filter_ip(ops, ip, 0, 0);

	if (err)
		pr_err("dipc: cannot hook %s (ftrace filter): %d\n", name, err);
	return err;
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
	err = dipc_hooks_resolve();
	if (err)
		goto fail;
#if defined(CONFIG_ARM64) && defined(CONFIG_COMPAT)
	pr_warn("dipc: AArch32 programs' calls through the compat-only entry points (msgsnd, msgrcv, shmat, the old *ctl calls, semtimedop_time32) are not hooked: they act on local shadows, not on distributed objects\n");
#endif
	for (i = 0; i < DIPC_NR_HOOKS; i++) {
		struct dipc_hook *hook = &dipc_hooks[i];

		if (!hook->fentry)
			continue;
#ifdef CONFIG_X86_64
		if (hook->direct)
			dipc_direct_point(i, hook->entry);
#endif
		err = dipc_ops_add(&dipc_ops, hook->fentry, hook->name);
		if (err)
			goto fail;
	}
	err = dipc_ops_add(&dipc_exit_ops, dipc_exit_fentry, "exit_sem");
	if (err)
		goto fail;
	err = dipc_ops_add(&dipc_mmap_ops, dipc_shm_mmap_fentry, "shm_mmap");
	if (err)
		goto fail;
	/*
	 * exit_sem first: a process that does a SEM_UNDO call through the
	 * hooks must have its exit seen.
	 */
	err = register_ftrace_function(&dipc_exit_ops);
	if (err) {
		pr_err("dipc: cannot hook exit_sem: %d\n", err);
		goto fail;
	}
	dipc_exit_registered = true;
	/* shm_mmap() before the syscalls: no distributed shmat() goes unwrapped. */
	err = register_ftrace_function(&dipc_mmap_ops);
	if (err) {
		pr_err("dipc: cannot hook shm_mmap: %d%s\n", err,
		       err == -EBUSY ? " (another IPMODIFY ftrace user)" : "");
		goto fail;
	}
	dipc_mmap_registered = true;
	err = register_ftrace_function(&dipc_ops);
	if (err) {
		/* EBUSY: another IPMODIFY user (a livepatch) holds an entry. */
		pr_err("dipc: cannot hook the SysV IPC entry points: %d%s\n", err,
		       err == -EBUSY ? " (another IPMODIFY ftrace user, or kernel.ftrace_enabled=0)" : "");
		goto fail;
	}
	dipc_ops_registered = true;
	for (i = 0; i < DIPC_NR_HOOKS; i++)
		dipc_hooks[i].registered = dipc_hooks[i].fentry != 0;
	/* Not needed for the calls themselves: only what /proc/sysvipc shows. */
	err = dipc_proc_register(ctx);
	if (err == -ENOEXEC)
		goto fail;
	if (err)
		pr_warn("dipc: /proc/sysvipc shows shadows as local objects: %d\n", err);
	return 0;
fail:
	dipc_hooks_unregister();
	return err;
}

void dipc_hooks_unregister(void)
{
	unsigned int i;

	if (dipc_ops_registered) {
		unregister_ftrace_function(&dipc_ops);
		dipc_ops_registered = false;
	}
	if (dipc_exit_registered) {
		unregister_ftrace_function(&dipc_exit_ops);
		dipc_exit_registered = false;
	}
	if (dipc_mmap_registered) {
		unregister_ftrace_function(&dipc_mmap_ops);
		dipc_mmap_registered = false;
	}
	dipc_proc_unregister();
	ftrace_free_filter(&dipc_ops);
	ftrace_free_filter(&dipc_exit_ops);
	ftrace_free_filter(&dipc_mmap_ops);
	/*
	 * Entries are never cleared: the module's exit stops the connection
	 * thread and the netlink family before the hooks go, and nothing
	 * calls an original after this returns, but a stale entry is still a
	 * function, never address 0.
	 */
	for (i = 0; i < DIPC_NR_HOOKS; i++)
		dipc_hooks[i].registered = false;
	/*
	 * A task may have dropped its module reference in a trampoline and not
	 * yet returned out of it; RCU Tasks waits until every task has passed
	 * a voluntary context switch or user mode, i.e. left our code.
	 */
	synchronize_rcu_tasks();
}
