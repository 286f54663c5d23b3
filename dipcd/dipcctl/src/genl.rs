//! A small generic netlink client for the "dipc" family
//! (`include/uapi/dipc_netlink.h`): message encoding and decoding (pure,
//! unit-tested) and a socket that sends a request and collects its replies.

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `include/uapi/dipc_netlink.h`.
pub const FAMILY: &str = "dipc";
/// The family's version.
pub const VERSION: u8 = 1;
/// `DIPC_CMD_STATUS`.
pub const CMD_STATUS: u8 = 1;
/// `DIPC_CMD_OBJECTS`.
pub const CMD_OBJECTS: u8 = 2;
/// `DIPC_CMD_KEYS_GET`.
pub const CMD_KEYS_GET: u8 = 3;
/// `DIPC_CMD_KEYS_SET`.
pub const CMD_KEYS_SET: u8 = 4;
/// `DIPC_CMD_JOIN`.
pub const CMD_JOIN: u8 = 5;
/// `DIPC_CMD_LEAVE`.
pub const CMD_LEAVE: u8 = 6;
/// `DIPC_A_STAT`.
pub const A_STAT: u16 = 1;
/// `DIPC_A_KEYS`.
pub const A_KEYS: u16 = 2;
/// `DIPC_A_OBJ_CLASS` .. `DIPC_A_OBJ_NATTCH`.
pub const A_OBJ_CLASS: u16 = 3;
/// `DIPC_A_OBJ_ID`.
pub const A_OBJ_ID: u16 = 4;
/// `DIPC_A_OBJ_OID`.
pub const A_OBJ_OID: u16 = 5;
/// `DIPC_A_OBJ_SIZE`.
pub const A_OBJ_SIZE: u16 = 6;
/// `DIPC_A_OBJ_PAGES_READ`.
pub const A_OBJ_PAGES_READ: u16 = 7;
/// `DIPC_A_OBJ_PAGES_WRITE`.
pub const A_OBJ_PAGES_WRITE: u16 = 8;
/// `DIPC_A_OBJ_NATTCH`.
pub const A_OBJ_NATTCH: u16 = 9;
/// `DIPC_A_REFEREE`.
pub const A_REFEREE: u16 = 11;
/// `DIPC_A_NODE_ID`.
pub const A_NODE_ID: u16 = 12;
/// `DIPC_A_SECRET_FILE`.
pub const A_SECRET_FILE: u16 = 13;
/// `DIPC_A_FORCE`.
pub const A_FORCE: u16 = 14;
/// `DIPC_A_STAT_NAME`.
pub const A_STAT_NAME: u16 = 1;
/// `DIPC_A_STAT_VALUE`.
pub const A_STAT_VALUE: u16 = 2;
/// `DIPC_A_STAT_TEXT`.
pub const A_STAT_TEXT: u16 = 3;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute to send.
pub enum Attr<'a> {
    /// A NUL-terminated string.
    Str(u16, &'a str),
    /// A u32.
    U32(u16, u32),
    /// A flag (no payload).
    Flag(u16),
}

/// Encodes a request: netlink header, genl header, attributes.
pub fn encode(family: u16, flags: u16, seq: u32, cmd: u8, version: u8, attrs: &[Attr]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m.extend_from_slice(&[cmd, version, 0, 0]);
    for a in attrs {
        let (t, payload): (u16, Vec<u8>) = match a {
            Attr::Str(t, s) => (*t, [s.as_bytes(), &[0]].concat()),
            Attr::U32(t, v) => (*t, v.to_ne_bytes().to_vec()),
            Attr::Flag(t) => (*t, Vec::new()),
        };
        m.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&t.to_ne_bytes());
        m.extend_from_slice(&payload);
        m.resize(align4(m.len()), 0);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&family.to_ne_bytes());
    m[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// What one received netlink message is.
#[derive(Debug, PartialEq)]
pub enum Msg {
    /// A genl message: its command and its attribute bytes.
    Data { cmd: u8, attrs: Vec<u8> },
    /// An error (negative errno), or 0: the acknowledgement.
    Error(i32),
    /// The end of a dump.
    Done,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Splits a datagram into messages; `seq` must match.
pub fn decode(buf: &[u8], seq: u32) -> io::Result<Vec<Msg>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"));
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32_at(buf, off).unwrap_or(0) as usize;
        if len < 16 || off + len > buf.len() {
            return Err(bad("truncated message"));
        }
        let ty = u16_at(buf, off + 4).unwrap_or(0);
        if u32_at(buf, off + 8) != Some(seq) {
            off += align4(len);
            continue;
        }
        let body = &buf[off + 16..off + len];
        out.push(match ty {
            NLMSG_ERROR => {
                let e = body.get(0..4).ok_or_else(|| bad("short error"))?;
                Msg::Error(i32::from_ne_bytes(e.try_into().unwrap_or_default()))
            }
            NLMSG_DONE => Msg::Done,
            _ => {
                if body.len() < 4 {
                    return Err(bad("short genl header"));
                }
                Msg::Data {
                    cmd: body[0],
                    attrs: body[4..].to_vec(),
                }
            }
        });
        off += align4(len);
    }
    Ok(out)
}

/// Iterates `(type, payload)` over attribute bytes; stops at a malformed one.
pub fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let len = u16_at(b, off)? as usize;
        let ty = u16_at(b, off + 2)? & NLA_TYPE_MASK;
        if len < 4 || off + len > b.len() {
            return None;
        }
        let payload = &b[off + 4..off + len];
        off += align4(len);
        Some((ty, payload))
    })
}

/// An attribute's payload as a number (1, 2, 4 or 8 bytes).
pub fn num(p: &[u8]) -> Option<u64> {
    Some(match p.len() {
        1 => u64::from(p[0]),
        2 => u64::from(u16::from_ne_bytes(p.try_into().ok()?)),
        4 => u64::from(u32::from_ne_bytes(p.try_into().ok()?)),
        8 => u64::from_ne_bytes(p.try_into().ok()?),
        _ => return None,
    })
}

/// An attribute's payload as a string (up to its NUL).
pub fn string(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// A generic netlink socket talking to the "dipc" family.
pub struct Client {
    fd: OwnedFd,
    family: u16,
    seq: u32,
}

impl Client {
    /// Opens the socket and resolves the family; `ENOENT` when the module is
    /// not loaded.
    pub fn open() -> io::Result<Client> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkGeneric,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        let mut c = Client {
            fd,
            family: GENL_ID_CTRL,
            seq: 0,
        };
        let replies = c
            .request(
                CTRL_CMD_GETFAMILY,
                1,
                0,
                &[Attr::Str(CTRL_ATTR_FAMILY_NAME, FAMILY)],
            )
            .map_err(|e| {
                if e.raw_os_error() == Some(libc_enoent()) {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "the dipc module is not loaded (no \"dipc\" generic netlink family)",
                    )
                } else {
                    e
                }
            })?;
        let id = replies
            .iter()
            .flat_map(|a| attrs(a))
            .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, p)| num(p))
            .ok_or_else(|| io::Error::other("no family id in the controller's answer"))?;
        c.family = id as u16;
        Ok(c)
    }

    /// Sends a request and returns every reply's attribute bytes, until the
    /// acknowledgement (or, with `NLM_F_DUMP` in `flags`, the end of the dump).
    pub fn request(
        &mut self,
        cmd: u8,
        version: u8,
        flags: u16,
        attrs: &[Attr],
    ) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let flags = if dump { flags } else { flags | NLM_F_ACK };
        let m = encode(self.family, flags, self.seq, cmd, version, attrs);
        send(self.fd.as_raw_fd(), &m, MsgFlags::empty())?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            for msg in decode(&buf[..n], self.seq)? {
                match msg {
                    Msg::Data { attrs, .. } => out.push(attrs),
                    Msg::Error(0) | Msg::Done => return Ok(out),
                    Msg::Error(e) => return Err(io::Error::from_raw_os_error(-e)),
                }
            }
        }
    }

    /// A request to the dipc family.
    pub fn dipc(&mut self, cmd: u8, dump: bool, attrs: &[Attr]) -> io::Result<Vec<Vec<u8>>> {
        self.request(cmd, VERSION, if dump { NLM_F_DUMP } else { 0 }, attrs)
    }
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_laid_out_as_the_kernel_reads_it() {
        let m = encode(
            0x1d,
            NLM_F_DUMP,
            7,
            CMD_KEYS_SET,
            1,
            &[Attr::Str(A_KEYS, "all")],
        );
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32_at(&m, 0), Some(28));
        assert_eq!(u16_at(&m, 4), Some(0x1d));
        assert_eq!(u16_at(&m, 6), Some(NLM_F_DUMP | NLM_F_REQUEST));
        assert_eq!(u32_at(&m, 8), Some(7));
        assert_eq!(&m[16..20], &[CMD_KEYS_SET, 1, 0, 0]);
        assert_eq!(u16_at(&m, 20), Some(8)); // 4 + "all\0"
        assert_eq!(u16_at(&m, 22), Some(A_KEYS));
        assert_eq!(&m[24..28], b"all\0");
        // An odd length is padded to 4.
        let m = encode(1, 0, 1, 1, 1, &[Attr::Str(2, "ab")]);
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u16_at(&m, 20), Some(7));
        // A join: a string, a u32 and a flag, each 4-aligned.
        let m = encode(
            1,
            0,
            1,
            CMD_JOIN,
            1,
            &[
                Attr::Str(A_REFEREE, "10.0.0.1:7420"),
                Attr::U32(A_NODE_ID, 3),
                Attr::Flag(A_FORCE),
            ],
        );
        assert_eq!(u16_at(&m, 20), Some(4 + 14));
        assert_eq!(&m[24..38], b"10.0.0.1:7420\0");
        assert_eq!(u16_at(&m, 40), Some(8));
        assert_eq!(u16_at(&m, 42), Some(A_NODE_ID));
        assert_eq!(u32_at(&m, 44), Some(3));
        assert_eq!(u16_at(&m, 48), Some(4));
        assert_eq!(u16_at(&m, 50), Some(A_FORCE));
        assert_eq!(m.len(), 52);
    }

    fn reply(seq: u32, ty: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m[0..4].copy_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    #[test]
    fn replies_errors_and_the_end_of_a_dump_decode() {
        let mut nest = Vec::new();
        nest.extend_from_slice(&9u16.to_ne_bytes());
        nest.extend_from_slice(&A_STAT_NAME.to_ne_bytes());
        nest.extend_from_slice(b"abcd\0\0\0\0");
        nest.extend_from_slice(&12u16.to_ne_bytes());
        nest.extend_from_slice(&A_STAT_VALUE.to_ne_bytes());
        nest.extend_from_slice(&42u64.to_ne_bytes());
        let mut body = vec![CMD_STATUS, 1, 0, 0];
        body.extend_from_slice(&((4 + nest.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&(A_STAT | 0x8000).to_ne_bytes()); // NLA_F_NESTED
        body.extend_from_slice(&nest);
        let mut dgram = reply(5, 0x1d, &body);
        dgram.extend(reply(4, 0x1d, &body)); // another request's: skipped
        dgram.extend(reply(5, NLMSG_ERROR, &(-13i32).to_ne_bytes()));
        dgram.extend(reply(5, NLMSG_DONE, &[0, 0, 0, 0]));
        let msgs = decode(&dgram, 5).unwrap();
        assert_eq!(msgs.len(), 3);
        let Msg::Data { cmd, attrs: a } = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!(*cmd, CMD_STATUS);
        let (t, p) = attrs(a).next().unwrap();
        assert_eq!(t, A_STAT);
        let inner: Vec<_> = attrs(p).collect();
        assert_eq!(inner[0], (A_STAT_NAME, &b"abcd\0"[..]));
        assert_eq!(string(inner[0].1), "abcd");
        assert_eq!(num(inner[1].1), Some(42));
        assert_eq!(msgs[1], Msg::Error(-13));
        assert_eq!(msgs[2], Msg::Done);
        // Truncated: an error, not a panic.
        assert!(decode(&dgram[..20], 5).is_err());
        // A malformed attribute ends the iteration.
        assert_eq!(attrs(&[200, 0, 1, 0, 9]).count(), 0);
    }
}
