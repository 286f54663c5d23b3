// SPDX-License-Identifier: GPL-2.0-or-later
//! Frames exchanged between `dipc.ko` on a node and the `dipcd` referee.
//!
//! This file is the one definition of the format. It uses `core` only, does no
//! I/O and never allocates: callers pass the buffers in. `dipcd` builds it as
//! the `dipc-wire` crate; the kernel module mounts the same file with
//! `#[path]`. The normative text is `Documentation/wire-protocol.md`.
//!
//! Every frame is a fixed 24-byte header followed by `len` payload bytes. All
//! integers are little-endian and fixed-width; there is no padding and no
//! host-dependent layout, so nodes of different architectures interoperate.
//!
//! ```text
//!  0      4        6     8          16     20      24
//!  | magic | version | kind | request id | len | clock | payload ...
//! ```
//!
//! `clock` is the sender's wall clock in seconds (`CLOCK_REALTIME`, as
//! `time()` reads it) when a node sends a request, from which the referee
//! takes the time stamps the request sets; 0 in every other frame.
//!
//! Decoding is strict: the magic, the version, the kind, the length bound
//! and the exact payload size are all checked, and any mismatch is an error
//! that the receiver answers by closing the connection.

/// `"DIPC"` in the first four bytes of every frame.
pub const MAGIC: u32 = u32::from_le_bytes(*b"DIPC");
/// The protocol version this source speaks. A peer with another version is
/// refused at hello time.
pub const VERSION: u16 = 8;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 24;
/// Largest payload a peer may announce; a header claiming more is rejected
/// before any payload is read, so a receiver never buffers more than
/// `HEADER_LEN + MAX_PAYLOAD` bytes for one frame.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest node name carried in [`Hello`].
pub const MAX_NAME_LEN: usize = 64;

/// What a frame is. The numbers are part of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// Node to referee, first frame on a connection.
    Hello = 1,
    /// Referee to node, the answer to [`Kind::Hello`].
    HelloAck = 2,
    /// Liveness probe, either direction.
    Ping = 3,
    /// Answer to [`Kind::Ping`].
    Pong = 4,
    /// A request failed or a frame was refused; the sender may close next.
    Error = 5,
    /// Node to referee: look a key up, creating the object if asked.
    Get = 6,
    /// Referee to node: the answer to [`Kind::Get`].
    GetReply = 7,
    /// Node to referee: `semop`/`semtimedop` on a distributed set.
    SemOp = 8,
    /// Referee to node: a call's return value (or negative errno).
    Status = 9,
    /// Node to referee: `semctl` on a distributed set.
    SemCtl = 10,
    /// Referee to node: the answer to [`Kind::SemCtl`].
    SemCtlReply = 11,
    /// Node to referee: give up a request that is still waiting.
    Cancel = 12,
    /// Node to referee: a process has exited; apply its `SEM_UNDO` adjustments.
    Exit = 13,
    /// Referee to node: an object was removed; drop the local shadow.
    Removed = 14,
    /// Node to referee: `msgsnd` on a distributed queue.
    MsgSnd = 15,
    /// Node to referee: `msgrcv` on a distributed queue.
    MsgRcv = 16,
    /// Referee to node: the message a [`Kind::MsgRcv`] received.
    MsgRcvReply = 17,
    /// Node to referee: `msgctl` on a distributed queue.
    MsgCtl = 18,
    /// Referee to node: the answer to [`Kind::MsgCtl`].
    MsgCtlReply = 19,
    /// Node to referee: may this process attach the segment?
    ShmAt = 20,
    /// Node to referee: how many attaches of a segment this node holds.
    ShmNattch = 21,
    /// Node to referee: `shmctl` on a distributed segment.
    ShmCtl = 22,
    /// Referee to node: the answer to [`Kind::ShmCtl`].
    ShmCtlReply = 23,
    /// Node to referee: a page fault needs a page (read or write access).
    PageReq = 24,
    /// Referee to node: access to a page granted, with its contents.
    PageGrant = 25,
    /// Referee to node: give up (or downgrade) a page copy.
    PageInval = 26,
    /// Node to referee: the answer to [`Kind::PageInval`].
    PageAck = 27,
    /// Referee to node, after a hello when the cluster has a secret: prove
    /// that you know it.
    Challenge = 28,
    /// Either direction: a proof of the secret (see [`Auth`]).
    Auth = 29,
    /// Node to referee, a call: the node leaves the cluster (see
    /// [`Frame::Leave`]).
    Leave = 30,
    /// Node to node, first frame on a page-transfer connection (see
    /// [`PeerHello`]).
    PeerHello = 31,
    /// Referee to node: the answer to a [`Kind::MsgSnd`] call (see
    /// [`MsgSndReply`]).
    MsgSndReply = 32,
    /// Node to referee, a call: a message lease ends (see [`MsgReturn`]).
    MsgReturn = 33,
    /// Node to referee: a message of a receive lease was taken (see
    /// [`MsgTaken`]).
    MsgTaken = 34,
    /// Referee to node: give a message lease back (see [`Frame::MsgRecall`]).
    MsgRecall = 35,
    /// Referee to node: more for a message lease (see [`MsgMore`]).
    MsgMore = 36,
    /// Node to referee: which object has this cluster-wide SysV id? (see
    /// [`Lookup`]); answered by [`Kind::GetReply`].
    Lookup = 37,
    /// Referee to node: an object's owner or mode changed (see
    /// [`Frame::Perm`]).
    Perm = 38,
}

impl TryFrom<u16> for Kind {
    type Error = DecodeError;

    fn try_from(v: u16) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => Kind::Hello,
            2 => Kind::HelloAck,
            3 => Kind::Ping,
            4 => Kind::Pong,
            5 => Kind::Error,
            6 => Kind::Get,
            7 => Kind::GetReply,
            8 => Kind::SemOp,
            9 => Kind::Status,
            10 => Kind::SemCtl,
            11 => Kind::SemCtlReply,
            12 => Kind::Cancel,
            13 => Kind::Exit,
            14 => Kind::Removed,
            15 => Kind::MsgSnd,
            16 => Kind::MsgRcv,
            17 => Kind::MsgRcvReply,
            18 => Kind::MsgCtl,
            19 => Kind::MsgCtlReply,
            20 => Kind::ShmAt,
            21 => Kind::ShmNattch,
            22 => Kind::ShmCtl,
            23 => Kind::ShmCtlReply,
            24 => Kind::PageReq,
            25 => Kind::PageGrant,
            26 => Kind::PageInval,
            27 => Kind::PageAck,
            28 => Kind::Challenge,
            29 => Kind::Auth,
            30 => Kind::Leave,
            31 => Kind::PeerHello,
            32 => Kind::MsgSndReply,
            33 => Kind::MsgReturn,
            34 => Kind::MsgTaken,
            35 => Kind::MsgRecall,
            36 => Kind::MsgMore,
            37 => Kind::Lookup,
            38 => Kind::Perm,
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

/// Why a byte sequence is not (yet) a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not enough bytes yet; at least `needed` bytes in total are required.
    /// The only error after which reading more input can help.
    Incomplete {
        /// Total bytes the frame needs, counted from its first byte.
        needed: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    BadMagic(u32),
    /// The peer speaks another protocol version.
    BadVersion(u16),
    /// The kind field names no known frame.
    UnknownKind(u16),
    /// The announced payload is longer than [`MAX_PAYLOAD`].
    TooLong(u32),
    /// The payload does not have the size or content its kind requires.
    BadPayload(Kind),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "incomplete frame, {needed} bytes needed")
            }
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            DecodeError::BadVersion(v) => write!(f, "protocol version {v}, expected {VERSION}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            DecodeError::TooLong(n) => write!(f, "payload of {n} bytes exceeds {MAX_PAYLOAD}"),
            DecodeError::BadPayload(k) => write!(f, "malformed {k:?} payload"),
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small for the frame.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// A message body is longer than [`MAX_MTEXT`]; no peer would accept it.
    TextTooLong(usize),
    /// Page contents that are not exactly [`PAGE_LEN`] bytes.
    BadPage(usize),
}

/// Error codes carried by [`Frame::Error`]. The numbers are part of the
/// protocol; they are not host errno values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// The peer's protocol version is not supported.
    Version = 1,
    /// A frame could not be decoded or was not expected in this state.
    Protocol = 2,
    /// The peer is not allowed to connect.
    Refused = 3,
    /// A node with the same node id is already connected.
    DuplicateNode = 4,
    /// This referee is one of several and does not lead them now: try
    /// another.
    NotLeader = 5,
}

impl TryFrom<u32> for ErrorCode {
    type Error = ();

    fn try_from(v: u32) -> Result<Self, ()> {
        Ok(match v {
            1 => ErrorCode::Version,
            2 => ErrorCode::Protocol,
            3 => ErrorCode::Refused,
            4 => ErrorCode::DuplicateNode,
            5 => ErrorCode::NotLeader,
            _ => return Err(()),
        })
    }
}

/// First frame from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The node's number in the cluster (non-zero, unique).
    pub node_id: u32,
    /// Feature bits the node supports; none are defined yet, so 0.
    pub features: u64,
    /// Random, chosen when the module is loaded: a node that reconnects
    /// with the incarnation the referee holds resumes its session (its
    /// sleepers, undo records, attaches and pages stay); any other value
    /// starts a new one (the old one's state is released first).
    pub incarnation: u64,
    /// The TCP port the node takes page transfers from other nodes on
    /// (its address is the one the referee sees); 0: none, every page
    /// comes through the referee.
    pub peer_port: u16,
    /// The node's name for logs and status (at most [`MAX_NAME_LEN`] bytes).
    pub name: &'a [u8],
}

/// The referee's answer to [`Hello`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// The node id the referee registered.
    pub node_id: u32,
    /// Feature bits both sides will use, and [`ACK_RESUMED`].
    pub features: u64,
    /// Identifies this referee run; changes when the referee restarts.
    pub session: u64,
    /// The node's peer token for this session: another node that sends it
    /// a page must show it (the referee tells only the page's owner, in a
    /// [`PageInval`]), so only nodes the referee named can connect.
    pub token: [u8; TOKEN_LEN],
}

/// Bytes in a peer token ([`HelloAck::token`]).
pub const TOKEN_LEN: usize = 16;

/// The first frame a node sends on a connection to another node's peer
/// port, to hand it pages. The other node answers with an [`Auth`] over
/// `nonce` (role [`AuthRole::PeerAcceptor`]); this node answers that with an
/// [`Auth`] over the other's nonce ([`AuthRole::PeerConnector`]). Without a
/// cluster secret both tags are zeroes and only the token counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// The sending node.
    pub node_id: u32,
    /// The receiving node's current token, as the referee gave it.
    pub token: [u8; TOKEN_LEN],
    /// Fresh random bytes.
    pub nonce: [u8; AUTH_LEN],
}

/// In [`HelloAck::features`]: the referee still holds this node's session
/// (same incarnation, not declared dead): requests the node sent before
/// are carried out at most once and may be sent again with the same ids,
/// and its page copies stay valid. Without it the node starts afresh: its
/// calls in flight fail and its copies are dropped.
pub const ACK_RESUMED: u64 = 1 << 63;

/// In [`HelloAck::features`]: the referee answers an `Exit` that has a
/// request id, and answers a repeat of it from its reply cache without
/// carrying it out again; the node may then send exits as calls, kept in
/// flight and sent again on a resumed session. A referee without it takes
/// exits one-way only (request id 0).
pub const ACK_EXIT_CALLS: u64 = 1 << 0;

/// Length of an authentication nonce and of an HMAC-SHA256 tag.
pub const AUTH_LEN: usize = 32;

/// A proof of the cluster secret: HMAC-SHA256, keyed with the secret, over
/// [`auth_input`]. The node sends one (with a fresh nonce of its own for the
/// referee to answer); the referee answers with its own proof over the
/// node's nonce (and an all-zero `nonce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth {
    /// The tag.
    pub mac: [u8; AUTH_LEN],
    /// The sender's challenge to the other side (zero in the referee's).
    pub nonce: [u8; AUTH_LEN],
}

/// Who computes an authentication tag (the two directions use different
/// inputs, so one side's tag can never be replayed as the other's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRole {
    /// The node proves itself to the referee.
    Node,
    /// The referee proves itself to the node.
    Referee,
    /// A node that accepted a page-transfer connection proves itself to
    /// the node that opened it.
    PeerAcceptor,
    /// The node that opened a page-transfer connection proves itself.
    PeerConnector,
    /// A referee that opened a connection to another referee (for the
    /// replicated log) proves itself.
    Replica,
    /// The referee that accepted such a connection proves itself in turn,
    /// before the other sends it anything.
    ReplicaAcceptor,
}

/// Shortest cluster secret, in bytes (the module and `dipcd` both enforce it).
pub const SECRET_MIN: usize = 16;
/// Longest cluster secret, in bytes.
pub const SECRET_MAX: usize = 256;

/// The cluster secret held in a secret file's `contents`, the same on both
/// ends: one trailing newline is not part of it. `Err` carries the secret's
/// length when that lies outside [`SECRET_MIN`]`..=`[`SECRET_MAX`].
pub fn secret_in_file(contents: &[u8]) -> Result<&[u8], usize> {
    let secret = match contents {
        [rest @ .., b'\n'] => rest,
        all => all,
    };
    if (SECRET_MIN..=SECRET_MAX).contains(&secret.len()) {
        Ok(secret)
    } else {
        Err(secret.len())
    }
}

/// Length of [`auth_input`]'s result.
pub const AUTH_INPUT_LEN: usize = 16 + 4 + 2 * AUTH_LEN;

/// What an authentication tag is computed over: a label naming the
/// protocol and the role, the node id, the nonce being answered, and the
/// answerer's own nonce (the node's, or zeros for the referee).
pub fn auth_input(
    role: AuthRole,
    node_id: u32,
    challenge: &[u8; AUTH_LEN],
    own: &[u8; AUTH_LEN],
) -> [u8; AUTH_INPUT_LEN] {
    let mut out = [0u8; AUTH_INPUT_LEN];
    let label: &[u8; 16] = match role {
        AuthRole::Node => b"dipc-v1-node\0\0\0\0",
        AuthRole::Referee => b"dipc-v1-referee\0",
        AuthRole::PeerAcceptor => b"dipc-v1-peer-acc",
        AuthRole::PeerConnector => b"dipc-v1-peer-con",
        AuthRole::Replica => b"dipc-v1-replica\0",
        AuthRole::ReplicaAcceptor => b"dipc-v1-repl-acc",
    };
    out[..16].copy_from_slice(label);
    out[16..20].copy_from_slice(&node_id.to_le_bytes());
    out[20..20 + AUTH_LEN].copy_from_slice(challenge);
    out[20 + AUTH_LEN..].copy_from_slice(own);
    out
}

/// Linux errno numbers as carried on the wire (in [`Frame::Status`] and
/// friends, negated). They are the generic Linux values, the same on every
/// architecture dipc runs on; a node maps anything it does not know to `EIO`.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such key.
    pub const ENOENT: i32 = 2;
    /// Interrupted (also: a cancelled request).
    pub const EINTR: i32 = 4;
    /// I/O error: the referee could not be reached.
    pub const EIO: i32 = 5;
    /// Argument list too long.
    pub const E2BIG: i32 = 7;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Key exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File too large (semaphore number out of range).
    pub const EFBIG: i32 = 27;
    /// No space left (system limit).
    pub const ENOSPC: i32 = 28;
    /// Result out of range.
    pub const ERANGE: i32 = 34;
    /// Function not implemented.
    pub const ENOSYS: i32 = 38;
    /// No message of the desired type.
    pub const ENOMSG: i32 = 42;
    /// Identifier removed.
    pub const EIDRM: i32 = 43;
    /// The largest errno value a node accepts from the referee.
    pub const MAX: i32 = 133;
    /// Not a Linux errno: the referee is taking a message lease back from
    /// another node first; the call changed nothing and is made again
    /// (the node never returns it to a program).
    pub const RETRY: i32 = 1000;
}

/// Object classes, as in [`Get::class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Class {
    /// A semaphore set.
    Sem = 1,
    /// A message queue.
    Msg = 2,
    /// A shared memory segment.
    Shm = 3,
}

impl Class {
    /// The kernel's index of the class's id table (`IPC_SEM_IDS` 0,
    /// `IPC_MSG_IDS` 1, `IPC_SHM_IDS` 2), by which the module and the
    /// referee index their per-class tables.
    pub const fn ids_index(self) -> usize {
        self as usize - 1
    }

    /// The class of id table `i` ([`Class::ids_index`]).
    pub const fn from_ids_index(i: usize) -> Option<Class> {
        match i {
            0 => Some(Class::Sem),
            1 => Some(Class::Msg),
            2 => Some(Class::Shm),
            _ => None,
        }
    }
}

impl TryFrom<u8> for Class {
    type Error = ();

    fn try_from(v: u8) -> Result<Self, ()> {
        Ok(match v {
            1 => Class::Sem,
            2 => Class::Msg,
            3 => Class::Shm,
            _ => return Err(()),
        })
    }
}

/// Most supplementary groups a [`Cred`] carries; a process in more groups is
/// checked against its first [`MAX_GROUPS`].
pub const MAX_GROUPS: usize = 32;
/// [`Cred::caps`]: the caller has `CAP_IPC_OWNER`.
pub const CAP_IPC_OWNER: u32 = 1;
/// [`Cred::caps`]: the caller has `CAP_SYS_ADMIN`.
pub const CAP_SYS_ADMIN: u32 = 2;
/// [`Cred::caps`]: the caller has `CAP_SYS_RESOURCE`.
pub const CAP_SYS_RESOURCE: u32 = 4;

/// The calling process's credentials, for permission checks at the referee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cred {
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// [`CAP_IPC_OWNER`] | [`CAP_SYS_ADMIN`] as held by the caller.
    pub caps: u32,
    /// Number of valid entries in `groups`, at most [`MAX_GROUPS`].
    pub ngroups: u8,
    /// Supplementary groups.
    pub groups: [u32; MAX_GROUPS],
}

impl Cred {
    /// Credentials with no supplementary groups.
    pub const fn new(euid: u32, egid: u32, caps: u32) -> Self {
        Cred {
            euid,
            egid,
            caps,
            ngroups: 0,
            groups: [0; MAX_GROUPS],
        }
    }

    /// Whether the caller is in group `gid` (`in_group_p()`).
    pub fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups[..self.ngroups as usize].contains(&gid)
    }

    fn wire_len(&self) -> usize {
        4 + 4 + 4 + 1 + 4 * self.ngroups as usize
    }

    fn read(r: &mut Reader<'_>) -> Option<Self> {
        let mut c = Cred::new(r.u32()?, r.u32()?, r.u32()?);
        let n = r.u8()?;
        if n as usize > MAX_GROUPS {
            return None;
        }
        c.ngroups = n;
        for g in c.groups.iter_mut().take(n as usize) {
            *g = r.u32()?;
        }
        Some(c)
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.euid);
        w.u32(self.egid);
        w.u32(self.caps);
        let n = (self.ngroups as usize).min(MAX_GROUPS);
        w.u8(n as u8);
        for g in &self.groups[..n] {
            w.u32(*g);
        }
    }
}

/// `msgget`/`semget`/`shmget` of a distributed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Get {
    /// What kind of object.
    pub class: Class,
    /// The key (never `IPC_PRIVATE`).
    pub key: i32,
    /// The call's flag word (`IPC_CREAT`, `IPC_EXCL`, mode bits).
    pub flags: i32,
    /// `nsems` for a semaphore set, the size for a segment, 0 for a queue.
    pub size: u64,
    /// The caller.
    pub cred: Cred,
    /// The caller's process id (tgid) on its node: a new segment's creator.
    pub pid: u32,
}

/// The answer to [`Get`] and [`Lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetReply {
    /// 0, or a negative errno (then the other fields are 0).
    pub result: i32,
    /// The object's cluster-wide id.
    pub oid: u64,
    /// The object's owner, creator and mode (`S_IRWXUGO` of it), which
    /// the node gives its shadow.
    pub perm: IpcPerm,
    /// `nsems` of the set, or the segment size.
    pub size: u64,
    /// The object's SysV id, the same on every node: what `*get` returns.
    pub id: i32,
    /// The object's key (`IPC_PRIVATE` for a segment marked for removal).
    pub key: i32,
    /// 1 when this `Get` created the object (a node that then cannot make
    /// its shadow removes it again, so a failed `*get` leaves nothing), 0
    /// otherwise.
    pub created: u8,
}

/// A call on a SysV id that is no shadow on the node: which object has it?
/// Answered with a [`GetReply`] (`EINVAL` when none has), after no
/// permission check: the call that follows makes its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// What kind of object.
    pub class: Class,
    /// The id the call was given.
    pub id: i32,
}

/// One `struct sembuf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sembuf {
    /// Semaphore index.
    pub num: u16,
    /// Operation.
    pub op: i16,
    /// `IPC_NOWAIT` (0o4000) and `SEM_UNDO` (0x1000).
    pub flg: i16,
}

/// Size of one [`Sembuf`] on the wire.
pub const SEMBUF_LEN: usize = 6;
/// Most operations in one [`SemOp`].
pub const MAX_SOPS: usize = 4096;
/// Most semaphores whose values one frame carries (`SETALL`/`GETALL`).
pub const MAX_SEMS: usize = 32000;

impl Sembuf {
    /// The wire form.
    pub fn to_bytes(&self) -> [u8; SEMBUF_LEN] {
        let [a, b] = self.num.to_le_bytes();
        let [c, d] = self.op.to_le_bytes();
        let [e, f] = self.flg.to_le_bytes();
        [a, b, c, d, e, f]
    }
}

/// A checked array of [`Sembuf`] in wire form, borrowed from a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sops<'a>(&'a [u8]);

impl<'a> Sops<'a> {
    /// Wraps `bytes`, which must hold 1..=[`MAX_SOPS`] whole entries.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let n = bytes.len() / SEMBUF_LEN;
        (bytes.len() % SEMBUF_LEN == 0 && (1..=MAX_SOPS).contains(&n)).then_some(Sops(bytes))
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.0.len() / SEMBUF_LEN
    }

    /// Never true for a checked value; for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = Sembuf> + 'a {
        self.0.chunks_exact(SEMBUF_LEN).map(|c| Sembuf {
            num: u16::from_le_bytes([c[0], c[1]]),
            op: i16::from_le_bytes([c[2], c[3]]),
            flg: i16::from_le_bytes([c[4], c[5]]),
        })
    }
}

/// A checked array of `u16` semaphore values in wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vals<'a>(&'a [u8]);

impl<'a> Vals<'a> {
    /// No values.
    pub const EMPTY: Vals<'static> = Vals(&[]);

    /// Wraps `bytes`, which must hold at most [`MAX_SEMS`] whole values.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 2 == 0 && bytes.len() / 2 <= MAX_SEMS).then_some(Vals(bytes))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The values, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
    }
}

/// `semop`/`semtimedop` on a distributed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemOp<'a> {
    /// The set.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// The operations.
    pub sops: Sops<'a>,
}

/// `semctl` commands, with Linux's numbers.
pub mod semcmd {
    /// Remove the set.
    pub const IPC_RMID: i32 = 0;
    /// Set owner and mode.
    pub const IPC_SET: i32 = 1;
    /// Read the set's status.
    pub const IPC_STAT: i32 = 2;
    /// `sempid` of one semaphore.
    pub const GETPID: i32 = 11;
    /// Value of one semaphore.
    pub const GETVAL: i32 = 12;
    /// All values.
    pub const GETALL: i32 = 13;
    /// Waiters for an increase.
    pub const GETNCNT: i32 = 14;
    /// Waiters for zero.
    pub const GETZCNT: i32 = 15;
    /// Set one value.
    pub const SETVAL: i32 = 16;
    /// Set all values.
    pub const SETALL: i32 = 17;
    /// `SEM_STAT`: `IPC_STAT` of a table slot (the node sends the set it
    /// found there).
    pub const SEM_STAT: i32 = 18;
    /// `SEM_STAT_ANY`: `SEM_STAT` without the read permission check.
    pub const SEM_STAT_ANY: i32 = 20;
}

/// `semctl` on a distributed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemCtl<'a> {
    /// The set.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// A [`semcmd`] value.
    pub cmd: i32,
    /// Semaphore index for the single-semaphore commands.
    pub semnum: i32,
    /// The value for `SETVAL`.
    pub val: i32,
    /// New owner uid for `IPC_SET`.
    pub set_uid: u32,
    /// New owner gid for `IPC_SET`.
    pub set_gid: u32,
    /// New mode for `IPC_SET` (low 9 bits are used).
    pub set_mode: u32,
    /// The values for `SETALL`.
    pub vals: Vals<'a>,
}

impl SemCtl<'_> {
    /// Command `cmd` on set `oid` by `pid` with `cred`; every argument of
    /// a particular command 0 or empty.
    pub fn new(oid: u64, pid: u32, cred: Cred, cmd: i32) -> Self {
        SemCtl {
            oid,
            pid,
            cred,
            cmd,
            semnum: 0,
            val: 0,
            set_uid: 0,
            set_gid: 0,
            set_mode: 0,
            vals: Vals::EMPTY,
        }
    }
}

/// An object's `ipc64_perm` plus times, as `IPC_STAT` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcStat {
    /// Key.
    pub key: i32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Mode bits.
    pub mode: u32,
    /// Last operation time (seconds since the epoch).
    pub otime: i64,
    /// Last change time (seconds since the epoch).
    pub ctime: i64,
    /// Number of semaphores.
    pub nsems: u32,
}

/// The answer to [`SemCtl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemCtlReply<'a> {
    /// The call's return value, or a negative errno.
    pub result: i64,
    /// Filled for `IPC_STAT`.
    pub stat: IpcStat,
    /// Filled for `GETALL`.
    pub vals: Vals<'a>,
}

/// Largest message body ([`MsgSnd::text`], [`MsgRcvReply::text`]) a frame
/// carries; a referee's `msgmax` is at most this.
pub const MAX_MTEXT: usize = MAX_PAYLOAD - 1024;

/// `msgsnd` on a distributed queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgSnd<'a> {
    /// The queue.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// The message type (`mtype`, at least 1 for a valid call).
    pub mtype: i64,
    /// The call's flags (`IPC_NOWAIT`).
    pub flags: i32,
    /// 0 for a call the referee decides; otherwise the send lease under
    /// which the node already accepted the message (see [`MsgSndReply`]).
    pub lease: u64,
    /// The node's send-lease epoch for the queue, echoed in the reply.
    pub epoch: u64,
    /// The message body, at most [`MAX_MTEXT`] bytes.
    pub text: &'a [u8],
}

/// `msgrcv` on a distributed queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgRcv {
    /// The queue.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// `msgtyp` as the caller passed it.
    pub msgtyp: i64,
    /// The call's flags (`IPC_NOWAIT`, `MSG_NOERROR`, `MSG_EXCEPT`, `MSG_COPY`).
    pub flags: i32,
    /// The caller's buffer size (`msgsz`).
    pub size: u64,
    /// The node's receive-lease epoch for the queue, echoed in the reply.
    pub epoch: u64,
}

/// The message a [`MsgRcv`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgRcvReply<'a> {
    /// Bytes received (the length of `text`), or a negative errno.
    pub result: i64,
    /// The message type.
    pub mtype: i64,
    /// The body, already cut to the caller's buffer size.
    pub text: &'a [u8],
    /// The request's epoch ([`MsgRcv::epoch`]).
    pub epoch: u64,
    /// The queue (0 without a lease).
    pub oid: u64,
    /// A receive lease granted with this answer (0: none): the messages in
    /// `batch` are the head of the queue, and the node may hand them to
    /// its own receivers until it gives the lease back.
    pub lease: u64,
    /// The queue's permissions, for the node's own checks under the lease.
    pub perm: IpcPerm,
    /// The leased messages (empty without a lease).
    pub batch: Batch<'a>,
}

/// An object's owner, creator and mode (`struct kern_ipc_perm`'s, uids and
/// gids as the initial user namespace sees them): what a node holding a
/// message lease needs for `ipcperms()`, and what every node's shadow shows
/// ([`GetReply::perm`], [`Frame::Perm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcPerm {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Mode bits.
    pub mode: u32,
}

impl IpcPerm {
    /// `ipcperms()` without the LSM hook: `Err(EACCES)` when `cred` may not
    /// have `flag` (`S_IRUGO` or `S_IWUGO`) on an object with these bits.
    pub fn ipcperms(&self, cred: &Cred, flag: u32) -> Result<(), i32> {
        let requested = (flag >> 6) | (flag >> 3) | flag;
        let mut granted = self.mode;
        if cred.euid == self.cuid || cred.euid == self.uid {
            granted >>= 6;
        } else if cred.in_group(self.cgid) || cred.in_group(self.gid) {
            granted >>= 3;
        }
        if requested & !granted & 0o7 != 0 && cred.caps & CAP_IPC_OWNER == 0 {
            return Err(errno::EACCES);
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Option<Self> {
        Some(IpcPerm {
            uid: r.u32()?,
            gid: r.u32()?,
            cuid: r.u32()?,
            cgid: r.u32()?,
            mode: r.u32()?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        for v in [self.uid, self.gid, self.cuid, self.cgid, self.mode] {
            w.u32(v);
        }
    }
}

/// Encoded size of a [`IpcPerm`].
const PERM_LEN: usize = 4 * 5;

/// Most messages in one lease ([`MsgRcvReply::batch`], [`MsgReturn::taken`]).
pub const MAX_LEASE_MSGS: usize = 512;
/// Bytes of one [`Batch`] entry before its body.
pub const BATCH_ENTRY_HEAD: usize = 8 + 8 + 4;

/// Leased messages, each `seq` u64, `mtype` i64, length u32, body; at most
/// [`MAX_LEASE_MSGS`] entries, checked whole when decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a>(&'a [u8]);

/// One message of a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMsg<'a> {
    /// The message's number in its queue.
    pub seq: u64,
    /// Its type.
    pub mtype: i64,
    /// Its body.
    pub text: &'a [u8],
}

impl<'a> Batch<'a> {
    /// No messages.
    pub const EMPTY: Batch<'static> = Batch(&[]);

    /// Wraps encoded entries; `None` unless they split exactly into at most
    /// [`MAX_LEASE_MSGS`] entries.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let b = Batch(bytes);
        let mut n = 0;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (_, r) = Self::split(rest)?;
            rest = r;
            n += 1;
            if n > MAX_LEASE_MSGS {
                return None;
            }
        }
        Some(b)
    }

    fn split(b: &'a [u8]) -> Option<(BatchMsg<'a>, &'a [u8])> {
        if b.len() < BATCH_ENTRY_HEAD {
            return None;
        }
        let u = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let len = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as usize;
        let body = b.get(BATCH_ENTRY_HEAD..BATCH_ENTRY_HEAD.checked_add(len)?)?;
        let m = BatchMsg {
            seq: u(0),
            mtype: u(8) as i64,
            text: body,
        };
        Some((m, &b[BATCH_ENTRY_HEAD + len..]))
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = BatchMsg<'a>> + 'a {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (m, r) = Self::split(rest)?;
            rest = r;
            Some(m)
        })
    }
}

/// Message numbers ([`MsgReturn::taken`]), little-endian u64s, at most
/// [`MAX_LEASE_MSGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seqs<'a>(&'a [u8]);

impl<'a> Seqs<'a> {
    /// None.
    pub const EMPTY: Seqs<'static> = Seqs(&[]);

    /// Wraps `bytes`: whole u64s, at most [`MAX_LEASE_MSGS`].
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() % 8 == 0 && bytes.len() / 8 <= MAX_LEASE_MSGS).then_some(Seqs(bytes))
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The numbers.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        self.0.chunks_exact(8).map(|c| {
            let mut x = [0u8; 8];
            x.copy_from_slice(c);
            u64::from_le_bytes(x)
        })
    }
}

/// The answer to a [`MsgSnd`] call that the referee decided.
///
/// With `lease` set, the node holds a send lease: the referee has set aside
/// `bytes` bytes and `msgs` messages of the queue's room for it, and the
/// node accepts messages that fit in what is left at once, sending each
/// with [`MsgSnd::lease`] (in order, behind everything it sent before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgSndReply {
    /// 0, or a negative errno.
    pub result: i64,
    /// The request's epoch ([`MsgSnd::epoch`]).
    pub epoch: u64,
    /// The queue (0 without a lease).
    pub oid: u64,
    /// The send lease granted (0: none).
    pub lease: u64,
    /// Bytes set aside.
    pub bytes: u64,
    /// Messages set aside.
    pub msgs: u32,
    /// The queue's permissions, for the node's own checks under the lease.
    pub perm: IpcPerm,
}

/// A node gives a message lease back (a call, answered with `Status`):
/// after the referee asked ([`Frame::MsgRecall`]), before the node makes any
/// other call on the queue, or when a grant came too late to be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgReturn<'a> {
    /// The queue.
    pub oid: u64,
    /// The lease.
    pub lease: u64,
    /// The last process that took a message under it (0: none).
    pub pid: u32,
    /// For a receive lease: every message taken under it.
    pub taken: Seqs<'a>,
}

/// More for a lease a node holds, sent by the referee on its own: the
/// messages queued right behind those a receive lease holds (the node
/// appends them), or more room for a send lease. For a lease the node no
/// longer holds it is ignored (what it carries stays at the referee).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgMore<'a> {
    /// The queue.
    pub oid: u64,
    /// The lease.
    pub lease: u64,
    /// More room: bytes.
    pub bytes: u64,
    /// More room: messages.
    pub msgs: u32,
    /// More messages.
    pub batch: Batch<'a>,
}

/// A node's receivers took messages `seqs` of receive lease `lease` (not a
/// call: reports go out every few messages, and when the lease runs low;
/// [`MsgReturn`] repeats them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgTaken<'a> {
    /// The queue.
    pub oid: u64,
    /// The lease.
    pub lease: u64,
    /// The last receiver's tgid.
    pub pid: u32,
    /// The messages, in the order they were taken.
    pub seqs: Seqs<'a>,
}

/// `msgctl` commands, with Linux's numbers.
pub mod msgcmd {
    /// Remove the queue.
    pub const IPC_RMID: i32 = 0;
    /// Set owner, mode and `msg_qbytes`.
    pub const IPC_SET: i32 = 1;
    /// Read the queue's status.
    pub const IPC_STAT: i32 = 2;
    /// The system's limits.
    pub const IPC_INFO: i32 = 3;
    /// Status by table index.
    pub const MSG_STAT: i32 = 11;
    /// The system's limits and usage.
    pub const MSG_INFO: i32 = 12;
    /// Status by table index, without a read-permission check.
    pub const MSG_STAT_ANY: i32 = 13;
}

/// `msgctl` on a distributed queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgCtl {
    /// The queue.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// A [`msgcmd`] value.
    pub cmd: i32,
    /// New owner uid for `IPC_SET`.
    pub set_uid: u32,
    /// New owner gid for `IPC_SET`.
    pub set_gid: u32,
    /// New mode for `IPC_SET` (low 9 bits are used).
    pub set_mode: u32,
    /// New `msg_qbytes` for `IPC_SET`.
    pub set_qbytes: u64,
}

impl MsgCtl {
    /// Command `cmd` on queue `oid` by `pid` with `cred`; `IPC_SET`'s
    /// values 0.
    pub fn new(oid: u64, pid: u32, cred: Cred, cmd: i32) -> Self {
        MsgCtl {
            oid,
            pid,
            cred,
            cmd,
            set_uid: 0,
            set_gid: 0,
            set_mode: 0,
            set_qbytes: 0,
        }
    }
}

/// A queue's `struct msqid64_ds`, as `IPC_STAT` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgStat {
    /// Key.
    pub key: i32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Mode bits.
    pub mode: u32,
    /// Last `msgsnd` time.
    pub stime: i64,
    /// Last `msgrcv` time.
    pub rtime: i64,
    /// Last change time.
    pub ctime: i64,
    /// Bytes in the queue.
    pub cbytes: u64,
    /// Messages in the queue.
    pub qnum: u64,
    /// Most bytes the queue holds.
    pub qbytes: u64,
    /// Last sender (tgid on its node).
    pub lspid: u32,
    /// Last receiver (tgid on its node).
    pub lrpid: u32,
}

/// `struct msginfo`, as `IPC_INFO` and `MSG_INFO` report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgInfo {
    /// `msgpool`.
    pub msgpool: i32,
    /// `msgmap`.
    pub msgmap: i32,
    /// `msgmax`.
    pub msgmax: i32,
    /// `msgmnb`.
    pub msgmnb: i32,
    /// `msgmni`.
    pub msgmni: i32,
    /// `msgssz`.
    pub msgssz: i32,
    /// `msgtql`.
    pub msgtql: i32,
    /// `msgseg`.
    pub msgseg: u16,
}

/// The answer to [`MsgCtl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgCtlReply {
    /// The call's return value, or a negative errno.
    pub result: i64,
    /// Filled for `IPC_STAT`.
    pub stat: MsgStat,
    /// Filled for `IPC_INFO` and `MSG_INFO`.
    pub info: MsgInfo,
}

/// Size of a DSM page: the coherence unit, `PAGE_SIZE` on every supported
/// architecture.
pub const PAGE_LEN: usize = 4096;

/// `shmctl` commands, with Linux's numbers.
pub mod shmcmd {
    /// Remove the segment (destroyed when the last attach goes).
    pub const IPC_RMID: i32 = 0;
    /// Set owner and mode.
    pub const IPC_SET: i32 = 1;
    /// Read the segment's status.
    pub const IPC_STAT: i32 = 2;
    /// `SHM_STAT`: `IPC_STAT` of a table slot (the node sends the segment
    /// it found there).
    pub const SHM_STAT: i32 = 13;
    /// `SHM_STAT_ANY`: `SHM_STAT` without the read permission check.
    pub const SHM_STAT_ANY: i32 = 15;
}

/// `shmat` flag: attach read-only.
pub const SHM_RDONLY: i32 = 0o10000;
/// `shmat` flag: attach with execute permission.
pub const SHM_EXEC: i32 = 0o100000;
/// Mode bit: the segment is marked for destruction.
pub const SHM_DEST: u32 = 0o1000;

/// May process `pid` attach segment `oid` with `flags` (`SHM_RDONLY`,
/// `SHM_EXEC`)? Answered with [`Frame::Status`]. It also carries the node's
/// attach count with this attach already in it (`nattch`, numbered `seq` as
/// in [`ShmNattch`]), which the referee takes when it allows the attach: the
/// attach counts from the moment it is allowed, so a detach elsewhere cannot
/// destroy the segment under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmAt {
    /// The segment.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// `shmat` flags.
    pub flags: i32,
    /// Attaches on the sending node, this one included.
    pub nattch: u32,
    /// The count's number (0: no count).
    pub seq: u64,
}

/// The sending node now holds `nattch` attaches of segment `oid` (absolute,
/// so a lost or repeated update does no harm). `seq` numbers the node's
/// counts of the segment: the referee keeps the count with the highest
/// number, so counts sent at once by several tasks may arrive in any order
/// (0: no count). Sent with request id 0 it is not answered; as a request it
/// is answered with [`Frame::Status`]: 1 when it destroyed a segment marked
/// for removal, else 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmNattch {
    /// The segment.
    pub oid: u64,
    /// The process whose attach or detach changed the count (0: unknown).
    pub pid: u32,
    /// Attaches on the sending node.
    pub nattch: u32,
    /// 1 when a `shmdt` caused the update (sets `shm_dtime`).
    pub detach: u8,
    /// The count's number.
    pub seq: u64,
}

/// `shmctl` on a distributed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmCtl {
    /// The segment.
    pub oid: u64,
    /// The caller's process id (tgid) on its node.
    pub pid: u32,
    /// The caller.
    pub cred: Cred,
    /// A [`shmcmd`] value.
    pub cmd: i32,
    /// New owner uid for `IPC_SET`.
    pub set_uid: u32,
    /// New owner gid for `IPC_SET`.
    pub set_gid: u32,
    /// New mode for `IPC_SET` (low 9 bits are used).
    pub set_mode: u32,
}

impl ShmCtl {
    /// Command `cmd` on segment `oid` by `pid` with `cred`; `IPC_SET`'s
    /// values 0.
    pub fn new(oid: u64, pid: u32, cred: Cred, cmd: i32) -> Self {
        ShmCtl {
            oid,
            pid,
            cred,
            cmd,
            set_uid: 0,
            set_gid: 0,
            set_mode: 0,
        }
    }
}

/// A segment's `struct shmid64_ds`, as `IPC_STAT` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmStat {
    /// Key (`IPC_PRIVATE` once removed).
    pub key: i32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Mode bits, with [`SHM_DEST`] once removed.
    pub mode: u32,
    /// Size in bytes.
    pub segsz: u64,
    /// Last attach time.
    pub atime: i64,
    /// Last detach time.
    pub dtime: i64,
    /// Last change time.
    pub ctime: i64,
    /// Creator (tgid on its node).
    pub cpid: u32,
    /// Last attach or detach (tgid on its node).
    pub lpid: u32,
    /// Attaches on every node.
    pub nattch: u64,
}

/// The answer to [`ShmCtl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmCtlReply {
    /// The call's return value, or a negative errno.
    pub result: i64,
    /// Filled for `IPC_STAT`.
    pub stat: ShmStat,
}

/// A page fault on the sending node needs page `page` of segment `oid`.
/// Not answered by request id: the referee sends a [`PageGrant`] when the
/// access is granted, in order with every other frame for that page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageReq {
    /// The segment.
    pub oid: u64,
    /// Page index in the segment.
    pub page: u64,
    /// 1: write access (exclusive ownership); 0: a read copy.
    pub write: u8,
    /// 1: the segment moves as one unit (whole-segment mode): the same
    /// access to every page of it; 0: this page.
    pub whole: u8,
    /// The transaction id of the last grant of this page the node applied
    /// (0: none): if the referee granted it a later one that went straight
    /// from another node and never arrived, it grants it again.
    pub applied: u64,
}

/// What a [`PageGrant`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageData<'a> {
    /// Nothing: the node's copy is current.
    Keep,
    /// The page is all zeroes (never written).
    Zero,
    /// The page's bytes, exactly [`PAGE_LEN`].
    Bytes(&'a [u8]),
}

impl PageData<'_> {
    fn tag(&self) -> u8 {
        match self {
            PageData::Keep => 0,
            PageData::Zero => 1,
            PageData::Bytes(_) => 2,
        }
    }

    fn len(&self) -> usize {
        match self {
            PageData::Bytes(_) => PAGE_LEN,
            _ => 0,
        }
    }
}

/// Access to a page, granted (or refused with `result < 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageGrant<'a> {
    /// The segment.
    pub oid: u64,
    /// Page index.
    pub page: u64,
    /// 1: exclusive write access; 0: a read copy.
    pub write: u8,
    /// 0, or a negative errno (the segment is gone, the page out of range).
    pub result: i32,
    /// The node applies this grant only once it has applied the grant
    /// with this transaction id (0: no condition): a grant that keeps the
    /// node's copy may overtake the page itself, sent by another node.
    pub after: u64,
    /// The contents.
    pub data: PageData<'a>,
}

/// Give up the copy of a page. Sent with a request id that the
/// [`PageAck`] repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInval {
    /// The segment.
    pub oid: u64,
    /// Page index.
    pub page: u64,
    /// 1: keep a read copy (a downgrade from write); 0: drop it.
    pub keep_read: u8,
    /// 1: send the page's bytes back (the node owns it).
    pub want_data: u8,
    /// Answer only once the grant with this transaction id is applied (0:
    /// no condition), as in [`PageGrant::after`].
    pub after: u64,
    /// The requester, when the node should send it the page itself (a
    /// [`PageGrant`] with the invalidation's request id on a connection to
    /// `to_ip:to_port`, showing `to_token`): 0 for none.
    pub to_node: u32,
    /// The requester's IPv4 address (host order).
    pub to_ip: u32,
    /// The requester's peer port.
    pub to_port: u16,
    /// The requester's token.
    pub to_token: [u8; TOKEN_LEN],
}

/// The node no longer maps the page as the [`PageInval`] asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageAck<'a> {
    /// The segment.
    pub oid: u64,
    /// Page index.
    pub page: u64,
    /// The page's bytes (exactly [`PAGE_LEN`]) when asked for and held.
    pub data: Option<&'a [u8]>,
    /// 1: the node sent the page to the requester itself, as the
    /// invalidation asked; the referee then grants nothing.
    pub sent: u8,
}

/// One decoded frame. Byte strings borrow from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// See [`Hello`].
    Hello(Hello<'a>),
    /// See [`HelloAck`].
    HelloAck(HelloAck),
    /// Liveness probe carrying an opaque value to echo.
    Ping {
        /// Echoed in the [`Frame::Pong`].
        nonce: u64,
    },
    /// The referee's challenge after a hello: a fresh random nonce.
    Challenge {
        /// The nonce to answer with an [`Auth`].
        nonce: [u8; AUTH_LEN],
    },
    /// See [`Auth`].
    Auth(Auth),
    /// See [`PeerHello`].
    PeerHello(PeerHello),
    /// Answer to [`Frame::Ping`].
    Pong {
        /// The ping's value.
        nonce: u64,
    },
    /// Refusal or failure.
    Error {
        /// Why.
        code: ErrorCode,
    },
    /// See [`Get`].
    Get(Get),
    /// See [`GetReply`].
    GetReply(GetReply),
    /// See [`Lookup`].
    Lookup(Lookup),
    /// See [`SemOp`].
    SemOp(SemOp<'a>),
    /// A call's return value or negative errno.
    Status {
        /// The value.
        result: i64,
    },
    /// See [`SemCtl`].
    SemCtl(SemCtl<'a>),
    /// See [`SemCtlReply`].
    SemCtlReply(SemCtlReply<'a>),
    /// Give up the request with id `target` if it still waits; the referee
    /// then answers that request with `-EINTR`. A request that already
    /// completed is not affected (its reply is on the way).
    Cancel {
        /// Request id of the request to cancel.
        target: u64,
    },
    /// Process `pid` on the sending node has exited.
    Exit {
        /// Its tgid.
        pid: u32,
    },
    /// An object was removed.
    Removed {
        /// Its class.
        class: Class,
        /// Its cluster-wide id.
        oid: u64,
    },
    /// An `IPC_SET` changed an object's owner or mode: every node gives
    /// its shadow the new ones, so `ipcs` and the local checks on the
    /// shadow see what the referee sees.
    Perm {
        /// Its class.
        class: Class,
        /// Its cluster-wide id.
        oid: u64,
        /// The owner, creator and mode now.
        perm: IpcPerm,
    },
    /// See [`MsgSnd`].
    MsgSnd(MsgSnd<'a>),
    /// See [`MsgRcv`].
    MsgRcv(MsgRcv),
    /// See [`MsgRcvReply`].
    MsgRcvReply(MsgRcvReply<'a>),
    /// See [`MsgCtl`].
    MsgCtl(MsgCtl),
    /// See [`MsgCtlReply`].
    MsgCtlReply(MsgCtlReply),
    /// See [`ShmAt`].
    ShmAt(ShmAt),
    /// See [`ShmNattch`].
    ShmNattch(ShmNattch),
    /// See [`ShmCtl`].
    ShmCtl(ShmCtl),
    /// See [`ShmCtlReply`].
    ShmCtlReply(ShmCtlReply),
    /// See [`PageReq`].
    PageReq(PageReq),
    /// See [`PageGrant`].
    PageGrant(PageGrant<'a>),
    /// See [`PageInval`].
    PageInval(PageInval),
    /// See [`PageAck`].
    PageAck(PageAck<'a>),
    /// See [`MsgSndReply`].
    MsgSndReply(MsgSndReply),
    /// See [`MsgReturn`].
    MsgReturn(MsgReturn<'a>),
    /// See [`MsgTaken`].
    MsgTaken(MsgTaken<'a>),
    /// See [`MsgMore`].
    MsgMore(MsgMore<'a>),
    /// The referee needs lease `lease` of queue `oid` back: the node stops
    /// using it and answers with [`MsgReturn`]. A lease the node does not
    /// hold (already given back, or never taken up) is ignored.
    MsgRecall {
        /// The queue.
        oid: u64,
        /// The lease.
        lease: u64,
    },
    /// The node leaves the cluster (a call, no payload). The referee takes
    /// back every page the node owns (invalidations with `want_data`, so
    /// the node's latest bytes come home), then answers `Status { 0 }` and
    /// ends the node's session at once, as for a dead node but with
    /// nothing lost. The node sends nothing after it but the acks of
    /// those invalidations.
    Leave,
}

/// A frame with the request id it travels under. A reply carries the id of
/// its request; frames that are not replies use id 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Request id, chosen by the sender of a request.
    pub req_id: u64,
    /// The sender's wall clock in seconds, or 0 (see the module's
    /// documentation).
    pub clock: u32,
    /// The frame.
    pub frame: Frame<'a>,
}

/// A checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Frame kind.
    pub kind: Kind,
    /// Request id.
    pub req_id: u64,
    /// Payload length, at most [`MAX_PAYLOAD`].
    pub len: u32,
    /// The sender's wall clock in seconds (requests from a node), or 0.
    pub clock: u32,
}

impl Header {
    /// Size of the whole frame, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

/// Bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Bounds-checked little-endian writer into a byte slice.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    // Callers check the total size first, so these never run past the end;
    // slice indexing would still panic rather than write out of bounds.
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Checks the first [`HEADER_LEN`] bytes of `buf` as a frame header.
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    let mut r = Reader { buf };
    let incomplete = DecodeError::Incomplete { needed: HEADER_LEN };
    let magic = r.u32().ok_or(incomplete)?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    let version = r.u16().ok_or(incomplete)?;
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let kind = Kind::try_from(r.u16().ok_or(incomplete)?)?;
    let req_id = r.u64().ok_or(incomplete)?;
    let len = r.u32().ok_or(incomplete)?;
    if len as usize > MAX_PAYLOAD {
        return Err(DecodeError::TooLong(len));
    }
    let clock = r.u32().ok_or(incomplete)?;
    Ok(Header {
        kind,
        req_id,
        len,
        clock,
    })
}

/// Decodes one frame from the start of `buf`. On success returns the message
/// and the number of bytes it used; bytes after it are left alone.
pub fn decode(buf: &[u8]) -> Result<(Message<'_>, usize), DecodeError> {
    let header = decode_header(buf)?;
    let total = header.frame_len();
    let payload = buf
        .get(HEADER_LEN..total)
        .ok_or(DecodeError::Incomplete { needed: total })?;
    let frame = decode_payload(header.kind, payload).ok_or(DecodeError::BadPayload(header.kind))?;
    Ok((
        Message {
            req_id: header.req_id,
            clock: header.clock,
            frame,
        },
        total,
    ))
}

/// A flag byte: 0 or 1, anything else is malformed.
fn bool_u8(v: u8) -> Option<u8> {
    (v <= 1).then_some(v)
}

fn decode_payload(kind: Kind, payload: &[u8]) -> Option<Frame<'_>> {
    let mut r = Reader { buf: payload };
    let frame = match kind {
        Kind::Hello => {
            let node_id = r.u32()?;
            let features = r.u64()?;
            let incarnation = r.u64()?;
            let peer_port = r.u16()?;
            let name_len = r.u8()? as usize;
            if node_id == 0 || name_len > MAX_NAME_LEN {
                return None;
            }
            let name = r.take(name_len)?;
            Frame::Hello(Hello {
                node_id,
                features,
                incarnation,
                peer_port,
                name,
            })
        }
        Kind::HelloAck => Frame::HelloAck(HelloAck {
            node_id: r.u32()?,
            features: r.u64()?,
            session: r.u64()?,
            token: r.array()?,
        }),
        Kind::Ping => Frame::Ping { nonce: r.u64()? },
        Kind::Challenge => Frame::Challenge { nonce: r.array()? },
        Kind::Auth => Frame::Auth(Auth {
            mac: r.array()?,
            nonce: r.array()?,
        }),
        Kind::Pong => Frame::Pong { nonce: r.u64()? },
        Kind::Error => Frame::Error {
            code: ErrorCode::try_from(r.u32()?).ok()?,
        },
        Kind::Get => {
            let class = Class::try_from(r.u8()?).ok()?;
            let key = r.i32()?;
            let flags = r.i32()?;
            let size = r.u64()?;
            let cred = Cred::read(&mut r)?;
            let pid = r.u32()?;
            Frame::Get(Get {
                class,
                key,
                flags,
                size,
                cred,
                pid,
            })
        }
        Kind::GetReply => Frame::GetReply(GetReply {
            result: r.i32()?,
            oid: r.u64()?,
            perm: IpcPerm::read(&mut r)?,
            size: r.u64()?,
            id: r.i32()?,
            key: r.i32()?,
            created: r.u8()?,
        }),
        Kind::Lookup => Frame::Lookup(Lookup {
            class: Class::try_from(r.u8()?).ok()?,
            id: r.i32()?,
        }),
        Kind::SemOp => {
            let oid = r.u64()?;
            let pid = r.u32()?;
            let cred = Cred::read(&mut r)?;
            let n = r.u16()? as usize;
            let sops = Sops::new(r.take(n.checked_mul(SEMBUF_LEN)?)?)?;
            Frame::SemOp(SemOp {
                oid,
                pid,
                cred,
                sops,
            })
        }
        Kind::Status => Frame::Status { result: r.i64()? },
        Kind::SemCtl => {
            let oid = r.u64()?;
            let pid = r.u32()?;
            let cred = Cred::read(&mut r)?;
            let cmd = r.i32()?;
            let semnum = r.i32()?;
            let val = r.i32()?;
            let set_uid = r.u32()?;
            let set_gid = r.u32()?;
            let set_mode = r.u32()?;
            let n = r.u16()? as usize;
            let vals = Vals::new(r.take(n * 2)?)?;
            Frame::SemCtl(SemCtl {
                oid,
                pid,
                cred,
                cmd,
                semnum,
                val,
                set_uid,
                set_gid,
                set_mode,
                vals,
            })
        }
        Kind::SemCtlReply => {
            let result = r.i64()?;
            let stat = IpcStat {
                key: r.i32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                cuid: r.u32()?,
                cgid: r.u32()?,
                mode: r.u32()?,
                otime: r.i64()?,
                ctime: r.i64()?,
                nsems: r.u32()?,
            };
            let n = r.u16()? as usize;
            let vals = Vals::new(r.take(n * 2)?)?;
            Frame::SemCtlReply(SemCtlReply { result, stat, vals })
        }
        Kind::Cancel => Frame::Cancel { target: r.u64()? },
        Kind::Exit => Frame::Exit { pid: r.u32()? },
        Kind::Leave => Frame::Leave,
        Kind::Removed => Frame::Removed {
            class: Class::try_from(r.u8()?).ok()?,
            oid: r.u64()?,
        },
        Kind::Perm => Frame::Perm {
            class: Class::try_from(r.u8()?).ok()?,
            oid: r.u64()?,
            perm: IpcPerm::read(&mut r)?,
        },
        Kind::MsgSnd => {
            let oid = r.u64()?;
            let pid = r.u32()?;
            let cred = Cred::read(&mut r)?;
            let mtype = r.i64()?;
            let flags = r.i32()?;
            let lease = r.u64()?;
            let epoch = r.u64()?;
            let n = r.u32()? as usize;
            if n > MAX_MTEXT {
                return None;
            }
            let text = r.take(n)?;
            Frame::MsgSnd(MsgSnd {
                oid,
                pid,
                cred,
                mtype,
                flags,
                lease,
                epoch,
                text,
            })
        }
        Kind::MsgRcv => Frame::MsgRcv(MsgRcv {
            oid: r.u64()?,
            pid: r.u32()?,
            cred: Cred::read(&mut r)?,
            msgtyp: r.i64()?,
            flags: r.i32()?,
            size: r.u64()?,
            epoch: r.u64()?,
        }),
        Kind::MsgRcvReply => {
            let result = r.i64()?;
            let mtype = r.i64()?;
            let n = r.u32()? as usize;
            if n > MAX_MTEXT {
                return None;
            }
            let text = r.take(n)?;
            let epoch = r.u64()?;
            let oid = r.u64()?;
            let lease = r.u64()?;
            let perm = IpcPerm::read(&mut r)?;
            let n = r.u32()? as usize;
            if n.checked_add(text.len())? > MAX_MTEXT {
                return None;
            }
            let batch = Batch::new(r.take(n)?)?;
            Frame::MsgRcvReply(MsgRcvReply {
                result,
                mtype,
                text,
                epoch,
                oid,
                lease,
                perm,
                batch,
            })
        }
        Kind::MsgSndReply => Frame::MsgSndReply(MsgSndReply {
            result: r.i64()?,
            epoch: r.u64()?,
            oid: r.u64()?,
            lease: r.u64()?,
            bytes: r.u64()?,
            msgs: r.u32()?,
            perm: IpcPerm::read(&mut r)?,
        }),
        Kind::MsgReturn => {
            let oid = r.u64()?;
            let lease = r.u64()?;
            let pid = r.u32()?;
            let n = r.u16()? as usize;
            if n > MAX_LEASE_MSGS {
                return None;
            }
            let taken = Seqs::new(r.take(n * 8)?)?;
            Frame::MsgReturn(MsgReturn {
                oid,
                lease,
                pid,
                taken,
            })
        }
        Kind::MsgTaken => {
            let oid = r.u64()?;
            let lease = r.u64()?;
            let pid = r.u32()?;
            let n = r.u16()? as usize;
            if n > MAX_LEASE_MSGS {
                return None;
            }
            let seqs = Seqs::new(r.take(n * 8)?)?;
            Frame::MsgTaken(MsgTaken {
                oid,
                lease,
                pid,
                seqs,
            })
        }
        Kind::MsgRecall => Frame::MsgRecall {
            oid: r.u64()?,
            lease: r.u64()?,
        },
        Kind::MsgMore => {
            let oid = r.u64()?;
            let lease = r.u64()?;
            let bytes = r.u64()?;
            let msgs = r.u32()?;
            let n = r.u32()? as usize;
            if n > MAX_MTEXT {
                return None;
            }
            let batch = Batch::new(r.take(n)?)?;
            Frame::MsgMore(MsgMore {
                oid,
                lease,
                bytes,
                msgs,
                batch,
            })
        }
        Kind::MsgCtl => Frame::MsgCtl(MsgCtl {
            oid: r.u64()?,
            pid: r.u32()?,
            cred: Cred::read(&mut r)?,
            cmd: r.i32()?,
            set_uid: r.u32()?,
            set_gid: r.u32()?,
            set_mode: r.u32()?,
            set_qbytes: r.u64()?,
        }),
        Kind::MsgCtlReply => Frame::MsgCtlReply(MsgCtlReply {
            result: r.i64()?,
            stat: MsgStat {
                key: r.i32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                cuid: r.u32()?,
                cgid: r.u32()?,
                mode: r.u32()?,
                stime: r.i64()?,
                rtime: r.i64()?,
                ctime: r.i64()?,
                cbytes: r.u64()?,
                qnum: r.u64()?,
                qbytes: r.u64()?,
                lspid: r.u32()?,
                lrpid: r.u32()?,
            },
            info: MsgInfo {
                msgpool: r.i32()?,
                msgmap: r.i32()?,
                msgmax: r.i32()?,
                msgmnb: r.i32()?,
                msgmni: r.i32()?,
                msgssz: r.i32()?,
                msgtql: r.i32()?,
                msgseg: r.u16()?,
            },
        }),
        Kind::ShmAt => Frame::ShmAt(ShmAt {
            oid: r.u64()?,
            pid: r.u32()?,
            cred: Cred::read(&mut r)?,
            flags: r.i32()?,
            nattch: r.u32()?,
            seq: r.u64()?,
        }),
        Kind::ShmNattch => Frame::ShmNattch(ShmNattch {
            oid: r.u64()?,
            pid: r.u32()?,
            nattch: r.u32()?,
            detach: bool_u8(r.u8()?)?,
            seq: r.u64()?,
        }),
        Kind::ShmCtl => Frame::ShmCtl(ShmCtl {
            oid: r.u64()?,
            pid: r.u32()?,
            cred: Cred::read(&mut r)?,
            cmd: r.i32()?,
            set_uid: r.u32()?,
            set_gid: r.u32()?,
            set_mode: r.u32()?,
        }),
        Kind::ShmCtlReply => Frame::ShmCtlReply(ShmCtlReply {
            result: r.i64()?,
            stat: ShmStat {
                key: r.i32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                cuid: r.u32()?,
                cgid: r.u32()?,
                mode: r.u32()?,
                segsz: r.u64()?,
                atime: r.i64()?,
                dtime: r.i64()?,
                ctime: r.i64()?,
                cpid: r.u32()?,
                lpid: r.u32()?,
                nattch: r.u64()?,
            },
        }),
        Kind::PageReq => Frame::PageReq(PageReq {
            oid: r.u64()?,
            page: r.u64()?,
            write: bool_u8(r.u8()?)?,
            whole: bool_u8(r.u8()?)?,
            applied: r.u64()?,
        }),
        Kind::PageGrant => {
            let oid = r.u64()?;
            let page = r.u64()?;
            let write = bool_u8(r.u8()?)?;
            let result = r.i32()?;
            let after = r.u64()?;
            let data = match r.u8()? {
                0 => PageData::Keep,
                1 => PageData::Zero,
                2 => PageData::Bytes(r.take(PAGE_LEN)?),
                _ => return None,
            };
            Frame::PageGrant(PageGrant {
                oid,
                page,
                write,
                result,
                after,
                data,
            })
        }
        Kind::PageInval => Frame::PageInval(PageInval {
            oid: r.u64()?,
            page: r.u64()?,
            keep_read: bool_u8(r.u8()?)?,
            want_data: bool_u8(r.u8()?)?,
            after: r.u64()?,
            to_node: r.u32()?,
            to_ip: r.u32()?,
            to_port: r.u16()?,
            to_token: r.array()?,
        }),
        Kind::PageAck => {
            let oid = r.u64()?;
            let page = r.u64()?;
            let data = match r.u8()? {
                0 => None,
                1 => Some(r.take(PAGE_LEN)?),
                _ => return None,
            };
            let sent = bool_u8(r.u8()?)?;
            Frame::PageAck(PageAck {
                oid,
                page,
                data,
                sent,
            })
        }
        Kind::PeerHello => Frame::PeerHello(PeerHello {
            node_id: r.u32()?,
            token: r.array()?,
            nonce: r.array()?,
        }),
    };
    // A payload must be exactly as long as its kind says.
    r.is_empty().then_some(frame)
}

impl Frame<'_> {
    /// The frame's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Frame::Hello(_) => Kind::Hello,
            Frame::HelloAck(_) => Kind::HelloAck,
            Frame::Ping { .. } => Kind::Ping,
            Frame::Challenge { .. } => Kind::Challenge,
            Frame::Auth(_) => Kind::Auth,
            Frame::PeerHello(_) => Kind::PeerHello,
            Frame::Pong { .. } => Kind::Pong,
            Frame::Error { .. } => Kind::Error,
            Frame::Get(_) => Kind::Get,
            Frame::GetReply(_) => Kind::GetReply,
            Frame::Lookup(_) => Kind::Lookup,
            Frame::SemOp(_) => Kind::SemOp,
            Frame::Status { .. } => Kind::Status,
            Frame::SemCtl(_) => Kind::SemCtl,
            Frame::SemCtlReply(_) => Kind::SemCtlReply,
            Frame::Cancel { .. } => Kind::Cancel,
            Frame::Exit { .. } => Kind::Exit,
            Frame::Leave => Kind::Leave,
            Frame::Removed { .. } => Kind::Removed,
            Frame::Perm { .. } => Kind::Perm,
            Frame::MsgSnd(_) => Kind::MsgSnd,
            Frame::MsgRcv(_) => Kind::MsgRcv,
            Frame::MsgRcvReply(_) => Kind::MsgRcvReply,
            Frame::MsgCtl(_) => Kind::MsgCtl,
            Frame::MsgCtlReply(_) => Kind::MsgCtlReply,
            Frame::ShmAt(_) => Kind::ShmAt,
            Frame::ShmNattch(_) => Kind::ShmNattch,
            Frame::ShmCtl(_) => Kind::ShmCtl,
            Frame::ShmCtlReply(_) => Kind::ShmCtlReply,
            Frame::PageReq(_) => Kind::PageReq,
            Frame::PageGrant(_) => Kind::PageGrant,
            Frame::PageInval(_) => Kind::PageInval,
            Frame::PageAck(_) => Kind::PageAck,
            Frame::MsgSndReply(_) => Kind::MsgSndReply,
            Frame::MsgReturn(_) => Kind::MsgReturn,
            Frame::MsgTaken(_) => Kind::MsgTaken,
            Frame::MsgRecall { .. } => Kind::MsgRecall,
            Frame::MsgMore(_) => Kind::MsgMore,
        }
    }

    /// Payload size of this frame.
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Hello(h) => 4 + 8 + 8 + 2 + 1 + h.name.len(),
            Frame::HelloAck(_) => 4 + 8 + 8 + TOKEN_LEN,
            Frame::PeerHello(_) => 4 + TOKEN_LEN + AUTH_LEN,
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
            Frame::Challenge { .. } => AUTH_LEN,
            Frame::Auth(_) => 2 * AUTH_LEN,
            Frame::Error { .. } => 4,
            Frame::Get(g) => 1 + 4 + 4 + 8 + g.cred.wire_len() + 4,
            Frame::GetReply(_) => 4 + 8 + PERM_LEN + 8 + 4 + 4 + 1,
            Frame::Lookup(_) => 1 + 4,
            Frame::SemOp(o) => 8 + 4 + o.cred.wire_len() + 2 + o.sops.0.len(),
            Frame::Status { .. } => 8,
            Frame::SemCtl(c) => 8 + 4 + c.cred.wire_len() + 4 * 6 + 2 + c.vals.0.len(),
            Frame::SemCtlReply(c) => 8 + 4 * 6 + 8 * 2 + 4 + 2 + c.vals.0.len(),
            Frame::Cancel { .. } => 8,
            Frame::Exit { .. } => 4,
            Frame::Leave => 0,
            Frame::Removed { .. } => 1 + 8,
            Frame::Perm { .. } => 1 + 8 + PERM_LEN,
            Frame::MsgSnd(m) => 8 + 4 + m.cred.wire_len() + 8 + 4 + 8 + 8 + 4 + m.text.len(),
            Frame::MsgRcv(m) => 8 + 4 + m.cred.wire_len() + 8 + 4 + 8 + 8,
            Frame::MsgRcvReply(m) => {
                8 + 8 + 4 + m.text.len() + 8 * 3 + PERM_LEN + 4 + m.batch.bytes().len()
            }
            Frame::MsgSndReply(_) => 8 * 5 + 4 + PERM_LEN,
            Frame::MsgReturn(m) => 8 + 8 + 4 + 2 + m.taken.bytes().len(),
            Frame::MsgTaken(m) => 8 + 8 + 4 + 2 + m.seqs.bytes().len(),
            Frame::MsgRecall { .. } => 8 + 8,
            Frame::MsgMore(m) => 8 * 3 + 4 + 4 + m.batch.bytes().len(),
            Frame::MsgCtl(m) => 8 + 4 + m.cred.wire_len() + 4 * 4 + 8,
            Frame::MsgCtlReply(_) => 8 + 4 * 6 + 8 * 6 + 4 * 2 + 4 * 7 + 2,
            Frame::ShmAt(a) => 8 + 4 + a.cred.wire_len() + 4 + 4 + 8,
            Frame::ShmNattch(_) => 8 + 4 + 4 + 1 + 8,
            Frame::ShmCtl(c) => 8 + 4 + c.cred.wire_len() + 4 * 4,
            Frame::ShmCtlReply(_) => 8 + 4 * 6 + 8 + 8 * 3 + 4 * 2 + 8,
            Frame::PageReq(_) => 8 + 8 + 1 + 1 + 8,
            Frame::PageGrant(g) => 8 + 8 + 1 + 4 + 8 + 1 + g.data.len(),
            Frame::PageInval(_) => 8 + 8 + 1 + 1 + 8 + 4 + 4 + 2 + TOKEN_LEN,
            Frame::PageAck(a) => 8 + 8 + 1 + if a.data.is_some() { PAGE_LEN } else { 0 } + 1,
        }
    }

    /// Size of the whole encoded frame.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Encodes the frame with `req_id` at the start of `out`; returns the
    /// number of bytes written. A [`Hello`] whose name is longer than
    /// [`MAX_NAME_LEN`] is encoded with the name cut to that length; a
    /// message body longer than [`MAX_MTEXT`] is an error.
    pub fn encode(&self, req_id: u64, out: &mut [u8]) -> Result<usize, EncodeError> {
        self.encode_at(req_id, 0, out)
    }

    /// [`Frame::encode`] with `clock` in the header: a node's request
    /// carries the node's wall clock in seconds.
    pub fn encode_at(&self, req_id: u64, clock: u32, out: &mut [u8]) -> Result<usize, EncodeError> {
        if let Frame::MsgSnd(MsgSnd { text, .. }) | Frame::MsgRcvReply(MsgRcvReply { text, .. }) =
            self
        {
            if text.len() > MAX_MTEXT {
                return Err(EncodeError::TextTooLong(text.len()));
            }
        }
        if let Frame::MsgRcvReply(MsgRcvReply { text, batch, .. }) = self {
            if text.len() + batch.bytes().len() > MAX_MTEXT {
                return Err(EncodeError::TextTooLong(text.len() + batch.bytes().len()));
            }
        }
        if let Frame::MsgMore(MsgMore { batch, .. }) = self {
            if batch.bytes().len() > MAX_MTEXT {
                return Err(EncodeError::TextTooLong(batch.bytes().len()));
            }
        }
        if let Frame::PageGrant(PageGrant {
            data: PageData::Bytes(p),
            ..
        })
        | Frame::PageAck(PageAck { data: Some(p), .. }) = self
        {
            if p.len() != PAGE_LEN {
                return Err(EncodeError::BadPage(p.len()));
            }
        }
        let frame = match *self {
            Frame::Hello(h) if h.name.len() > MAX_NAME_LEN => Frame::Hello(Hello {
                name: &h.name[..MAX_NAME_LEN],
                ..h
            }),
            f => f,
        };
        let total = frame.encoded_len();
        if out.len() < total {
            return Err(EncodeError::BufferTooSmall { needed: total });
        }
        let mut w = Writer { buf: out, pos: 0 };
        w.u32(MAGIC);
        w.u16(VERSION);
        w.u16(frame.kind() as u16);
        w.u64(req_id);
        // payload_len() is below MAX_PAYLOAD for every kind: the largest is a
        // SemCtl with MAX_SEMS values (64 000 bytes plus fixed fields).
        w.u32(frame.payload_len() as u32);
        w.u32(clock);
        match frame {
            Frame::Hello(h) => {
                w.u32(h.node_id);
                w.u64(h.features);
                w.u64(h.incarnation);
                w.u16(h.peer_port);
                w.u8(h.name.len() as u8);
                w.bytes(h.name);
            }
            Frame::HelloAck(a) => {
                w.u32(a.node_id);
                w.u64(a.features);
                w.u64(a.session);
                w.bytes(&a.token);
            }
            Frame::PeerHello(p) => {
                w.u32(p.node_id);
                w.bytes(&p.token);
                w.bytes(&p.nonce);
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => w.u64(nonce),
            Frame::Challenge { nonce } => w.bytes(&nonce),
            Frame::Auth(a) => {
                w.bytes(&a.mac);
                w.bytes(&a.nonce);
            }
            Frame::Error { code } => w.u32(code as u32),
            Frame::Get(g) => {
                w.u8(g.class as u8);
                w.u32(g.key as u32);
                w.u32(g.flags as u32);
                w.u64(g.size);
                g.cred.write(&mut w);
                w.u32(g.pid);
            }
            Frame::GetReply(g) => {
                w.u32(g.result as u32);
                w.u64(g.oid);
                g.perm.write(&mut w);
                w.u64(g.size);
                w.u32(g.id as u32);
                w.u32(g.key as u32);
                w.u8(g.created);
            }
            Frame::Lookup(l) => {
                w.u8(l.class as u8);
                w.u32(l.id as u32);
            }
            Frame::SemOp(o) => {
                w.u64(o.oid);
                w.u32(o.pid);
                o.cred.write(&mut w);
                // `Sops` holds at most MAX_SOPS entries.
                w.u16(o.sops.len() as u16);
                w.bytes(o.sops.0);
            }
            Frame::Status { result } => w.u64(result as u64),
            Frame::SemCtl(c) => {
                w.u64(c.oid);
                w.u32(c.pid);
                c.cred.write(&mut w);
                w.u32(c.cmd as u32);
                w.u32(c.semnum as u32);
                w.u32(c.val as u32);
                w.u32(c.set_uid);
                w.u32(c.set_gid);
                w.u32(c.set_mode);
                // `Vals` holds at most MAX_SEMS values.
                w.u16(c.vals.len() as u16);
                w.bytes(c.vals.0);
            }
            Frame::SemCtlReply(c) => {
                w.u64(c.result as u64);
                let s = c.stat;
                w.u32(s.key as u32);
                w.u32(s.uid);
                w.u32(s.gid);
                w.u32(s.cuid);
                w.u32(s.cgid);
                w.u32(s.mode);
                w.u64(s.otime as u64);
                w.u64(s.ctime as u64);
                w.u32(s.nsems);
                w.u16(c.vals.len() as u16);
                w.bytes(c.vals.0);
            }
            Frame::Cancel { target } => w.u64(target),
            Frame::Exit { pid } => w.u32(pid),
            Frame::Leave => {}
            Frame::Removed { class, oid } => {
                w.u8(class as u8);
                w.u64(oid);
            }
            Frame::Perm { class, oid, perm } => {
                w.u8(class as u8);
                w.u64(oid);
                perm.write(&mut w);
            }
            Frame::MsgSnd(m) => {
                w.u64(m.oid);
                w.u32(m.pid);
                m.cred.write(&mut w);
                w.u64(m.mtype as u64);
                w.u32(m.flags as u32);
                w.u64(m.lease);
                w.u64(m.epoch);
                w.u32(m.text.len() as u32);
                w.bytes(m.text);
            }
            Frame::MsgRcv(m) => {
                w.u64(m.oid);
                w.u32(m.pid);
                m.cred.write(&mut w);
                w.u64(m.msgtyp as u64);
                w.u32(m.flags as u32);
                w.u64(m.size);
                w.u64(m.epoch);
            }
            Frame::MsgRcvReply(m) => {
                w.u64(m.result as u64);
                w.u64(m.mtype as u64);
                w.u32(m.text.len() as u32);
                w.bytes(m.text);
                w.u64(m.epoch);
                w.u64(m.oid);
                w.u64(m.lease);
                m.perm.write(&mut w);
                w.u32(m.batch.bytes().len() as u32);
                w.bytes(m.batch.bytes());
            }
            Frame::MsgSndReply(m) => {
                w.u64(m.result as u64);
                w.u64(m.epoch);
                w.u64(m.oid);
                w.u64(m.lease);
                w.u64(m.bytes);
                w.u32(m.msgs);
                m.perm.write(&mut w);
            }
            Frame::MsgReturn(m) => {
                w.u64(m.oid);
                w.u64(m.lease);
                w.u32(m.pid);
                w.u16((m.taken.bytes().len() / 8) as u16);
                w.bytes(m.taken.bytes());
            }
            Frame::MsgTaken(m) => {
                w.u64(m.oid);
                w.u64(m.lease);
                w.u32(m.pid);
                w.u16((m.seqs.bytes().len() / 8) as u16);
                w.bytes(m.seqs.bytes());
            }
            Frame::MsgRecall { oid, lease } => {
                w.u64(oid);
                w.u64(lease);
            }
            Frame::MsgMore(m) => {
                w.u64(m.oid);
                w.u64(m.lease);
                w.u64(m.bytes);
                w.u32(m.msgs);
                w.u32(m.batch.bytes().len() as u32);
                w.bytes(m.batch.bytes());
            }
            Frame::MsgCtl(m) => {
                w.u64(m.oid);
                w.u32(m.pid);
                m.cred.write(&mut w);
                w.u32(m.cmd as u32);
                w.u32(m.set_uid);
                w.u32(m.set_gid);
                w.u32(m.set_mode);
                w.u64(m.set_qbytes);
            }
            Frame::MsgCtlReply(m) => {
                w.u64(m.result as u64);
                let s = m.stat;
                for v in [s.key as u32, s.uid, s.gid, s.cuid, s.cgid, s.mode] {
                    w.u32(v);
                }
                for v in [
                    s.stime as u64,
                    s.rtime as u64,
                    s.ctime as u64,
                    s.cbytes,
                    s.qnum,
                    s.qbytes,
                ] {
                    w.u64(v);
                }
                w.u32(s.lspid);
                w.u32(s.lrpid);
                let i = m.info;
                for v in [
                    i.msgpool, i.msgmap, i.msgmax, i.msgmnb, i.msgmni, i.msgssz, i.msgtql,
                ] {
                    w.u32(v as u32);
                }
                w.u16(i.msgseg);
            }
            Frame::ShmAt(a) => {
                w.u64(a.oid);
                w.u32(a.pid);
                a.cred.write(&mut w);
                w.u32(a.flags as u32);
                w.u32(a.nattch);
                w.u64(a.seq);
            }
            Frame::ShmNattch(n) => {
                w.u64(n.oid);
                w.u32(n.pid);
                w.u32(n.nattch);
                w.u8(n.detach.min(1));
                w.u64(n.seq);
            }
            Frame::ShmCtl(c) => {
                w.u64(c.oid);
                w.u32(c.pid);
                c.cred.write(&mut w);
                w.u32(c.cmd as u32);
                w.u32(c.set_uid);
                w.u32(c.set_gid);
                w.u32(c.set_mode);
            }
            Frame::ShmCtlReply(c) => {
                w.u64(c.result as u64);
                let s = c.stat;
                for v in [s.key as u32, s.uid, s.gid, s.cuid, s.cgid, s.mode] {
                    w.u32(v);
                }
                for v in [s.segsz, s.atime as u64, s.dtime as u64, s.ctime as u64] {
                    w.u64(v);
                }
                w.u32(s.cpid);
                w.u32(s.lpid);
                w.u64(s.nattch);
            }
            Frame::PageReq(p) => {
                w.u64(p.oid);
                w.u64(p.page);
                w.u8(p.write.min(1));
                w.u8(p.whole.min(1));
                w.u64(p.applied);
            }
            Frame::PageGrant(g) => {
                w.u64(g.oid);
                w.u64(g.page);
                w.u8(g.write.min(1));
                w.u32(g.result as u32);
                w.u64(g.after);
                w.u8(g.data.tag());
                if let PageData::Bytes(b) = g.data {
                    w.bytes(b);
                }
            }
            Frame::PageInval(i) => {
                w.u64(i.oid);
                w.u64(i.page);
                w.u8(i.keep_read.min(1));
                w.u8(i.want_data.min(1));
                w.u64(i.after);
                w.u32(i.to_node);
                w.u32(i.to_ip);
                w.u16(i.to_port);
                w.bytes(&i.to_token);
            }
            Frame::PageAck(a) => {
                w.u64(a.oid);
                w.u64(a.page);
                match a.data {
                    Some(b) => {
                        w.u8(1);
                        w.bytes(b);
                    }
                    None => w.u8(0),
                }
                w.u8(a.sent.min(1));
            }
        }
        Ok(w.pos)
    }
}
