//! A linearizability checker: the Wing–Gong algorithm with Lowe's memoization.
//!
//! A history is a set of operations, each with the time it was called and either the time it
//! returned and its answer, or nothing at all: an operation whose outcome is unknown ("maybe":
//! it timed out, or the server said `outcome_unknown`) may have taken effect at any moment after
//! its call, or never, and its answer is unconstrained. The history is linearizable when there
//! is one sequential order of (all answered operations and some maybe operations) that
//! respects real time — an operation that returned before another was called comes first — in
//! which the sequential [`Model`] gives every answered operation the answer it really got.
//!
//! The search walks a linked list of call and return entries in time order. At a call, it tries
//! to linearize that operation now (every answer the model allows that matches the recorded one)
//! and restarts from the front; at a return of an operation not yet linearized, it backtracks.
//! Lowe's improvement: a configuration (set of linearized operations, model state) already
//! explored is never explored again, which turns the exponential search into one bounded by the
//! number of distinct configurations. The search counts its steps and gives up past a budget,
//! and then says so ([`Verdict::GaveUp`]) instead of claiming anything.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Debug;
    type Ret: PartialEq + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Every answer `op` may give in `state`, each with the state it leaves. Usually one;
    /// more where the specification leaves a choice, none where `op` cannot happen at all.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Vec<(Self::Ret, Self::State)>;
}

/// One operation of a history. Times are in any unit, from any origin, the same for all.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<O, R> {
    pub op: O,
    pub call: u64,
    /// The return time and the answer; `None` when the outcome is unknown.
    pub ret: Option<(u64, R)>,
}

/// What the checker concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A witness: the indices of the linearized operations in order (maybe-operations that are
    /// left out never took effect).
    Linearizable { order: Vec<usize> },
    /// No order exists. `longest` is the longest prefix of an order the search could build:
    /// the operation that should come next in it is where the history goes wrong.
    NotLinearizable { longest: Vec<usize> },
    /// The search used up its step budget without an answer.
    GaveUp { steps: u64 },
}

/// A set of operation indices, as bits (the memo key needs to be cheap to hash and compare).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Head,
    Call(usize),
    Return(usize),
}

/// The doubly linked list of entries, with removal and exact undo ("dancing links").
struct List {
    entries: Vec<Entry>,
    next: Vec<Option<usize>>,
    prev: Vec<usize>,
    call_of: Vec<usize>,
    return_of: Vec<Option<usize>>,
}

impl List {
    fn new<O, R>(history: &[Operation<O, R>]) -> List {
        // (time, calls before returns at the same instant: equal times count as concurrent).
        let mut timed: Vec<(u64, u8, Entry)> = Vec::with_capacity(2 * history.len());
        for (i, operation) in history.iter().enumerate() {
            timed.push((operation.call, 0, Entry::Call(i)));
            if let Some((at, _)) = &operation.ret {
                timed.push((*at, 1, Entry::Return(i)));
            }
        }
        timed.sort_by_key(|&(at, order, entry)| {
            let index = match entry {
                Entry::Call(i) | Entry::Return(i) => i,
                Entry::Head => 0,
            };
            (at, order, index)
        });
        let mut entries = vec![Entry::Head];
        entries.extend(timed.into_iter().map(|(_, _, e)| e));
        let n = entries.len();
        let next = (0..n).map(|i| if i + 1 < n { Some(i + 1) } else { None }).collect();
        let prev = (0..n).map(|i| i.saturating_sub(1)).collect();
        let mut call_of = vec![0; history.len()];
        let mut return_of = vec![None; history.len()];
        for (at, entry) in entries.iter().enumerate() {
            match *entry {
                Entry::Call(i) => call_of[i] = at,
                Entry::Return(i) => return_of[i] = Some(at),
                Entry::Head => {}
            }
        }
        List { entries, next, prev, call_of, return_of }
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        if let Some(n) = n {
            self.prev[n] = p;
        }
    }

    /// Undoes [`List::unlink`]; undos must come in the reverse order of the unlinks.
    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = Some(at);
        if let Some(n) = n {
            self.prev[n] = at;
        }
    }

    /// Takes operation `i` out of the list (its call, and its return if it has one).
    fn lift(&mut self, i: usize) {
        self.unlink(self.call_of[i]);
        if let Some(r) = self.return_of[i] {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, i: usize) {
        if let Some(r) = self.return_of[i] {
            self.relink(r);
        }
        self.relink(self.call_of[i]);
    }
}

/// Checks `history` against `model`, taking at most `max_steps` search steps.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Op, M::Ret>], max_steps: u64) -> Verdict {
    let mut list = List::new(history);
    let mut remaining_answered = history.iter().filter(|o| o.ret.is_some()).count();
    let mut state = model.init();
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // Each frame: the operation linearized, the state before it, and which of the model's
    // answers was taken (so backtracking can try the next one).
    let mut stack: Vec<(usize, M::State, usize)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut entry = list.next[0];
    let mut steps = 0u64;

    // Linearizes operation `i` now with the first fitting answer from `from` on that leads to
    // an unexplored configuration; returns whether it did.
    let try_op = |i: usize,
                  from: usize,
                  state: &mut M::State,
                  linearized: &mut Bits,
                  seen: &mut HashSet<(Bits, M::State)>,
                  stack: &mut Vec<(usize, M::State, usize)>|
     -> bool {
        let outcomes = model.step(state, &history[i].op);
        for (choice, (ret, next)) in outcomes.into_iter().enumerate().skip(from) {
            if let Some((_, got)) = &history[i].ret {
                if *got != ret {
                    continue;
                }
            }
            let mut with = linearized.clone();
            with.set(i);
            if seen.insert((with.clone(), next.clone())) {
                stack.push((i, std::mem::replace(state, next), choice));
                *linearized = with;
                return true;
            }
        }
        false
    };

    loop {
        if remaining_answered == 0 {
            return Verdict::Linearizable { order: stack.iter().map(|f| f.0).collect() };
        }
        steps += 1;
        if steps > max_steps {
            return Verdict::GaveUp { steps: max_steps };
        }
        match entry.map(|at| list.entries[at]) {
            Some(Entry::Call(i)) => {
                if try_op(i, 0, &mut state, &mut linearized, &mut seen, &mut stack) {
                    list.lift(i);
                    if history[i].ret.is_some() {
                        remaining_answered -= 1;
                    }
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|f| f.0).collect();
                    }
                    entry = list.next[0];
                } else {
                    entry = list.next[entry.unwrap_or(0)];
                }
            }
            // A return of an operation not linearized yet (or the end of the list): undo the
            // latest choice and try the next one.
            _ => {
                let Some((i, before, choice)) = stack.pop() else {
                    return Verdict::NotLinearizable { longest };
                };
                state = before;
                linearized.clear(i);
                list.unlift(i);
                if history[i].ret.is_some() {
                    remaining_answered += 1;
                }
                if try_op(i, choice + 1, &mut state, &mut linearized, &mut seen, &mut stack) {
                    list.lift(i);
                    if history[i].ret.is_some() {
                        remaining_answered -= 1;
                    }
                    entry = list.next[0];
                } else {
                    entry = list.next[list.call_of[i]];
                }
            }
        }
    }
}

/// The same question answered by trying every order: exponential, for testing [`check`] on
/// small histories only.
pub fn brute_force<M: Model>(model: &M, history: &[Operation<M::Op, M::Ret>]) -> bool {
    fn go<M: Model>(model: &M, history: &[Operation<M::Op, M::Ret>], done: &mut Vec<bool>, state: &M::State) -> bool {
        let pending: Vec<usize> = (0..history.len()).filter(|&i| !done[i]).collect();
        if pending.iter().all(|&i| history[i].ret.is_none()) {
            return true;
        }
        for &i in &pending {
            // `i` may go next only if no pending operation returned before `i` was called.
            let blocked = pending.iter().any(|&j| history[j].ret.as_ref().is_some_and(|(at, _)| *at < history[i].call));
            if blocked {
                continue;
            }
            for (ret, next) in model.step(state, &history[i].op) {
                if history[i].ret.as_ref().is_some_and(|(_, got)| *got != ret) {
                    continue;
                }
                done[i] = true;
                let ok = go(model, history, done, &next);
                done[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(model, history, &mut vec![false; history.len()], &model.init())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// A register of small integers with a read that may also answer "anything" when the
    /// register holds 3 (to exercise models with more than one allowed answer).
    struct Register;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum RegOp {
        Write(u8),
        Read,
    }

    impl Model for Register {
        type State = u8;
        type Op = RegOp;
        type Ret = Option<u8>;
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, state: &u8, op: &RegOp) -> Vec<(Option<u8>, u8)> {
            match op {
                RegOp::Write(v) => vec![(None, *v)],
                RegOp::Read if *state == 3 => vec![(Some(3), 3), (Some(9), 0)],
                RegOp::Read => vec![(Some(*state), *state)],
            }
        }
    }

    fn op(op: RegOp, call: u64, ret: Option<(u64, Option<u8>)>) -> Operation<RegOp, Option<u8>> {
        Operation { op, call, ret }
    }

    fn write(v: u8, call: u64, ret: u64) -> Operation<RegOp, Option<u8>> {
        op(RegOp::Write(v), call, Some((ret, None)))
    }

    fn read(got: u8, call: u64, ret: u64) -> Operation<RegOp, Option<u8>> {
        op(RegOp::Read, call, Some((ret, Some(got))))
    }

    fn verdict(history: &[Operation<RegOp, Option<u8>>]) -> bool {
        let v = check(&Register, history, 1_000_000);
        assert_eq!(matches!(v, Verdict::Linearizable { .. }), brute_force(&Register, history), "{v:?} {history:?}");
        match v {
            Verdict::Linearizable { .. } => true,
            Verdict::NotLinearizable { .. } => false,
            Verdict::GaveUp { .. } => panic!("gave up on a tiny history"),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(verdict(&[write(1, 0, 1), read(1, 2, 3)]));
        assert!(!verdict(&[write(1, 0, 1), read(0, 2, 3)]), "a stale read after a completed write");
        assert!(verdict(&[]));
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // The read overlaps the write: it may see the old or the new value.
        assert!(verdict(&[write(1, 0, 10), read(0, 1, 2)]));
        assert!(verdict(&[write(1, 0, 10), read(1, 1, 2)]));
        // Two overlapping writes, then reads that agree on one order.
        assert!(verdict(&[write(1, 0, 5), write(2, 1, 6), read(1, 7, 8), read(1, 9, 10)]));
        // ... and reads that would need both orders at once.
        assert!(!verdict(&[write(1, 0, 5), write(2, 1, 6), read(1, 7, 8), read(2, 9, 10)]));
    }

    #[test]
    fn the_found_order_is_a_witness() {
        let history = [write(1, 0, 5), write(2, 1, 6), read(1, 7, 8)];
        let Verdict::Linearizable { order } = check(&Register, &history, 1000) else { panic!() };
        assert_eq!(order, vec![1, 0, 2]);
    }

    #[test]
    fn a_read_cannot_go_back_in_time() {
        // Once a read saw 2, a later read cannot see the older 1.
        assert!(!verdict(&[write(1, 0, 1), write(2, 2, 20), read(2, 3, 4), read(1, 5, 6)]));
    }

    #[test]
    fn maybe_operations_may_or_may_not_have_happened() {
        let maybe = |v, call| op(RegOp::Write(v), call, None);
        // Seen ...
        assert!(verdict(&[maybe(1, 0), read(1, 5, 6)]));
        // ... or not ...
        assert!(verdict(&[maybe(1, 0), read(0, 5, 6)]));
        // ... but not before it was called, and once seen it stays.
        assert!(!verdict(&[read(1, 0, 1), maybe(1, 2)]));
        assert!(!verdict(&[maybe(1, 0), read(1, 5, 6), read(0, 7, 8)]));
        // A maybe-write may land long after its call, between two later writes.
        assert!(verdict(&[maybe(1, 0), write(2, 5, 6), read(1, 7, 8)]));
        assert!(!verdict(&[maybe(1, 0), write(2, 5, 6), read(1, 7, 8), read(2, 9, 10)]));
    }

    #[test]
    fn every_allowed_answer_is_tried() {
        // In state 3 a read may answer 9 and reset the register to 0.
        assert!(verdict(&[write(3, 0, 1), read(9, 2, 3), read(0, 4, 5)]));
        assert!(verdict(&[write(3, 0, 1), read(3, 2, 3), read(3, 4, 5)]));
        assert!(!verdict(&[write(3, 0, 1), read(9, 2, 3), read(3, 4, 5)]));
    }

    #[test]
    fn the_budget_is_reported_not_hidden() {
        let history: Vec<_> = (0..40).map(|i| op(RegOp::Write(i as u8 % 4), 0, None)).chain([read(1, 1, 2)]).collect();
        assert_eq!(check(&Register, &history, 10), Verdict::GaveUp { steps: 10 });
    }

    #[test]
    fn not_linearizable_names_how_far_it_got() {
        let history = [write(1, 0, 1), read(1, 2, 3), read(0, 4, 5)];
        let Verdict::NotLinearizable { longest } = check(&Register, &history, 1000) else { panic!() };
        assert_eq!(longest, vec![0, 1]);
    }

    /// Random small histories of a register, some linearizable and some not: the search and
    /// brute force must agree on every one.
    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..20_000 {
            let n = 1 + rng.next_u32() as usize % 7;
            let history: Vec<_> = (0..n)
                .map(|_| {
                    let call = u64::from(rng.next_u32() % 20);
                    let ret = call + u64::from(rng.next_u32() % 8);
                    let value = (rng.next_u32() % 4) as u8;
                    match rng.next_u32() % 7 {
                        0 => op(RegOp::Write(value), call, None),
                        1..=3 => write(value, call, ret),
                        _ => read(value, call, ret),
                    }
                })
                .collect();
            if verdict(&history) {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 1000 && no > 1000, "both kinds were generated: {yes} / {no}");
    }
}
