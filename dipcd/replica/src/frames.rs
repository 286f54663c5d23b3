//! The append-only file format both of the referee's logs use (the raft
//! WAL here, `--state-dir`'s log in `dipcd`): frames of
//! `[len: u32 LE][crc32 of payload: u32 LE][payload]`. Reading cuts a torn
//! tail (a header or payload cut short, or a last frame whose checksum is
//! wrong: a crash in the middle of a write) and refuses damage anywhere
//! else; what a frame's payload means is the caller's.

/// `payload` as a frame.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + payload.len());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// Why the frames cannot be read past a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame at byte `at` claims more than the largest accepted.
    TooLong {
        /// Where it starts.
        at: usize,
        /// Its claimed length.
        len: usize,
    },
    /// The frame at byte `at`, not the last, fails its checksum.
    Damaged {
        /// Where it starts.
        at: usize,
    },
}

/// A whole frame: where it starts, its payload, and whether it is the
/// last in the file.
pub type Frame<'a> = (usize, &'a [u8], bool);

/// The whole frames of a file's bytes, in order.
pub struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
    max: usize,
}

impl<'a> Frames<'a> {
    /// Reads `bytes`, refusing a frame longer than `max`.
    pub fn new(bytes: &'a [u8], max: usize) -> Self {
        Frames { bytes, at: 0, max }
    }

    /// The next frame; `None` at the end or at a torn tail.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame<'a>>, FrameError> {
        let at = self.at;
        let rest = &self.bytes[at..];
        if rest.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > self.max {
            return Err(FrameError::TooLong { at, len });
        }
        if rest.len() < 8 + len {
            return Ok(None);
        }
        let payload = &rest[8..8 + len];
        let last = rest.len() == 8 + len;
        if crc32fast::hash(payload) != crc {
            if last {
                return Ok(None);
            }
            return Err(FrameError::Damaged { at });
        }
        self.at += 8 + len;
        Ok(Some((at, payload, last)))
    }

    /// Where the frames returned so far end.
    pub fn end(&self) -> usize {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_then_a_torn_tail_and_damage_before_it() {
        let mut b = encode(b"one");
        b.extend(encode(b"two"));
        let whole = b.len();
        b.extend(&encode(b"three")[..6]);
        let mut f = Frames::new(&b, 16);
        assert_eq!(f.next(), Ok(Some((0, &b"one"[..], false))));
        assert_eq!(f.next(), Ok(Some((11, &b"two"[..], false))));
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.end(), whole);
        b[9] ^= 0xff;
        assert_eq!(
            Frames::new(&b, 16).next(),
            Err(FrameError::Damaged { at: 0 })
        );
        assert_eq!(
            Frames::new(&b, 2).next(),
            Err(FrameError::TooLong { at: 0, len: 3 })
        );
    }
}
