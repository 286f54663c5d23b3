// SPDX-License-Identifier: GPL-2.0
/*
 * Cluster-wide ids: a new local shadow is moved to the id the referee
 * chose for its object, so the same id names the same object on every node.
 *
 * The kernel places a new object at a chosen id only through
 * checkpoint/restore's kernel.{sem,msg,shm}_next_id, which needs
 * CONFIG_CHECKPOINT_RESTORE and is consumed by whichever creation in the
 * namespace comes next, the module's or another process's. Instead the
 * module creates the shadow as any object is created, then, before anyone
 * else can know its id, moves it in the namespace's id table: under the
 * table's rwsem taken for writing (as ipcget_new() and ipc_rmid()'s
 * callers hold it, so no object can be created, removed or looked up by
 * key meanwhile) it takes the exact slot with idr_alloc(), sets the id and
 * sequence number under the object's lock, frees the old slot, and keeps
 * max_idx as ipc_addid() and ipc_rmid() do. Lock-free lookups by id
 * (ipc_obtain_object_check(), under RCU) see the object at one slot or the
 * other with the id that slot's index and sequence number check against.
 */
#include <linux/idr.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/stat.h>
#include <linux/uidgid.h>
#include "../dipc_helpers.h"

#define DIPC_IDX(id) ((id) & (DIPC_IPCMNI - 1))

int dipc_ipc_move(int cls, int old_id, int new_id)
{
	struct ipc_ids *ids;
	struct kern_ipc_perm *p;
	int old_idx = DIPC_IDX(old_id), idx = DIPC_IDX(new_id), ret;

	/* ids[]: IPC_SEM_IDS 0, IPC_MSG_IDS 1, IPC_SHM_IDS 2 (ipc/util.h). */
	if (cls < 0 || cls > 2 || old_id < 0 || new_id < 0)
		return -EINVAL;
	ids = &current->nsproxy->ipc_ns->ids[cls];
	down_write(&ids->rwsem);
	idr_preload(GFP_KERNEL);
	rcu_read_lock();
	p = idr_find(&ids->ipcs_idr, old_idx);
	if (!p || p->id != old_id || p->deleted) {
		ret = -EINVAL;
		goto out;
	}
	if (idx != old_idx) {
		ret = idr_alloc(&ids->ipcs_idr, p, idx, idx + 1, GFP_NOWAIT);
		if (ret < 0)
			goto out;
	}
	spin_lock(&p->lock);
	p->seq = new_id >> DIPC_IPCMNI_SHIFT;
	p->id = new_id;
	spin_unlock(&p->lock);
	if (idx != old_idx) {
		idr_remove(&ids->ipcs_idr, old_idx);
		if (idx > ids->max_idx)
			ids->max_idx = idx;
		/* ipc_rmid(): the highest slot in use, if that was the old one. */
		if (old_idx == ids->max_idx) {
			int i = old_idx - 1;

			while (i >= 0 && !idr_find(&ids->ipcs_idr, i))
				i--;
			ids->max_idx = i;
		}
	}
	ret = 0;
out:
	rcu_read_unlock();
	idr_preload_end();
	up_write(&ids->rwsem);
	return ret;
}

/*
 * A shadow shows the distributed object's owner, creator and mode, so
 * ipcs on every node, and the checks the local kernel makes on the shadow
 * (SEM_STAT, SHM_STAT, SHM_LOCK), see what the referee sees: set when the
 * shadow is made and whenever an IPC_SET changes them anywhere. As
 * ipc_update_perm() under the table's rwsem and the object's lock; only
 * S_IRWXUGO of the mode, so SHM_DEST and SHM_LOCKED stay the node's own.
 */
int dipc_ipc_set_perm(int cls, int id, u32 uid, u32 gid, u32 cuid, u32 cgid, u32 mode)
{
	kuid_t kuid = make_kuid(&init_user_ns, uid), kcuid = make_kuid(&init_user_ns, cuid);
	kgid_t kgid = make_kgid(&init_user_ns, gid), kcgid = make_kgid(&init_user_ns, cgid);
	struct kern_ipc_perm *p;
	struct ipc_ids *ids;
	int ret = -EINVAL;

	if (cls < 0 || cls > 2 || id < 0)
		return -EINVAL;
	if (!uid_valid(kuid) || !gid_valid(kgid) || !uid_valid(kcuid) || !gid_valid(kcgid))
		return -EINVAL;
	ids = &current->nsproxy->ipc_ns->ids[cls];
	down_write(&ids->rwsem);
	rcu_read_lock();
	p = idr_find(&ids->ipcs_idr, DIPC_IDX(id));
	if (p) {
		spin_lock(&p->lock);
		if (p->id == id && !p->deleted) {
			p->uid = kuid;
			p->gid = kgid;
			p->cuid = kcuid;
			p->cgid = kcgid;
			p->mode = (p->mode & ~S_IRWXUGO) | (mode & S_IRWXUGO);
			ret = 0;
		}
		spin_unlock(&p->lock);
	}
	rcu_read_unlock();
	up_write(&ids->rwsem);
	return ret;
}
