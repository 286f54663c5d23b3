//! Serde forms of the wire types the objects hold (the wire crate has no
//! dependencies, so it derives nothing): used for snapshots.

use dipc_wire::{Class, Cred, Sembuf, MAX_GROUPS};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// [`Cred`] as `(euid, egid, caps, groups)`.
pub mod cred {
    use super::*;

    /// Serializes `c`.
    pub fn serialize<S: Serializer>(c: &Cred, s: S) -> Result<S::Ok, S::Error> {
        let n = usize::from(c.ngroups).min(MAX_GROUPS);
        (c.euid, c.egid, c.caps, &c.groups[..n]).serialize(s)
    }

    /// Deserializes a [`Cred`]; more than [`MAX_GROUPS`] groups is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cred, D::Error> {
        let (euid, egid, caps, g): (u32, u32, u32, Vec<u32>) = Deserialize::deserialize(d)?;
        if g.len() > MAX_GROUPS {
            return Err(serde::de::Error::custom("too many groups"));
        }
        let mut groups = [0; MAX_GROUPS];
        groups[..g.len()].copy_from_slice(&g);
        Ok(Cred {
            euid,
            egid,
            caps,
            ngroups: g.len() as u8,
            groups,
        })
    }
}

/// A list of [`Sembuf`] as `(num, op, flg)` triples.
pub mod sembufs {
    use super::*;

    /// Serializes `v`.
    pub fn serialize<S: Serializer>(v: &[Sembuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| (b.num, b.op, b.flg)))
    }

    /// Deserializes the list.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Sembuf>, D::Error> {
        let v: Vec<(u16, i16, i16)> = Deserialize::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(num, op, flg)| Sembuf { num, op, flg })
            .collect())
    }
}

/// The key registry, `(class, key) -> oid`, as `(class number, key, oid)`.
pub mod keys {
    use super::*;

    /// Serializes `m`.
    pub fn serialize<S: Serializer>(
        m: &BTreeMap<(Class, i32), u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter().map(|(&(c, k), &o)| (c as u8, k, o)))
    }

    /// Deserializes the registry; an unknown class is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(Class, i32), u64>, D::Error> {
        let v: Vec<(u8, i32, u64)> = Deserialize::deserialize(d)?;
        v.into_iter()
            .map(|(c, k, o)| {
                let c = match c {
                    1 => Class::Sem,
                    2 => Class::Msg,
                    3 => Class::Shm,
                    _ => return Err(serde::de::Error::custom("unknown class")),
                };
                Ok(((c, k), o))
            })
            .collect()
    }
}
