//! What the `frames` fuzz target checks, shared with `corpus-kinds`.
//!
//! Every input is decoded twice: as a byte stream (frame after frame, as a
//! receiver reads it), and as the payload of one frame whose kind the first
//! byte picks behind a well-formed header, so that every kind's payload
//! decoder is reached. Each frame that decodes must encode again to the
//! same size and decode to the same frame; every error must be one the
//! receiver can act on (`Incomplete` only when more bytes could help, and
//! never asking for more than one maximum-size frame).

use dipc_wire::{decode, DecodeError, Kind, Message, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION};

/// The highest frame kind number, plus one (kind numbers start at 1).
pub const KINDS: u16 = 39;

/// Checks `data` both ways; calls `seen` with every frame that decoded.
pub fn check(data: &[u8], seen: &mut dyn FnMut(Kind)) {
    stream(data, seen);
    if let Some((&k, payload)) = data.split_first() {
        let framed = frame(u16::from(k) % KINDS, payload);
        stream(&framed, seen);
    }
}

/// `payload` behind a valid header of `kind` (which may be unknown).
pub fn frame(kind: u16, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let mut f = Vec::with_capacity(HEADER_LEN + payload.len());
    f.extend_from_slice(&MAGIC.to_le_bytes());
    f.extend_from_slice(&VERSION.to_le_bytes());
    f.extend_from_slice(&kind.to_le_bytes());
    f.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn stream(mut buf: &[u8], seen: &mut dyn FnMut(Kind)) {
    loop {
        match decode(buf) {
            Ok((m, used)) => {
                assert!(
                    (HEADER_LEN..=buf.len()).contains(&used),
                    "used {used} of {}",
                    buf.len()
                );
                round_trip(&m);
                seen(m.frame.kind());
                buf = &buf[used..];
            }
            Err(DecodeError::Incomplete { needed }) => {
                assert!(
                    needed > buf.len(),
                    "incomplete, yet {needed} <= {}",
                    buf.len()
                );
                assert!(
                    needed <= HEADER_LEN + MAX_PAYLOAD,
                    "asks for {needed} bytes"
                );
                return;
            }
            Err(_) => return,
        }
    }
}

fn round_trip(m: &Message<'_>) {
    let n = m.frame.encoded_len();
    let mut out = vec![0u8; n];
    let written = m
        .frame
        .encode_at(m.req_id, m.clock, &mut out)
        .unwrap_or_else(|e| panic!("{:?} decoded but does not encode: {e:?}", m.frame.kind()));
    assert_eq!(written, n, "{:?}: encoded_len disagrees", m.frame.kind());
    let (again, used) = decode(&out[..written])
        .unwrap_or_else(|e| panic!("{:?} re-encoded does not decode: {e}", m.frame.kind()));
    assert_eq!(used, written);
    assert_eq!(&again, m, "a frame changed across encode and decode");
}
