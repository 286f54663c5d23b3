//! What `IPC_STAT` says about a distributed object, asked on its local
//! shadow id the way any program asks: the call goes through dipc to the
//! referee, so the answer is the cluster's (owner, mode, semaphores,
//! messages queued, the segment's attaches on every node).

use serde_json::{Map, Value};

/// The object's cluster-wide attributes, or `None` when `IPC_STAT` fails
/// (no read permission, the object just went, no referee).
pub fn stat(kind: &str, id: i32) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    match kind {
        "sem" => {
            // SAFETY: an all-zero semid_ds is a valid value (integers only).
            let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
            // IPC_STAT writes one semid_ds through the union semun argument.
            // SAFETY: that argument points to `ds`, writable for one semid_ds.
            let r = unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) };
            if r < 0 {
                return None;
            }
            perm(&mut m, ds.sem_perm.uid, ds.sem_perm.mode.into());
            m.insert("nsems".into(), ds.sem_nsems.into());
        }
        "msg" => {
            // SAFETY: an all-zero msqid_ds is a valid value (integers only).
            let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: IPC_STAT writes one msqid_ds to `ds`.
            if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } < 0 {
                return None;
            }
            perm(&mut m, ds.msg_perm.uid, ds.msg_perm.mode.into());
            m.insert("qnum".into(), ds.msg_qnum.into());
            m.insert("cbytes".into(), ds.__msg_cbytes.into());
        }
        "shm" => {
            // SAFETY: an all-zero shmid_ds is a valid value (integers only).
            let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
            // SAFETY: IPC_STAT writes one shmid_ds to `ds`.
            if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
                return None;
            }
            perm(&mut m, ds.shm_perm.uid, ds.shm_perm.mode.into());
            m.insert("nattch".into(), ds.shm_nattch.into());
        }
        _ => return None,
    }
    Some(m)
}

fn perm(m: &mut Map<String, Value>, uid: u32, mode: u32) {
    m.insert("uid".into(), uid.into());
    m.insert("mode".into(), format!("{:04o}", mode & 0o777).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a plain kernel too: a local set, queue and segment (no dipc
    /// needed) read back with their owner, mode and counts.
    #[test]
    fn stat_reads_local_objects() {
        // SAFETY: plain SysV IPC gets of new private objects; no pointers.
        let (sem, msg, shm) = unsafe {
            (
                libc::semget(libc::IPC_PRIVATE, 3, 0o640),
                libc::msgget(libc::IPC_PRIVATE, 0o600),
                libc::shmget(libc::IPC_PRIVATE, 8192, 0o604),
            )
        };
        assert!(sem >= 0 && msg >= 0 && shm >= 0);
        // SAFETY: geteuid has no preconditions.
        let uid = u64::from(unsafe { libc::geteuid() });
        let s = stat("sem", sem).unwrap();
        assert_eq!(
            (s["nsems"].as_u64(), s["mode"].as_str()),
            (Some(3), Some("0640"))
        );
        assert_eq!(s["uid"].as_u64(), Some(uid));
        let q = stat("msg", msg).unwrap();
        assert_eq!(
            (q["qnum"].as_u64(), q["cbytes"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(q["mode"], "0600");
        let g = stat("shm", shm).unwrap();
        assert_eq!(
            (g["nattch"].as_u64(), g["mode"].as_str()),
            (Some(0), Some("0604"))
        );
        // SAFETY: IPC_RMID of the objects made above; no buffer is passed.
        unsafe {
            libc::semctl(sem, 0, libc::IPC_RMID);
            libc::msgctl(msg, libc::IPC_RMID, std::ptr::null_mut());
            libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut());
        }
        // Gone: no answer.
        assert!(stat("sem", sem).is_none());
        assert!(stat("other", 0).is_none());
    }
}
