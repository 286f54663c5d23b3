//! Node authentication and the address allow list.
//!
//! A cluster secret, read from a root-only file, keys HMAC-SHA256. After a
//! node's hello the referee sends a fresh random challenge; the node answers
//! with its tag over it and a challenge of its own; the referee checks the
//! tag (in constant time) and answers with its own tag over the node's
//! challenge, so each side knows the other holds the secret. The inputs are
//! [`dipc_wire::auth_input`]. Nothing secret ever crosses the wire.

use dipc_wire::{auth_input, secret_in_file, AuthRole, AUTH_LEN, SECRET_MAX, SECRET_MIN};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The cluster secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// A secret from a secret file's contents, read as the module reads
    /// them ([`secret_in_file`]: one trailing newline is not part of it).
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let b = secret_in_file(bytes).map_err(|len| {
            format!("the secret has {len} bytes; it needs {SECRET_MIN} to {SECRET_MAX}")
        })?;
        Ok(Secret(b.to_vec()))
    }

    /// Reads the secret from `path`, which must be a regular file that only
    /// its owner can read or write (mode 0600 or 0400).
    pub fn load(path: &Path) -> Result<Self, String> {
        let what = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{what}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{what}: not a regular file"));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{what}: mode {:o} lets others read it; chmod 600 it",
                meta.mode() & 0o777
            ));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(SECRET_MAX as u64 + 2).read_to_end(&mut bytes))
            .map_err(|e| format!("{what}: {e}"))?;
        Secret::new(&bytes).map_err(|e| format!("{what}: {e}"))
    }

    /// The tag `role` sends for `node_id`, answering `challenge`, with its
    /// own nonce `own`.
    pub fn tag(
        &self,
        role: AuthRole,
        node_id: u32,
        challenge: &[u8; AUTH_LEN],
        own: &[u8; AUTH_LEN],
    ) -> [u8; AUTH_LEN] {
        self.mac(role, node_id, challenge, own)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `tag` is the right one (compared in constant time).
    pub fn verify(
        &self,
        role: AuthRole,
        node_id: u32,
        challenge: &[u8; AUTH_LEN],
        own: &[u8; AUTH_LEN],
        tag: &[u8; AUTH_LEN],
    ) -> bool {
        self.mac(role, node_id, challenge, own)
            .verify_slice(tag)
            .is_ok()
    }

    /// The HMAC over [`auth_input`], ready to finalize or verify.
    fn mac(
        &self,
        role: AuthRole,
        node_id: u32,
        challenge: &[u8; AUTH_LEN],
        own: &[u8; AUTH_LEN],
    ) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(&auth_input(role, node_id, challenge, own));
        mac
    }
}

/// A fresh random nonce from the kernel.
pub fn nonce() -> std::io::Result<[u8; AUTH_LEN]> {
    let mut n = [0u8; AUTH_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

/// One allowed network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Net {
    type Err = String;

    /// `10.0.0.0/24`, `192.168.1.7` (a single address), `fd00::/8`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?}: not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?
        };
        Ok(Net { addr, prefix })
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Net {
    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        if shift >= 128 {
            return true;
        }
        (a >> shift) == (b >> shift)
    }
}

/// Whether `ip` may connect: an empty list allows everyone.
pub fn allowed(list: &[Net], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n: Net = "10.0.0.0/24".parse().unwrap();
        assert!(n.contains("10.0.0.7".parse().unwrap()));
        assert!(!n.contains("10.0.1.7".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one: Net = "10.0.0.2".parse().unwrap();
        assert!(one.contains("10.0.0.2".parse().unwrap()));
        assert!(!one.contains("10.0.0.3".parse().unwrap()));
        let all: Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.168.9.9".parse().unwrap()));
        let v6: Net = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Net>().is_err());
        assert!("bogus/8".parse::<Net>().is_err());
        assert!(allowed(&[], "1.2.3.4".parse().unwrap()));
        assert!(!allowed(&[n], "1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn secrets() {
        assert!(Secret::new(b"short").is_err());
        assert!(Secret::new(&[b'x'; 300]).is_err());
        let a = Secret::new(b"0123456789abcdef\n").unwrap();
        let b = Secret::new(b"0123456789abcdef").unwrap();
        let (c, o) = ([1u8; AUTH_LEN], [2u8; AUTH_LEN]);
        let t = a.tag(AuthRole::Node, 3, &c, &o);
        // The trailing newline is not part of the secret.
        assert!(b.verify(AuthRole::Node, 3, &c, &o, &t));
        assert!(!b.verify(AuthRole::Referee, 3, &c, &o, &t));
        assert!(!b.verify(AuthRole::Node, 4, &c, &o, &t));
        let other = Secret::new(b"0123456789abcdeX").unwrap();
        assert!(!other.verify(AuthRole::Node, 3, &c, &o, &t));
    }

    #[test]
    fn hmac_sha256_matches_rfc4231() {
        // RFC 4231 test case 2 ("Jefe"), through the same HMAC the tags use.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secret_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dipcd-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        std::fs::write(&f, b"0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Secret::load(&f).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Secret::load(&f).is_ok());
        assert!(Secret::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
