// SPDX-License-Identifier: GPL-2.0

//! 32-bit programs on a 64-bit node (IA32 emulation): their calls reach
//! the module through the ia32 entry points, with their arguments in the
//! i386 registers (`bx`, `cx`, `dx`, `si`, `di`, `bp`). A program built
//! against glibc for i386 makes every SysV IPC call through the `ipc(2)`
//! multiplexer (`__ia32_compat_sys_ipc`); newer libcs use the direct
//! entries (`__ia32_sys_semget`, `__ia32_compat_sys_semctl`, ...). Each is
//! turned here into the x86-64 call it stands for, with the ABI whose
//! structures it copies ([`Abi`]) and the form of its timeout ([`Time`]),
//! so one handler per call serves both.

use crate::{
    layout::Abi,
    shim::{
        HOOK_IPC, HOOK_MSGCTL, HOOK_MSGCTL32, HOOK_MSGGET, HOOK_MSGGET32, HOOK_MSGRCV,
        HOOK_MSGRCV32, HOOK_MSGSND, HOOK_MSGSND32, HOOK_SEMCTL, HOOK_SEMCTL32, HOOK_SEMGET,
        HOOK_SEMGET32, HOOK_SEMTIMEDOP, HOOK_SEMTIMEDOP32, HOOK_SHMAT, HOOK_SHMAT32, HOOK_SHMCTL,
        HOOK_SHMCTL32, HOOK_SHMDT, HOOK_SHMDT32, HOOK_SHMGET, HOOK_SHMGET32, NR_ARGS,
    },
    util::{copy_in, neg},
    wire::errno,
};
use kernel::{bindings, prelude::*};

/// The form of `semtimedop`'s timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Time {
    /// `struct __kernel_timespec` from an x86-64 program.
    Native,
    /// `struct __kernel_timespec` from a 32-bit program
    /// (`semtimedop_time64`): the upper half of `tv_nsec` is ignored, as
    /// `get_timespec64()` does for compat callers.
    Compat64,
    /// `struct old_timespec32` (`ipc(SEMTIMEDOP)`).
    Old32,
}

/// A call in the terms of the x86-64 entry point it stands for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call {
    /// The x86-64 hook whose semantics apply (`HOOK_SEMOP`, ...).
    pub(crate) hook: u32,
    /// Its arguments, as the x86-64 call takes them.
    pub(crate) a: [usize; 5],
    /// The layout of the structures it copies.
    pub(crate) abi: Abi,
    /// The form of its timeout (`semtimedop` only).
    pub(crate) time: Time,
}

/// What a hooked call is.
pub(crate) enum Decoded {
    /// A call the module may have to carry out.
    Call(Call),
    /// One the local kernel answers alone (an unknown `ipc(2)` call).
    Local,
    /// One that fails before it names any object, as the kernel's entry
    /// point fails it (`ipc(SEMCTL)` without a pointer, ...).
    Fail(c_long),
}

/// `IPC_64` (`include/uapi/linux/ipc.h`): the flag 32-bit programs add
/// to a `*ctl` command for the `compat_*id64_ds` layouts.
const IPC_64: i32 = bindings::IPC_64 as i32;

/// A 32-bit register as an unsigned argument (a pointer, a size, an
/// `unsigned int`): zero-extended, as `compat_ptr()` does.
fn u(v: usize) -> usize {
    v as u32 as usize
}

/// A 32-bit register as a signed argument (`compat_ssize_t`,
/// `compat_long_t`): sign-extended.
fn s(v: usize) -> usize {
    v as u32 as i32 as isize as usize
}

/// A `*ctl` command of a 32-bit `ipc(2)` call: without `IPC_64`, and the
/// layout it asks for (`compat_ipc_parse_version()`).
fn parse_version(cmd: usize) -> (usize, Abi) {
    let cmd = cmd as u32 as i32;
    let abi = if cmd & IPC_64 != 0 {
        Abi::Compat
    } else {
        Abi::CompatOld
    };
    ((cmd & !IPC_64) as u32 as usize, abi)
}

/// Hook `id`'s call with the arguments `r` (in the order of the entry's
/// ABI: [`crate::shim::syscall_args`]).
pub(crate) fn decode(id: u32, r: &[usize; NR_ARGS]) -> Decoded {
    let native = |hook| Call {
        hook,
        a: [r[0], r[1], r[2], r[3], r[4]],
        abi: Abi::Native,
        time: Time::Native,
    };
    // A 32-bit call's arguments (i386: bx, cx, dx, si, di, bp), in order.
    let [b, c, d, si, di, bp] = *r;
    let compat = |hook, a| Call {
        hook,
        a,
        abi: Abi::Compat,
        time: Time::Compat64,
    };
    let call = match id {
        HOOK_IPC => return ipc(b, c, d, si, di, bp),
        HOOK_SEMGET32 => compat(HOOK_SEMGET, [u(b), u(c), u(d), 0, 0]),
        HOOK_SEMTIMEDOP32 => compat(HOOK_SEMTIMEDOP, [u(b), u(c), u(d), u(si), 0]),
        // compat_sys_semctl() takes the command as it is (no IPC_64 parse).
        HOOK_SEMCTL32 => compat(HOOK_SEMCTL, [u(b), u(c), u(d), u(si), 0]),
        HOOK_MSGGET32 => compat(HOOK_MSGGET, [u(b), u(c), 0, 0, 0]),
        HOOK_MSGSND32 => compat(HOOK_MSGSND, [u(b), u(c), s(d), u(si), 0]),
        HOOK_MSGRCV32 => compat(HOOK_MSGRCV, [u(b), u(c), s(d), s(si), u(di)]),
        HOOK_MSGCTL32 => compat(HOOK_MSGCTL, [u(b), u(c), u(d), 0, 0]),
        HOOK_SHMGET32 => compat(HOOK_SHMGET, [u(b), u(c), u(d), 0, 0]),
        HOOK_SHMAT32 => compat(HOOK_SHMAT, [u(b), u(c), u(d), 0, 0]),
        HOOK_SHMDT32 => compat(HOOK_SHMDT, [u(b), 0, 0, 0, 0]),
        HOOK_SHMCTL32 => compat(HOOK_SHMCTL, [u(b), u(c), u(d), 0, 0]),
        _ => native(id),
    };
    Decoded::Call(call)
}

/// `compat_sys_ipc(call, first, second, third, ptr, fifth)`
/// (`ipc/syscall.c`): the call it stands for, after the checks it makes
/// before it looks at any object.
fn ipc(
    call: usize,
    first: usize,
    second: usize,
    third: usize,
    ptr: usize,
    fifth: usize,
) -> Decoded {
    // The call numbers (`include/uapi/linux/ipc.h`).
    use bindings::{
        MSGCTL, MSGGET, MSGRCV, MSGSND, SEMCTL, SEMGET, SEMOP, SEMTIMEDOP, SHMAT, SHMCTL, SHMDT,
        SHMGET,
    };
    let version = (call as u32) >> 16;
    let (first, second, third, ptr, fifth) = (u(first), u(second), u(third), u(ptr), fifth);
    let with = |hook, a, abi| {
        Decoded::Call(Call {
            hook,
            a,
            abi,
            time: Time::Old32,
        })
    };
    let old = |hook, a| with(hook, a, Abi::Compat);
    match (call as u32) & 0xffff {
        // struct sembuf is the same on 32 and 64 bits.
        SEMOP => old(HOOK_SEMTIMEDOP, [first, ptr, second, 0, 0]),
        // Only with 32-bit time_t calls in the kernel.
        SEMTIMEDOP if !cfg!(CONFIG_COMPAT_32BIT_TIME) => Decoded::Fail(neg(errno::ENOSYS)),
        SEMTIMEDOP => old(HOOK_SEMTIMEDOP, [first, ptr, second, u(fifth), 0]),
        SEMGET => old(HOOK_SEMGET, [first, second, third, 0, 0]),
        SEMCTL => {
            if ptr == 0 {
                return Decoded::Fail(neg(errno::EINVAL));
            }
            let mut pad = [0u8; 4];
            if let Err(e) = copy_in(ptr, &mut pad) {
                return Decoded::Fail(e);
            }
            let (cmd, abi) = parse_version(third);
            let arg = u32::from_ne_bytes(pad) as usize;
            with(HOOK_SEMCTL, [first, second, cmd, arg, 0], abi)
        }
        MSGSND => old(HOOK_MSGSND, [first, ptr, s(second), third, 0]),
        MSGRCV => {
            if (first as i32) < 0 || (second as i32) < 0 {
                return Decoded::Fail(neg(errno::EINVAL));
            }
            if version != 0 {
                return old(HOOK_MSGRCV, [first, ptr, second, s(fifth), third]);
            }
            // struct compat_ipc_kludge { compat_uptr_t msgp; compat_long_t msgtyp; }
            if ptr == 0 {
                return Decoded::Fail(neg(errno::EINVAL));
            }
            let mut k = [0u8; 8];
            if let Err(e) = copy_in(ptr, &mut k) {
                return Decoded::Fail(e);
            }
            let msgp = u32::from_ne_bytes([k[0], k[1], k[2], k[3]]) as usize;
            let msgtyp = i32::from_ne_bytes([k[4], k[5], k[6], k[7]]) as isize as usize;
            old(HOOK_MSGRCV, [first, msgp, second, msgtyp, third])
        }
        MSGGET => old(HOOK_MSGGET, [first, second, 0, 0, 0]),
        SHMAT => {
            if version == 1 {
                return Decoded::Fail(neg(errno::EINVAL));
            }
            // The address goes to *third; the call's original writes it.
            old(HOOK_SHMAT, [first, ptr, second, third, 0])
        }
        SHMDT => old(HOOK_SHMDT, [ptr, 0, 0, 0, 0]),
        SHMGET => old(HOOK_SHMGET, [first, second, third, 0, 0]),
        ctl @ (MSGCTL | SHMCTL) => {
            let hook = if ctl == MSGCTL {
                HOOK_MSGCTL
            } else {
                HOOK_SHMCTL
            };
            let (cmd, abi) = parse_version(second);
            with(hook, [first, cmd, ptr, 0, 0], abi)
        }
        _ => Decoded::Local,
    }
}
