// SPDX-License-Identifier: GPL-2.0

//! The key policy: which keys are distributed without the `IPC_DIPC` flag.
//!
//! Written to `/proc/sys/dipc/keys` as `none` (or nothing), `all`, or a list
//! of keys and inclusive ranges separated by commas or spaces, decimal or
//! `0x` hex: `0x1000-0x1fff,4242`. `IPC_PRIVATE` (0) is never distributed.

use kernel::prelude::*;

/// Most ranges in one policy.
pub(crate) const MAX_RANGES: usize = 16;

/// A parsed policy.
#[derive(Clone, Copy)]
pub(crate) struct Policy {
    all: bool,
    n: usize,
    ranges: [(u32, u32); MAX_RANGES],
}

impl Policy {
    /// No key is distributed by policy.
    pub(crate) const NONE: Policy = Policy {
        all: false,
        n: 0,
        ranges: [(0, 0); MAX_RANGES],
    };

    /// Whether `key` is distributed by this policy.
    pub(crate) fn contains(&self, key: i32) -> bool {
        key != 0
            && (self.all
                || self.ranges[..self.n]
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&(key as u32))))
    }

    /// Parses the text of `/proc/sys/dipc/keys`.
    pub(crate) fn parse(text: &[u8]) -> Result<Policy> {
        let mut p = Policy::NONE;
        for w in words(text) {
            match w {
                b"none" => {}
                b"all" => p.all = true,
                _ => {
                    let (lo, hi) = range(w)?;
                    if p.n == MAX_RANGES {
                        return Err(EINVAL);
                    }
                    p.ranges[p.n] = (lo, hi);
                    p.n += 1;
                }
            }
        }
        Ok(p)
    }

    /// Whether no key is distributed by this policy.
    pub(crate) fn is_none(&self) -> bool {
        !self.all && self.n == 0
    }

    /// Number of ranges (for the status file).
    pub(crate) fn describe(&self) -> (bool, usize) {
        (self.all, self.n)
    }
}

/// Most time quanta a node holds a page it acquired, in ms
/// (`/proc/sys/dipc/quantum_ms` and `quantum_keys` are bounded by it).
pub(crate) const QUANTUM_MAX_MS: u32 = 1000;

/// Per-key-range time quanta: `/proc/sys/dipc/quantum_keys`, a list of
/// `RANGE=MS` separated by commas or spaces (`0x5000-0x5fff=5 4242=0`); the
/// first range that holds a key gives its quantum, else `quantum_ms` does.
#[derive(Clone, Copy)]
pub(crate) struct Quanta {
    n: usize,
    ranges: [(u32, u32, u32); MAX_RANGES],
}

impl Quanta {
    /// No range.
    pub(crate) const NONE: Quanta = Quanta {
        n: 0,
        ranges: [(0, 0, 0); MAX_RANGES],
    };

    /// The quantum of `key`, if a range holds it.
    pub(crate) fn of(&self, key: i32) -> Option<u32> {
        self.ranges[..self.n]
            .iter()
            .find(|&&(lo, hi, _)| (lo..=hi).contains(&(key as u32)))
            .map(|&(_, _, ms)| ms)
    }

    /// Parses the text of `/proc/sys/dipc/quantum_keys`.
    pub(crate) fn parse(text: &[u8]) -> Result<Quanta> {
        let mut q = Quanta::NONE;
        for w in words(text) {
            let eq = w.iter().position(|&b| b == b'=').ok_or(EINVAL)?;
            let (lo, hi) = range(&w[..eq])?;
            let ms = number(&w[eq + 1..])?;
            if ms > QUANTUM_MAX_MS || q.n == MAX_RANGES {
                return Err(EINVAL);
            }
            q.ranges[q.n] = (lo, hi, ms);
            q.n += 1;
        }
        Ok(q)
    }
}

/// The words of a sysctl's text: separated by commas or white space.
fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b',' || b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
}

/// `LO-HI` or a single key, inclusive.
fn range(w: &[u8]) -> Result<(u32, u32)> {
    let (lo, hi) = match w.iter().position(|&b| b == b'-') {
        Some(i) => (number(&w[..i])?, number(&w[i + 1..])?),
        None => (number(w)?, number(w)?),
    };
    if lo > hi {
        return Err(EINVAL);
    }
    Ok((lo, hi))
}

/// A decimal or `0x` hexadecimal `u32`.
fn number(s: &[u8]) -> Result<u32> {
    let (digits, radix) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (s, 10),
    };
    if digits.is_empty() {
        return Err(EINVAL);
    }
    let mut v: u32 = 0;
    for &b in digits {
        let d = (b as char).to_digit(radix).ok_or(EINVAL)?;
        v = v
            .checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or(EINVAL)?;
    }
    Ok(v)
}
