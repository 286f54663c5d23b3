//! Codec tests: round trips, strictness, and no panic on arbitrary input.

use super::*;
extern crate std;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::{vec, vec::Vec};

fn encode_vec(frame: &Frame<'_>, req_id: u64) -> ([u8; HEADER_LEN + 128], usize) {
    let mut buf = [0u8; HEADER_LEN + 128];
    let n = frame
        .encode(req_id, &mut buf)
        .expect("buffer is large enough");
    (buf, n)
}

fn arb_frame(name: &[u8]) -> impl Strategy<Value = Frame<'_>> {
    prop_oneof![
        (1u32.., any::<u64>(), any::<u64>(), any::<u16>()).prop_map(
            move |(node_id, features, incarnation, peer_port)| {
                Frame::Hello(Hello {
                    node_id,
                    features,
                    incarnation,
                    peer_port,
                    name,
                })
            }
        ),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; TOKEN_LEN]>()
        )
            .prop_map(|(node_id, features, session, token)| {
                Frame::HelloAck(HelloAck {
                    node_id,
                    features,
                    session,
                    token,
                })
            }),
        (1u32.., any::<[u8; TOKEN_LEN]>(), any::<[u8; AUTH_LEN]>()).prop_map(
            |(node_id, token, nonce)| Frame::PeerHello(PeerHello {
                node_id,
                token,
                nonce
            })
        ),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        prop_oneof![
            Just(ErrorCode::Version),
            Just(ErrorCode::Protocol),
            Just(ErrorCode::Refused),
            Just(ErrorCode::DuplicateNode),
            Just(ErrorCode::NotLeader),
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
    assert_eq!(&buf[4..6], &[8, 0]); // version 8, little-endian
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
        incarnation: 1,
        peer_port: 0,
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
    b[4] = 1;
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadVersion(1)));
    let mut b = good;
    b[6] = 99;
    assert_eq!(decode(&b[..n]), Err(DecodeError::UnknownKind(99)));
    let mut b = good;
    b[16..20].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_le_bytes());
    assert_eq!(
        decode(&b[..n]),
        Err(DecodeError::TooLong(MAX_PAYLOAD as u32 + 1))
    );
    // The clock field is whatever the sender's clock said, and is kept.
    let mut b = good;
    b[20..24].copy_from_slice(&1_764_979_200u32.to_le_bytes());
    let (m, _) = decode(&b[..n]).unwrap();
    assert_eq!(m.clock, 1_764_979_200);
    let mut again = [0u8; 64];
    let k = m.frame.encode_at(m.req_id, m.clock, &mut again).unwrap();
    assert_eq!(&again[..k], &b[..n]);
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
            incarnation: 1,
            peer_port: 0,
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
            incarnation: 1,
            peer_port: 0,
            name: b"a",
        }),
        0,
    );
    b[HEADER_LEN + 22] = 2;
    assert_eq!(decode(&b[..n]), Err(DecodeError::BadPayload(Kind::Hello)));
}

#[test]
fn long_names_are_cut_on_encode() {
    let name = [b'x'; MAX_NAME_LEN + 10];
    let f = Frame::Hello(Hello {
        node_id: 1,
        features: 0,
        incarnation: 1,
        peer_port: 0,
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
        Err(EncodeError::BufferTooSmall {
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
        let (mut buf, n) = encode_vec(&Frame::Hello(Hello { node_id: 2, features: 7, incarnation: 9, peer_port: 0, name: b"n" }), 4);
        if pos < n {
            buf[pos] = val;
        }
        let _ = decode(&buf[..n]);
    }
}

fn arb_cred() -> impl Strategy<Value = Cred> {
    (
        any::<u32>(),
        any::<u32>(),
        0u32..4,
        proptest::collection::vec(any::<u32>(), 0..=MAX_GROUPS),
    )
        .prop_map(|(euid, egid, caps, groups)| {
            let mut c = Cred::new(euid, egid, caps);
            c.ngroups = groups.len() as u8;
            c.groups[..groups.len()].copy_from_slice(&groups);
            c
        })
}

fn encode_big(frame: &Frame<'_>, req_id: u64) -> Vec<u8> {
    let mut buf = vec![0u8; frame.encoded_len()];
    let n = frame.encode(req_id, &mut buf).expect("exact size");
    assert_eq!(n, buf.len());
    buf
}

#[test]
fn ipc_frames_round_trip_at_their_limits() {
    let sops: Vec<u8> = (0..MAX_SOPS)
        .flat_map(|i| {
            Sembuf {
                num: i as u16,
                op: -1,
                flg: 0x1000,
            }
            .to_bytes()
        })
        .collect();
    let vals: Vec<u8> = (0..MAX_SEMS as u16).flat_map(|v| v.to_le_bytes()).collect();
    let mut cred = Cred::new(1000, 1000, CAP_IPC_OWNER);
    cred.ngroups = MAX_GROUPS as u8;
    let frames = [
        Frame::SemOp(SemOp {
            oid: 7,
            pid: 42,
            cred,
            sops: Sops::new(&sops).unwrap(),
        }),
        Frame::SemCtl(SemCtl {
            oid: 7,
            pid: 42,
            cred,
            cmd: semcmd::SETALL,
            semnum: 0,
            val: 0,
            set_uid: 0,
            set_gid: 0,
            set_mode: 0,
            vals: Vals::new(&vals).unwrap(),
        }),
        Frame::SemCtlReply(SemCtlReply {
            result: 0,
            stat: IpcStat::default(),
            vals: Vals::new(&vals).unwrap(),
        }),
    ];
    for f in frames {
        let buf = encode_big(&f, 3);
        assert!(buf.len() <= HEADER_LEN + MAX_PAYLOAD);
        assert_eq!(decode(&buf).unwrap().0.frame, f);
    }
    assert!(Sops::new(&[]).is_none());
    assert!(Sops::new(&[0; 7]).is_none());
    assert!(Sops::new(&vec![0; (MAX_SOPS + 1) * SEMBUF_LEN]).is_none());
    assert!(Vals::new(&vec![0; (MAX_SEMS + 1) * 2]).is_none());
}

#[test]
fn ipc_fields_are_checked() {
    // A Get with an unknown class is refused.
    let g = Frame::Get(Get {
        class: Class::Sem,
        key: 5,
        flags: 0o1600,
        size: 3,
        cred: Cred::new(0, 0, 0),
        pid: 7,
    });
    let mut b = encode_big(&g, 1);
    b[HEADER_LEN] = 9;
    assert_eq!(decode(&b), Err(DecodeError::BadPayload(Kind::Get)));
    // A credential claiming more groups than allowed is refused.
    let mut b = encode_big(&g, 1);
    b[HEADER_LEN + 1 + 4 + 4 + 8 + 12] = MAX_GROUPS as u8 + 1;
    assert_eq!(decode(&b), Err(DecodeError::BadPayload(Kind::Get)));
    // A SemOp with zero operations is refused.
    let sops = Sembuf {
        num: 0,
        op: 1,
        flg: 0,
    }
    .to_bytes();
    let op = Frame::SemOp(SemOp {
        oid: 1,
        pid: 1,
        cred: Cred::new(0, 0, 0),
        sops: Sops::new(&sops).unwrap(),
    });
    let b = encode_big(&op, 1);
    let count_at = HEADER_LEN + 8 + 4 + 13;
    let mut z = b.clone();
    z[count_at] = 0;
    z[16] -= 6;
    assert_eq!(
        decode(&z[..z.len() - 6]),
        Err(DecodeError::BadPayload(Kind::SemOp))
    );
    // A count larger than the bytes present is refused.
    let mut z = b.clone();
    z[count_at] = 2;
    assert_eq!(decode(&z), Err(DecodeError::BadPayload(Kind::SemOp)));
}

proptest! {
    #[test]
    fn ipc_round_trip(
        cred in arb_cred(),
        req in any::<u64>(),
        ints in proptest::array::uniform8(any::<i32>()),
        oid in any::<u64>(),
        sops in proptest::collection::vec((any::<u16>(), any::<i16>(), any::<i16>()), 1..50),
        vals in proptest::collection::vec(any::<u16>(), 0..50),
        class in 1u8..=3,
    ) {
        let sop_bytes: Vec<u8> = sops
            .iter()
            .flat_map(|&(num, op, flg)| Sembuf { num, op, flg }.to_bytes())
            .collect();
        let val_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let class = Class::try_from(class).unwrap();
        let perm = IpcPerm {
            uid: ints[6] as u32, gid: ints[7] as u32, cuid: ints[0] as u32, cgid: ints[1] as u32,
            mode: ints[3] as u32,
        };
        let frames = [
            Frame::Get(Get { class, key: ints[0], flags: ints[1], size: oid, cred, pid: ints[4] as u32 }),
            Frame::GetReply(GetReply {
                result: ints[2], oid, perm, size: oid ^ 1, id: ints[4], key: ints[5],
                created: ints[0] as u8 & 1,
            }),
            Frame::Lookup(Lookup { class, id: ints[1] }),
            Frame::SemOp(SemOp { oid, pid: ints[4] as u32, cred, sops: Sops::new(&sop_bytes).unwrap() }),
            Frame::Status { result: i64::from(ints[5]) << 3 },
            Frame::SemCtl(SemCtl {
                oid, pid: 1, cred, cmd: ints[0], semnum: ints[1], val: ints[2],
                set_uid: ints[3] as u32, set_gid: ints[4] as u32, set_mode: ints[5] as u32,
                vals: Vals::new(&val_bytes).unwrap(),
            }),
            Frame::SemCtlReply(SemCtlReply {
                result: i64::from(ints[6]),
                stat: IpcStat {
                    key: ints[0], uid: 1, gid: 2, cuid: 3, cgid: 4, mode: 0o600,
                    otime: i64::from(ints[7]), ctime: -1, nsems: vals.len() as u32,
                },
                vals: Vals::new(&val_bytes).unwrap(),
            }),
            Frame::Cancel { target: oid },
            Frame::Exit { pid: ints[7] as u32 },
            Frame::Leave,
            Frame::Removed { class, oid },
            Frame::Perm { class, oid, perm },
        ];
        for f in frames {
            let buf = encode_big(&f, req);
            let (msg, used) = decode(&buf).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(msg.req_id, req);
            prop_assert_eq!(msg.frame, f);
            // Every strict prefix is incomplete, never a panic or a wrong
            // frame (a Leave has no payload: its header is all of it).
            for cut in [0, HEADER_LEN - 1, HEADER_LEN, buf.len() - 1].into_iter().filter(|&c| c < buf.len()) {
                let incomplete = matches!(decode(&buf[..cut]), Err(DecodeError::Incomplete { .. }));
                prop_assert!(incomplete);
            }
        }
    }
}

/// A receive answer without a lease.
const NO_LEASE: MsgRcvReply<'static> = MsgRcvReply {
    result: 0,
    mtype: 0,
    text: &[],
    epoch: 0,
    oid: 0,
    lease: 0,
    perm: IpcPerm {
        uid: 0,
        gid: 0,
        cuid: 0,
        cgid: 0,
        mode: 0,
    },
    batch: Batch::EMPTY,
};

#[test]
fn a_batch_that_does_not_split_into_entries_is_refused() {
    let mut b = Vec::new();
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&2i64.to_le_bytes());
    b.extend_from_slice(&5u32.to_le_bytes());
    b.extend_from_slice(b"hello");
    assert_eq!(Batch::new(&b).map(|x| x.iter().count()), Some(1));
    assert!(Batch::new(&b[..b.len() - 1]).is_none());
    let mut longer = b.clone();
    longer.push(0);
    assert!(Batch::new(&longer).is_none());
    let many: Vec<u8> = (0..=MAX_LEASE_MSGS).flat_map(|_| b.clone()).collect();
    assert!(Batch::new(&many).is_none());
    assert!(Seqs::new(&[0u8; 8 * (MAX_LEASE_MSGS + 1)]).is_none());
    assert!(Seqs::new(&[0u8; 9]).is_none());
    // A receive answer's body and batch together fit in MAX_MTEXT.
    let text = vec![0u8; MAX_MTEXT - b.len() + 1];
    let f = Frame::MsgRcvReply(MsgRcvReply {
        text: &text,
        batch: Batch::new(&b).unwrap(),
        ..NO_LEASE
    });
    let mut buf = vec![0u8; f.encoded_len()];
    assert!(f.encode(1, &mut buf).is_err());
}

#[test]
fn msg_frames_round_trip_at_their_limits() {
    let text: Vec<u8> = (0..MAX_MTEXT).map(|i| (i * 7) as u8).collect();
    let mut cred = Cred::new(1000, 1000, CAP_SYS_RESOURCE);
    cred.ngroups = MAX_GROUPS as u8;
    let frames = [
        Frame::MsgSnd(MsgSnd {
            oid: 9,
            pid: 3,
            cred,
            mtype: i64::MAX,
            flags: 0o4000,
            lease: u64::MAX,
            epoch: 7,
            text: &text,
        }),
        Frame::MsgRcvReply(MsgRcvReply {
            result: MAX_MTEXT as i64,
            mtype: 1,
            text: &text,
            ..NO_LEASE
        }),
        Frame::MsgSnd(MsgSnd {
            oid: 9,
            pid: 3,
            cred,
            mtype: 1,
            flags: 0,
            lease: 0,
            epoch: 0,
            text: &[],
        }),
    ];
    for f in frames {
        let buf = encode_big(&f, 3);
        assert!(buf.len() <= HEADER_LEN + MAX_PAYLOAD);
        assert_eq!(decode(&buf).unwrap().0.frame, f);
    }
    // One byte more is refused by the encoder, and by the decoder if a
    // peer claims it.
    let long = vec![0u8; MAX_MTEXT + 1];
    let f = Frame::MsgRcvReply(MsgRcvReply {
        result: 0,
        mtype: 1,
        text: &long,
        ..NO_LEASE
    });
    let mut buf = vec![0u8; f.encoded_len()];
    assert_eq!(
        f.encode(1, &mut buf),
        Err(EncodeError::TextTooLong(MAX_MTEXT + 1))
    );
    let ok = encode_big(
        &Frame::MsgRcvReply(MsgRcvReply {
            result: 0,
            mtype: 1,
            text: &long[..4],
            ..NO_LEASE
        }),
        1,
    );
    let mut bad = ok.clone();
    bad[HEADER_LEN + 16..HEADER_LEN + 20].copy_from_slice(&(MAX_MTEXT as u32 + 1).to_le_bytes());
    assert_eq!(
        decode(&bad),
        Err(DecodeError::BadPayload(Kind::MsgRcvReply))
    );
    // A length larger than the bytes present is refused.
    let mut bad = ok;
    bad[HEADER_LEN + 16] = 5;
    assert_eq!(
        decode(&bad),
        Err(DecodeError::BadPayload(Kind::MsgRcvReply))
    );
}

proptest! {
    #[test]
    fn msg_round_trip(
        cred in arb_cred(),
        req in any::<u64>(),
        longs in proptest::array::uniform8(any::<i64>()),
        ints in proptest::array::uniform8(any::<i32>()),
        text in proptest::collection::vec(any::<u8>(), 0..300),
        entries in proptest::collection::vec((any::<u64>(), any::<i64>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..MAX_LEASE_MSGS),
        nseqs in 0..=MAX_LEASE_MSGS,
    ) {
        let perm = IpcPerm { uid: ints[4] as u32, gid: ints[5] as u32, cuid: 3, cgid: 4, mode: ints[6] as u32 };
        let mut batch = Vec::new();
        for (seq, mtype, body) in &entries {
            batch.extend_from_slice(&seq.to_le_bytes());
            batch.extend_from_slice(&mtype.to_le_bytes());
            batch.extend_from_slice(&(body.len() as u32).to_le_bytes());
            batch.extend_from_slice(body);
        }
        let got: Vec<(u64, i64, Vec<u8>)> = Batch::new(&batch).unwrap().iter().map(|m| (m.seq, m.mtype, m.text.to_vec())).collect();
        prop_assert_eq!(&got, &entries);
        let seqs: Vec<u8> = (0..nseqs as u64).flat_map(|i| (i * 3).to_le_bytes()).collect();
        let frames = [
            Frame::MsgSnd(MsgSnd {
                oid: longs[0] as u64, pid: ints[0] as u32, cred, mtype: longs[1],
                flags: ints[1], lease: longs[2] as u64, epoch: longs[3] as u64, text: &text,
            }),
            Frame::MsgRcv(MsgRcv {
                oid: longs[0] as u64, pid: ints[0] as u32, cred, msgtyp: longs[2],
                flags: ints[2], size: longs[3] as u64, epoch: longs[4] as u64,
            }),
            Frame::MsgRcvReply(MsgRcvReply {
                result: longs[4], mtype: longs[5], text: &text, epoch: longs[6] as u64,
                oid: longs[0] as u64, lease: longs[7] as u64, perm, batch: Batch::new(&batch).unwrap(),
            }),
            Frame::MsgSndReply(MsgSndReply {
                result: longs[4], epoch: longs[5] as u64, oid: longs[1] as u64, lease: longs[6] as u64,
                bytes: longs[7] as u64, msgs: ints[3] as u32, perm,
            }),
            Frame::MsgReturn(MsgReturn {
                oid: longs[0] as u64, lease: longs[1] as u64, pid: ints[0] as u32,
                taken: Seqs::new(&seqs).unwrap(),
            }),
            Frame::MsgTaken(MsgTaken {
                oid: longs[0] as u64, lease: longs[1] as u64, pid: ints[0] as u32,
                seqs: Seqs::new(&seqs).unwrap(),
            }),
            Frame::MsgRecall { oid: longs[0] as u64, lease: longs[1] as u64 },
            Frame::MsgMore(MsgMore {
                oid: longs[0] as u64, lease: longs[1] as u64, bytes: longs[2] as u64,
                msgs: ints[1] as u32, batch: Batch::new(&batch).unwrap(),
            }),
            Frame::MsgCtl(MsgCtl {
                oid: longs[0] as u64, pid: ints[0] as u32, cred, cmd: ints[3],
                set_uid: ints[4] as u32, set_gid: ints[5] as u32, set_mode: ints[6] as u32,
                set_qbytes: longs[6] as u64,
            }),
            Frame::MsgCtlReply(MsgCtlReply {
                result: longs[7],
                stat: MsgStat {
                    key: ints[0], uid: 1, gid: 2, cuid: 3, cgid: 4, mode: ints[7] as u32,
                    stime: longs[1], rtime: longs[2], ctime: longs[3], cbytes: longs[4] as u64,
                    qnum: longs[5] as u64, qbytes: longs[6] as u64, lspid: ints[1] as u32,
                    lrpid: ints[2] as u32,
                },
                info: MsgInfo {
                    msgpool: ints[0], msgmap: ints[1], msgmax: ints[2], msgmnb: ints[3],
                    msgmni: ints[4], msgssz: ints[5], msgtql: ints[6], msgseg: ints[7] as u16,
                },
            }),
        ];
        for f in frames {
            let buf = encode_big(&f, req);
            let (msg, used) = decode(&buf).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(msg.req_id, req);
            prop_assert_eq!(msg.frame, f);
            for cut in [0, HEADER_LEN - 1, HEADER_LEN, buf.len() - 1] {
                let incomplete = matches!(decode(&buf[..cut]), Err(DecodeError::Incomplete { .. }));
                prop_assert!(incomplete);
            }
        }
    }
}

proptest! {
    #[test]
    fn shm_round_trip(
        cred in arb_cred(),
        req in any::<u64>(),
        longs in proptest::array::uniform8(any::<i64>()),
        ints in proptest::array::uniform8(any::<i32>()),
        page in proptest::collection::vec(any::<u8>(), PAGE_LEN),
        flags in proptest::array::uniform4(0u8..2),
    ) {
        let frames = [
            Frame::ShmAt(ShmAt {
                oid: longs[0] as u64, pid: ints[0] as u32, cred, flags: ints[1],
                nattch: ints[2] as u32, seq: longs[6] as u64,
            }),
            Frame::ShmNattch(ShmNattch {
                oid: longs[0] as u64, pid: ints[0] as u32, nattch: ints[2] as u32, detach: flags[0],
                seq: longs[6] as u64,
            }),
            Frame::ShmCtl(ShmCtl {
                oid: longs[1] as u64, pid: ints[0] as u32, cred, cmd: ints[3],
                set_uid: ints[4] as u32, set_gid: ints[5] as u32, set_mode: ints[6] as u32,
            }),
            Frame::ShmCtlReply(ShmCtlReply {
                result: longs[7],
                stat: ShmStat {
                    key: ints[0], uid: 1, gid: 2, cuid: 3, cgid: 4, mode: ints[7] as u32,
                    segsz: longs[1] as u64, atime: longs[2], dtime: longs[3], ctime: longs[4],
                    cpid: ints[1] as u32, lpid: ints[2] as u32, nattch: longs[5] as u64,
                },
            }),
            Frame::PageReq(PageReq { oid: longs[0] as u64, page: longs[1] as u64, write: flags[1], whole: flags[0], applied: longs[2] as u64 }),
            Frame::PageGrant(PageGrant {
                oid: longs[0] as u64, page: longs[1] as u64, write: flags[1], result: ints[3],
                after: longs[4] as u64, data: PageData::Bytes(&page),
            }),
            Frame::PageGrant(PageGrant {
                oid: 1, page: 2, write: 0, result: 0, after: 0, data: PageData::Zero,
            }),
            Frame::PageGrant(PageGrant {
                oid: 1, page: 2, write: 1, result: -43, after: 9, data: PageData::Keep,
            }),
            Frame::PageInval(PageInval {
                oid: longs[2] as u64, page: longs[3] as u64, keep_read: flags[2], want_data: flags[3],
                after: longs[5] as u64, to_node: ints[0] as u32, to_ip: ints[1] as u32,
                to_port: ints[2] as u16, to_token: [flags[0]; TOKEN_LEN],
            }),
            Frame::PageAck(PageAck { oid: 5, page: longs[3] as u64, data: Some(&page), sent: flags[1] }),
            Frame::PageAck(PageAck { oid: 5, page: 0, data: None, sent: 0 }),
        ];
        for f in frames {
            let buf = encode_big(&f, req);
            let (msg, used) = decode(&buf).unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(msg.req_id, req);
            prop_assert_eq!(msg.frame, f);
            for cut in [0, HEADER_LEN - 1, HEADER_LEN, buf.len() - 1] {
                let incomplete = matches!(decode(&buf[..cut]), Err(DecodeError::Incomplete { .. }));
                prop_assert!(incomplete);
            }
        }
    }
}

#[test]
fn page_frames_are_strict() {
    let page = vec![7u8; PAGE_LEN];
    // A page of the wrong size is refused by the encoder.
    let short = Frame::PageAck(PageAck {
        oid: 1,
        page: 0,
        data: Some(&page[..100]),
        sent: 0,
    });
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    assert_eq!(short.encode(1, &mut buf), Err(EncodeError::BadPage(100)));
    // A flag byte other than 0 or 1, or an unknown data tag, is malformed.
    let ok = encode_big(
        &Frame::PageGrant(PageGrant {
            oid: 1,
            page: 2,
            write: 1,
            result: 0,
            after: 0,
            data: PageData::Zero,
        }),
        0,
    );
    let mut bad = ok.clone();
    bad[HEADER_LEN + 16] = 2;
    assert_eq!(decode(&bad), Err(DecodeError::BadPayload(Kind::PageGrant)));
    let mut bad = ok.clone();
    bad[HEADER_LEN + 29] = 3;
    assert_eq!(decode(&bad), Err(DecodeError::BadPayload(Kind::PageGrant)));
    // Tag 2 (bytes) without the bytes.
    let mut bad = ok;
    bad[HEADER_LEN + 29] = 2;
    assert_eq!(decode(&bad), Err(DecodeError::BadPayload(Kind::PageGrant)));
    let mut inval = encode_big(
        &Frame::PageInval(PageInval {
            oid: 1,
            page: 2,
            keep_read: 0,
            want_data: 1,
            after: 0,
            to_node: 3,
            to_ip: 0x0a00_0003,
            to_port: 7421,
            to_token: [5; TOKEN_LEN],
        }),
        9,
    );
    inval[HEADER_LEN + 17] = 9;
    assert_eq!(
        decode(&inval),
        Err(DecodeError::BadPayload(Kind::PageInval))
    );
}

#[test]
fn auth_frames_round_trip_and_are_strict() {
    let frames = [
        Frame::Challenge {
            nonce: [7; AUTH_LEN],
        },
        Frame::Auth(Auth {
            mac: [1; AUTH_LEN],
            nonce: [2; AUTH_LEN],
        }),
        Frame::PeerHello(PeerHello {
            node_id: 3,
            token: [4; TOKEN_LEN],
            nonce: [5; AUTH_LEN],
        }),
    ];
    for f in frames {
        let (buf, n) = encode_vec(&f, 5);
        assert_eq!(n, f.encoded_len());
        let (m, used) = decode(&buf[..n]).unwrap();
        assert_eq!(used, n);
        assert_eq!(m.frame, f);
        // One byte short or one byte long is malformed.
        let mut short = buf[..n - 1].to_vec();
        short[16..20].copy_from_slice(&((n - 1 - HEADER_LEN) as u32).to_le_bytes());
        assert_eq!(decode(&short), Err(DecodeError::BadPayload(f.kind())));
        let mut long = buf[..n].to_vec();
        long.push(0);
        long[16..20].copy_from_slice(&((n + 1 - HEADER_LEN) as u32).to_le_bytes());
        assert_eq!(decode(&long), Err(DecodeError::BadPayload(f.kind())));
    }
}

#[test]
fn every_auth_role_has_its_own_label() {
    let roles = [
        AuthRole::Node,
        AuthRole::Referee,
        AuthRole::PeerAcceptor,
        AuthRole::PeerConnector,
    ];
    let inputs: Vec<_> = roles
        .iter()
        .map(|&r| auth_input(r, 2, &[1; AUTH_LEN], &[2; AUTH_LEN]))
        .collect();
    for (i, a) in inputs.iter().enumerate() {
        for b in &inputs[i + 1..] {
            assert_ne!(a[..16], b[..16]);
        }
    }
}

#[test]
fn secret_files_lose_one_trailing_newline() {
    let s = [b'k'; SECRET_MIN];
    assert_eq!(secret_in_file(&s), Ok(&s[..]));
    let mut nl = s.to_vec();
    nl.push(b'\n');
    assert_eq!(secret_in_file(&nl), Ok(&s[..]));
    nl.push(b'\n');
    assert_eq!(secret_in_file(&nl), Ok(&nl[..SECRET_MIN + 1]));
    assert_eq!(secret_in_file(&s[..SECRET_MIN - 1]), Err(SECRET_MIN - 1));
    assert_eq!(secret_in_file(&[b'k'; SECRET_MAX + 1]), Err(SECRET_MAX + 1));
    assert_eq!(secret_in_file(b"\n"), Err(0));
}

#[test]
fn auth_inputs_differ_by_role_id_and_nonces() {
    let a = [1u8; AUTH_LEN];
    let b = [2u8; AUTH_LEN];
    let base = auth_input(AuthRole::Node, 3, &a, &b);
    assert_ne!(base, auth_input(AuthRole::Referee, 3, &a, &b));
    assert_ne!(base, auth_input(AuthRole::Node, 4, &a, &b));
    assert_ne!(base, auth_input(AuthRole::Node, 3, &b, &a));
    assert_eq!(&base[16..20], &3u32.to_le_bytes());
}

/// The hostile referee of the cluster tests speaks the protocol in C; it
/// must follow this crate's version, or its cases test the version check
/// instead of what they name.
#[test]
fn badreferee_speaks_this_version() {
    let c = include_str!("../../../tests/programs/badreferee.c");
    let want = std::format!("static const uint16_t VERSION = {VERSION};");
    assert!(
        c.contains(&want),
        "tests/programs/badreferee.c lacks `{want}`"
    );
}

#[test]
fn class_ids_index_is_the_kernels_table_order() {
    // IPC_SEM_IDS, IPC_MSG_IDS, IPC_SHM_IDS in include/linux/ipc_namespace.h.
    assert_eq!(Class::Sem.ids_index(), 0);
    assert_eq!(Class::Msg.ids_index(), 1);
    assert_eq!(Class::Shm.ids_index(), 2);
    for c in [Class::Sem, Class::Msg, Class::Shm] {
        assert_eq!(Class::from_ids_index(c.ids_index()), Some(c));
    }
    assert_eq!(Class::from_ids_index(3), None);
}
