//! Codec tests: round trips, strictness, and no panic on arbitrary input.

use super::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn encode_vec(frame: &Frame<'_>, req_id: u64) -> ([u8; HEADER_LEN + 128], usize) {
    let mut buf = [0u8; HEADER_LEN + 128];
    let n = frame
        .encode(req_id, &mut buf)
        .expect("buffer is large enough");
    (buf, n)
}

fn arb_frame(name: &[u8]) -> impl Strategy<Value = Frame<'_>> {
    prop_oneof![
        (1u32.., any::<u64>()).prop_map(move |(node_id, features)| Frame::Hello(Hello {
            node_id,
            features,
            name,
        })),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(node_id, features, session)| {
            Frame::HelloAck(HelloAck {
                node_id,
                features,
                session,
            })
        }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        prop_oneof![
            Just(ErrorCode::Version),
            Just(ErrorCode::Protocol),
            Just(ErrorCode::Refused),
            Just(ErrorCode::DuplicateNode),
        ]
        .prop_map(|code| Frame::Error { code }),
    ]
}

#[test]
fn header_layout_is_fixed() {
    let (buf, n) = encode_vec(
        &Frame::Ping {
            nonce: 0x1122_3344_5566_7788,
        },
        0x0102_0304_0506_0708,
    );
    assert_eq!(n, HEADER_LEN + 8);
    assert_eq!(&buf[0..4], b"DIPC");
    assert_eq!(&buf[4..6], &[1, 0]); // version 1, little-endian
    assert_eq!(&buf[6..8], &[3, 0]); // Ping
    assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&buf[16..20], &[8, 0, 0, 0]);
    assert_eq!(&buf[20..24], &[0, 0, 0, 0]);
    assert_eq!(
        &buf[24..32],
        &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
    );
}

#[test]
fn every_truncation_is_incomplete() {
    let f = Frame::Hello(Hello {
        node_id: 3,
        features: 0,
        name: b"node3",
    });
    let (buf, n) = encode_vec(&f, 9);
    for cut in 0..n {
        match decode(&buf[..cut]) {
            Err(DecodeError::Incomplete { needed }) => assert!(needed > cut && needed <= n),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert_eq!(decode(&buf[..n]).unwrap().1, n);
}

#[test]
fn header_fields_are_checked() {
    let (good, n) = encode_vec(&Frame::Pong { nonce: 1 }, 1);
    let mut b = good;
    b[0] = b'X';
    assert!(matches!(decode(&b[..n]), Err(DecodeError::BadMagic(_))));
    let mut b = good;
    b[4] = 2;
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadVersion(2)));
    let mut b = good;
    b[6] = 99;
    assert_eq!(decode(&b[..n]), Err(DecodeError::UnknownKind(99)));
    let mut b = good;
    b[16..20].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_le_bytes());
    assert_eq!(
        decode(&b[..n]),
        Err(DecodeError::TooLong(MAX_PAYLOAD as u32 + 1))
    );
    let mut b = good;
    b[21] = 1;
    assert_eq!(decode(&b[..n]), Err(DecodeError::Reserved(0x100)));
}

#[test]
fn payload_size_must_match_kind() {
    // A Ping announcing 9 payload bytes (one trailing byte) is refused.
    let (mut b, n) = encode_vec(&Frame::Ping { nonce: 5 }, 1);
    b[16] = 9;
    assert_eq!(
        decode(&b[..n + 1]),
        Err(DecodeError::BadPayload(Kind::Ping))
    );
    // A Ping announcing 7 bytes is refused too.
    b[16] = 7;
    assert_eq!(
        decode(&b[..n - 1]),
        Err(DecodeError::BadPayload(Kind::Ping))
    );
}

#[test]
fn hello_checks_node_id_and_name() {
    let (mut b, n) = encode_vec(
        &Frame::Hello(Hello {
            node_id: 1,
            features: 0,
            name: b"a",
        }),
        0,
    );
    b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadPayload(Kind::Hello)));
    // Name length byte larger than the bytes that follow.
    let (mut b, n) = encode_vec(
        &Frame::Hello(Hello {
            node_id: 1,
            features: 0,
            name: b"a",
        }),
        0,
    );
    b[HEADER_LEN + 12] = 2;
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadPayload(Kind::Hello)));
}

#[test]
fn long_names_are_cut_on_encode() {
    let name = [b'x'; MAX_NAME_LEN + 10];
    let f = Frame::Hello(Hello {
        node_id: 1,
        features: 0,
        name: &name,
    });
    let mut buf = [0u8; 256];
    let n = f.encode(0, &mut buf).unwrap();
    let (m, used) = decode(&buf[..n]).unwrap();
    assert_eq!(used, n);
    match m.frame {
        Frame::Hello(h) => assert_eq!(h.name.len(), MAX_NAME_LEN),
        other => panic!("{other:?}"),
    }
}

#[test]
fn small_buffer_is_refused() {
    let mut buf = [0u8; HEADER_LEN + 7];
    assert_eq!(
        Frame::Ping { nonce: 0 }.encode(0, &mut buf),
        Err(BufferTooSmall {
            needed: HEADER_LEN + 8
        })
    );
}

#[test]
fn unknown_error_code_is_refused() {
    let (mut b, n) = encode_vec(
        &Frame::Error {
            code: ErrorCode::Refused,
        },
        0,
    );
    b[HEADER_LEN] = 200;
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadPayload(Kind::Error)));
}

proptest! {
    #[test]
    fn round_trip(name in proptest::collection::vec(any::<u8>(), 0..=MAX_NAME_LEN), req in any::<u64>(), seed in any::<u64>()) {
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            Default::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &[seed as u8; 32],
            ),
        );
        let frame = arb_frame(&name).new_tree(&mut runner).unwrap().current();
        let (buf, n) = encode_vec(&frame, req);
        prop_assert_eq!(n, frame.encoded_len());
        let (msg, used) = decode(&buf[..n]).unwrap();
        prop_assert_eq!(used, n);
        prop_assert_eq!(msg.req_id, req);
        prop_assert_eq!(msg.frame, frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((msg, used)) = decode(&bytes) {
            prop_assert!(used <= bytes.len());
            // Whatever decodes re-encodes to the same bytes.
            let mut out = [0u8; 256];
            let n = msg.frame.encode(msg.req_id, &mut out).unwrap();
            prop_assert_eq!(&out[..n], &bytes[..used]);
        }
    }

    #[test]
    fn corrupted_frames_never_panic(pos in 0usize..40, val in any::<u8>()) {
        let (mut buf, n) = encode_vec(&Frame::Hello(Hello { node_id: 2, features: 7, name: b"n" }), 4);
        if pos < n {
            buf[pos] = val;
        }
        let _ = decode(&buf[..n]);
    }
}
