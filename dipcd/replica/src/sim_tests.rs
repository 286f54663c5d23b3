//! A simulated cluster of replicas: messages delivered late, out of order,
//! twice or never; replicas crashed (their files kept) and restarted,
//! alone or all at once; replicas cut off from the others. Clients send
//! numbered additions to whichever replica leads and send them again
//! until answered, as nodes do after a failover; the machine ignores a
//! number it has seen (as the referee's reply cache does).
//!
//! Checked at every step: at most one leader per term; every replica
//! applies the same command at the same index. At the end, with the
//! network healed and every replica up: every request is answered, every
//! replica holds the same state, and the total is the sum of the answered
//! additions, each counted once.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// Additions, at most once per (client, number).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
struct Counter {
    total: u64,
    /// Client -> highest number applied.
    seen: BTreeMap<u32, u64>,
    /// Commands applied (duplicates included).
    applied: u64,
}

#[derive(Debug)]
struct Out {
    index: u64,
    client: u32,
    number: u64,
}

fn command(client: u32, number: u64, value: u64) -> Vec<u8> {
    let mut b = client.to_le_bytes().to_vec();
    b.extend(number.to_le_bytes());
    b.extend(value.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Machine for Counter {
    type Output = Out;

    fn apply(&mut self, index: u64, c: &[u8]) -> Out {
        let client = u32::from_le_bytes(c[0..4].try_into().unwrap());
        let (number, value) = (u64_at(c, 4), u64_at(c, 12));
        self.applied += 1;
        let seen = self.seen.entry(client).or_insert(0);
        if number > *seen {
            *seen = number;
            self.total += value;
        }
        Out {
            index,
            client,
            number,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut b = self.total.to_le_bytes().to_vec();
        b.extend(self.applied.to_le_bytes());
        for (c, n) in &self.seen {
            b.extend(c.to_le_bytes());
            b.extend(n.to_le_bytes());
        }
        b
    }

    fn restore(&mut self, b: &[u8]) -> Result<(), String> {
        if b.len() < 16 || (b.len() - 16) % 12 != 0 {
            return Err("bad counter snapshot".into());
        }
        self.total = u64_at(b, 0);
        self.applied = u64_at(b, 8);
        self.seen = b[16..]
            .chunks(12)
            .map(|c| {
                (
                    u32::from_le_bytes(c[0..4].try_into().unwrap()),
                    u64_at(c, 4),
                )
            })
            .collect();
        Ok(())
    }
}

/// xorshift64*: the schedule is a function of the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

struct Request {
    client: u32,
    number: u64,
    value: u64,
    /// (replica, ticket) of the proposals still waiting.
    tickets: BTreeSet<(u64, u64)>,
}

struct World {
    ids: Vec<u64>,
    dirs: BTreeMap<u64, tempfile::TempDir>,
    live: BTreeMap<u64, Replica<Counter>>,
    cut: BTreeSet<u64>,
    net: Vec<Message>,
    rng: Rng,
    /// Term -> the replica that led in it.
    leaders: BTreeMap<u64, u64>,
    /// Index -> (client, number) applied there, by any replica.
    log: BTreeMap<u64, (u32, u64)>,
    pending: Vec<Request>,
    /// (client, number) -> value, answered.
    answered: BTreeMap<(u32, u64), u64>,
    next_number: BTreeMap<u32, u64>,
    snapshot_every: u64,
    members: Members,
}

fn config(id: u64, snapshot_every: u64) -> Config {
    Config {
        sync: false,
        snapshot_every,
        fixed_timeouts: true,
        ..Config::new(id)
    }
}

impl World {
    fn new(seed: u64, n: u64, snapshot_every: u64) -> World {
        let ids: Vec<u64> = (1..=n).collect();
        let members: Members = ids
            .iter()
            .map(|&i| (i, format!("10.0.0.{i}:7421")))
            .collect();
        let mut w = World {
            ids: ids.clone(),
            dirs: BTreeMap::new(),
            live: BTreeMap::new(),
            cut: BTreeSet::new(),
            net: Vec::new(),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            leaders: BTreeMap::new(),
            log: BTreeMap::new(),
            pending: Vec::new(),
            answered: BTreeMap::new(),
            next_number: BTreeMap::new(),
            snapshot_every,
            members,
        };
        for id in ids {
            w.dirs.insert(id, tempfile::tempdir().unwrap());
            w.start(id);
        }
        w
    }

    fn start(&mut self, id: u64) {
        let voters = self.ids.clone();
        let (r, _) = Replica::open(
            self.dirs[&id].path(),
            &config(id, self.snapshot_every),
            &voters,
            &self.members,
            Counter::default(),
        )
        .unwrap();
        self.live.insert(id, r);
    }

    fn crash(&mut self, id: u64) {
        self.live.remove(&id);
        // Its proposals die with it.
        for r in &mut self.pending {
            r.tickets.retain(|&(rep, _)| rep != id);
        }
    }

    fn poll(&mut self, id: u64) {
        let Some(r) = self.live.get_mut(&id) else {
            return;
        };
        let p = r.poll().unwrap();
        if r.is_leader() {
            let term = r.term();
            let prev = *self.leaders.entry(term).or_insert(id);
            assert_eq!(prev, id, "two leaders in term {term}: {prev} and {id}");
        }
        self.net.extend(p.messages);
        for a in p.applied {
            let Some(out) = a.output else {
                continue;
            };
            let what = (out.client, out.number);
            let before = *self.log.entry(out.index).or_insert(what);
            assert_eq!(
                before, what,
                "replica {id} applied {what:?} at {}, another applied {before:?}",
                out.index
            );
            if let Some(t) = a.ticket {
                if let Some(i) = self
                    .pending
                    .iter()
                    .position(|r| r.tickets.contains(&(id, t)))
                {
                    let r = self.pending.swap_remove(i);
                    assert_eq!(
                        (r.client, r.number),
                        what,
                        "ticket {t} answered another request"
                    );
                    self.answered.insert(what, r.value);
                }
            }
        }
        for t in p.lost {
            for r in &mut self.pending {
                r.tickets.remove(&(id, t));
            }
        }
    }

    fn poll_all(&mut self) {
        for id in self.ids.clone() {
            self.poll(id);
        }
    }

    fn deliver(&mut self, i: usize) {
        let m = self.net.swap_remove(i);
        if self.cut.contains(&m.from) || self.cut.contains(&m.to) || !self.live.contains_key(&m.to)
        {
            self.lose(&m);
            return;
        }
        let (from, to) = (m.from, m.to);
        let snapshot = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
        self.live.get_mut(&to).unwrap().step(m);
        self.poll(to);
        if snapshot {
            if let Some(r) = self.live.get_mut(&from) {
                r.report_snapshot(to, true);
            }
        }
    }

    /// `m` never arrives: a transport knows when a snapshot could not be
    /// sent.
    fn lose(&mut self, m: &Message) {
        if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
            if let Some(r) = self.live.get_mut(&m.from) {
                r.report_snapshot(m.to, false);
            }
        }
    }

    /// A client sends a new request, or one not answered yet again, to a
    /// replica that says it leads.
    fn propose(&mut self) {
        self.propose_new(true);
    }

    fn propose_new(&mut self, allow_new: bool) {
        let leaders: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, r)| r.is_leader())
            .map(|(&i, _)| i)
            .collect();
        if leaders.is_empty() {
            return;
        }
        let to = leaders[self.rng.below(leaders.len() as u64) as usize];
        let idx = if allow_new && self.pending.len() < 8 && self.rng.chance(600) {
            let client = self.rng.below(3) as u32 + 1;
            let n = self.next_number.entry(client).or_insert(0);
            // Each client has one request out at a time, as a node's call
            // has one id.
            if self.pending.iter().any(|r| r.client == client) {
                return;
            }
            *n += 1;
            self.pending.push(Request {
                client,
                number: *n,
                value: self.rng.below(1000) + 1,
                tickets: BTreeSet::new(),
            });
            self.pending.len() - 1
        } else if self.pending.is_empty() {
            return;
        } else {
            self.rng.below(self.pending.len() as u64) as usize
        };
        let r = &self.pending[idx];
        let cmd = command(r.client, r.number, r.value);
        if let Ok(t) = self.live.get_mut(&to).unwrap().propose(cmd) {
            self.pending[idx].tickets.insert((to, t));
        }
        self.poll(to);
    }

    fn step(&mut self) {
        let r = self.rng.below(1000);
        let n = self.ids.len() as u64;
        let pick = self.ids[self.rng.below(n) as usize];
        match r {
            0..=399 if !self.net.is_empty() => {
                let i = self.rng.below(self.net.len() as u64) as usize;
                self.deliver(i);
            }
            400..=439 if !self.net.is_empty() => {
                let i = self.rng.below(self.net.len() as u64) as usize;
                let m = self.net.swap_remove(i);
                self.lose(&m);
            }
            440..=459 if !self.net.is_empty() => {
                let i = self.rng.below(self.net.len() as u64) as usize;
                let m = self.net[i].clone();
                self.net.push(m);
            }
            460..=749 => {
                if let Some(rep) = self.live.get_mut(&pick) {
                    rep.tick();
                    self.poll(pick);
                }
            }
            750..=939 => self.propose(),
            940..=949 if self.live.contains_key(&pick) => self.crash(pick),
            950..=979 if !self.live.contains_key(&pick) => self.start(pick),
            980..=986 => {
                self.cut.insert(pick);
            }
            987..=996 => {
                self.cut.remove(&pick);
            }
            997 => {
                // Every referee restarts at once.
                for id in self.ids.clone() {
                    self.crash(id);
                }
                for id in self.ids.clone() {
                    self.start(id);
                }
            }
            _ => {}
        }
    }

    /// Heals everything and runs until every request is answered, one
    /// more request made then is answered too, and every replica has
    /// applied everything; fails if that does not come.
    fn settle(&mut self) {
        self.cut.clear();
        for id in self.ids.clone() {
            if !self.live.contains_key(&id) {
                self.start(id);
            }
        }
        let mut fresh = None;
        for round in 0..20_000 {
            if self.pending.is_empty() && fresh.is_none() {
                // A client not used by the schedule.
                let n = self.next_number.entry(99).or_insert(0);
                *n += 1;
                fresh = Some(*n);
                self.pending.push(Request {
                    client: 99,
                    number: *n,
                    value: 1,
                    tickets: BTreeSet::new(),
                });
            }
            while !self.net.is_empty() {
                self.deliver(0);
            }
            for id in self.ids.clone() {
                self.live.get_mut(&id).unwrap().tick();
            }
            self.poll_all();
            if round % 5 == 0 {
                self.propose_new(false);
            }
            let commit = self.live.values().map(|r| r.commit()).max().unwrap_or(0);
            let done = self.pending.is_empty()
                && fresh.is_some_and(|n| self.answered.contains_key(&(99, n)))
                && self.live.values().all(|r| r.applied() == commit)
                && self.live.values().any(|r| r.is_leader());
            if done {
                return;
            }
        }
        let state: Vec<_> = self
            .live
            .values()
            .map(|r| (r.id(), r.is_leader(), r.term(), r.commit(), r.applied()))
            .collect();
        panic!(
            "no progress after healing: {} requests unanswered; replicas {state:?}",
            self.pending.len()
        );
    }

    fn check_final(&self) {
        let sum: u64 = self.answered.values().sum();
        let first = self.live.values().next().unwrap().machine().clone();
        for r in self.live.values() {
            assert_eq!(r.machine(), &first, "replica {} differs", r.id());
        }
        assert_eq!(first.total, sum, "answered additions lost or counted twice");
        for &(client, number) in self.answered.keys() {
            assert!(first.seen[&client] >= number);
        }
    }
}

fn run(seed: u64, n: u64, steps: u64, snapshot_every: u64) {
    let mut w = World::new(seed, n, snapshot_every);
    for _ in 0..steps {
        w.step();
    }
    w.settle();
    w.check_final();
}

#[test]
fn three_replicas_survive_loss_crashes_and_partitions() {
    for seed in 1..=60 {
        run(seed, 3, 5000, 25);
    }
}

#[test]
fn five_replicas_survive_loss_crashes_and_partitions() {
    for seed in 100..=110 {
        run(seed, 5, 3000, 40);
    }
}

/// With a minority left, nothing is answered; once a majority is back,
/// everything is.
#[test]
fn a_minority_answers_nothing() {
    let mut w = World::new(7, 3, 1000);
    w.settle();
    let leader = *w.live.iter().find(|(_, r)| r.is_leader()).unwrap().0;
    let others: Vec<u64> = w.ids.iter().copied().filter(|&i| i != leader).collect();
    for &o in &others {
        w.crash(o);
    }
    let answered = w.answered.len();
    for _ in 0..2000 {
        w.step_without_faults();
    }
    assert_eq!(w.answered.len(), answered, "a minority answered a request");
    // It gives up leading once it hears from no majority (check_quorum).
    assert!(!w.live[&leader].is_leader(), "a lone replica still leads");
    w.settle();
    w.check_final();
    assert!(w.answered.len() > answered);
}

impl World {
    /// Deliveries, ticks and proposals only.
    fn step_without_faults(&mut self) {
        let n = self.ids.len() as u64;
        let pick = self.ids[self.rng.below(n) as usize];
        match self.rng.below(3) {
            0 if !self.net.is_empty() => self.deliver(0),
            1 => {
                if let Some(r) = self.live.get_mut(&pick) {
                    r.tick();
                    self.poll(pick);
                }
            }
            _ => self.propose(),
        }
    }
}

/// Referees join and leave one at a time; the log goes on, and the new
/// referee catches up by snapshot.
#[test]
fn membership_changes_keep_the_log() {
    let mut w = World::new(11, 3, 20);
    for _ in 0..300 {
        w.step_without_faults();
    }
    w.settle();
    // Referee 4 joins: it starts empty and learns everything.
    w.ids.push(4);
    w.dirs.insert(4, tempfile::tempdir().unwrap());
    let (r, o) = Replica::open(
        w.dirs[&4].path(),
        &config(4, 20),
        &[],
        &Members::new(),
        Counter::default(),
    )
    .unwrap();
    assert!(o.fresh);
    w.live.insert(4, r);
    w.change(&Change::Add {
        id: 4,
        addr: "10.0.0.4:7421".into(),
    });
    for _ in 0..300 {
        w.step_without_faults();
    }
    w.settle();
    w.check_final();
    for r in w.live.values() {
        assert_eq!(r.voters(), vec![1, 2, 3, 4], "replica {}", r.id());
        assert_eq!(r.members()[&4], "10.0.0.4:7421");
    }
    // Referee 1 leaves; the others go on without it.
    w.change(&Change::Remove { id: 1 });
    // Once the others applied it, 1 gets nothing more.
    for _ in 0..200 {
        w.step_without_faults();
    }
    w.crash(1);
    w.ids.retain(|&i| i != 1);
    for _ in 0..300 {
        w.step_without_faults();
    }
    w.settle();
    w.check_final();
    for r in w.live.values() {
        assert_eq!(r.voters(), vec![2, 3, 4]);
        assert!(!r.members().contains_key(&1));
    }
}

impl World {
    /// Proposes `c` on the leader and runs until it is applied everywhere.
    fn change(&mut self, c: &Change) {
        for _ in 0..1000 {
            let leader = self.live.iter_mut().find(|(_, r)| r.is_leader());
            if let Some((&id, r)) = leader {
                match (r.propose_change(c), c) {
                    (Ok(_), _) => {
                        self.poll(id);
                        return;
                    }
                    (Err(ProposeError::Refused(_)), Change::Remove { id: gone }) if *gone == id => {
                        let to = self.ids.iter().copied().find(|&i| i != id).unwrap();
                        r.transfer_leader(to);
                        self.poll(id);
                    }
                    _ => {}
                }
            }
            self.settle();
        }
        panic!("membership change {c:?} never proposed");
    }
}

#[test]
fn a_follower_refuses_proposals_and_names_the_leader() {
    let mut w = World::new(3, 3, 1000);
    w.settle();
    let leader = *w.live.iter().find(|(_, r)| r.is_leader()).unwrap().0;
    let f = w.ids.iter().copied().find(|&i| i != leader).unwrap();
    let r = w.live.get_mut(&f).unwrap();
    assert_eq!(
        r.propose(command(1, 1, 1)),
        Err(ProposeError::NotLeader(Some(leader)))
    );
}

/// Found by the review of 3e25eae: while a leader hands leadership to a
/// referee that cannot take it (cut off here), raft-rs drops every
/// proposal, yet the replica still leads; an election timeout later the
/// transfer is aborted and the same leader goes on. The replica now says
/// so ([`Replica::transferring`], [`ProposeError::Transferring`]) instead
/// of taking a proposal and losing it, so `dipcd` stops serving for the
/// transfer and nodes send their calls again when it ends.
#[test]
fn a_transfer_that_aborts_drops_no_proposal_silently() {
    let mut w = World::new(11, 3, 1000);
    w.settle();
    let leader = *w.live.iter().find(|(_, r)| r.is_leader()).unwrap().0;
    let target = w.ids.iter().copied().find(|&i| i != leader).unwrap();
    w.cut.insert(target);
    w.live.get_mut(&leader).unwrap().transfer_leader(target);
    w.poll(leader);
    let r = w.live.get_mut(&leader).unwrap();
    assert!(r.is_leader(), "still leads during the transfer");
    assert_eq!(r.transferring(), Some(target));
    assert!(matches!(
        r.propose(command(9, 1, 1)),
        Err(ProposeError::Transferring(t)) if t == target
    ));
    assert!(matches!(
        r.propose_change(&Change::Remove { id: target }),
        Err(ProposeError::Transferring(_))
    ));
    // An election timeout later the transfer is aborted: the same leader
    // takes proposals again, and they commit.
    for _ in 0..40 {
        for id in w.ids.clone() {
            if let Some(r) = w.live.get_mut(&id) {
                r.tick();
            }
            w.poll(id);
        }
        while !w.net.is_empty() {
            w.deliver(0);
        }
    }
    let r = w.live.get_mut(&leader).unwrap();
    assert!(r.is_leader() && r.transferring().is_none());
    let t = r
        .propose(command(9, 2, 1))
        .expect("a proposal after the abort");
    assert!(t > 0);
}
