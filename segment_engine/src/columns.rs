//! Member attribute columns, indexed two ways:
//!
//! * low-cardinality columns (gender, level, booleans, enums) keep one bitmap per value;
//! * wide numeric columns (points, amounts, dates) keep a bit-sliced index: slice `i` holds the
//!   members whose `value - base` has bit `i` set, and a range costs one pass over the slices
//!   per 64K block (O'Neil and Quass) instead of a scan of the values. A zone map (each
//!   block's least and greatest value) skips the blocks a range decides without reading a
//!   slice, and where every slice of a block is runs, the comparison is made once per stretch
//!   between run boundaries.
//!
//! Both keep a `nonnull` bitmap: rows that are null match no comparison.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::container::{Container, Run};
use crate::error::{EngineError, Result};
use crate::expr::{self, Chunk, ChunkSource, Node, Scratch};
use crate::ints::IntLike;
use crate::pred::{Interval, Pred};
use crate::set::RoaringSet;
use crate::words::{self, Words, WORDS};

/// Most distinct values kept as one bitmap per value when a column is built.
pub const LOW_CARD: usize = 32;
/// A value-bitmap column that grows past this many values through updates becomes bit-sliced.
pub const LOW_CARD_MAX: usize = 64;

static ZERO: Words = [0u64; WORDS];

/// Candidates up to this many are looked up value by value in the slices; more, and the block
/// is computed (a lookup per slice and value against about two word operations per slice and
/// 64 ids).
const PER_VALUE_MAX: usize = 1024;

/// What the Python side gave: a bool column or an integer column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
}

/// A bit-sliced index: `value = base + sum(2^i for i where the member is in slices[i])`.
#[derive(Clone, Debug, Default)]
pub struct Bsi {
    pub base: i64,
    pub slices: Vec<RoaringSet>,
    /// The zone map: per key, bounds on the offsets (`value - base`) of the key's non-null
    /// members; [`Zone::EMPTY`] where it has none, and keys past the end have none. A range
    /// skips the blocks whose bounds decide it, as a column store skips row groups by min/max.
    /// Updates only widen a zone: it may be wider than the values it bounds, never narrower.
    pub zones: Vec<Zone>,
}

/// Bounds on the offsets of one key's non-null members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    pub min: u64,
    pub max: u64,
}

impl Zone {
    /// No member: holds nothing, and widens to its first value.
    pub const EMPTY: Zone = Zone { min: u64::MAX, max: 0 };

    fn widen(&mut self, u: u64) {
        self.min = self.min.min(u);
        self.max = self.max.max(u);
    }
}

impl Bsi {
    /// A bit-sliced index with its zone map computed from the slices (a loaded snapshot).
    pub fn new(base: i64, slices: Vec<RoaringSet>, nonnull: &RoaringSet) -> Bsi {
        let zones = zones_of(&slices, nonnull);
        Bsi { base, slices, zones }
    }

    /// The bounds of key `key`, or `None` when the zone map does not cover it.
    fn zone(&self, key: u16) -> Option<Zone> {
        self.zones.get(key as usize).copied()
    }

    /// Largest `value - base` the slices can hold.
    pub fn max_offset(&self) -> u64 {
        match self.slices.len() {
            0 => 0,
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }
}

/// How a column's values are indexed.
#[derive(Clone, Debug)]
pub enum Encoding {
    /// One bitmap per value.
    Values(BTreeMap<i64, RoaringSet>),
    /// A bit-sliced index.
    Bsi(Bsi),
}

/// One indexed member attribute.
#[derive(Clone, Debug)]
pub struct Column {
    pub kind: Kind,
    pub nonnull: RoaringSet,
    pub enc: Encoding,
}

/// An inclusive range of values, `lo <= v <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub lo: i64,
    pub hi: i64,
}

/// Summary of one 64K block of input rows.
struct ChunkStats {
    min: i64,
    max: i64,
    distinct: Option<Vec<i64>>,
}

fn key_rows(len: usize, key: usize) -> std::ops::Range<usize> {
    (key << 16)..((key + 1) << 16).min(len)
}

fn checked_i64<T: IntLike>(v: T, name: &str, row: usize) -> Result<i64> {
    let w = v.to_i128();
    i64::try_from(w).map_err(|_| EngineError::invalid(format!("{name}[{row}] = {w} does not fit in int64")))
}

impl Column {
    /// Indexes `values` (one per member), with rows where `valid` is false taken as null.
    pub fn build<T: IntLike + Sync>(values: &[T], valid: Option<&[bool]>, kind: Kind, name: &str) -> Result<Column> {
        let n = values.len();
        let n_keys = n.div_ceil(1 << 16);
        let stats: Vec<Option<ChunkStats>> = (0..n_keys)
            .into_par_iter()
            .map(|k| -> Result<Option<ChunkStats>> {
                let mut st: Option<ChunkStats> = None;
                for r in key_rows(n, k) {
                    if valid.is_some_and(|m| !m[r]) {
                        continue;
                    }
                    let v = checked_i64(values[r], name, r)?;
                    let s = st.get_or_insert(ChunkStats {
                        min: v,
                        max: v,
                        distinct: Some(Vec::new()),
                    });
                    s.min = s.min.min(v);
                    s.max = s.max.max(v);
                    if let Some(d) = &mut s.distinct {
                        if !d.contains(&v) {
                            if d.len() == LOW_CARD {
                                s.distinct = None;
                            } else {
                                d.push(v);
                            }
                        }
                    }
                }
                Ok(st)
            })
            .collect::<Result<_>>()?;
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        let mut distinct: Option<Vec<i64>> = Some(Vec::new());
        for s in stats.iter().flatten() {
            min = min.min(s.min);
            max = max.max(s.max);
            distinct = match (distinct, &s.distinct) {
                (Some(mut d), Some(sd)) => {
                    for v in sd {
                        if !d.contains(v) {
                            d.push(*v);
                        }
                    }
                    (d.len() <= LOW_CARD).then_some(d)
                }
                _ => None,
            };
        }
        let nonnull = build_nonnull(n, valid);
        let enc = match distinct {
            Some(mut d) if kind == Kind::Bool || d.len() <= LOW_CARD => {
                d.sort_unstable();
                Encoding::Values(build_values(values, valid, &d))
            }
            _ => Encoding::Bsi(build_bsi(values, valid, min, max)),
        };
        Ok(Column { kind, nonnull, enc })
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.nonnull.heap_bytes()
            + match &self.enc {
                Encoding::Values(m) => m.values().map(|s| s.heap_bytes() + 32).sum::<usize>(),
                Encoding::Bsi(b) => b.slices.iter().map(|s| s.heap_bytes()).sum::<usize>(),
            }
    }

    /// The value of member `m`, or `None` when null.
    pub fn get(&self, m: u32) -> Option<i64> {
        if !self.nonnull.contains(m) {
            return None;
        }
        match &self.enc {
            Encoding::Values(map) => map.iter().find(|(_, s)| s.contains(m)).map(|(v, _)| *v),
            Encoding::Bsi(b) => {
                let mut u = 0u64;
                for (i, s) in b.slices.iter().enumerate() {
                    if s.contains(m) {
                        u |= 1 << i;
                    }
                }
                Some(b.base.wrapping_add(u as i64))
            }
        }
    }

    /// Sets member `m` to `v` (`None` for null) in place.
    pub fn set(&mut self, m: u32, v: Option<i64>, n_members: usize) {
        self.set_many(&[(m, v)], n_members);
    }

    /// Applies point updates in place (`None` sets null); a later update of a member wins.
    ///
    /// Updates are applied in member order, one bitmap at a time, so each bitmap's containers
    /// are visited in ascending order while they are in cache.
    pub fn set_many(&mut self, updates: &[(u32, Option<i64>)], n_members: usize) {
        let mut order: Vec<(u32, u32)> = updates.iter().enumerate().map(|(i, u)| (u.0, i as u32)).collect();
        order.sort_unstable();
        let mut ups: Vec<(u32, Option<i64>)> = Vec::with_capacity(order.len());
        for (m, i) in order {
            match ups.last_mut() {
                Some(last) if last.0 == m => *last = updates[i as usize],
                _ => ups.push(updates[i as usize]),
            }
        }
        self.nonnull.assign_sorted(ups.iter().map(|&(m, v)| (m, v.is_some())));
        match &mut self.enc {
            Encoding::Values(map) => {
                let mut old: Vec<Option<i64>> = vec![None; ups.len()];
                for (v, set) in map.iter() {
                    for (j, &(m, _)) in ups.iter().enumerate() {
                        if old[j].is_none() && set.contains(m) {
                            old[j] = Some(*v);
                        }
                    }
                }
                // Per value, the members to add (true) or remove (false), ascending.
                let mut changes: BTreeMap<i64, Vec<(u32, bool)>> = BTreeMap::new();
                for (j, &(m, new)) in ups.iter().enumerate() {
                    if old[j] == new {
                        continue;
                    }
                    if let Some(o) = old[j] {
                        changes.entry(o).or_default().push((m, false));
                    }
                    if let Some(v) = new {
                        changes.entry(v).or_default().push((m, true));
                    }
                }
                for (v, items) in changes {
                    let set = map.entry(v).or_default();
                    set.assign_sorted(items);
                    if set.is_empty() {
                        map.remove(&v);
                    }
                }
                if map.len() > LOW_CARD_MAX {
                    self.reencode(&[], n_members);
                }
            }
            Encoding::Bsi(b) => {
                let lowest = ups.iter().filter_map(|u| u.1).min();
                let highest = ups.iter().filter_map(|u| u.1).max();
                let fits = |v: i64| v >= b.base && ((v as i128 - b.base as i128) as u128) <= u64::MAX as u128;
                if lowest.is_some_and(|v| !fits(v)) || highest.is_some_and(|v| !fits(v)) {
                    self.reencode(&ups, n_members);
                    return;
                }
                if let Some(h) = highest {
                    let u = (h as i128 - b.base as i128) as u64;
                    while b.max_offset() < u {
                        b.slices.push(RoaringSet::new());
                    }
                }
                let base = b.base;
                for &(m, v) in &ups {
                    if let Some(v) = v {
                        let key = (m >> 16) as usize;
                        if b.zones.len() <= key {
                            b.zones.resize(key + 1, Zone::EMPTY);
                        }
                        b.zones[key].widen((v as i128 - base as i128) as u64);
                    }
                }
                b.slices.par_iter_mut().enumerate().for_each(|(i, slice)| {
                    slice.assign_sorted(
                        ups.iter()
                            .map(|&(m, v)| (m, v.is_some_and(|v| ((v as i128 - base as i128) as u64) >> i & 1 == 1))),
                    )
                });
            }
        }
    }

    /// All values and the null mask for members `0..n`.
    pub fn decode(&self, n: usize) -> (Vec<i64>, Vec<bool>) {
        let mut values = vec![0i64; n];
        let mut valid = vec![false; n];
        for m in self.nonnull.to_vec() {
            if (m as usize) < n {
                valid[m as usize] = true;
            }
        }
        match &self.enc {
            Encoding::Values(map) => {
                for (v, s) in map {
                    for m in s.to_vec() {
                        if (m as usize) < n {
                            values[m as usize] = *v;
                        }
                    }
                }
            }
            Encoding::Bsi(b) => {
                let mut offs = vec![0u64; n];
                for (i, s) in b.slices.iter().enumerate() {
                    for m in s.to_vec() {
                        if (m as usize) < n {
                            offs[m as usize] |= 1 << i;
                        }
                    }
                }
                for (v, o) in values.iter_mut().zip(offs) {
                    *v = b.base.wrapping_add(o as i64);
                }
            }
        }
        (values, valid)
    }

    /// Rebuilds the index from its own values with `updates` applied (after updates outside the
    /// encoding's range, or too many distinct values for one bitmap per value).
    fn reencode(&mut self, updates: &[(u32, Option<i64>)], n: usize) {
        let (mut values, mut valid) = self.decode(n);
        for &(m, v) in updates {
            valid[m as usize] = v.is_some();
            values[m as usize] = v.unwrap_or(0);
        }
        let rebuilt = Column::build(&values, Some(&valid), self.kind, "values").expect("decoded values fit in int64");
        *self = rebuilt;
    }

    /// Grows the column to `n` members (new members are null): nothing to do, as null is absence.
    pub fn grow(&mut self, _n: usize) {}

    /// The expression for a predicate over this column.
    pub fn plan(&self, pred: &Pred) -> Node<'_> {
        let ranges = |iv: &[Interval]| -> Vec<Range> {
            iv.iter()
                .filter_map(|i| i.to_inclusive())
                .map(|(lo, hi)| Range { lo, hi })
                .collect()
        };
        match pred {
            Pred::AnyOf(iv) => self.any_of(&ranges(iv)),
            Pred::NoneOf(iv) => Node::AndNot(Box::new(Node::Set(&self.nonnull)), Box::new(self.any_of(&ranges(iv)))),
        }
    }

    fn any_of(&self, ranges: &[Range]) -> Node<'_> {
        let mut parts = Vec::new();
        for r in ranges {
            if r.lo > r.hi {
                continue;
            }
            match &self.enc {
                Encoding::Values(map) => parts.extend(map.range(r.lo..=r.hi).map(|(_, s)| Node::Set(s))),
                Encoding::Bsi(b) => {
                    if let Some(src) = BsiRange::new(b, &self.nonnull, *r) {
                        parts.push(Node::Computed(Box::new(src)));
                    }
                }
            }
        }
        Node::Or(parts)
    }
}

fn build_nonnull(n: usize, valid: Option<&[bool]>) -> RoaringSet {
    let Some(valid) = valid else {
        return RoaringSet::universe(n as u64);
    };
    let n_keys = n.div_ceil(1 << 16);
    let parts: Vec<(u16, Container)> = (0..n_keys)
        .into_par_iter()
        .map(|k| {
            let mut w = words::zeroed();
            for r in key_rows(n, k) {
                if valid[r] {
                    let lo = r & 0xFFFF;
                    w[lo / 64] |= 1 << (lo % 64);
                }
            }
            let c = words::popcount(&w);
            (k as u16, Container::from_words(w, c).optimized())
        })
        .collect();
    RoaringSet::from_pairs(parts)
}

fn build_values<T: IntLike + Sync>(
    values: &[T],
    valid: Option<&[bool]>,
    distinct: &[i64],
) -> BTreeMap<i64, RoaringSet> {
    let n = values.len();
    let n_keys = n.div_ceil(1 << 16);
    let per_key: Vec<Vec<Option<Container>>> = (0..n_keys)
        .into_par_iter()
        .map(|k| {
            let mut blocks: Vec<Box<Words>> = distinct.iter().map(|_| words::zeroed()).collect();
            for r in key_rows(n, k) {
                if valid.is_some_and(|m| !m[r]) {
                    continue;
                }
                let v = values[r].to_i128() as i64;
                let i = distinct.binary_search(&v).expect("value among the distinct values");
                let lo = r & 0xFFFF;
                blocks[i][lo / 64] |= 1 << (lo % 64);
            }
            blocks
                .into_iter()
                .map(|w| {
                    let c = words::popcount(&w);
                    (c > 0).then(|| Container::from_words(w, c).optimized())
                })
                .collect()
        })
        .collect();
    let mut out = BTreeMap::new();
    for (i, v) in distinct.iter().enumerate() {
        let set = RoaringSet::from_pairs(
            per_key
                .iter()
                .enumerate()
                .filter_map(|(k, cs)| cs[i].clone().map(|c| (k as u16, c))),
        );
        if !set.is_empty() {
            out.insert(*v, set);
        }
    }
    out
}

fn build_bsi<T: IntLike + Sync>(values: &[T], valid: Option<&[bool]>, min: i64, max: i64) -> Bsi {
    if min > max {
        return Bsi::default();
    }
    let span = (max as i128 - min as i128) as u64;
    let bits = (64 - span.leading_zeros()).max(1) as usize;
    let n = values.len();
    let n_keys = n.div_ceil(1 << 16);
    let per_key: Vec<(Vec<Option<Container>>, Zone)> = (0..n_keys)
        .into_par_iter()
        .map(|k| {
            let mut blocks: Vec<Box<Words>> = (0..bits).map(|_| words::zeroed()).collect();
            let mut zone = Zone::EMPTY;
            let rows = key_rows(n, k);
            for r in rows {
                if valid.is_some_and(|m| !m[r]) {
                    continue;
                }
                let u = (values[r].to_i128() - min as i128) as u64;
                zone.widen(u);
                let lo = r & 0xFFFF;
                let (wi, b) = (lo / 64, 1u64 << (lo % 64));
                let mut rest = u;
                while rest != 0 {
                    let i = rest.trailing_zeros() as usize;
                    blocks[i][wi] |= b;
                    rest &= rest - 1;
                }
            }
            let cs = blocks
                .into_iter()
                .map(|w| {
                    let c = words::popcount(&w);
                    (c > 0).then(|| Container::from_words(w, c).optimized())
                })
                .collect();
            (cs, zone)
        })
        .collect();
    let slices = (0..bits)
        .map(|i| {
            RoaringSet::from_pairs(
                per_key
                    .iter()
                    .enumerate()
                    .filter_map(|(k, (cs, _))| cs[i].clone().map(|c| (k as u16, c))),
            )
        })
        .collect();
    let mut zones: Vec<Zone> = per_key.iter().map(|(_, z)| *z).collect();
    while zones.last() == Some(&Zone::EMPTY) {
        zones.pop();
    }
    Bsi {
        base: min,
        slices,
        zones,
    }
}

/// The exact zone map of `slices`: per key, the least and the greatest offset of the non-null
/// members, found slice by slice from the highest (O'Neil and Quass's min and max).
pub fn zones_of(slices: &[RoaringSet], nonnull: &RoaringSet) -> Vec<Zone> {
    let Some(&last) = nonnull.keys.last() else {
        return Vec::new();
    };
    let found: Vec<(u16, Zone)> = nonnull
        .keys
        .par_iter()
        .zip(nonnull.containers.par_iter())
        .map(|(&key, nn)| {
            let mut cand = words::zeroed();
            let mut s = words::zeroed();
            let mut t = words::zeroed();
            let mut zone = Zone::EMPTY;
            if nn.is_empty() {
                return (key, zone);
            }
            for (find_max, bound) in [(false, &mut zone.min), (true, &mut zone.max)] {
                nn.write_words(&mut cand);
                let mut u = 0u64;
                for i in (0..slices.len()).rev() {
                    match slices[i].container(key) {
                        Some(c) => c.write_words(&mut s),
                        None => s.fill(0),
                    }
                    // The members with bit i equal to 1 (for the max) or 0 (for the min).
                    if find_max {
                        words::and_to(&mut t, &cand, &s);
                    } else {
                        words::andnot_to(&mut t, &cand, &s);
                    }
                    let taken = words::any(&t);
                    if taken {
                        std::mem::swap(&mut cand, &mut t);
                    }
                    if taken == find_max {
                        u |= 1 << i;
                    }
                }
                *bound = u;
            }
            (key, zone)
        })
        .collect();
    let mut zones = vec![Zone::EMPTY; last as usize + 1];
    for (key, zone) in found {
        zones[key as usize] = zone;
    }
    zones
}

/// Members whose value lies in `lo..=hi`, computed block by block from the slices.
pub struct BsiRange<'a> {
    bsi: &'a Bsi,
    nonnull: &'a RoaringSet,
    /// Offsets from `base`; `lo <= hi <= max_offset`.
    lo: u64,
    hi: u64,
    estimate: u64,
}

impl<'a> BsiRange<'a> {
    /// `None` when no stored value can be in the range.
    pub fn new(bsi: &'a Bsi, nonnull: &'a RoaringSet, r: Range) -> Option<BsiRange<'a>> {
        let max = bsi.max_offset() as i128;
        let lo = (r.lo as i128 - bsi.base as i128).max(0);
        let hi = (r.hi as i128 - bsi.base as i128).min(max);
        if lo > hi {
            return None;
        }
        let frac = (hi - lo + 1) as f64 / (max + 1) as f64;
        let estimate = (nonnull.len() as f64 * frac.min(1.0)).ceil() as u64;
        Some(BsiRange {
            bsi,
            nonnull,
            lo: lo as u64,
            hi: hi as u64,
            estimate,
        })
    }

    /// Runs the comparison against constant `c` over the slices, from the highest down to slice
    /// `stop`: `lt` gets members below `c`, `eq` (which must start as the candidate members) keeps
    /// the members equal to `c` in the slices visited. For `lt` alone, slices below the lowest set
    /// bit of `c` cannot change it, so `stop` may be `c.trailing_zeros()`.
    fn compare(&self, key: u16, c: u64, lt: Option<&mut Words>, eq: &mut Words, tmp: &mut Words, stop: usize) {
        let mut lt = lt;
        let range = stop.min(self.bsi.slices.len())..self.bsi.slices.len();
        if let Some(l) = lt.as_deref_mut() {
            // Every slice a bitset (or absent): one pass over the words for all slices.
            let mut srcs: Vec<&Words> = Vec::with_capacity(range.len());
            let all_bits = range.clone().rev().all(|i| match self.bsi.slices[i].container(key) {
                None => {
                    srcs.push(&ZERO);
                    true
                }
                Some(Container::Bits(w, _)) => {
                    srcs.push(w);
                    true
                }
                Some(_) => false,
            });
            if all_bits {
                let ones: Vec<u64> = range.rev().map(|i| if c >> i & 1 == 1 { !0 } else { 0 }).collect();
                words::bsi_compare(l, eq, &srcs, &ones);
                return;
            }
            l.fill(0);
        }
        for i in range.rev() {
            let s: &Words = match self.bsi.slices[i].container(key) {
                None => &ZERO,
                Some(Container::Bits(w, _)) => w,
                Some(other) => {
                    other.write_words(tmp);
                    tmp
                }
            };
            if c >> i & 1 == 1 {
                match lt.as_deref_mut() {
                    Some(l) => words::bsi_step_one(l, eq, s),
                    None => words::and_assign_nocount(eq, s),
                }
            } else {
                words::bsi_step_zero(eq, s);
            }
        }
    }
}

impl BsiRange<'_> {
    /// How many run boundaries the non-null members and the slices have at `key`, when they are
    /// all run containers (or absent).
    fn run_bounds(&self, key: u16, nn: &Container) -> Option<usize> {
        let Container::Run(nr) = nn else {
            return None;
        };
        let mut bounds = 2 * nr.len();
        for slice in &self.bsi.slices {
            match slice.container(key) {
                None => {}
                Some(Container::Run(r)) => bounds += 2 * r.len(),
                Some(_) => return None,
            }
        }
        Some(bounds)
    }

    /// The block for `key` as runs when the non-null members and every slice are run containers
    /// (members imported in ranges): each stretch between two run boundaries shares one value,
    /// so the comparison is made once per stretch instead of once per id. `None` for other
    /// containers.
    fn range_runs(&self, key: u16, nn: &Container) -> Option<Vec<Run>> {
        let bounds = self.run_bounds(key, nn)?;
        let Container::Run(nr) = nn else {
            return None;
        };
        // Every slice's container at `key` is a run container or absent (`run_bounds`).
        let runs: Vec<&[Run]> = self
            .bsi
            .slices
            .iter()
            .map(|slice| match slice.container(key) {
                Some(Container::Run(r)) => &r[..],
                _ => &[],
            })
            .collect();
        let mut points: Vec<u32> = Vec::with_capacity(bounds);
        for r in std::iter::once(&nr[..]).chain(runs.iter().copied()) {
            for &(start, last) in r {
                points.push(start as u32);
                points.push(last as u32 + 1);
            }
        }
        points.sort_unstable();
        points.dedup();
        let mut out: Vec<Run> = Vec::new();
        let mut at = vec![0usize; runs.len()];
        let mut ni = 0usize;
        for w in points.windows(2) {
            // The stretch `p..next`: no run starts or ends inside it.
            let (p, next) = (w[0], w[1]);
            while ni < nr.len() && (nr[ni].1 as u32) < p {
                ni += 1;
            }
            if ni == nr.len() {
                break;
            }
            if (nr[ni].0 as u32) > p {
                continue;
            }
            let mut u = 0u64;
            for (i, r) in runs.iter().enumerate() {
                let j = &mut at[i];
                while *j < r.len() && (r[*j].1 as u32) < p {
                    *j += 1;
                }
                if *j < r.len() && (r[*j].0 as u32) <= p {
                    u |= 1 << i;
                }
            }
            if self.lo <= u && u <= self.hi {
                let (start, last) = (p as u16, (next - 1) as u16);
                match out.last_mut() {
                    Some(prev) if prev.1 as u32 + 1 == p => prev.1 = last,
                    _ => out.push((start, last)),
                }
            }
        }
        Some(out)
    }
}

impl ChunkSource for BsiRange<'_> {
    fn keys(&self) -> Vec<u16> {
        self.nonnull
            .keys
            .iter()
            .copied()
            .filter(|&k| !matches!(self.classify(k), Chunk::Empty))
            .collect()
    }

    fn estimate(&self) -> u64 {
        self.estimate
    }

    fn runs(&self, key: u16) -> Option<Vec<Run>> {
        self.range_runs(key, self.nonnull.container(key)?)
    }

    fn classify(&self, key: u16) -> Chunk<'_> {
        let Some(nn) = self.nonnull.container(key) else {
            return Chunk::Empty;
        };
        match self.bsi.zone(key) {
            None => Chunk::Compute,
            Some(z) if z.min > z.max || z.max < self.lo || z.min > self.hi => Chunk::Empty,
            Some(z) if self.lo <= z.min && z.max <= self.hi => Chunk::Same(nn),
            Some(_) => Chunk::Compute,
        }
    }

    fn filter(&self, key: u16, cand: &[u16], keep: bool, scratch: &mut Scratch) -> Vec<u16> {
        let nn = match self.classify(key) {
            Chunk::Empty => return expr::none_or_all(cand, keep),
            Chunk::Same(c) => return expr::filter_container(cand, c, keep),
            Chunk::Compute => self.nonnull.container(key).expect("classified as non-empty"),
        };
        if cand.len() > PER_VALUE_MAX {
            return expr::filter_filled(self, key, cand, keep, scratch);
        }
        // Run-shaped slices with fewer run boundaries than candidates: the block's runs
        // (one comparison per stretch) cost less than reading every slice at every candidate.
        if self.run_bounds(key, nn).is_some_and(|b| b <= cand.len()) {
            if let Some(runs) = self.range_runs(key, nn) {
                return expr::filter_container(cand, &Container::Run(runs), keep);
            }
        }
        // Each candidate's value, read from the slices at the candidates' positions only.
        let live = expr::filter_container(cand, nn, true);
        if live.is_empty() {
            return expr::none_or_all(cand, keep);
        }
        let mut offs = vec![0u64; live.len()];
        for (i, slice) in self.bsi.slices.iter().enumerate() {
            match slice.container(key) {
                // Branch-free: a dense slice's bit is a coin toss for the branch predictor.
                Some(Container::Bits(w, _)) => {
                    for (u, &v) in offs.iter_mut().zip(&live) {
                        *u |= (w[v as usize / 64] >> (v % 64) & 1) << i;
                    }
                }
                Some(c) => c.for_each_present(&live, |j| offs[j] |= 1 << i),
                None => {}
            }
        }
        if keep {
            let mut hit = vec![0u16; live.len()];
            let mut k = 0usize;
            for (&v, &u) in live.iter().zip(&offs) {
                hit[k] = v;
                k += (self.lo <= u && u <= self.hi) as usize;
            }
            hit.truncate(k);
            return hit;
        }
        // The candidates out of the range: the null ones (not in `live`, a subsequence of
        // `cand`) and the live ones whose value is not in it, in one branch-free walk.
        let mut out = vec![0u16; cand.len()];
        let (mut j, mut k) = (0usize, 0usize);
        for &v in cand {
            let is_live = j < live.len() && live[j] == v;
            let u = offs[j.min(offs.len() - 1)];
            let hit = is_live && self.lo <= u && u <= self.hi;
            out[k] = v;
            k += !hit as usize;
            j += is_live as usize;
        }
        out.truncate(k);
        out
    }

    fn fill(&self, key: u16, out: &mut Words, scratch: &mut Scratch) -> bool {
        let Some(nn) = self.nonnull.container(key) else {
            return false;
        };
        if let Some(runs) = self.range_runs(key, nn) {
            out.fill(0);
            for &(start, last) in &runs {
                words::set_range(out, start, last);
            }
            return !runs.is_empty();
        }
        nn.write_words(out);
        let max = self.bsi.max_offset();
        // A bound the block's zone already satisfies needs no comparison.
        let zone = self.bsi.zone(key);
        let need_hi = self.hi < max && zone.is_none_or(|z| z.max > self.hi);
        let need_lo = self.lo > 0 && zone.is_none_or(|z| z.min < self.lo);
        let mut tmp = scratch.get();
        if self.lo == self.hi {
            self.compare(key, self.lo, None, out, &mut tmp, 0);
        } else {
            let mut lt = scratch.get();
            let mut eq = scratch.get();
            if need_hi {
                // v <= hi  <=>  v < hi + 1
                let c = self.hi + 1;
                nn.write_words(&mut eq);
                self.compare(key, c, Some(&mut lt), &mut eq, &mut tmp, c.trailing_zeros() as usize);
                words::and_assign_nocount(out, &lt);
            }
            if need_lo {
                nn.write_words(&mut eq);
                self.compare(
                    key,
                    self.lo,
                    Some(&mut lt),
                    &mut eq,
                    &mut tmp,
                    self.lo.trailing_zeros() as usize,
                );
                words::andnot_assign(out, &lt);
            }
            scratch.put(lt);
            scratch.put(eq);
        }
        scratch.put(tmp);
        words::any(out)
    }
}
