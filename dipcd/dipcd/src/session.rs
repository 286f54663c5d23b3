//! One node's connection, as a pure state machine (no sockets, no clock).
//!
//! The I/O loop in [`crate::server`] feeds it received bytes through
//! [`FrameBuf`] and carries out the [`Action`]s it returns.

use crate::auth::Secret;
use crate::state::is_call_frame;
use dipc_wire::{
    decode, Auth, AuthRole, DecodeError, ErrorCode, Frame, HelloAck, Message, ACK_EXIT_CALLS,
    AUTH_LEN, HEADER_LEN, MAX_PAYLOAD, TOKEN_LEN,
};

/// Accumulates bytes from the network and yields whole frames.
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Decodes the next whole frame, hands it to `f` with its bytes as
    /// received (what the referee's log keeps), and drops them.
    /// `Ok(None)` means more bytes are needed. A decode error is final: the
    /// connection must be closed. The buffer never holds more than one
    /// maximum-size frame plus one read's worth of bytes, because a header
    /// announcing more than [`MAX_PAYLOAD`] is an error.
    pub fn next_with<T>(
        &mut self,
        f: impl FnOnce(Message<'_>, &[u8]) -> T,
    ) -> Result<Option<T>, DecodeError> {
        match decode(&self.buf) {
            Ok((msg, used)) => {
                let out = f(msg, &self.buf[..used]);
                self.buf.drain(..used);
                Ok(Some(out))
            }
            Err(DecodeError::Incomplete { needed }) => {
                debug_assert!(needed <= HEADER_LEN + MAX_PAYLOAD);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Connected, waiting for the node's hello.
    AwaitHello,
    /// Hello received and challenged: waiting for the node's proof.
    AwaitAuth {
        /// The id the node claims.
        node_id: u32,
    },
    /// Hello done: the node is registered under this id.
    Ready {
        /// The node's id.
        node_id: u32,
    },
}

/// A node introduced itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHello {
    /// Its node id.
    pub node_id: u32,
    /// Its name, lossily decoded.
    pub name: String,
    /// Its incarnation, peer_port: 0 (see [`dipc_wire::Hello::incarnation`]).
    pub incarnation: u64,
    /// Where it takes pages from other nodes (0: nowhere).
    pub peer_port: u16,
}

/// What the I/O loop must do after a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Register the node (replacing any older connection with its id), then
    /// send the replies in order (the referee's proof, if any, then the
    /// hello ack).
    Register(NodeHello, Vec<OwnedReply>),
    /// Send a reply.
    Reply(OwnedReply),
    /// Nothing to send.
    None,
    /// The node answered a ping with this nonce.
    Pong(u64),
    /// An IPC request from the registered node `node_id`: the server hands
    /// the frame to the object registry.
    Ipc {
        /// The node that asked.
        node_id: u32,
    },
    /// Send the error frame, then close the connection.
    Refuse(ErrorCode, String),
}

/// A reply frame to send, with its request id. (Frames that borrow nothing,
/// so they outlive the receive buffer.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedReply {
    /// Request id of the frame being answered.
    pub req_id: u64,
    /// The reply.
    pub frame: Frame<'static>,
}

/// One connection's protocol state.
pub struct Session {
    state: State,
    session_id: u64,
    /// The cluster secret and this connection's challenge, if nodes must
    /// authenticate.
    auth: Option<(Secret, [u8; AUTH_LEN])>,
    /// The hello being authenticated.
    hello: Option<(NodeHello, u64)>,
    /// The node's peer token for this connection (see
    /// [`dipc_wire::HelloAck::token`]).
    token: [u8; TOKEN_LEN],
}

impl Session {
    /// A new connection to a referee whose run is identified by `session_id`.
    pub fn new(session_id: u64) -> Self {
        Session {
            state: State::AwaitHello,
            session_id,
            auth: None,
            hello: None,
            token: [0; TOKEN_LEN],
        }
    }

    /// The node gets `token` in its hello ack (fresh random bytes).
    pub fn with_token(mut self, token: [u8; TOKEN_LEN]) -> Self {
        self.token = token;
        self
    }

    /// Nodes must prove they know `secret`; `challenge` is this
    /// connection's fresh random nonce.
    pub fn with_auth(mut self, secret: Secret, challenge: [u8; AUTH_LEN]) -> Self {
        self.auth = Some((secret, challenge));
        self
    }

    fn ack(&self, node_id: u32, req_id: u64) -> OwnedReply {
        OwnedReply {
            req_id,
            frame: Frame::HelloAck(HelloAck {
                node_id,
                features: ACK_EXIT_CALLS,
                session: self.session_id,
                token: self.token,
            }),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Handles one decoded frame.
    pub fn on_message(&mut self, msg: Message<'_>) -> Action {
        match (self.state, msg.frame) {
            (State::AwaitHello, Frame::Hello(h)) => {
                if h.features != 0 {
                    // No feature is defined yet; a node asking for one is
                    // newer than us, and only the version field may say so.
                    tracing::debug!(features = h.features, "node announced unknown features");
                }
                let hello = NodeHello {
                    node_id: h.node_id,
                    name: String::from_utf8_lossy(h.name).into_owned(),
                    incarnation: h.incarnation,
                    peer_port: h.peer_port,
                };
                if let Some((_, challenge)) = &self.auth {
                    let challenge = *challenge;
                    self.state = State::AwaitAuth { node_id: h.node_id };
                    self.hello = Some((hello, msg.req_id));
                    return Action::Reply(OwnedReply {
                        req_id: msg.req_id,
                        frame: Frame::Challenge { nonce: challenge },
                    });
                }
                self.state = State::Ready { node_id: h.node_id };
                Action::Register(hello, vec![self.ack(h.node_id, msg.req_id)])
            }
            (State::AwaitAuth { node_id }, Frame::Auth(a)) => {
                let (Some((secret, challenge)), Some((hello, req))) =
                    (self.auth.as_ref(), self.hello.take())
                else {
                    return Action::Refuse(ErrorCode::Protocol, "no hello to authenticate".into());
                };
                if !secret.verify(AuthRole::Node, node_id, challenge, &a.nonce, &a.mac) {
                    return Action::Refuse(
                        ErrorCode::Refused,
                        format!("node {node_id} failed authentication (wrong secret)"),
                    );
                }
                let proof = OwnedReply {
                    req_id: msg.req_id,
                    frame: Frame::Auth(Auth {
                        mac: secret.tag(AuthRole::Referee, node_id, &a.nonce, &[0; AUTH_LEN]),
                        nonce: [0; AUTH_LEN],
                    }),
                };
                self.state = State::Ready { node_id };
                Action::Register(hello, vec![proof, self.ack(node_id, req)])
            }
            (State::AwaitAuth { node_id }, f) => Action::Refuse(
                ErrorCode::Refused,
                format!(
                    "node {node_id} sent {:?} instead of authenticating",
                    f.kind()
                ),
            ),
            (State::AwaitHello, f) => Action::Refuse(
                ErrorCode::Protocol,
                format!("{:?} frame before hello", f.kind()),
            ),
            (State::Ready { .. }, Frame::Ping { nonce }) => Action::Reply(OwnedReply {
                req_id: msg.req_id,
                frame: Frame::Pong { nonce },
            }),
            (State::Ready { .. }, Frame::Pong { nonce }) => Action::Pong(nonce),
            (State::Ready { node_id }, f)
                if is_call_frame(&f)
                    || matches!(
                        f,
                        Frame::PageReq(_)
                            | Frame::PageAck(_)
                            | Frame::Cancel { .. }
                            | Frame::Exit { .. }
                            | Frame::MsgTaken(_)
                    ) =>
            {
                Action::Ipc { node_id }
            }
            (State::Ready { .. }, f) => Action::Refuse(
                ErrorCode::Protocol,
                format!("unexpected {:?} frame", f.kind()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipc_wire::Hello;

    fn bytes(frame: Frame<'_>, req: u64) -> Vec<u8> {
        let mut v = vec![0; frame.encoded_len()];
        frame.encode(req, &mut v).unwrap();
        v
    }

    fn hello(id: u32) -> Frame<'static> {
        Frame::Hello(Hello {
            node_id: id,
            features: 0,
            incarnation: 1,
            peer_port: 0,
            name: b"node",
        })
    }

    #[test]
    fn hello_then_ping() {
        let mut s = Session::new(77);
        let mut fb = FrameBuf::default();
        fb.extend(&bytes(hello(2), 5));
        fb.extend(&bytes(Frame::Ping { nonce: 9 }, 6));
        let a = fb.next_with(|m, _| s.on_message(m)).unwrap().unwrap();
        assert_eq!(
            a,
            Action::Register(
                NodeHello {
                    node_id: 2,
                    name: "node".into(),
                    incarnation: 1,
                    peer_port: 0,
                },
                vec![OwnedReply {
                    req_id: 5,
                    frame: Frame::HelloAck(HelloAck {
                        node_id: 2,
                        features: ACK_EXIT_CALLS,
                        session: 77,
                        token: Default::default()
                    })
                }]
            )
        );
        assert_eq!(s.state(), State::Ready { node_id: 2 });
        let a = fb.next_with(|m, _| s.on_message(m)).unwrap().unwrap();
        assert_eq!(
            a,
            Action::Reply(OwnedReply {
                req_id: 6,
                frame: Frame::Pong { nonce: 9 }
            })
        );
        assert_eq!(fb.next_with(|m, _| s.on_message(m)).unwrap(), None);
    }

    #[test]
    fn frames_split_at_every_byte() {
        let all = [bytes(hello(3), 1), bytes(Frame::Ping { nonce: 1 }, 2)].concat();
        for cut in 0..all.len() {
            let mut s = Session::new(1);
            let mut fb = FrameBuf::default();
            let mut actions = Vec::new();
            for part in [&all[..cut], &all[cut..]] {
                fb.extend(part);
                while let Some(a) = fb.next_with(|m, _| s.on_message(m)).unwrap() {
                    actions.push(a);
                }
            }
            assert_eq!(actions.len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn anything_before_hello_is_refused() {
        let mut s = Session::new(1);
        let mut fb = FrameBuf::default();
        fb.extend(&bytes(Frame::Ping { nonce: 1 }, 1));
        let a = fb.next_with(|m, _| s.on_message(m)).unwrap().unwrap();
        assert!(matches!(a, Action::Refuse(ErrorCode::Protocol, _)));
        assert_eq!(s.state(), State::AwaitHello);
    }

    #[test]
    fn second_hello_is_refused() {
        let mut s = Session::new(1);
        let mut fb = FrameBuf::default();
        fb.extend(&bytes(hello(1), 1));
        fb.extend(&bytes(hello(1), 2));
        fb.next_with(|m, _| s.on_message(m)).unwrap();
        let a = fb.next_with(|m, _| s.on_message(m)).unwrap().unwrap();
        assert!(matches!(a, Action::Refuse(ErrorCode::Protocol, _)));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut fb = FrameBuf::default();
        fb.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(
            fb.next_with(|_, _| ()),
            Err(DecodeError::BadMagic(_))
        ));
    }

    fn secret(b: &[u8]) -> Secret {
        Secret::new(b).unwrap()
    }

    /// The node's side of the exchange, by hand.
    fn prove(key: &Secret, node: u32, challenge: &[u8; AUTH_LEN]) -> Frame<'static> {
        let own = [9u8; AUTH_LEN];
        Frame::Auth(Auth {
            mac: key.tag(AuthRole::Node, node, challenge, &own),
            nonce: own,
        })
    }

    fn step(s: &mut Session, f: Frame<'_>, req: u64) -> Action {
        let mut fb = FrameBuf::default();
        fb.extend(&bytes(f, req));
        fb.next_with(|m, _| s.on_message(m)).unwrap().unwrap()
    }

    #[test]
    fn authenticated_hello() {
        let key = secret(b"0123456789abcdef");
        let challenge = [4u8; AUTH_LEN];
        let mut s = Session::new(77).with_auth(key.clone(), challenge);
        assert_eq!(
            step(&mut s, hello(2), 5),
            Action::Reply(OwnedReply {
                req_id: 5,
                frame: Frame::Challenge { nonce: challenge }
            })
        );
        assert_eq!(s.state(), State::AwaitAuth { node_id: 2 });
        let Action::Register(h, replies) = step(&mut s, prove(&key, 2, &challenge), 6) else {
            panic!("not registered");
        };
        assert_eq!(h.node_id, 2);
        assert_eq!(replies.len(), 2);
        // The referee's proof answers the node's nonce, then the ack.
        let Frame::Auth(a) = replies[0].frame else {
            panic!("no proof");
        };
        assert!(key.verify(AuthRole::Referee, 2, &[9; AUTH_LEN], &[0; AUTH_LEN], &a.mac));
        assert!(matches!(replies[1].frame, Frame::HelloAck(_)));
        assert_eq!(replies[1].req_id, 5);
        assert_eq!(s.state(), State::Ready { node_id: 2 });
    }

    #[test]
    fn wrong_or_missing_proof_is_refused() {
        let key = secret(b"0123456789abcdef");
        let wrong = secret(b"0123456789abcdeX");
        let challenge = [4u8; AUTH_LEN];
        // A wrong secret.
        let mut s = Session::new(1).with_auth(key.clone(), challenge);
        step(&mut s, hello(2), 1);
        assert!(matches!(
            step(&mut s, prove(&wrong, 2, &challenge), 2),
            Action::Refuse(ErrorCode::Refused, _)
        ));
        // A proof for another node id, or over another challenge.
        let mut s = Session::new(1).with_auth(key.clone(), challenge);
        step(&mut s, hello(2), 1);
        assert!(matches!(
            step(&mut s, prove(&key, 3, &challenge), 2),
            Action::Refuse(ErrorCode::Refused, _)
        ));
        let mut s = Session::new(1).with_auth(key.clone(), challenge);
        step(&mut s, hello(2), 1);
        assert!(matches!(
            step(&mut s, prove(&key, 2, &[5; AUTH_LEN]), 2),
            Action::Refuse(ErrorCode::Refused, _)
        ));
        // Anything but a proof after the challenge.
        let mut s = Session::new(1).with_auth(key.clone(), challenge);
        step(&mut s, hello(2), 1);
        assert!(matches!(
            step(&mut s, Frame::Ping { nonce: 1 }, 2),
            Action::Refuse(ErrorCode::Refused, _)
        ));
        // A proof without a hello.
        let mut s = Session::new(1).with_auth(key.clone(), challenge);
        assert!(matches!(
            step(&mut s, prove(&key, 2, &challenge), 2),
            Action::Refuse(ErrorCode::Protocol, _)
        ));
    }
}
