// SPDX-License-Identifier: GPL-2.0
/* The calling task: credentials and process id for requests to the referee. */
#include <linux/capability.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/cred.h>
#include <linux/pagemap.h>
#include <linux/ptrace.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/timekeeping.h>
#include <linux/uidgid.h>
#include "../dipc_helpers.h"
#include "arch.h"

void dipc_current_cred(struct dipc_cred *out)
{
	const struct cred *cred = current_cred();
	struct group_info *gi = cred->group_info;
	u32 i, n;

	out->euid = from_kuid_munged(&init_user_ns, cred->euid);
	out->egid = from_kgid_munged(&init_user_ns, cred->egid);
	out->caps = 0;
	if (capable(CAP_IPC_OWNER))
		out->caps |= DIPC_CAP_IPC_OWNER;
	if (capable(CAP_SYS_ADMIN))
		out->caps |= DIPC_CAP_SYS_ADMIN;
	if (capable(CAP_SYS_RESOURCE))
		out->caps |= DIPC_CAP_SYS_RESOURCE;
	n = min_t(u32, gi->ngroups, DIPC_MAX_GROUPS);
	for (i = 0; i < n; i++)
		out->groups[i] = from_kgid_munged(&init_user_ns, gi->gid[i]);
	out->ngroups = n;
}

u32 dipc_current_tgid(void)
{
	return task_tgid_nr(current);
}

size_t dipc_fault_in_writeable(unsigned long uaddr, size_t size)
{
	return fault_in_safe_writeable((const char __user *)uaddr, size);
}

/*
 * The local half of a call on a distributed object whose permission check
 * the referee already made: run it with CAP_IPC_OWNER and CAP_SYS_ADMIN, so
 * the local shadow's own (possibly stale) owner and mode do not refuse it.
 */
static long dipc_call_privileged(unsigned int id, const struct pt_regs *regs)
{
	struct cred *new = prepare_creds();
	const struct cred *old;
	long ret;

	if (!new)
		return -ENOMEM;
	cap_raise(new->cap_effective, CAP_IPC_OWNER);
	cap_raise(new->cap_effective, CAP_SYS_ADMIN);
	old = override_creds(new);
	ret = dipc_call_original(id, regs);
	revert_creds(old);
	put_cred(new);
	return ret;
}

long dipc_call_original_priv(unsigned int id, const struct pt_regs *regs)
{
	return dipc_call_privileged(id, regs);
}

long dipc_call_original_args_priv(unsigned int id, long a0, long a1, long a2, long a3)
{
	struct pt_regs regs = {};

	dipc_set_sys_args(&regs, a0, a1, a2, a3);
	return dipc_call_privileged(id, &regs);
}

/*
 * SEMOPM of the caller's IPC namespace (`kernel.sem`'s third field), which
 * do_semtimedop() checks nsops against before it copies anything.
 */
int dipc_ns_semopm(void)
{
	/* ipc/sem.c: #define sc_semopm sem_ctls[2] */
	return READ_ONCE(current->nsproxy->ipc_ns->sem_ctls[2]);
}

/* The wall clock in seconds, as ipc/ stamps sem_otime, msg_stime & co. */
u32 dipc_real_seconds(void)
{
	return (u32)ktime_get_real_seconds();
}
