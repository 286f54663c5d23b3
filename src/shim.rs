// SPDX-License-Identifier: GPL-2.0

//! The C shim (`rust/helpers/*.c`): the one `extern "C"` block, mirroring
//! `rust/dipc_helpers.h`, and safe wrappers over it.
//!
//! The functions C calls back (`dipc_rust_*`) live beside the logic they run:
//! [`crate::hooks`], [`crate::conn`] and [`crate::status`].

use core::ptr::NonNull;
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
};

/// `DIPC_NR_HOOKS` in the header.
pub(crate) const NR_HOOKS: usize = 24;

/// Hook numbers (`enum dipc_hook_id` in the C header).
pub(crate) const HOOK_SHMGET: u32 = 0;
pub(crate) const HOOK_SHMAT: u32 = 1;
pub(crate) const HOOK_SHMDT: u32 = 2;
pub(crate) const HOOK_SHMCTL: u32 = 3;
pub(crate) const HOOK_SEMGET: u32 = 4;
pub(crate) const HOOK_SEMOP: u32 = 5;
pub(crate) const HOOK_SEMTIMEDOP: u32 = 6;
pub(crate) const HOOK_SEMCTL: u32 = 7;
pub(crate) const HOOK_MSGGET: u32 = 8;
pub(crate) const HOOK_MSGSND: u32 = 9;
pub(crate) const HOOK_MSGRCV: u32 = 10;
pub(crate) const HOOK_MSGCTL: u32 = 11;
/// The ia32 entry points (IA32 emulation only; see [`crate::compat`]).
pub(crate) const HOOK_IPC: u32 = 12;
pub(crate) const HOOK_SEMGET32: u32 = 13;
pub(crate) const HOOK_SEMTIMEDOP32: u32 = 14;
pub(crate) const HOOK_SEMCTL32: u32 = 15;
pub(crate) const HOOK_MSGGET32: u32 = 16;
pub(crate) const HOOK_MSGSND32: u32 = 17;
pub(crate) const HOOK_MSGRCV32: u32 = 18;
pub(crate) const HOOK_MSGCTL32: u32 = 19;
pub(crate) const HOOK_SHMGET32: u32 = 20;
pub(crate) const HOOK_SHMAT32: u32 = 21;
pub(crate) const HOOK_SHMDT32: u32 = 22;
pub(crate) const HOOK_SHMCTL32: u32 = 23;

/// Hook names, in the order of `enum dipc_hook_id` in the C header.
pub(crate) const HOOK_NAMES: [&str; NR_HOOKS] = [
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "ipc",
    "ia32_semget",
    "ia32_semtimedop",
    "ia32_semctl",
    "ia32_msgget",
    "ia32_msgsnd",
    "ia32_msgrcv",
    "ia32_msgctl",
    "ia32_shmget",
    "ia32_shmat",
    "ia32_shmdt",
    "ia32_shmctl",
];

/// `struct socket`, only ever handled through pointers in Rust.
#[repr(C)]
pub(crate) struct RawSocket {
    _opaque: [u8; 0],
}

/// `struct task_struct`, only ever handled through pointers in Rust.
#[repr(C)]
pub(crate) struct RawTask {
    _opaque: [u8; 0],
}

mod ffi {
    use super::{RawSocket, RawTask};
    use kernel::{bindings, prelude::*};

    unsafe extern "C" {
        pub(super) fn dipc_hooks_register(
            ctx: *mut c_void,
            sem_bits: *const u64,
            msg_bits: *const u64,
            shm_bits: *const u64,
        ) -> c_int;
        pub(super) fn dipc_hooks_unregister();
        pub(super) fn dipc_hook_registered(id: c_uint) -> bool;
        pub(super) fn dipc_call_original(id: c_uint, regs: *const bindings::pt_regs) -> c_long;
        pub(super) fn dipc_syscall_args(
            id: c_uint,
            regs: *const bindings::pt_regs,
            out: *mut c_ulong,
        );
        pub(super) fn dipc_call_original_args(
            id: c_uint,
            a0: c_long,
            a1: c_long,
            a2: c_long,
            a3: c_long,
        ) -> c_long;
        pub(super) fn dipc_current_cred(out: *mut super::DipcCred);
        pub(super) fn dipc_current_tgid() -> u32;
        pub(super) fn dipc_ns_semopm() -> c_int;
        pub(super) fn dipc_real_seconds() -> u32;
        pub(super) fn dipc_ipc_move(cls: c_int, old_id: c_int, new_id: c_int) -> c_int;
        pub(super) fn dipc_ipc_set_perm(
            cls: c_int,
            id: c_int,
            uid: u32,
            gid: u32,
            cuid: u32,
            cgid: u32,
            mode: u32,
        ) -> c_int;
        pub(super) fn dipc_counter_inc(idx: c_uint);
        pub(super) fn dipc_counter_sum(idx: c_uint) -> u64;
        pub(super) fn dipc_trace_call(kind: u16, req_id: u64, result: c_int, ns: u64);
        pub(super) fn dipc_trace_fault(
            oid: u64,
            page: u64,
            write: bool,
            outcome: c_int,
            requests: u32,
            ns: u64,
        );
        pub(super) fn dipc_trace_grant(oid: u64, page: u64, write: bool, data: u8);
        pub(super) fn dipc_trace_inval(oid: u64, page: u64, keep_read: bool, sent: bool);
        pub(super) fn dipc_enabled_get() -> c_int;
        pub(super) fn dipc_quantum_ms_get() -> c_uint;
        pub(super) fn dipc_sock_set_rcvtimeo(sock: *mut RawSocket, ms: c_uint);
        pub(super) fn dipc_control_register(ctx: *mut c_void) -> c_int;
        pub(super) fn dipc_control_unregister();
        pub(super) fn dipc_genl_put_stat(
            msg: *mut c_void,
            name: *const c_char,
            value: u64,
            text: *const c_char,
        ) -> c_int;
        pub(super) fn dipc_referee_param() -> *const c_char;
        pub(super) fn dipc_nodename(buf: *mut c_char, len: usize);
        pub(super) fn dipc_secret_file_param() -> *const c_char;
        pub(super) fn dipc_read_secret(path: *const c_char, buf: *mut u8, cap: usize) -> c_int;
        pub(super) fn dipc_hmac_sha256(
            key: *const u8,
            key_len: usize,
            data: *const u8,
            len: usize,
            out: *mut u8,
        ) -> c_int;
        pub(super) fn dipc_random_bytes(buf: *mut u8, len: usize);
        pub(super) fn dipc_memeq_secret(a: *const u8, b: *const u8, len: usize) -> bool;
        pub(super) fn dipc_sock_connect(
            addr: u32,
            port: u16,
            timeout_ms: c_uint,
            rcv_timeout_ms: c_uint,
            err: *mut c_int,
        ) -> *mut RawSocket;
        pub(super) fn dipc_sock_send(sock: *mut RawSocket, buf: *const c_void, len: usize)
            -> c_int;
        pub(super) fn dipc_sock_send_nowait(
            sock: *mut RawSocket,
            buf: *const c_void,
            len: usize,
        ) -> c_int;
        pub(super) fn dipc_sock_recv(sock: *mut RawSocket, buf: *mut c_void, len: usize) -> c_int;
        pub(super) fn dipc_sock_shutdown(sock: *mut RawSocket);
        pub(super) fn dipc_sock_release(sock: *mut RawSocket);
        pub(super) fn dipc_kthread_start(data: *mut c_void, name: *const c_char) -> *mut RawTask;
        pub(super) fn dipc_kthread_start_fn(
            f: unsafe extern "C" fn(*mut c_void) -> c_int,
            data: *mut c_void,
            name: *const c_char,
        ) -> *mut RawTask;
        pub(super) fn dipc_peer_port() -> u16;
        pub(super) fn dipc_sock_listen(
            port: u16,
            rcv_timeout_ms: c_uint,
            err: *mut c_int,
        ) -> *mut RawSocket;
        pub(super) fn dipc_sock_accept(
            lsock: *mut RawSocket,
            timeout_ms: c_uint,
            rcv_timeout_ms: c_uint,
            peer_ip: *mut u32,
            err: *mut c_int,
        ) -> *mut RawSocket;
        pub(super) fn dipc_kthread_stop(task: *mut RawTask);
        pub(super) fn dipc_kthread_should_stop() -> bool;
        pub(super) fn dipc_kthread_sleep_ms(ms: c_uint);
        pub(super) fn dipc_sleep_killable_ms(ms: c_uint) -> bool;
        pub(super) fn dipc_sleep_us(us: c_uint, killable: bool) -> bool;
        pub(super) fn dipc_fault_in_writeable(uaddr: usize, size: usize) -> usize;
        pub(super) fn dipc_call_original_priv(id: c_uint, regs: *const bindings::pt_regs)
            -> c_long;
        pub(super) fn dipc_call_original_args_priv(
            id: c_uint,
            a0: c_long,
            a1: c_long,
            a2: c_long,
            a3: c_long,
        ) -> c_long;
        pub(super) fn dipc_test_partial_send(kind: c_uint, oneway: bool) -> c_int;
        pub(super) fn dipc_shm_detach(addr: c_ulong, mapping: *mut *mut c_void) -> c_long;
        pub(super) fn dipc_shm_mapping_get(mapping: *mut c_void);
        pub(super) fn dipc_shm_mapping_put(mapping: *mut c_void);
        pub(super) fn dipc_shm_page_lock(mapping: *mut c_void, idx: c_ulong) -> *mut c_void;
        pub(super) fn dipc_shm_page_unlock(folio: *mut c_void);
        pub(super) fn dipc_shm_page_copy_in(folio: *mut c_void, idx: c_ulong, src: *const c_void);
        pub(super) fn dipc_shm_page_copy_out(folio: *mut c_void, idx: c_ulong, dst: *mut c_void);
        pub(super) fn dipc_shm_unmap(mapping: *mut c_void, idx: c_ulong);
        pub(super) fn dipc_shm_wait(seg: *mut c_void, idx: c_ulong, word: u32, ms: c_uint)
            -> c_int;
        pub(super) fn dipc_shm_wake();
        pub(super) fn dipc_shm_wake_page(seg: *mut c_void, idx: c_ulong);
        pub(super) fn dipc_fatal_signal_pending() -> bool;
    }
}

/// `struct dipc_cred` in the header.
#[repr(C)]
pub(crate) struct DipcCred {
    euid: u32,
    egid: u32,
    caps: u32,
    ngroups: u32,
    groups: [u32; crate::wire::MAX_GROUPS],
}

/// The calling task's credentials, for the referee's permission checks.
pub(crate) fn current_cred() -> crate::wire::Cred {
    let mut c = DipcCred {
        euid: 0,
        egid: 0,
        caps: 0,
        ngroups: 0,
        groups: [0; crate::wire::MAX_GROUPS],
    };
    // SAFETY: `c` is a valid, writable `struct dipc_cred`.
    unsafe { ffi::dipc_current_cred(&mut c) };
    let mut cred = crate::wire::Cred::new(c.euid, c.egid, c.caps);
    // The C side writes at most DIPC_MAX_GROUPS == MAX_GROUPS entries.
    cred.ngroups = c.ngroups.min(crate::wire::MAX_GROUPS as u32) as u8;
    cred.groups = c.groups;
    cred
}

/// The calling process's id (tgid), in the initial pid namespace.
pub(crate) fn current_tgid() -> u32 {
    // SAFETY: reads the current task's tgid.
    unsafe { ffi::dipc_current_tgid() }
}

/// This node's wall clock in seconds (`ktime_get_real_seconds()`, what
/// `time()` returns), as the kernel stamps local IPC objects.
pub(crate) fn real_seconds() -> u32 {
    // SAFETY: reads the clock; no arguments.
    unsafe { ffi::dipc_real_seconds() }
}

/// `SEMOPM` of the caller's IPC namespace (`sysctl kernel.sem`).
pub(crate) fn ns_semopm() -> usize {
    // SAFETY: reads an int of the current task's IPC namespace.
    let n = unsafe { ffi::dipc_ns_semopm() };
    usize::try_from(n).unwrap_or(0)
}

/// Moves the caller's local SysV object `old_id` of class `cls` (0 sem,
/// 1 msg, 2 shm) to id `new_id`: 0, `-ENOSPC` when that slot holds
/// another object, `-EINVAL` when `old_id` names none.
pub(crate) fn ipc_move(cls: i32, old_id: i32, new_id: i32) -> c_int {
    // SAFETY: the helper validates its arguments and takes the locks it
    // needs; it works on the current task's IPC namespace.
    unsafe { ffi::dipc_ipc_move(cls, old_id, new_id) }
}

/// Gives the caller's local SysV object `id` of class `cls` the owner,
/// creator and mode bits of `perm`: 0, or `-EINVAL` when `id` names none.
pub(crate) fn ipc_set_perm(cls: i32, id: i32, perm: &crate::wire::IpcPerm) -> c_int {
    // SAFETY: the helper validates its arguments and takes the locks it
    // needs; it works on the current task's IPC namespace.
    unsafe { ffi::dipc_ipc_set_perm(cls, id, perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode) }
}

/// Faults the caller's user range `[addr, addr + len)` in for writing
/// without changing it, so a later copy to it does not fault; `false` if
/// part of it cannot be written.
pub(crate) fn fault_in_writeable(addr: usize, len: usize) -> bool {
    // SAFETY: the C side only walks the caller's page tables (through
    // `fault_in_safe_writeable()`); any address and length are accepted.
    unsafe { ffi::dipc_fault_in_writeable(addr, len) == 0 }
}

/// Runs the original syscall of hook `id` with `args` as its first four
/// arguments. A pointer among `args` is a user pointer of the calling task,
/// as the syscall itself takes it; never a kernel address.
pub(crate) fn call_original_args(id: u32, args: [c_long; 4]) -> c_long {
    // SAFETY: the C side builds a register set from plain integers and
    // checks nothing else; `id` is one of the `HOOK_*` constants, all below
    // NR_HOOKS.
    unsafe { ffi::dipc_call_original_args(id, args[0], args[1], args[2], args[3]) }
}

/// [`call_original_args`] with `CAP_IPC_OWNER` and `CAP_SYS_ADMIN` raised:
/// the local half of a call the referee has already permitted.
pub(crate) fn call_original_args_priv(id: u32, args: [c_long; 4]) -> c_long {
    // SAFETY: as for `call_original_args`; the C side raises the
    // capabilities on a private copy of the caller's credentials and puts
    // the originals back before it returns.
    unsafe { ffi::dipc_call_original_args_priv(id, args[0], args[1], args[2], args[3]) }
}

/// [`call_original`] with `CAP_IPC_OWNER` and `CAP_SYS_ADMIN` raised.
///
/// # Safety
///
/// As for [`call_original`].
pub(crate) unsafe fn call_original_priv(id: c_uint, regs: *const bindings::pt_regs) -> c_long {
    // SAFETY: per the function's contract.
    unsafe { ffi::dipc_call_original_priv(id, regs) }
}

/// A reference on `T` handed to C as an opaque context pointer, taken back
/// when the guard that owns it drops.
///
/// # Invariants
///
/// `ptr` came from [`ForeignOwnable::into_foreign`] on an `Arc<T>` and has not
/// been passed to [`ForeignOwnable::from_foreign`] yet.
struct ForeignArc<T: Send + Sync + 'static> {
    ptr: *mut c_void,
    _t: core::marker::PhantomData<Arc<T>>,
}

// SAFETY: `ForeignArc<T>` owns an `Arc<T>`, which is `Send` for `T: Send + Sync`.
unsafe impl<T: Send + Sync + 'static> Send for ForeignArc<T> {}
// SAFETY: `&ForeignArc<T>` gives access to nothing.
unsafe impl<T: Send + Sync + 'static> Sync for ForeignArc<T> {}

impl<T: Send + Sync + 'static> ForeignArc<T> {
    fn new(arc: Arc<T>) -> Self {
        // INVARIANT: the pointer comes from `into_foreign`.
        ForeignArc {
            ptr: arc.into_foreign(),
            _t: core::marker::PhantomData,
        }
    }
}

impl<T: Send + Sync + 'static> Drop for ForeignArc<T> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ptr` came from `into_foreign` on an
        // `Arc<T>` and is given back exactly once, here. Owners drop this only
        // after C can no longer use the pointer.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(self.ptr) });
    }
}

/// Borrows the `Arc<T>` behind a context pointer that C passed back.
///
/// # Safety
///
/// `ctx` must come from a [`ForeignArc<T>`] that is alive for `'a`.
pub(crate) unsafe fn borrow_ctx<'a, T: Send + Sync + 'static>(
    ctx: *mut c_void,
) -> ArcBorrow<'a, T> {
    // SAFETY: per the function's contract `ctx` came from `into_foreign` on an
    // `Arc<T>` that is not released during `'a`.
    unsafe { <Arc<T> as ForeignOwnable>::borrow(ctx) }
}

/// The syscall hooks, registered while this lives.
pub(crate) struct Hooks<T: Send + Sync + 'static> {
    /// Released after `Drop::drop` has unregistered the hooks.
    _ctx: ForeignArc<T>,
}

impl<T: Send + Sync + 'static> Hooks<T> {
    /// Registers every hook; redirected calls get `ctx`. `bits` are the
    /// shadow bitmaps (sem, msg, shm) of [`crate::shadow::Shadows`], which
    /// must live inside `ctx`.
    pub(crate) fn register(ctx: Arc<T>, bits: [*const u64; 3]) -> Result<Self> {
        let ctx = ForeignArc::new(ctx);
        // SAFETY: `ctx.ptr` stays valid until `Drop` has unregistered the
        // hooks, and so do the bitmaps, which live inside it.
        to_result(unsafe { ffi::dipc_hooks_register(ctx.ptr, bits[0], bits[1], bits[2]) })?;
        Ok(Hooks { _ctx: ctx })
    }
}

impl<T: Send + Sync + 'static> Drop for Hooks<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; after this returns no trampoline
        // runs, so the context may be released.
        unsafe { ffi::dipc_hooks_unregister() };
    }
}

/// Whether hook `id` is registered.
pub(crate) fn hook_registered(id: usize) -> bool {
    // SAFETY: a pure query; the C side checks the bound.
    unsafe { ffi::dipc_hook_registered(id as c_uint) }
}

/// How many arguments [`syscall_args`] gives.
pub(crate) const NR_ARGS: usize = 6; // DIPC_NR_ARGS in the C header

/// The arguments of hook `id`'s call, in order, as the architecture
/// passes them in the user's registers `regs` (`rust/helpers/arch.h`; the
/// i386 ABI's for the ia32 hooks).
///
/// # Safety
///
/// `regs` must be the user register set the syscall entry passed to the
/// trampoline of hook `id`.
pub(crate) unsafe fn syscall_args(id: u32, regs: *const bindings::pt_regs) -> [usize; NR_ARGS] {
    // The kernel's `c_ulong` is `usize`.
    let mut out: [c_ulong; NR_ARGS] = [0; NR_ARGS];
    // SAFETY: `regs` is valid per the function's contract; `out` has room
    // for the `DIPC_NR_ARGS` values the C side writes.
    unsafe { ffi::dipc_syscall_args(id, regs, out.as_mut_ptr()) };
    out
}

/// Runs the original syscall of hook `id`.
///
/// # Safety
///
/// `regs` must be the user register set the syscall entry passed to the
/// trampoline of hook `id`, and `id < NR_HOOKS`.
pub(crate) unsafe fn call_original(id: c_uint, regs: *const bindings::pt_regs) -> c_long {
    // SAFETY: per the function's contract.
    unsafe { ffi::dipc_call_original(id, regs) }
}

/// Per-CPU event counters.
pub(crate) struct Counter;

impl Counter {
    /// Adds one to counter `idx` on this CPU.
    pub(crate) fn inc(idx: usize) {
        // SAFETY: the C side ignores out-of-range indices.
        unsafe { ffi::dipc_counter_inc(idx as c_uint) }
    }

    /// The sum of counter `idx` over all CPUs.
    pub(crate) fn sum(idx: usize) -> u64 {
        // SAFETY: the C side returns 0 for out-of-range indices.
        unsafe { ffi::dipc_counter_sum(idx as c_uint) }
    }
}

/// The trace events (`rust/helpers/trace.h`, tracefs `events/dipc/`).
pub(crate) mod trace {
    use super::{c_int, ffi};

    /// A request to the referee ended: 0 or a negative errno, after `ns`.
    pub(crate) fn call(kind: u16, req_id: u64, result: c_int, ns: u64) {
        // SAFETY: plain values; the event copies them.
        unsafe { ffi::dipc_trace_call(kind, req_id, result, ns) }
    }

    /// A fault that asked the referee ended with `outcome` (a `FAULT_*`).
    pub(crate) fn fault(oid: u64, page: u64, write: bool, outcome: c_int, requests: u32, ns: u64) {
        // SAFETY: plain values; the event copies them.
        unsafe { ffi::dipc_trace_fault(oid, page, write, outcome, requests, ns) }
    }

    /// The referee granted a page; `data`: 0 the copy here is current, 1
    /// all zeroes, 2 the bytes came along.
    pub(crate) fn grant(oid: u64, page: u64, write: bool, data: u8) {
        // SAFETY: plain values; the event copies them.
        unsafe { ffi::dipc_trace_grant(oid, page, write, data) }
    }

    /// The referee took a page back or downgraded it.
    pub(crate) fn inval(oid: u64, page: u64, keep_read: bool, sent: bool) {
        // SAFETY: plain values; the event copies them.
        unsafe { ffi::dipc_trace_inval(oid, page, keep_read, sent) }
    }
}

/// `/proc/sys/dipc/quantum_ms`.
pub(crate) fn quantum_ms() -> u32 {
    // SAFETY: reads an int.
    unsafe { ffi::dipc_quantum_ms_get() }
}

/// `/proc/sys/dipc/enabled`.
pub(crate) fn enabled() -> bool {
    // SAFETY: reads an int.
    unsafe { ffi::dipc_enabled_get() != 0 }
}

/// `/proc/sys/dipc/` and `/proc/dipc/`, present while this lives.
pub(crate) struct Control<T: Send + Sync + 'static> {
    /// Released after `Drop::drop` has removed the files.
    _ctx: ForeignArc<T>,
}

impl<T: Send + Sync + 'static> Control<T> {
    /// Creates the files; reading `/proc/dipc/status` gets `ctx`.
    pub(crate) fn register(ctx: Arc<T>) -> Result<Self> {
        let ctx = ForeignArc::new(ctx);
        // SAFETY: `ctx.ptr` stays valid until `Drop` removed the files.
        to_result(unsafe { ffi::dipc_control_register(ctx.ptr) })?;
        Ok(Control { _ctx: ctx })
    }
}

impl<T: Send + Sync + 'static> Drop for Control<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; proc_remove() waits for readers
        // and genl_unregister_family() for running netlink operations (a
        // dump between two reads holds a module reference, so the module,
        // and this, cannot go then), so nobody uses the context after this.
        unsafe { ffi::dipc_control_unregister() };
    }
}

/// A generic netlink reply being built (`DIPC_CMD_STATUS`).
pub(crate) struct GenlMsg(*mut c_void);

impl GenlMsg {
    /// Wraps the reply C hands over.
    ///
    /// # Safety
    ///
    /// `msg` is a reply `sk_buff` being built, used by this thread alone
    /// while the returned value lives.
    pub(crate) unsafe fn from_raw(msg: *mut c_void) -> Self {
        GenlMsg(msg)
    }

    /// Adds one status item: `value`, or `text` when given.
    pub(crate) fn put_stat(&mut self, name: &CStr, value: u64, text: Option<&CStr>) -> Result {
        let text = text.map_or(core::ptr::null(), |t| t.as_char_ptr());
        // SAFETY: `self.0` is a reply being built (the constructor's
        // contract); both strings are NUL-terminated and outlive the call.
        to_result(unsafe { ffi::dipc_genl_put_stat(self.0, name.as_char_ptr(), value, text) })
    }
}

/// `struct dipc_genl_object` in the header: one `DIPC_CMD_OBJECTS` entry.
#[repr(C)]
pub(crate) struct GenlObject {
    pub(crate) class: u8,
    pub(crate) id: i32,
    pub(crate) oid: u64,
    pub(crate) size: u64,
    pub(crate) pages_read: u64,
    pub(crate) pages_write: u64,
    pub(crate) nattch: u64,
}

/// The `referee` module parameter.
pub(crate) fn referee_param() -> &'static CStr {
    // SAFETY: the parameter is a NUL-terminated static buffer, read-only
    // (mode 0444) after load.
    unsafe { CStr::from_char_ptr(ffi::dipc_referee_param()) }
}

/// The `secret_file` module parameter (a path, or empty).
pub(crate) fn secret_file_param() -> &'static CStr {
    // The parameter is a static buffer, read-only (mode 0444) after load.
    // SAFETY: it is NUL-terminated and lives as long as the module.
    unsafe { CStr::from_char_ptr(ffi::dipc_secret_file_param()) }
}

/// Reads the root-only secret file at `path` into `buf`; returns the byte
/// count. `EPERM` if others may read it or root does not own it.
pub(crate) fn read_secret(path: &CStr, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` is writable for its length.
    let n = unsafe { ffi::dipc_read_secret(path.as_char_ptr(), buf.as_mut_ptr(), buf.len()) };
    to_result(n)?;
    Ok(n as usize)
}

/// HMAC-SHA256 of `data` under `key`, through the kernel crypto API.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    // The C side writes exactly 32 bytes to `out`.
    // SAFETY: the inputs are readable for their lengths, `out` has 32 bytes.
    to_result(unsafe {
        ffi::dipc_hmac_sha256(
            key.as_ptr(),
            key.len(),
            data.as_ptr(),
            data.len(),
            out.as_mut_ptr(),
        )
    })?;
    Ok(out)
}

/// Fills `buf` with random bytes.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is writable for its length.
    unsafe { ffi::dipc_random_bytes(buf.as_mut_ptr(), buf.len()) }
}

/// Whether two tags are equal, compared in constant time.
pub(crate) fn tags_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    // SAFETY: both arrays are readable for 32 bytes.
    unsafe { ffi::dipc_memeq_secret(a.as_ptr(), b.as_ptr(), 32) }
}

/// Whether two peer tokens are equal, in constant time.
pub(crate) fn tags_equal_token(a: &[u8; 16], b: &[u8; 16]) -> bool {
    // SAFETY: both arrays are readable for 16 bytes.
    unsafe { ffi::dipc_memeq_secret(a.as_ptr(), b.as_ptr(), 16) }
}

/// The node's name (utsname nodename), without the NUL.
pub(crate) fn nodename(buf: &mut [u8; 65]) -> &[u8] {
    // SAFETY: `buf` is writable for its length; the C side NUL-terminates.
    unsafe { ffi::dipc_nodename(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..len]
}

/// A connected kernel TCP socket, shut down and released on drop.
///
/// # Invariants
///
/// `0` is a valid socket returned by `dipc_sock_connect` and not yet released.
pub(crate) struct Socket(NonNull<RawSocket>);

// SAFETY: a kernel socket may be used and released from any thread.
unsafe impl Send for Socket {}
// SAFETY: the socket layer serialises concurrent calls on one socket.
unsafe impl Sync for Socket {}

impl Socket {
    /// Connects to `ip:port` (host byte order).
    pub(crate) fn connect(
        ip: u32,
        port: u16,
        timeout_ms: u32,
        rcv_timeout_ms: u32,
    ) -> Result<Self> {
        let mut err: c_int = 0;
        // SAFETY: `err` is a valid out-pointer for the call.
        let sock =
            unsafe { ffi::dipc_sock_connect(ip, port, timeout_ms, rcv_timeout_ms, &mut err) };
        // INVARIANT: a non-NULL return is a connected socket we now own.
        NonNull::new(sock)
            .map(Socket)
            .ok_or_else(|| Error::from_errno(err))
    }

    /// A socket listening on `port` on every IPv4 address, whose
    /// [`Socket::accept`] waits at most `accept_timeout_ms`.
    pub(crate) fn listen(port: u16, accept_timeout_ms: u32) -> Result<Self> {
        let mut err: c_int = 0;
        // SAFETY: `err` is a valid out-pointer for the call.
        let sock = unsafe { ffi::dipc_sock_listen(port, accept_timeout_ms, &mut err) };
        // INVARIANT: a non-NULL return is a listening socket we now own.
        NonNull::new(sock)
            .map(Socket)
            .ok_or_else(|| Error::from_errno(err))
    }

    /// The next connection to this listening socket and its peer's IPv4
    /// address; `Err(EAGAIN)` when none came within the accept timeout.
    pub(crate) fn accept(&self, timeout_ms: u32, rcv_timeout_ms: u32) -> Result<(Self, u32)> {
        let mut err: c_int = 0;
        let mut ip = 0u32;
        // SAFETY: the socket is valid (type invariant); `ip` and `err` are
        // valid out-pointers.
        let sock = unsafe {
            ffi::dipc_sock_accept(
                self.0.as_ptr(),
                timeout_ms,
                rcv_timeout_ms,
                &mut ip,
                &mut err,
            )
        };
        // INVARIANT: a non-NULL return is a connected socket we now own.
        NonNull::new(sock)
            .map(|s| (Socket(s), ip))
            .ok_or_else(|| Error::from_errno(err))
    }

    /// Sends all of `buf`.
    pub(crate) fn send_all(&self, mut buf: &[u8]) -> Result {
        while !buf.is_empty() {
            // SAFETY: the socket is valid (type invariant), `buf` is readable
            // for its length.
            let n = unsafe { ffi::dipc_sock_send(self.0.as_ptr(), buf.as_ptr().cast(), buf.len()) };
            to_result(n)?;
            if n == 0 {
                return Err(EPIPE);
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    /// Sends all of `buf` without waiting (`Ok(true)`), or nothing when the
    /// socket's send buffer has no room for it now (`Ok(false)`). An error
    /// may have sent part of it.
    pub(crate) fn send_nowait(&self, buf: &[u8]) -> Result<bool> {
        // SAFETY: the socket is valid (type invariant), `buf` is readable
        // for its length.
        let n =
            unsafe { ffi::dipc_sock_send_nowait(self.0.as_ptr(), buf.as_ptr().cast(), buf.len()) };
        if n == EAGAIN.to_errno() {
            return Ok(false);
        }
        to_result(n)?;
        if n as usize != buf.len() {
            return Err(EAGAIN);
        }
        Ok(true)
    }

    /// Receives into `buf`; `Ok(0)` is end of stream, `Err(EAGAIN)` the
    /// receive timeout.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: the socket is valid (type invariant), `buf` is writable for
        // its length.
        let n = unsafe { ffi::dipc_sock_recv(self.0.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        to_result(n)?;
        Ok(n as usize)
    }
}

impl Socket {
    /// Sets the receive timeout (rounded up to a jiffy).
    pub(crate) fn set_recv_timeout(&self, ms: u32) {
        // SAFETY: the socket is valid (type invariant).
        unsafe { ffi::dipc_sock_set_rcvtimeo(self.0.as_ptr(), ms) }
    }

    /// Shuts both directions down: a sender or receiver blocked on the
    /// socket returns with an error.
    pub(crate) fn shutdown(&self) {
        // SAFETY: valid by the type invariant; shutting down twice is harmless.
        unsafe { ffi::dipc_sock_shutdown(self.0.as_ptr()) }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: valid by the type invariant, released exactly once here.
        unsafe {
            ffi::dipc_sock_shutdown(self.0.as_ptr());
            ffi::dipc_sock_release(self.0.as_ptr());
        }
    }
}

/// A kernel thread running `dipc_rust_thread(ctx)`, stopped on drop.
///
/// # Invariants
///
/// `task` is a started thread on which we hold a task reference.
pub(crate) struct Thread<T: Send + Sync + 'static> {
    task: NonNull<RawTask>,
    /// Released after `Drop::drop` has stopped the thread.
    _ctx: ForeignArc<T>,
}

// SAFETY: the thread may be stopped from any thread; `T` is `Send + Sync`.
unsafe impl<T: Send + Sync + 'static> Send for Thread<T> {}
// SAFETY: `&Thread` gives access to nothing.
unsafe impl<T: Send + Sync + 'static> Sync for Thread<T> {}

impl<T: Send + Sync + 'static> Thread<T> {
    /// Starts the thread, named `name`.
    pub(crate) fn start(ctx: Arc<T>, name: &CStr) -> Result<Self> {
        let ctx = ForeignArc::new(ctx);
        // SAFETY: `ctx.ptr` stays valid until `Drop` has stopped the thread;
        // `name` is NUL-terminated.
        let task = from_err_ptr(unsafe { ffi::dipc_kthread_start(ctx.ptr, name.as_char_ptr()) })?;
        let task = NonNull::new(task).ok_or(ENOMEM)?;
        // INVARIANT: started, and `dipc_kthread_start` took a reference.
        Ok(Thread { task, _ctx: ctx })
    }
}

impl<T: Send + Sync + 'static> Thread<T> {
    /// Starts a thread, named `name`, that runs `f(ctx)` (at the
    /// connection thread's priority); `f` may only use its argument as a
    /// borrowed `T` (see [`borrow_ctx`]).
    pub(crate) fn start_fn(
        ctx: Arc<T>,
        name: &CStr,
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
    ) -> Result<Self> {
        let ctx = ForeignArc::new(ctx);
        let start = || {
            // SAFETY: `ctx.ptr` stays valid until `Drop` has stopped the
            // thread; `name` is NUL-terminated; `f` takes that pointer.
            unsafe { ffi::dipc_kthread_start_fn(f, ctx.ptr, name.as_char_ptr()) }
        };
        let task = from_err_ptr(start())?;
        let task = NonNull::new(task).ok_or(ENOMEM)?;
        // INVARIANT: started, and `dipc_kthread_start_fn` took a reference.
        Ok(Thread { task, _ctx: ctx })
    }
}

/// The `peer_port` module parameter: where other nodes send this node
/// pages (0: nowhere).
pub(crate) fn peer_port() -> u16 {
    // SAFETY: reads a module parameter; no arguments.
    unsafe { ffi::dipc_peer_port() }
}

/// Whether the calling kernel thread has been told to stop. Call only from a
/// [`Thread`]'s body.
pub(crate) fn kthread_should_stop() -> bool {
    // SAFETY: kthread_should_stop() only reads the current task's kthread flags.
    unsafe { ffi::dipc_kthread_should_stop() }
}

/// Sleeps up to `ms` where only a fatal signal wakes the task early; false
/// when one is pending (the task is being killed).
pub(crate) fn sleep_killable_ms(ms: u32) -> bool {
    // Callers are syscall and fault paths in process context.
    // SAFETY: sleeping is allowed there; no spin lock is held.
    unsafe { ffi::dipc_sleep_killable_ms(ms) }
}

/// Sleeps about `us` microseconds; a signal ends the sleep early (with
/// `killable`, only a fatal one). False when such a signal is pending.
pub(crate) fn sleep_us(us: u32, killable: bool) -> bool {
    // Callers are syscall paths in process context.
    // SAFETY: sleeping is allowed there; no spin lock is held.
    unsafe { ffi::dipc_sleep_us(us, killable) }
}

/// Sleeps up to `ms`, returning early when the thread is told to stop. Call
/// only from a [`Thread`]'s body.
pub(crate) fn kthread_sleep_ms(ms: u32) {
    // SAFETY: sleeping in a kernel thread's body, which holds no locks here.
    unsafe { ffi::dipc_kthread_sleep_ms(ms) }
}

impl<T: Send + Sync + 'static> Drop for Thread<T> {
    fn drop(&mut self) {
        // SAFETY: valid by the type invariant; the thread's body returns once
        // told to stop, and after this nothing uses the context.
        unsafe { ffi::dipc_kthread_stop(self.task.as_ptr()) };
    }
}

/// `DIPC_FAULT_*` in the header: what a fault handler does next.
pub(crate) const FAULT_OK: c_int = 0;
pub(crate) const FAULT_RETRY: c_int = 1;
pub(crate) const FAULT_SIGBUS: c_int = 2;
pub(crate) const FAULT_SLOW: c_int = 3;

// A segment's `address_space` and a locked folio are handled as opaque
// addresses (`usize`, 0 for none) in Rust; only the C shim dereferences them.

/// Test only (`test_partial_sends`, `test_partial_kind`): whether to cut
/// the frame of kind `kind` about to be sent (`oneway`: no reply awaited)
/// in half.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartialSend {
    /// Send it whole.
    No,
    /// Half goes, and the send fails (a send timeout in mid-frame).
    Fail,
    /// Half goes, the connection breaks, and the send counts as done (a
    /// frame lost on the way while its sender goes on).
    Lost,
}

/// See [`PartialSend`].
pub(crate) fn test_partial_send(kind: u16, oneway: bool) -> PartialSend {
    // SAFETY: reads and decrements module parameters; plain values.
    match unsafe { ffi::dipc_test_partial_send(c_uint::from(kind), oneway) } {
        0 => PartialSend::No,
        1 => PartialSend::Fail,
        _ => PartialSend::Lost,
    }
}

/// `shmdt(addr)` of a distributed segment, done by the shim: `(0 or
/// -EINTR, the segment's address_space)`, or `(0, 0)` when the segment at
/// `addr` is not distributed (the kernel's `shmdt()` is for it).
pub(crate) fn shm_detach(addr: usize) -> (c_long, usize) {
    let mut mapping: *mut c_void = core::ptr::null_mut();
    // SAFETY: the C side looks `addr` up in the caller's mm under its lock
    // and unmaps only VMAs it found there; `mapping` is a valid out-pointer.
    let r = unsafe { ffi::dipc_shm_detach(addr as c_ulong, &mut mapping) };
    (r, mapping as usize)
}

/// Holds the inode of `mapping`, which a VMA being set up maps.
pub(crate) fn shm_mapping_get(mapping: usize) {
    // SAFETY: `mapping` came from `shm_mmap()`'s VMA in this call, whose
    // file keeps it alive until the reference is taken.
    unsafe { ffi::dipc_shm_mapping_get(mapping as *mut c_void) }
}

/// Releases what [`shm_mapping_get`] took.
pub(crate) fn shm_mapping_put(mapping: usize) {
    // SAFETY: the caller held the inode reference and gives it up once.
    unsafe { ffi::dipc_shm_mapping_put(mapping as *mut c_void) }
}

/// Reads page `idx` of `mapping` in and locks it; the folio or 0.
pub(crate) fn shm_page_lock(mapping: usize, idx: u64) -> usize {
    // SAFETY: `mapping` is held by an inode reference (`shm_mapping_get`).
    unsafe { ffi::dipc_shm_page_lock(mapping as *mut c_void, idx as c_ulong) as usize }
}

/// Unlocks and releases a folio from [`shm_page_lock`].
pub(crate) fn shm_page_unlock(folio: usize) {
    // SAFETY: `folio` came from `shm_page_lock` and is released once.
    unsafe { ffi::dipc_shm_page_unlock(folio as *mut c_void) }
}

// The copies below move PAGE_SIZE bytes through buffers of PAGE_LEN: a
// kernel with larger pages does not build (as `rust/helpers/shm.c` also
// asserts).
const _: () = assert!(
    kernel::page::PAGE_SIZE == crate::wire::PAGE_LEN,
    "dipc needs 4 KiB pages"
);

/// Copies a page's bytes (`None`: zeroes) into locked page `idx`.
pub(crate) fn shm_page_copy_in(folio: usize, idx: u64, src: Option<&[u8]>) {
    let p = match src {
        Some(b) if b.len() == crate::wire::PAGE_LEN => b.as_ptr().cast(),
        Some(_) => return,
        None => core::ptr::null(),
    };
    // SAFETY: `folio` is locked and holds page `idx`; `p` is null or
    // readable for PAGE_LEN bytes, which is PAGE_SIZE (asserted above).
    unsafe { ffi::dipc_shm_page_copy_in(folio as *mut c_void, idx as c_ulong, p) }
}

/// Copies locked page `idx` out to `dst` (PAGE_LEN bytes).
pub(crate) fn shm_page_copy_out(folio: usize, idx: u64, dst: &mut [u8]) {
    if dst.len() != crate::wire::PAGE_LEN {
        return;
    }
    // SAFETY: `folio` is locked and holds page `idx`; `dst` is writable for
    // PAGE_LEN bytes, which is PAGE_SIZE (asserted above).
    unsafe {
        ffi::dipc_shm_page_copy_out(
            folio as *mut c_void,
            idx as c_ulong,
            dst.as_mut_ptr().cast(),
        )
    }
}

/// Unmaps page `idx` of `mapping` from every process on this node.
pub(crate) fn shm_unmap(mapping: usize, idx: u64) {
    // SAFETY: `mapping` is held by an inode reference.
    unsafe { ffi::dipc_shm_unmap(mapping as *mut c_void, idx as c_ulong) }
}

/// What [`shm_wait`] waits on: the object `dipc_rust_shm_changed()` reads
/// the page word from, passed through the C side as a pointer.
///
/// # Safety
///
/// Only the type `dipc_rust_shm_changed()` casts the pointer back to
/// (`crate::shm::Seg`) may implement it.
pub(crate) unsafe trait ShmWaitKey {}

/// Sleeps (killable) until page `idx` of `seg` no longer has `word`, at
/// most `ms`: `Ok(true)` changed, `Ok(false)` timed out, `Err` for a fatal
/// signal.
pub(crate) fn shm_wait<S: ShmWaitKey>(seg: &S, idx: u64, word: u32, ms: u32) -> Result<bool> {
    let p = core::ptr::from_ref(seg).cast_mut().cast();
    // SAFETY: `seg` outlives the call; the condition callback only reads it
    // through a shared reference, as the type `ShmWaitKey` promises it is.
    let r = unsafe { ffi::dipc_shm_wait(p, idx as c_ulong, word, ms) };
    to_result(r)?;
    Ok(r > 0)
}

/// Wakes the tasks in [`shm_wait`] for page `idx` of `seg`.
pub(crate) fn shm_wake_page<S: ShmWaitKey>(seg: &S, idx: u64) {
    let p = core::ptr::from_ref(seg).cast_mut().cast();
    // SAFETY: the pointer is only hashed, never dereferenced.
    unsafe { ffi::dipc_shm_wake_page(p, idx as c_ulong) }
}

/// Wakes every task in [`shm_wait`].
pub(crate) fn shm_wake() {
    // SAFETY: wakes a static wait queue.
    unsafe { ffi::dipc_shm_wake() }
}

/// Whether the calling task has a fatal signal pending.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: reads the current task's signal state.
    unsafe { ffi::dipc_fatal_signal_pending() }
}
