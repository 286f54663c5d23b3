// SPDX-License-Identifier: GPL-2.0
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
//!  0      4        6     8          16     20        24
//!  | magic | version | kind | request id | len | reserved | payload ...
//! ```
//!
//! Decoding is strict: the magic, the version, the kind, the length bound,
//! the reserved field and the exact payload size are all checked, and any
//! mismatch is an error that the receiver answers by closing the connection.

/// `"DIPC"` in the first four bytes of every frame.
pub const MAGIC: u32 = u32::from_le_bytes(*b"DIPC");
/// The protocol version this source speaks. A peer with another version is
/// refused at hello time.
pub const VERSION: u16 = 1;
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
    /// The reserved header field is not zero.
    Reserved(u32),
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
            DecodeError::Reserved(r) => write!(f, "reserved header field is {r:#x}, not 0"),
            DecodeError::BadPayload(k) => write!(f, "malformed {k:?} payload"),
        }
    }
}

/// The output buffer is too small for the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// Bytes the frame needs.
    pub needed: usize,
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
}

impl TryFrom<u32> for ErrorCode {
    type Error = ();

    fn try_from(v: u32) -> Result<Self, ()> {
        Ok(match v {
            1 => ErrorCode::Version,
            2 => ErrorCode::Protocol,
            3 => ErrorCode::Refused,
            4 => ErrorCode::DuplicateNode,
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
    /// The node's name for logs and status (at most [`MAX_NAME_LEN`] bytes).
    pub name: &'a [u8],
}

/// The referee's answer to [`Hello`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// The node id the referee registered.
    pub node_id: u32,
    /// Feature bits both sides will use.
    pub features: u64,
    /// Identifies this referee run; changes when the referee restarts.
    pub session: u64,
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
}

/// A frame with the request id it travels under. A reply carries the id of
/// its request; frames that are not replies use id 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Request id, chosen by the sender of a request.
    pub req_id: u64,
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
    let reserved = r.u32().ok_or(incomplete)?;
    if reserved != 0 {
        return Err(DecodeError::Reserved(reserved));
    }
    Ok(Header { kind, req_id, len })
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
            frame,
        },
        total,
    ))
}

fn decode_payload(kind: Kind, payload: &[u8]) -> Option<Frame<'_>> {
    let mut r = Reader { buf: payload };
    let frame = match kind {
        Kind::Hello => {
            let node_id = r.u32()?;
            let features = r.u64()?;
            let name_len = r.u8()? as usize;
            if node_id == 0 || name_len > MAX_NAME_LEN {
                return None;
            }
            let name = r.take(name_len)?;
            Frame::Hello(Hello {
                node_id,
                features,
                name,
            })
        }
        Kind::HelloAck => Frame::HelloAck(HelloAck {
            node_id: r.u32()?,
            features: r.u64()?,
            session: r.u64()?,
        }),
        Kind::Ping => Frame::Ping { nonce: r.u64()? },
        Kind::Pong => Frame::Pong { nonce: r.u64()? },
        Kind::Error => Frame::Error {
            code: ErrorCode::try_from(r.u32()?).ok()?,
        },
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
            Frame::Pong { .. } => Kind::Pong,
            Frame::Error { .. } => Kind::Error,
        }
    }

    /// Payload size of this frame.
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Hello(h) => 4 + 8 + 1 + h.name.len(),
            Frame::HelloAck(_) => 4 + 8 + 8,
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
            Frame::Error { .. } => 4,
        }
    }

    /// Size of the whole encoded frame.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Encodes the frame with `req_id` at the start of `out`; returns the
    /// number of bytes written. A [`Hello`] whose name is longer than
    /// [`MAX_NAME_LEN`] is encoded with the name cut to that length.
    pub fn encode(&self, req_id: u64, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let frame = match *self {
            Frame::Hello(h) if h.name.len() > MAX_NAME_LEN => Frame::Hello(Hello {
                name: &h.name[..MAX_NAME_LEN],
                ..h
            }),
            f => f,
        };
        let total = frame.encoded_len();
        if out.len() < total {
            return Err(BufferTooSmall { needed: total });
        }
        let mut w = Writer { buf: out, pos: 0 };
        w.u32(MAGIC);
        w.u16(VERSION);
        w.u16(frame.kind() as u16);
        w.u64(req_id);
        // payload_len() is bounded well below MAX_PAYLOAD for every kind.
        w.u32(frame.payload_len() as u32);
        w.u32(0);
        match frame {
            Frame::Hello(h) => {
                w.u32(h.node_id);
                w.u64(h.features);
                w.u8(h.name.len() as u8);
                w.bytes(h.name);
            }
            Frame::HelloAck(a) => {
                w.u32(a.node_id);
                w.u64(a.features);
                w.u64(a.session);
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => w.u64(nonce),
            Frame::Error { code } => w.u32(code as u32),
        }
        Ok(w.pos)
    }
}
