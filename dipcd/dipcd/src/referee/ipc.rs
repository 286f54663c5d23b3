//! What every SysV IPC object shares: permissions and the key lookup, after
//! `ipc/util.c` (`struct kern_ipc_perm`, `ipcperms()`, `ipcget_public()`,
//! `ipcctl_obtain_check()`, `ipc_update_perm()`).

use dipc_wire::{errno, Cred, IpcPerm, CAP_SYS_ADMIN};
use serde::{Deserialize, Serialize};

/// `S_IRWXUGO`.
pub const S_IRWXUGO: u32 = 0o777;
/// `S_IRUGO`: read access for everyone, as `ipcperms()` is asked for it.
pub const S_IRUGO: u32 = 0o444;
/// `S_IWUGO`: write (alter) access.
pub const S_IWUGO: u32 = 0o222;
/// `IPC_CREAT`.
pub const IPC_CREAT: i32 = 0o1000;
/// `IPC_EXCL`.
pub const IPC_EXCL: i32 = 0o2000;
/// `IPC_NOWAIT`.
pub const IPC_NOWAIT: i16 = 0o4000;

/// A positive errno value.
pub type Errno = i32;

/// An object's ownership and mode, as `struct kern_ipc_perm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernIpcPerm {
    /// The SysV id, the same on every node (see [`super::ids`]).
    pub id: i32,
    /// The key.
    pub key: i32,
    /// Owner.
    pub uid: u32,
    /// Owner group.
    pub gid: u32,
    /// Creator.
    pub cuid: u32,
    /// Creator group.
    pub cgid: u32,
    /// Mode bits (`S_IRWXUGO` of them are used).
    pub mode: u32,
}

impl KernIpcPerm {
    /// A new object's permissions, owned by the caller (`newary()` & co.).
    pub fn new(key: i32, flags: i32, cred: &Cred) -> Self {
        KernIpcPerm {
            id: -1,
            key,
            uid: cred.euid,
            gid: cred.egid,
            cuid: cred.euid,
            cgid: cred.egid,
            mode: flags as u32 & S_IRWXUGO,
        }
    }

    /// `ipcperms()`: may `cred` have the access `flag` asks for (`S_IRUGO`,
    /// `S_IWUGO`, or a `get` call's flag word)? `Err(EACCES)` if not.
    pub fn ipcperms(&self, cred: &Cred, flag: u32) -> Result<(), Errno> {
        // The check a node holding a message lease makes too.
        self.ipc_perm().ipcperms(cred, flag)
    }

    /// The owner, creator and mode, as the wire carries them.
    pub fn ipc_perm(&self) -> IpcPerm {
        IpcPerm {
            uid: self.uid,
            gid: self.gid,
            cuid: self.cuid,
            cgid: self.cgid,
            mode: self.mode,
        }
    }

    /// The read check of `IPC_STAT` and the `*_STAT` commands; none for
    /// `*_STAT_ANY` (`any`), as `semctl_stat()`, `msgctl_stat()` and
    /// `shmctl_stat()` make it.
    pub fn stat_check(&self, cred: &Cred, any: bool) -> Result<(), Errno> {
        if any {
            Ok(())
        } else {
            self.ipcperms(cred, S_IRUGO)
        }
    }

    /// What a node's shadow is given: the owner, creator and the mode's
    /// `S_IRWXUGO` bits (`SHM_DEST` and the like are the node's own).
    pub fn shadow_perm(&self) -> IpcPerm {
        IpcPerm {
            mode: self.mode & S_IRWXUGO,
            ..self.ipc_perm()
        }
    }

    /// `ipcctl_obtain_check()`: `IPC_SET` and `IPC_RMID` need the owner, the
    /// creator, or `CAP_SYS_ADMIN`; `Err(EPERM)` otherwise.
    pub fn ctl_check(&self, cred: &Cred) -> Result<(), Errno> {
        if cred.euid == self.cuid || cred.euid == self.uid || cred.caps & CAP_SYS_ADMIN != 0 {
            Ok(())
        } else {
            Err(errno::EPERM)
        }
    }

    /// `ipc_update_perm()`: `IPC_SET`'s new owner and mode.
    pub fn update(&mut self, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
        // (uid_t)-1 and (gid_t)-1 are not valid ids.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(errno::EINVAL);
        }
        self.uid = uid;
        self.gid = gid;
        self.mode = (self.mode & !S_IRWXUGO) | (mode & S_IRWXUGO);
        Ok(())
    }
}

/// How a `get` call that found an existing object ends (`ipcget_public()`):
/// `EEXIST` with `IPC_CREAT|IPC_EXCL`, then the kind's own check, then the
/// permission check of the flag word.
pub fn ipcget_existing(
    perm: &KernIpcPerm,
    flags: i32,
    cred: &Cred,
    more_checks: impl FnOnce() -> Result<(), Errno>,
) -> Result<(), Errno> {
    if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
        return Err(errno::EEXIST);
    }
    more_checks()?;
    perm.ipcperms(cred, flags as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipc_wire::CAP_IPC_OWNER;

    fn perm(mode: u32) -> KernIpcPerm {
        KernIpcPerm::new(1, mode as i32, &Cred::new(100, 200, 0))
    }

    #[test]
    fn owner_group_other_bits() {
        let p = perm(0o640);
        assert_eq!(p.ipcperms(&Cred::new(100, 1, 0), S_IWUGO), Ok(()));
        assert_eq!(p.ipcperms(&Cred::new(5, 200, 0), S_IRUGO), Ok(()));
        assert_eq!(
            p.ipcperms(&Cred::new(5, 200, 0), S_IWUGO),
            Err(errno::EACCES)
        );
        assert_eq!(p.ipcperms(&Cred::new(5, 6, 0), S_IRUGO), Err(errno::EACCES));
        assert_eq!(p.ipcperms(&Cred::new(5, 6, CAP_IPC_OWNER), S_IWUGO), Ok(()));
        // A supplementary group counts.
        let mut c = Cred::new(5, 6, 0);
        c.ngroups = 1;
        c.groups[0] = 200;
        assert_eq!(p.ipcperms(&c, S_IRUGO), Ok(()));
        // The owner class is used even when it grants less than "other".
        let p = perm(0o066);
        assert_eq!(
            p.ipcperms(&Cred::new(100, 1, 0), S_IRUGO),
            Err(errno::EACCES)
        );
    }

    #[test]
    fn get_flags_are_checked_as_a_mode() {
        let p = perm(0o600);
        let other = Cred::new(7, 7, 0);
        // Asking for nothing is always allowed; asking for 0600 is not.
        assert_eq!(ipcget_existing(&p, 0, &other, || Ok(())), Ok(()));
        assert_eq!(
            ipcget_existing(&p, 0o600, &other, || Ok(())),
            Err(errno::EACCES)
        );
        assert_eq!(
            ipcget_existing(&p, IPC_CREAT | IPC_EXCL, &other, || Ok(())),
            Err(errno::EEXIST)
        );
        assert_eq!(
            ipcget_existing(&p, IPC_CREAT, &other, || Err(errno::EINVAL)),
            Err(errno::EINVAL)
        );
    }

    #[test]
    fn ctl_needs_owner_creator_or_admin() {
        let mut p = perm(0o600);
        assert_eq!(p.ctl_check(&Cred::new(7, 7, 0)), Err(errno::EPERM));
        assert_eq!(p.ctl_check(&Cred::new(7, 7, CAP_SYS_ADMIN)), Ok(()));
        p.update(7, 8, 0o1644).unwrap();
        assert_eq!(p.mode, 0o644);
        assert_eq!(p.ctl_check(&Cred::new(7, 7, 0)), Ok(()));
        assert_eq!(p.ctl_check(&Cred::new(100, 7, 0)), Ok(()));
        assert_eq!(p.update(u32::MAX, 0, 0), Err(errno::EINVAL));
    }
}
