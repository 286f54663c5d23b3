/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the architectures dipc runs on (x86-64 and arm64),
 * in one place: the names of the syscall entry points, the registers that
 * carry a syscall's arguments in the `struct pt_regs` an entry point is
 * given, where a function's ftrace site lies relative to its entry, and
 * which first instruction a function called through a pointer needs on a
 * CPU that enforces branch targets (IBT's endbr64, BTI's `bti c`). The
 * rest of the module, C and Rust, is the same on both.
 */
#ifndef DIPC_ARCH_H
#define DIPC_ARCH_H

#include <linux/printk.h>
#include <linux/ptrace.h>
#include <linux/uaccess.h>

#if defined(CONFIG_X86_64)

/* The 64-bit entry points: SYSCALL_DEFINE's wrappers, __x64_sys_NAME. */
#define DIPC_SYS(name) "__x64_sys_" name

/* Argument `n` (0..5) of a 64-bit syscall: rdi, rsi, rdx, r10, r8, r9. */
static __always_inline unsigned long dipc_sys_arg(const struct pt_regs *r, unsigned int n)
{
	switch (n) {
	case 0: return r->di;
	case 1: return r->si;
	case 2: return r->dx;
	case 3: return r->r10;
	case 4: return r->r8;
	default: return r->r9;
	}
}

/* Argument `n` (0..5) of a 32-bit (ia32) syscall: ebx, ecx, edx, esi, edi, ebp. */
static __always_inline unsigned long dipc_compat_arg(const struct pt_regs *r, unsigned int n)
{
	switch (n) {
	case 0: return r->bx;
	case 1: return r->cx;
	case 2: return r->dx;
	case 3: return r->si;
	case 4: return r->di;
	default: return r->bp;
	}
}

/* Registers for a 64-bit call with arguments a0..a3. */
static __always_inline void dipc_set_sys_args(struct pt_regs *r, long a0, long a1, long a2,
					      long a3)
{
	r->di = a0;
	r->si = a1;
	r->dx = a2;
	r->r10 = a3;
}

/*
 * A function's ftrace site and entry from the address a disabled kprobe on
 * its name resolves to (`kp`): on x86 that is the ftrace site (the kprobe
 * skips endbr64 and lands on the __fentry__ call), and the entry is found
 * by the caller from kallsyms' offset (`off`, of `kp` in the symbol).
 */
static inline bool dipc_arch_sites(unsigned long kp, unsigned long off, unsigned long *fentry,
				   unsigned long *entry)
{
	if (off > kp)
		return false;
	*fentry = kp;
	*entry = kp - off;
	return true;
}

/* endbr64: f3 0f 1e fa. */
#define DIPC_ENDBR64 0xfa1e0ff3U

/*
 * Whether an indirect call to `addr` is allowed on a CPU that enforces
 * kernel IBT: it must begin with endbr64. Always true without IBT.
 */
static inline bool dipc_arch_call_target_ok(const char *name, unsigned long addr)
{
	u32 insn;

	if (!IS_ENABLED(CONFIG_X86_KERNEL_IBT))
		return true;
	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn))) {
		pr_err("dipc: cannot read %s at %px\n", name, (void *)addr);
		return false;
	}
	if (insn != DIPC_ENDBR64) {
		pr_err("dipc: %s at %px does not begin with endbr64 (%08x): an indirect call to it would fault on a CPU enforcing IBT; not loading\n",
		       name, (void *)addr, insn);
		return false;
	}
	return true;
}

#elif defined(CONFIG_ARM64)

/* The 64-bit entry points: SYSCALL_DEFINE's wrappers, __arm64_sys_NAME. */
#define DIPC_SYS(name) "__arm64_sys_" name

/*
 * Argument `n` (0..5) of a 64-bit syscall: x1..x5 from regs[], and the
 * first from orig_x0, where the syscall entry saved x0 and where the
 * wrappers read it (SC_ARM64_REGS_TO_ARGS: x0 is the return value's
 * register, which a restarted or traced syscall may have changed).
 */
static __always_inline unsigned long dipc_sys_arg(const struct pt_regs *r, unsigned int n)
{
	return n == 0 ? r->orig_x0 : r->regs[n < 6 ? n : 5];
}

/* Argument `n` of an AArch32 syscall: r0..r5 (COMPAT_SC_ARM64_REGS_TO_ARGS). */
static __always_inline unsigned long dipc_compat_arg(const struct pt_regs *r, unsigned int n)
{
	return (u32)r->regs[n < 6 ? n : 5];
}

/* Registers for a 64-bit call with arguments a0..a3: a0 in x0 and orig_x0. */
static __always_inline void dipc_set_sys_args(struct pt_regs *r, long a0, long a1, long a2,
					      long a3)
{
	r->orig_x0 = a0;
	r->regs[0] = a0;
	r->regs[1] = a1;
	r->regs[2] = a2;
	r->regs[3] = a3;
}

/* The instructions of an ftrace site (arch/arm64/kernel/ftrace.c). */
#define DIPC_A64_NOP 0xd503201fU
#define DIPC_A64_MOV_X9_LR 0xaa1e03e9U
#define DIPC_A64_BTI_C 0xd503245fU
#define DIPC_A64_BTI_JC 0xd50324dfU
#define DIPC_A64_BL_MASK 0xfc000000U
#define DIPC_A64_BL 0x94000000U

/*
 * On arm64 a kprobe on a name resolves to the function's entry (there are
 * no kprobes on ftrace sites), so `off` must be 0. The ftrace site is the
 * second instruction of the patchable entry, which the compiler put at the
 * entry, after `bti c` where the function has one:
 *	[bti c]; nop (patched to mov x9, lr at boot); nop (bl ftrace_caller when on)
 * (arch_ftrace_get_symaddr() is the converse). The layout is checked, so a
 * kernel built otherwise fails the load instead of hooking the wrong address.
 */
static inline bool dipc_arch_sites(unsigned long kp, unsigned long off, unsigned long *fentry,
				   unsigned long *entry)
{
	u32 insn[3];
	unsigned int i = 0;

	if (off)
		return false;
	if (copy_from_kernel_nofault(insn, (void *)kp, sizeof(insn)))
		return false;
	if (insn[0] == DIPC_A64_BTI_C || insn[0] == DIPC_A64_BTI_JC)
		i = 1;
	if (i == 0 && copy_from_kernel_nofault(&insn[2], (void *)(kp + 8), sizeof(insn[2])))
		return false;
	if (insn[i] != DIPC_A64_MOV_X9_LR && insn[i] != DIPC_A64_NOP)
		return false;
	if (insn[i + 1] != DIPC_A64_NOP && (insn[i + 1] & DIPC_A64_BL_MASK) != DIPC_A64_BL)
		return false;
	*entry = kp;
	*fentry = kp + 4 * (i + 1);
	return true;
}

/*
 * Whether an indirect call to `addr` is allowed on a CPU that enforces
 * kernel BTI: it must begin with `bti c` (or `bti jc`). Always true without
 * CONFIG_ARM64_BTI_KERNEL (which needs clang; Debian builds with gcc).
 */
static inline bool dipc_arch_call_target_ok(const char *name, unsigned long addr)
{
	u32 insn;

	if (!IS_ENABLED(CONFIG_ARM64_BTI_KERNEL))
		return true;
	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn))) {
		pr_err("dipc: cannot read %s at %px\n", name, (void *)addr);
		return false;
	}
	if (insn != DIPC_A64_BTI_C && insn != DIPC_A64_BTI_JC) {
		pr_err("dipc: %s at %px does not begin with bti c (%08x): an indirect call to it would fault on a CPU enforcing BTI; not loading\n",
		       name, (void *)addr, insn);
		return false;
	}
	return true;
}

#else
#error "dipc runs on x86-64 and arm64"
#endif

#endif /* DIPC_ARCH_H */
