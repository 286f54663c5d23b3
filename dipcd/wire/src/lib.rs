//! The dipc wire protocol, as a crate for `dipcd` and `dipcctl`.
//!
//! All of the protocol lives in [`wire.rs`](wire), a single `core`-only source
//! file that the kernel module mounts with `#[path]`; this crate root only
//! makes it a `no_std` library. Normative description:
//! `Documentation/wire-protocol.md`.
#![no_std]

#[path = "wire.rs"]
mod wire;
pub use wire::*;

#[cfg(test)]
mod tests;
