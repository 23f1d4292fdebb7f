//! Fused evaluation of AND / OR / ANDNOT trees over bitmaps, one 64K block at a time.
//!
//! No intermediate bitmap is built: for each container key the whole tree is evaluated into a
//! few 8 KiB scratch blocks that stay in L1, and helper threads join the calling thread on the
//! keys once the keys left are worth waking them for (`share::map`). AND operands are visited
//! cheapest first and stop at the first empty block; once an AND's running result, or an
//! exclusion's left side, is down to a few hundred ids, the remaining operands are only looked
//! up at those ids (`Node::filter`), never computed over the block; OR accumulates every operand into one block; counting never
//! allocates result containers.

use std::borrow::Cow;

use crate::container::{
    difference_sorted, intersect_sorted, runs_and, runs_andnot, runs_or, union_sorted, Container, Run,
};
use crate::set::RoaringSet;
use crate::share;
pub use crate::share::Threads;
use crate::words::{self, Words};

/// What is known of one block of a computed leaf before computing it (from a zone map, say).
pub enum Chunk<'a> {
    /// The block holds no ids.
    Empty,
    /// The block holds exactly the ids of this container.
    Same(&'a Container),
    /// The block must be computed.
    Compute,
}

/// A leaf computed block by block (a range over a bit-sliced column, for example).
pub trait ChunkSource: Sync {
    /// The keys whose blocks may be non-empty, ascending.
    fn keys(&self) -> Vec<u16>;
    /// An upper estimate of the number of ids, to order AND operands.
    fn estimate(&self) -> u64;
    /// Writes the block for `key` into `out`; returns `false` when it is empty (then `out` is unspecified).
    fn fill(&self, key: u16, out: &mut Words, scratch: &mut Scratch) -> bool;
    /// Block `key` as runs, when the source computes it as runs (then the operations that
    /// follow may stay on runs); by default `None`, and the block is filled as a bitset.
    fn runs(&self, _key: u16) -> Option<Vec<Run>> {
        None
    }
    /// What is known of block `key` without computing it; by default nothing.
    fn classify(&self, _key: u16) -> Chunk<'_> {
        Chunk::Compute
    }
    /// The values of `cand` (ascending) that are (`keep`) or are not (`!keep`) in block `key`.
    /// By default the block is computed and looked up; a source may look only at `cand`.
    fn filter(&self, key: u16, cand: &[u16], keep: bool, scratch: &mut Scratch) -> Vec<u16> {
        match self.classify(key) {
            Chunk::Empty => none_or_all(cand, keep),
            Chunk::Same(c) => filter_container(cand, c, keep),
            Chunk::Compute => filter_filled(self, key, cand, keep, scratch),
        }
    }
}

/// [`ChunkSource::filter`] by computing the whole block and looking the values up in it.
pub fn filter_filled<S: ChunkSource + ?Sized>(
    src: &S,
    key: u16,
    cand: &[u16],
    keep: bool,
    scratch: &mut Scratch,
) -> Vec<u16> {
    let mut w = scratch.get();
    let out = if src.fill(key, &mut w, scratch) {
        filter_words(cand, &w, keep)
    } else {
        none_or_all(cand, keep)
    };
    scratch.put(w);
    out
}

/// The values of `cand` in an empty block (`keep`: none) or not in it (all).
pub fn none_or_all(cand: &[u16], keep: bool) -> Vec<u16> {
    if keep {
        Vec::new()
    } else {
        cand.to_vec()
    }
}

/// An expression over sets.
pub enum Node<'a> {
    /// No ids.
    Empty,
    /// The ids `0..n`.
    Universe(u64),
    /// A stored set.
    Set(&'a RoaringSet),
    /// A set owned by the tree (a precomputed orders condition, for example).
    Owned(RoaringSet),
    /// A set computed block by block.
    Computed(Box<dyn ChunkSource + 'a>),
    /// Intersection of all operands.
    And(Vec<Node<'a>>),
    /// Union of all operands.
    Or(Vec<Node<'a>>),
    /// Left minus right.
    AndNot(Box<Node<'a>>, Box<Node<'a>>),
}

/// Reusable 8 KiB blocks for one worker.
#[derive(Default)]
pub struct Scratch {
    pool: Vec<Box<Words>>,
}

impl Scratch {
    /// A block with unspecified contents.
    pub fn get(&mut self) -> Box<Words> {
        self.pool.pop().unwrap_or_else(words::zeroed)
    }

    /// A zeroed block: a pooled one cleared, or a fresh one from the allocator (already zero,
    /// so not cleared a second time).
    pub fn get_zeroed(&mut self) -> Box<Words> {
        match self.pool.pop() {
            Some(mut b) => {
                b.fill(0);
                b
            }
            None => words::zeroed(),
        }
    }

    /// Returns a block to the pool.
    pub fn put(&mut self, b: Box<Words>) {
        if self.pool.len() < 16 {
            self.pool.push(b);
        }
    }
}

/// The value of a subtree for one key.
enum Val<'a> {
    Empty,
    Full,
    C(&'a Container),
    Arr(Vec<u16>),
    W(Box<Words>),
    /// An owned run container (the result of run-only operations), never empty or full.
    Own(Container),
}

/// A run-only result as a value.
fn runs_val<'a>(r: Vec<Run>) -> Val<'a> {
    match r.as_slice() {
        [] => Val::Empty,
        [(0, 0xFFFF)] => Val::Full,
        _ => Val::Own(Container::Run(r)),
    }
}

impl Val<'_> {
    fn array(&self) -> Option<&[u16]> {
        match self {
            Val::C(Container::Array(a)) => Some(a),
            Val::Arr(a) => Some(a),
            _ => None,
        }
    }

    fn runs(&self) -> Option<&[Run]> {
        match self {
            Val::C(Container::Run(r)) | Val::Own(Container::Run(r)) => Some(r),
            _ => None,
        }
    }

    /// Both sides are run containers: operate on the runs, without a bitset.
    fn both_runs(a: &Val<'_>, b: &Val<'_>) -> bool {
        a.runs().is_some() && b.runs().is_some()
    }

    /// Writes this value as a block into `out`.
    fn write(&self, out: &mut Words) {
        match self {
            Val::Empty => out.fill(0),
            Val::Full => out.fill(!0),
            Val::C(c) => c.write_words(out),
            Val::Own(c) => c.write_words(out),
            Val::Arr(a) => {
                out.fill(0);
                set_bits(out, a);
            }
            Val::W(w) => out.copy_from_slice(&w[..]),
        }
    }

    /// This value as a new scratch block: a bitset is copied, anything else is set into a
    /// zeroed block.
    fn to_block(&self, s: &mut Scratch) -> Box<Words> {
        match self {
            Val::W(_) | Val::C(Container::Bits(..)) | Val::Own(Container::Bits(..)) | Val::Full => {
                let mut w = s.get();
                self.write(&mut w);
                w
            }
            _ => {
                let mut w = s.get_zeroed();
                self.or_into(&mut w);
                w
            }
        }
    }

    fn or_into(&self, out: &mut Words) {
        match self {
            Val::Empty => {}
            Val::Full => out.fill(!0),
            Val::C(c) => c.or_into_words(out),
            Val::Own(c) => c.or_into_words(out),
            Val::Arr(a) => set_bits(out, a),
            Val::W(w) => words::or_assign(out, w),
        }
    }

    fn and_into(&self, out: &mut Words) {
        match self {
            Val::Empty => out.fill(0),
            Val::Full => {}
            Val::C(c) => c.and_into_words(out),
            Val::Own(c) => c.and_into_words(out),
            Val::Arr(a) => {
                let mut keep = [0u64; words::WORDS];
                set_bits(&mut keep, a);
                words::and_assign_nocount(out, &keep);
            }
            Val::W(w) => words::and_assign_nocount(out, w),
        }
    }

    fn andnot_into(&self, out: &mut Words) {
        match self {
            Val::Empty => {}
            Val::Full => out.fill(0),
            Val::C(c) => c.andnot_into_words(out),
            Val::Own(c) => c.andnot_into_words(out),
            Val::Arr(a) => {
                for &v in a.iter() {
                    out[v as usize / 64] &= !(1 << (v % 64));
                }
            }
            Val::W(w) => words::andnot_assign(out, w),
        }
    }

    fn release(self, s: &mut Scratch) {
        if let Val::W(w) | Val::Own(Container::Bits(w, _)) = self {
            s.put(w);
        }
    }

    /// An owned bitset as a scratch block, to be changed in place (its count is dropped).
    fn unown(self) -> Self {
        match self {
            Val::Own(Container::Bits(w, _)) => Val::W(w),
            other => other,
        }
    }

    /// A block written by a fused kernel, with its population `n`: empty, full, an array when
    /// it holds few ids, else an owned bitset that keeps its count (so that a result is not
    /// counted twice).
    fn counted(w: Box<Words>, n: u32, s: &mut Scratch) -> Self {
        match n {
            0 => {
                s.put(w);
                Val::Empty
            }
            65536 => {
                s.put(w);
                Val::Full
            }
            n if n as usize <= RESULT_ARRAY_MAX => {
                let out = Val::Arr(words::to_array(&w, n));
                s.put(w);
                out
            }
            n => Val::Own(Container::Bits(w, n)),
        }
    }
}

/// The values of `a` whose bit in `w` equals `keep`, branch-free.
fn filter_words(a: &[u16], w: &Words, keep: bool) -> Vec<u16> {
    let mut out = vec![0u16; a.len()];
    let mut k = 0usize;
    for &v in a {
        out[k] = v;
        k += (words::get(w, v) == keep) as usize;
    }
    out.truncate(k);
    out
}

/// The values of `a` that are (`keep`) or are not (`!keep`) in `other`.
fn filter_val(a: &[u16], other: &Val<'_>, keep: bool) -> Vec<u16> {
    match other {
        Val::C(Container::Bits(w, _)) | Val::W(w) | Val::Own(Container::Bits(w, _)) => filter_words(a, w, keep),
        Val::C(Container::Array(o)) | Val::Arr(o) => {
            if keep {
                intersect_sorted(a, o)
            } else {
                difference_sorted(a, o)
            }
        }
        Val::Empty => {
            if keep {
                Vec::new()
            } else {
                a.to_vec()
            }
        }
        Val::Full => {
            if keep {
                a.to_vec()
            } else {
                Vec::new()
            }
        }
        Val::C(Container::Run(r)) | Val::Own(Container::Run(r)) => filter_runs(a, r, keep),
        Val::Own(c) => a.iter().copied().filter(|&v| c.contains(v) == keep).collect(),
    }
}

/// The values of `a` (ascending) that are (`keep`) or are not in `runs`: one merge walk, or a
/// search per value when there are far more runs than values.
fn filter_runs(a: &[u16], runs: &[Run], keep: bool) -> Vec<u16> {
    let mut out = Vec::with_capacity(a.len());
    if runs.len() > 32 * a.len() {
        out.extend(a.iter().copied().filter(|&v| crate::container::run_index(runs, v).is_ok() == keep));
        return out;
    }
    let mut r = 0;
    for &v in a {
        while r < runs.len() && runs[r].1 < v {
            r += 1;
        }
        if (r < runs.len() && runs[r].0 <= v) == keep {
            out.push(v);
        }
    }
    out
}

/// The values of `a` that are (`keep`) or are not in container `c`.
pub fn filter_container(a: &[u16], c: &Container, keep: bool) -> Vec<u16> {
    filter_val(a, &Val::C(c), keep)
}

fn set_bits(out: &mut Words, a: &[u16]) {
    for &v in a {
        out[v as usize / 64] |= 1 << (v % 64);
    }
}

fn bits_of<'a>(v: &Val<'a>) -> Option<&'a Words> {
    match v {
        Val::C(Container::Bits(w, _)) => Some(w),
        _ => None,
    }
}

/// Arrays longer than this are turned into a bitset to meet a bitset, instead of filtered.
const FILTER_MAX: usize = 512;

fn big_array_and_bits(a: &Val<'_>, b: &Val<'_>) -> bool {
    a.array().is_some_and(|x| x.len() > FILTER_MAX) && matches!(b, Val::W(_) | Val::C(Container::Bits(..)))
}

fn and_vals<'a>(a: Val<'a>, b: Val<'a>, s: &mut Scratch) -> Val<'a> {
    match (a.unown(), b.unown()) {
        (Val::Empty, x) | (x, Val::Empty) => {
            x.release(s);
            Val::Empty
        }
        (Val::Full, x) | (x, Val::Full) => x,
        (a, b) if Val::both_runs(&a, &b) => runs_val(runs_and(a.runs().expect("runs"), b.runs().expect("runs"))),
        (a, b) if big_array_and_bits(&a, &b) || big_array_and_bits(&b, &a) => {
            // A large array against a bitset: set its bits and AND word by word, staying in
            // words for the operations that follow.
            let (arr, other) = if big_array_and_bits(&a, &b) { (a, b) } else { (b, a) };
            let mut w = s.get_zeroed();
            set_bits(&mut w, arr.array().expect("checked"));
            match &other {
                Val::W(o) => words::and_assign_nocount(&mut w, o),
                Val::C(Container::Bits(o, _)) => words::and_assign_nocount(&mut w, o),
                _ => unreachable!("checked to be a bitset"),
            }
            other.release(s);
            arr.release(s);
            Val::W(w)
        }
        (a, b) if a.array().is_some() || b.array().is_some() => {
            let (arr, other) = if a.array().is_some() { (a, b) } else { (b, a) };
            let out = filter_val(arr.array().expect("checked"), &other, true);
            other.release(s);
            arr.release(s);
            Val::Arr(out)
        }
        (Val::W(mut w), x) | (x, Val::W(mut w)) => {
            x.and_into(&mut w);
            x.release(s);
            Val::W(w)
        }
        (a, b) => {
            let w = match (bits_of(&a), bits_of(&b)) {
                (Some(x), Some(y)) => {
                    let mut w = s.get();
                    words::and_to(&mut w, x, y);
                    w
                }
                _ => {
                    let mut w = a.to_block(s);
                    b.and_into(&mut w);
                    w
                }
            };
            Val::W(w)
        }
    }
}

/// Two arrays with at most this many values between them are merged into an array; more are
/// OR-ed into a bitset.
const MERGE_MAX: usize = 128;

fn or_vals<'a>(a: Val<'a>, b: Val<'a>, s: &mut Scratch) -> Val<'a> {
    match (a.unown(), b.unown()) {
        (Val::Empty, x) | (x, Val::Empty) => x,
        (Val::Full, x) | (x, Val::Full) => {
            x.release(s);
            Val::Full
        }
        (a, b) if Val::both_runs(&a, &b) => runs_val(runs_or(a.runs().expect("runs"), b.runs().expect("runs"))),
        // Small arrays merge; bigger ones go to a bitset, which the next operands OR into cheaply
        // (setting a bit costs about a cycle, a merge step several, with a mispredicted branch).
        (a, b) if matches!((a.array(), b.array()), (Some(x), Some(y)) if x.len() + y.len() <= MERGE_MAX) => {
            Val::Arr(union_sorted(a.array().expect("checked"), b.array().expect("checked")))
        }
        (Val::W(mut w), x) | (x, Val::W(mut w)) => {
            x.or_into(&mut w);
            x.release(s);
            Val::W(w)
        }
        (a, b) => {
            let w = match (bits_of(&a), bits_of(&b)) {
                (Some(x), Some(y)) => {
                    let mut w = s.get();
                    words::or_to(&mut w, x, y);
                    w
                }
                _ => {
                    let mut w = a.to_block(s);
                    b.or_into(&mut w);
                    w
                }
            };
            Val::W(w)
        }
    }
}

fn andnot_vals<'a>(a: Val<'a>, b: Val<'a>, s: &mut Scratch) -> Val<'a> {
    match (a.unown(), b.unown()) {
        (Val::Empty, x) => {
            x.release(s);
            Val::Empty
        }
        (x, Val::Empty) => x,
        (x, Val::Full) => {
            x.release(s);
            Val::Empty
        }
        (a, b) if Val::both_runs(&a, &b) => runs_val(runs_andnot(a.runs().expect("runs"), b.runs().expect("runs"))),
        (a, b) if a.array().is_some() => {
            let out = filter_val(a.array().expect("checked"), &b, false);
            b.release(s);
            Val::Arr(out)
        }
        (Val::W(mut w), b) => {
            b.andnot_into(&mut w);
            b.release(s);
            Val::W(w)
        }
        (a, b) => {
            let w = match (bits_of(&a), bits_of(&b)) {
                (Some(x), Some(y)) => {
                    let mut w = s.get();
                    words::andnot_to(&mut w, x, y);
                    w
                }
                _ => {
                    let mut w = a.to_block(s);
                    b.andnot_into(&mut w);
                    w
                }
            };
            b.release(s);
            Val::W(w)
        }
    }
}

fn merge_keys(a: &[u16], b: &[u16]) -> Vec<u16> {
    union_sorted(a, b)
}

impl<'a> Node<'a> {
    fn eval_set(set: &RoaringSet, key: u16) -> Val<'_> {
        match set.container(key) {
            None => Val::Empty,
            Some(c) if c.is_full() => Val::Full,
            Some(c) => Val::C(c),
        }
    }

    /// Flattens nested ANDs and ORs, drops neutral operands and orders AND operands cheapest first.
    pub fn simplify(self) -> Node<'a> {
        match self {
            Node::And(children) => {
                let mut flat = Vec::with_capacity(children.len());
                for c in children {
                    match c.simplify() {
                        Node::Empty => return Node::Empty,
                        Node::And(inner) => flat.extend(inner),
                        other => flat.push(other),
                    }
                }
                match flat.len() {
                    0 => Node::Empty,
                    1 => flat.pop().expect("one"),
                    _ => {
                        // Smallest first, a computed operand counted as four times its size: the
                        // first operand is read in full, the later ones may only be looked up.
                        flat.sort_by_cached_key(|n| n.estimate().saturating_mul(if n.costly() { 4 } else { 1 }));
                        Node::And(flat)
                    }
                }
            }
            Node::Or(children) => {
                let mut flat = Vec::with_capacity(children.len());
                for c in children {
                    match c.simplify() {
                        Node::Empty => {}
                        Node::Or(inner) => flat.extend(inner),
                        other => flat.push(other),
                    }
                }
                match flat.len() {
                    0 => Node::Empty,
                    1 => flat.pop().expect("one"),
                    _ => {
                        // Largest first: a full block is met sooner, and when the union is only
                        // looked up at a few values (`filter`), each operand removes its members
                        // from the values left, so the largest leave the fewest for the rest.
                        flat.sort_by_cached_key(|n| std::cmp::Reverse(n.estimate()));
                        Node::Or(flat)
                    }
                }
            }
            Node::AndNot(l, r) => match (l.simplify(), r.simplify()) {
                (Node::Empty, _) => Node::Empty,
                (l, Node::Empty) => l,
                (l, r) => Node::AndNot(Box::new(l), Box::new(r)),
            },
            Node::Set(s) if s.is_empty() => Node::Empty,
            Node::Owned(s) if s.is_empty() => Node::Empty,
            Node::Universe(0) => Node::Empty,
            other => other,
        }
    }

    /// An upper estimate of the result size.
    pub fn estimate(&self) -> u64 {
        match self {
            Node::Empty => 0,
            Node::Universe(n) => *n,
            Node::Set(s) => s.len(),
            Node::Owned(s) => s.len(),
            Node::Computed(c) => c.estimate(),
            Node::And(ch) => ch.iter().map(|c| c.estimate()).min().unwrap_or(0),
            Node::Or(ch) => ch.iter().map(|c| c.estimate()).fold(0u64, |a, b| a.saturating_add(b)),
            Node::AndNot(l, _) => l.estimate(),
        }
    }

    /// The keys whose blocks may be non-empty, ascending (a stored set's own keys are borrowed,
    /// and operands with the same keys as the running result are not merged again: a call over
    /// small sets should not spend its time copying key lists).
    pub fn keys(&self) -> Cow<'_, [u16]> {
        match self {
            Node::Empty => Cow::Borrowed(&[]),
            Node::Universe(0) => Cow::Borrowed(&[]),
            Node::Universe(n) => Cow::Owned((0..=((n - 1) >> 16) as u16).collect()),
            Node::Set(s) => Cow::Borrowed(&s.keys),
            Node::Owned(s) => Cow::Borrowed(&s.keys),
            Node::Computed(c) => Cow::Owned(c.keys()),
            Node::And(ch) => {
                let mut it = ch.iter();
                let mut acc = it.next().map(|c| c.keys()).unwrap_or_default();
                for c in it {
                    if acc.is_empty() {
                        break;
                    }
                    let k = c.keys();
                    if k[..] != acc[..] {
                        acc = Cow::Owned(intersect_sorted(&acc, &k));
                    }
                }
                acc
            }
            Node::Or(ch) => {
                let mut acc: Cow<'_, [u16]> = Cow::Borrowed(&[]);
                for c in ch {
                    let k = c.keys();
                    if acc.is_empty() {
                        acc = k;
                    } else if k[..] != acc[..] {
                        acc = Cow::Owned(merge_keys(&acc, &k));
                    }
                }
                acc
            }
            Node::AndNot(l, _) => l.keys(),
        }
    }

    fn eval<'s>(&'s self, key: u16, s: &mut Scratch) -> Val<'s> {
        match self {
            Node::Empty => Val::Empty,
            Node::Universe(n) => {
                if *n == 0 {
                    return Val::Empty;
                }
                let last = n - 1;
                let last_key = (last >> 16) as u16;
                if key < last_key || (key == last_key && last & 0xFFFF == 0xFFFF) {
                    Val::Full
                } else if key == last_key {
                    let mut w = s.get();
                    w.fill(0);
                    words::set_range(&mut w, 0, (last & 0xFFFF) as u16);
                    Val::W(w)
                } else {
                    Val::Empty
                }
            }
            Node::Set(set) => Self::eval_set(set, key),
            Node::Owned(set) => Self::eval_set(set, key),
            Node::Computed(src) => match src.classify(key) {
                Chunk::Empty => Val::Empty,
                Chunk::Same(c) if c.is_full() => Val::Full,
                Chunk::Same(c) => Val::C(c),
                Chunk::Compute => {
                    if let Some(runs) = src.runs(key) {
                        return runs_val(runs);
                    }
                    let mut w = s.get();
                    if src.fill(key, &mut w, s) {
                        Val::W(w)
                    } else {
                        s.put(w);
                        Val::Empty
                    }
                }
            },
            Node::And(children) => {
                let mut acc = Val::Full;
                for c in children {
                    if matches!(acc, Val::Empty) {
                        break;
                    }
                    if c.costly() {
                        acc = sparsen(acc, s);
                    }
                    // A sparse running result looks the operand up at its own values only,
                    // without computing or touching the rest of the operand's block.
                    if let Some(values) = acc.array().filter(|a| a.len() <= FILTER_MAX) {
                        let out = c.filter(key, values, true, s);
                        acc.release(s);
                        acc = if out.is_empty() { Val::Empty } else { Val::Arr(out) };
                        continue;
                    }
                    let v = c.eval(key, s);
                    acc = and_vals(acc, v, s);
                }
                acc
            }
            Node::Or(children) => {
                // A full stored block decides the union before anything is read (run-heavy data
                // often has one); otherwise three or more stored bitsets are OR-ed in one pass
                // and the other operands follow.
                let full = |c: &Node<'_>| match c {
                    Node::Set(set) => set.container(key).is_some_and(Container::is_full),
                    Node::Owned(set) => set.container(key).is_some_and(Container::is_full),
                    _ => false,
                };
                if children.iter().any(full) {
                    return Val::Full;
                }
                let bits: Vec<&Words> = children.iter().filter_map(|c| c.stored_bits(key).map(|b| b.0)).collect();
                // One AND of stored bitsets among the operands joins the same pass.
                let group = children.iter().enumerate().find_map(|(i, c)| match c {
                    Node::And(_) => c.stored_and_bits(key).map(|g| (i, g)),
                    _ => None,
                });
                let fused = bits.len() + group.is_some() as usize >= 3;
                let mut acc = Val::Empty;
                if fused {
                    let mut w = s.get();
                    let ands: Vec<&Words> = group.as_ref().map(|g| g.1.iter().map(|b| b.0).collect()).unwrap_or_default();
                    let n = words::combine(&mut w, &ands, &bits, false);
                    if bits.len() + group.is_some() as usize == children.len() {
                        return Val::counted(w, n, s);
                    }
                    acc = Val::W(w);
                }
                let grouped = |i: usize| group.as_ref().is_some_and(|g| g.0 == i);
                for (i, c) in children.iter().enumerate() {
                    if fused && (c.stored_bits(key).is_some() || grouped(i)) {
                        continue;
                    }
                    let v = c.eval(key, s);
                    acc = or_vals(acc, v, s);
                    if matches!(acc, Val::Full) {
                        break;
                    }
                }
                acc
            }
            Node::AndNot(l, r) => {
                // Stored bitsets on both sides, the left one dense enough that the right would be
                // read whole anyway: one pass computes, writes and counts the result.
                if let (Some(ands), Some(ors)) = (l.stored_and_bits(key), r.stored_or_bits(key)) {
                    let expected = ands.iter().fold(65536.0, |e, b| e * b.1 as f64 / 65536.0);
                    if ands.len() + ors.len() >= 3 && expected > FILTER_MAX as f64 {
                        let ands: Vec<&Words> = ands.iter().map(|b| b.0).collect();
                        let mut w = s.get();
                        let n = words::combine(&mut w, &ands, &ors, true);
                        return Val::counted(w, n, s);
                    }
                }
                let mut a = l.eval(key, s);
                if matches!(a, Val::Empty) {
                    return a;
                }
                if r.costly() {
                    a = sparsen(a, s);
                }
                // A sparse left side looks the excluded side up at its own values only (an
                // excluded OR removes each operand's members in turn, never building the union).
                if let Some(values) = a.array().filter(|v| v.len() <= FILTER_MAX) {
                    let cur = r.filter(key, values, false, s);
                    a.release(s);
                    return if cur.is_empty() { Val::Empty } else { Val::Arr(cur) };
                }
                let b = r.eval(key, s);
                andnot_vals(a, b, s)
            }
        }
    }

    /// Block `key` of this node and its population, when the node is a stored set holding a
    /// bitset there.
    fn stored_bits(&self, key: u16) -> Option<(&Words, u32)> {
        let set = match self {
            Node::Set(set) => *set,
            Node::Owned(set) => set,
            _ => return None,
        };
        match set.container(key) {
            Some(Container::Bits(w, n)) => Some((&**w, *n)),
            _ => None,
        }
    }

    /// The stored bitsets of block `key` whose intersection this node is (a stored bitset, or
    /// an AND of them), if it is one.
    fn stored_and_bits(&self, key: u16) -> Option<Vec<(&Words, u32)>> {
        match self {
            Node::And(ch) => ch.iter().map(|c| c.stored_bits(key)).collect(),
            c => c.stored_bits(key).map(|b| vec![b]),
        }
    }

    /// The stored bitsets of block `key` whose union this node is, if it is one.
    fn stored_or_bits(&self, key: u16) -> Option<Vec<&Words>> {
        match self {
            Node::Or(ch) => ch.iter().map(|c| c.stored_bits(key).map(|b| b.0)).collect(),
            c => c.stored_bits(key).map(|b| vec![b.0]),
        }
    }

    /// Whether evaluating this node for one key costs more than reading one container: then a
    /// sparse running result is worth counting, to look this node up at its values only.
    fn costly(&self) -> bool {
        !matches!(self, Node::Empty | Node::Universe(_) | Node::Set(_) | Node::Owned(_))
    }

    /// The values of `cand` (ascending) that are (`keep`) or are not (`!keep`) in this tree's
    /// block `key`, looking at nothing but those values where the operands allow.
    pub fn filter(&self, key: u16, cand: &[u16], keep: bool, s: &mut Scratch) -> Vec<u16> {
        if cand.is_empty() {
            return Vec::new();
        }
        match self {
            Node::Empty => none_or_all(cand, keep),
            Node::Universe(n) => {
                // The ids below `n` in this block are a prefix of it.
                let below = match (*n).checked_sub((key as u64) << 16) {
                    None | Some(0) => 0,
                    Some(left) => cand.partition_point(|&v| (v as u64) < left),
                };
                if keep {
                    cand[..below].to_vec()
                } else {
                    cand[below..].to_vec()
                }
            }
            Node::Set(set) => match set.container(key) {
                None => none_or_all(cand, keep),
                Some(c) => filter_container(cand, c, keep),
            },
            Node::Owned(set) => match set.container(key) {
                None => none_or_all(cand, keep),
                Some(c) => filter_container(cand, c, keep),
            },
            Node::Computed(src) => src.filter(key, cand, keep, s),
            Node::And(children) => {
                let mut cur = cand.to_vec();
                for c in children {
                    if cur.is_empty() {
                        break;
                    }
                    cur = c.filter(key, &cur, true, s);
                }
                if keep {
                    cur
                } else {
                    difference_sorted(cand, &cur)
                }
            }
            Node::Or(children) => {
                // The values in no operand: each operand removes its members from the rest.
                let mut rest = cand.to_vec();
                for c in children {
                    if rest.is_empty() {
                        break;
                    }
                    rest = c.filter(key, &rest, false, s);
                }
                if keep {
                    difference_sorted(cand, &rest)
                } else {
                    rest
                }
            }
            Node::AndNot(l, r) => {
                let left = l.filter(key, cand, true, s);
                let cur = r.filter(key, &left, false, s);
                if keep {
                    cur
                } else {
                    difference_sorted(cand, &cur)
                }
            }
        }
    }
}

/// A block with few ids as a sorted array (counting a bitset costs one pass over it, much less
/// than computing an operand that a short array can then look up at its values only).
fn sparsen<'a>(v: Val<'a>, s: &mut Scratch) -> Val<'a> {
    match v {
        Val::W(w) => {
            let card = words::popcount(&w);
            if card == 0 {
                s.put(w);
                Val::Empty
            } else if card as usize <= FILTER_MAX {
                let out = Val::Arr(words::to_array(&w, card));
                s.put(w);
                out
            } else {
                Val::W(w)
            }
        }
        other => other,
    }
}

/// Result blocks with more ids than this stay bitsets. Decoding a bitset into an array costs
/// more than the rest of the evaluation of a block, so results keep the bitset down to 1,024 ids
/// (at most 4x the array's memory); `serialize` still writes the portable format's array.
const RESULT_ARRAY_MAX: usize = 1024;

fn finish(v: Val<'_>, s: &mut Scratch) -> Option<Container> {
    match v {
        Val::Empty => None,
        Val::Full => Some(Container::full()),
        Val::C(c) => Some(c.clone()),
        Val::Own(c) => Some(c),
        Val::Arr(a) => (!a.is_empty()).then_some(Container::Array(a)),
        Val::W(w) => {
            let card = words::popcount(&w);
            if card == 0 {
                s.put(w);
                None
            } else if card as usize <= RESULT_ARRAY_MAX {
                let out = Container::Array(words::to_array(&w, card));
                s.put(w);
                Some(out)
            } else {
                Some(Container::Bits(w, card))
            }
        }
    }
}

fn finish_count(v: Val<'_>, s: &mut Scratch) -> u64 {
    match v {
        Val::Empty => 0,
        Val::Full => 65536,
        Val::C(c) => c.len() as u64,
        Val::Own(c) => c.len() as u64,
        Val::Arr(a) => a.len() as u64,
        Val::W(w) => {
            let n = words::popcount(&w) as u64;
            s.put(w);
            n
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch blocks (kept between calls, so no page is faulted in twice).
fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Runs `one` for each key, on the calling thread and on helper threads once the keys left are
/// worth waking them for (`share::map`).
fn map_keys<T: Send>(keys: &[u16], threads: Threads, one: impl Fn(u16) -> T + Sync + Send) -> Vec<T> {
    share::map(keys.len(), threads, |i| one(keys[i]))
}

/// Evaluates the tree into a new set.
pub fn evaluate(node: Node<'_>) -> RoaringSet {
    evaluate_with(node, Threads::Auto)
}

/// [`evaluate`], with helper threads used as `threads` says.
pub fn evaluate_with(node: Node<'_>, threads: Threads) -> RoaringSet {
    let node = node.simplify();
    let keys = node.keys();
    let results = map_keys(&keys, threads, |k| with_scratch(|s| (k, finish(node.eval(k, s), s))));
    RoaringSet::from_pairs(results.into_iter().filter_map(|(k, c)| c.map(|c| (k, c))))
}

/// Counts the ids of the tree without building the result.
pub fn count(node: Node<'_>) -> u64 {
    count_with(node, Threads::Auto)
}

/// [`count`], with helper threads used as `threads` says.
pub fn count_with(node: Node<'_>, threads: Threads) -> u64 {
    let node = node.simplify();
    let keys = node.keys();
    map_keys(&keys, threads, |k| with_scratch(|s| finish_count(node.eval(k, s), s)))
        .into_iter()
        .sum()
}
