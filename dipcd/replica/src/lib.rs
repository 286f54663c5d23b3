//! The referee's request log replicated among three or five referees with
//! raft-rs, TiKV's implementation of Raft: no consensus of dipc's own.
//!
//! A [`Replica`] is one referee's share: raft-rs's `RawNode`, its durable
//! state ([`disk`]), and the state machine the committed commands are
//! applied to, in log order, on every replica alike. Only the leader takes
//! proposals; a proposal's answer is whatever applying it produced, handed
//! back once its entry is committed on a majority and applied here. The
//! replica does no I/O but its own directory's: the caller moves
//! [`Poll::messages`] between replicas (any transport; a lost, repeated
//! or late message is Raft's business), calls [`Replica::tick`] at a fixed
//! interval and [`Replica::poll`] after anything that may have changed it.
//!
//! Membership: the initial voters are given at bootstrap; referees are
//! then added and removed one at a time ([`Replica::propose_change`]),
//! with the address nodes and peers reach them at carried in the change.
//!
//! Snapshots: every `snapshot_every` applied entries the replica writes
//! the machine's snapshot with the members, and drops the entries it
//! covers; raft-rs sends it to a follower that is too far behind.

#![forbid(unsafe_code)]

pub mod disk;
pub mod frames;

use disk::{decode_members, encode_members, Disk};
pub use disk::{Members, Opened};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, EntryType, Snapshot};
pub use raft::eraftpb::{Message, MessageType};
use raft::{RawNode, StateRole};
use raft_proto::ConfChangeI;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// A deterministic state machine: the same commands, in the same order,
/// give the same state and outputs on every replica.
pub trait Machine {
    /// What applying a command produces (answers to send, on the leader).
    type Output;
    /// Applies the command committed as entry `index`.
    fn apply(&mut self, index: u64, command: &[u8]) -> Self::Output;
    /// The whole state, as [`Machine::restore`] takes it.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// A replica's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// This referee's id (not 0), unique among the referees.
    pub id: u64,
    /// Ticks without a leader before an election (randomised up to twice
    /// that by raft-rs).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Entries reach the disk before this replica acknowledges them.
    pub sync: bool,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
    /// Every election timeout is `election_ticks` exactly (raft-rs draws
    /// each from its own random source otherwise): a simulation's seed
    /// then decides everything.
    pub(crate) fixed_timeouts: bool,
}

impl Config {
    /// Defaults for referee `id`: with a 100 ms tick, an election after
    /// 1–2 s of silence, heartbeats every 200 ms.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            sync: true,
            snapshot_every: 10_000,
            fixed_timeouts: false,
        }
    }
}

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A referee joins as a voter, reachable at `addr`.
    Add {
        /// Its id.
        id: u64,
        /// Where peers and nodes reach it.
        addr: String,
    },
    /// A referee leaves.
    Remove {
        /// Its id.
        id: u64,
    },
}

/// Why a proposal was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This replica is not the leader; the leader it knows of, if any.
    NotLeader(Option<u64>),
    /// This replica leads but is handing leadership to another: raft-rs
    /// drops every proposal until the transfer ends (the target leads, or
    /// an election timeout passes and it is aborted).
    Transferring(u64),
    /// raft-rs refused it (a leader transfer, or a membership change
    /// still pending).
    Refused(String),
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(Some(l)) => write!(f, "not the leader (referee {l} is)"),
            ProposeError::NotLeader(None) => write!(f, "not the leader (no leader known)"),
            ProposeError::Transferring(to) => {
                write!(
                    f,
                    "handing leadership to referee {to}: nothing is taken meanwhile"
                )
            }
            ProposeError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// An entry applied here.
#[derive(Debug)]
pub struct Applied<O> {
    /// Its log index.
    pub index: u64,
    /// The ticket [`Replica::propose`] gave, if this replica proposed it
    /// and is still waiting.
    pub ticket: Option<u64>,
    /// What the machine produced; `None` for a membership change.
    pub output: Option<O>,
}

/// What one [`Replica::poll`] produced.
#[derive(Debug)]
pub struct Poll<O> {
    /// Raft messages to send to the other referees (`to` says which).
    pub messages: Vec<Message>,
    /// Entries applied, in log order.
    pub applied: Vec<Applied<O>>,
    /// Tickets whose entries will never be applied (another leader's
    /// entries replaced them, or a snapshot covered them).
    pub lost: Vec<u64>,
}

impl<O> Default for Poll<O> {
    fn default() -> Self {
        Poll {
            messages: Vec::new(),
            applied: Vec::new(),
            lost: Vec::new(),
        }
    }
}

/// Encodes a raft message for the wire.
pub fn encode_message(m: &Message) -> Vec<u8> {
    m.write_to_bytes().unwrap_or_default()
}

/// Decodes a raft message ([`None`] for bytes that are not one).
pub fn decode_message(b: &[u8]) -> Option<Message> {
    Message::parse_from_bytes(b).ok()
}

/// One referee's replica.
pub struct Replica<M: Machine> {
    id: u64,
    raw: RawNode<disk::Storage>,
    disk: Disk,
    machine: M,
    snapshot_every: u64,
    next_ticket: u64,
    /// Log index -> (term, ticket) of the proposals made here.
    waiters: BTreeMap<u64, (u64, u64)>,
    /// Removed from the configuration (it should stop).
    removed: bool,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl<M: Machine> Replica<M> {
    /// Opens referee `cfg.id`'s replica in `dir`, restoring `machine` from
    /// its snapshot and replaying the committed entries after it. A new
    /// directory starts with `voters` and `members` (every first referee
    /// must be given the same); a referee added later starts with none.
    pub fn open(
        dir: &Path,
        cfg: &Config,
        voters: &[u64],
        members: &Members,
        mut machine: M,
    ) -> io::Result<(Self, Opened)> {
        let (disk, opened) = Disk::open(dir, cfg.sync, voters, members)?;
        let storage = disk.storage();
        let applied = {
            let core = storage.rl();
            let snap = core.snapshot();
            if snap.get_metadata().index > 0 {
                let (_, state) = decode_members(snap.get_data())
                    .ok_or_else(|| io::Error::other("a snapshot without members"))?;
                machine.restore(state).map_err(io::Error::other)?;
            }
            snap.get_metadata().index
        };
        let mut rc = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        if cfg.fixed_timeouts {
            rc.min_election_tick = cfg.election_ticks;
            rc.max_election_tick = cfg.election_ticks + 1;
        }
        rc.validate().map_err(io::Error::other)?;
        let raw = RawNode::new(&rc, storage, &logger()).map_err(io::Error::other)?;
        Ok((
            Replica {
                id: cfg.id,
                raw,
                disk,
                machine,
                snapshot_every: cfg.snapshot_every.max(1),
                next_ticket: 0,
                waiters: BTreeMap::new(),
                removed: false,
            },
            opened,
        ))
    }

    /// This referee's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The referee this leader is handing leadership to, while it does:
    /// it still leads, but takes no proposal ([`ProposeError::Transferring`]).
    pub fn transferring(&self) -> Option<u64> {
        self.raw.raft.lead_transferee.filter(|_| self.is_leader())
    }

    /// The leader this replica knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != 0)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The commit index.
    pub fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index of the last entry in the log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The last index applied to the machine.
    pub fn applied(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// The referees' addresses, as of the last applied change.
    pub fn members(&self) -> Members {
        self.disk.storage().rl().members().clone()
    }

    /// The voters, as of the last applied change, in order.
    pub fn voters(&self) -> Vec<u64> {
        let mut v = self.disk.storage().rl().conf_state().voters.clone();
        v.sort_unstable();
        v
    }

    /// Whether this referee was removed from the configuration.
    pub fn removed(&self) -> bool {
        self.removed
    }

    /// The state machine (read only: it changes by the log alone).
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Advances raft's clock by one tick.
    pub fn tick(&mut self) {
        if !self.removed {
            self.raw.tick();
        }
    }

    /// Takes a message from another referee. One that does not belong to
    /// this replica (a stale or misdirected message) is dropped.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || self.removed {
            return;
        }
        let _ = self.raw.step(m);
    }

    /// The transport could not reach referee `id`.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// The transport sent the snapshot for referee `id` (`delivered`), or
    /// lost it: raft-rs sends no more entries to a follower while its
    /// snapshot is out, and tries again after a loss.
    pub fn report_snapshot(&mut self, id: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(id, status);
    }

    /// Proposes `command`; on the leader, returns the ticket its
    /// [`Applied`] (or its loss) will carry.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<u64, ProposeError> {
        self.may_propose()?;
        self.raw
            .propose(Vec::new(), command)
            .map_err(|e| ProposeError::Refused(e.to_string()))?;
        Ok(self.wait_last())
    }

    /// Proposes a membership change, as [`Replica::propose`].
    pub fn propose_change(&mut self, change: &Change) -> Result<u64, ProposeError> {
        self.may_propose()?;
        let mut cc = ConfChange::default();
        let context = match change {
            Change::Add { id, addr } => {
                cc.node_id = *id;
                cc.set_change_type(ConfChangeType::AddNode);
                addr.as_bytes().to_vec()
            }
            Change::Remove { id } if *id == self.id => {
                // raft-rs cannot run a leader that left the configuration.
                return Err(ProposeError::Refused(
                    "the leader cannot remove itself: hand leadership over first".into(),
                ));
            }
            Change::Remove { id } => {
                cc.node_id = *id;
                cc.set_change_type(ConfChangeType::RemoveNode);
                Vec::new()
            }
        };
        cc.context = context.clone().into();
        let before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose_conf_change(context, cc)
            .map_err(|e| ProposeError::Refused(e.to_string()))?;
        if self.raw.raft.raft_log.last_index() == before {
            // raft-rs turns a change proposed while another is pending into
            // an empty entry.
            return Err(ProposeError::Refused(
                "another membership change is pending".into(),
            ));
        }
        Ok(self.wait_last())
    }

    /// Hands leadership to `id` (it must be a voter and up to date).
    pub fn transfer_leader(&mut self, id: u64) {
        self.raw.transfer_leader(id);
    }

    /// Whether a proposal can be taken now: this replica leads and is not
    /// handing leadership over (raft-rs would drop it).
    fn may_propose(&self) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader(self.leader()));
        }
        match self.transferring() {
            Some(to) => Err(ProposeError::Transferring(to)),
            None => Ok(()),
        }
    }

    /// A ticket for the entry just appended.
    fn wait_last(&mut self) -> u64 {
        self.next_ticket += 1;
        let index = self.raw.raft.raft_log.last_index();
        let term = self.raw.raft.term;
        self.waiters.insert(index, (term, self.next_ticket));
        self.next_ticket
    }

    /// Settles the waiters up to `index` (the entry there has `term`): the
    /// one at `index` with that term is answered; every other is lost.
    fn settle(&mut self, index: u64, term: u64, lost: &mut Vec<u64>) -> Option<u64> {
        let mut ticket = None;
        while let Some((&i, &(t, tk))) = self.waiters.first_key_value() {
            if i > index {
                break;
            }
            self.waiters.remove(&i);
            if i == index && t == term {
                ticket = Some(tk);
            } else {
                lost.push(tk);
            }
        }
        ticket
    }

    /// Moves raft-rs's ready state along: persists, applies, and returns
    /// what to send and what was applied.
    pub fn poll(&mut self) -> io::Result<Poll<M::Output>> {
        let mut p = Poll::default();
        if self.removed || !self.raw.has_ready() {
            return Ok(p);
        }
        let mut rd = self.raw.ready();
        // A leader's appends may go out before its own copy is durable.
        p.messages.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install(&snap, &mut p)?;
        }
        let committed = rd.take_committed_entries();
        self.apply(committed, &mut p)?;
        if !rd.entries().is_empty() {
            self.disk.append(rd.entries())?;
        }
        if let Some(hs) = rd.hs() {
            self.disk.set_hard_state(hs)?;
        }
        self.disk.sync()?;
        // Votes and acknowledgements only once durable.
        p.messages.extend(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.disk.set_commit(commit)?;
        }
        p.messages.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed, &mut p)?;
        self.raw.advance_apply();
        self.compact()?;
        Ok(p)
    }

    /// A snapshot from the leader replaces the machine's state.
    fn install(&mut self, snap: &Snapshot, p: &mut Poll<M::Output>) -> io::Result<()> {
        let meta = snap.get_metadata();
        let (_, state) = decode_members(snap.get_data())
            .ok_or_else(|| io::Error::other("a snapshot without members"))?;
        self.machine.restore(state).map_err(io::Error::other)?;
        self.disk.install(snap)?;
        // Every proposal it covers is settled: it was applied (or not) on
        // the replicas that made the snapshot, not here.
        let covered: Vec<u64> = self.waiters.range(..=meta.index).map(|(&i, _)| i).collect();
        for i in covered {
            if let Some((_, tk)) = self.waiters.remove(&i) {
                p.lost.push(tk);
            }
        }
        Ok(())
    }

    fn apply(
        &mut self,
        entries: Vec<raft::eraftpb::Entry>,
        p: &mut Poll<M::Output>,
    ) -> io::Result<()> {
        for e in entries {
            let ticket = self.settle(e.index, e.term, &mut p.lost);
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if e.get_data().is_empty() {
                        // A new leader's empty entry.
                        continue;
                    }
                    let output = self.machine.apply(e.index, e.get_data());
                    p.applied.push(Applied {
                        index: e.index,
                        ticket,
                        output: Some(output),
                    });
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(e.get_data())
                            .map_err(io::Error::other)?
                            .into_v2()
                    } else {
                        ConfChangeV2::parse_from_bytes(e.get_data()).map_err(io::Error::other)?
                    };
                    let mut members = self.members();
                    for c in cc.get_changes() {
                        match c.get_change_type() {
                            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                                let addr = String::from_utf8_lossy(cc.get_context()).into_owned();
                                members.insert(c.node_id, addr);
                            }
                            ConfChangeType::RemoveNode => {
                                members.remove(&c.node_id);
                                if c.node_id == self.id {
                                    self.removed = true;
                                }
                            }
                        }
                    }
                    match self.raw.apply_conf_change(&cc) {
                        Ok(cs) => self.disk.set_conf(&cs, &members)?,
                        Err(_) => continue,
                    }
                    p.applied.push(Applied {
                        index: e.index,
                        ticket,
                        output: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// A snapshot of the machine at the applied index, once enough entries
    /// were applied since the last one.
    fn compact(&mut self) -> io::Result<()> {
        let applied = self.applied();
        let storage = self.disk.storage();
        let (snap_index, term, cs, members) = {
            let c = storage.rl();
            (
                c.snapshot().get_metadata().index,
                c.term_of(applied),
                c.conf_state().clone(),
                c.members().clone(),
            )
        };
        let Some(term) = term else {
            return Ok(());
        };
        if applied < snap_index + self.snapshot_every {
            return Ok(());
        }
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(cs);
        let mut data = encode_members(&members);
        data.extend(self.machine.snapshot());
        snap.data = data.into();
        self.disk.install(&snap)
    }
}

#[cfg(test)]
mod sim_tests;
