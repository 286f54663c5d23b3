// SPDX-License-Identifier: GPL-2.0
/* The calling task: credentials and process id for requests to the referee. */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/pagemap.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/uidgid.h>
#include "../dipc_helpers.h"

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
