//! Orders stored columnar and partitioned by day, and per-member aggregation over a window.
//!
//! Each day keeps its orders sorted by member, in three columns: member (u32), store code (u16
//! while there are at most 65,536 stores, else u32) and amount (i64, fen). A window touches only
//! its days. Aggregation runs one 64K block of members at a time, in parallel: for each day the
//! block's orders are found by binary search, and the per-member accumulators (65,536 entries)
//! stay in cache.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::pred::Pred;
use crate::set::RoaringSet;
use crate::words::{self, Words};

/// Store codes of one day's orders.
#[derive(Clone, Debug)]
pub enum StoreCol {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl StoreCol {
    #[inline]
    fn get(&self, i: usize) -> u32 {
        match self {
            StoreCol::Narrow(v) => v[i] as u32,
            StoreCol::Wide(v) => v[i],
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            StoreCol::Narrow(v) => v.capacity() * 2,
            StoreCol::Wide(v) => v.capacity() * 4,
        }
    }

    fn widen(&mut self) {
        if let StoreCol::Narrow(v) = self {
            *self = StoreCol::Wide(v.iter().map(|&c| c as u32).collect());
        }
    }
}

/// The orders of one day, sorted by member.
#[derive(Clone, Debug)]
pub struct DayPart {
    pub members: Vec<u32>,
    pub stores: StoreCol,
    pub amounts: Vec<i64>,
    /// `block_starts[k]` is the index of the first order of a member in block `k` (ids `k << 16 ..`),
    /// so a block's orders are found without a binary search; one more entry closes the last block.
    block_starts: Vec<u32>,
}

impl DayPart {
    fn len(&self) -> usize {
        self.members.len()
    }

    fn heap_bytes(&self) -> usize {
        self.members.capacity() * 4
            + self.stores.heap_bytes()
            + self.amounts.capacity() * 8
            + self.block_starts.capacity() * 4
    }

    /// Builds from columns already sorted by member.
    pub fn new(members: Vec<u32>, stores: StoreCol, amounts: Vec<i64>) -> DayPart {
        let blocks = members.last().map_or(0, |&m| (m >> 16) as usize + 1);
        let mut block_starts = Vec::with_capacity(blocks + 1);
        for k in 0..=blocks {
            block_starts.push(members.partition_point(|&m| ((m >> 16) as usize) < k) as u32);
        }
        DayPart {
            members,
            stores,
            amounts,
            block_starts,
        }
    }

    /// Builds from unsorted `(member, code, amount)` rows.
    fn from_rows(mut rows: Vec<(u32, u32, i64)>, narrow: bool) -> DayPart {
        rows.sort_unstable_by_key(|r| r.0);
        let members = rows.iter().map(|r| r.0).collect();
        let stores = if narrow {
            StoreCol::Narrow(rows.iter().map(|r| r.1 as u16).collect())
        } else {
            StoreCol::Wide(rows.iter().map(|r| r.1).collect())
        };
        let amounts = rows.iter().map(|r| r.2).collect();
        DayPart::new(members, stores, amounts)
    }

    fn rows(&self) -> impl Iterator<Item = (u32, u32, i64)> + '_ {
        (0..self.len()).map(|i| (self.members[i], self.stores.get(i), self.amounts[i]))
    }

    /// Index range of the orders of members in block `key`.
    fn block_range(&self, key: u32) -> std::ops::Range<usize> {
        let k = key as usize;
        if k + 1 >= self.block_starts.len() {
            return 0..0;
        }
        self.block_starts[k] as usize..self.block_starts[k + 1] as usize
    }
}

/// All orders, by day.
#[derive(Clone, Debug, Default)]
pub struct Orders {
    pub days: BTreeMap<i32, DayPart>,
    /// Store id of each code.
    pub store_ids: Vec<u32>,
    pub(crate) codes: HashMap<u32, u32>,
}

/// Parallel input columns for a batch of orders.
pub struct OrderBatch<'a> {
    pub member: &'a [u32],
    pub store: &'a [u32],
    pub day: &'a [i32],
    pub amount: &'a [i64],
}

impl OrderBatch<'_> {
    /// Checks lengths and member ids.
    pub fn validate(&self, n_members: u64) -> Result<()> {
        let n = self.member.len();
        for (name, len) in [
            ("store", self.store.len()),
            ("day", self.day.len()),
            ("amount", self.amount.len()),
        ] {
            if len != n {
                return Err(EngineError::invalid(format!(
                    "{name} has {len} values but member has {n}: the order arrays must have equal lengths"
                )));
            }
        }
        let bad = self.member.par_iter().position_first(|&m| m as u64 >= n_members);
        if let Some(i) = bad {
            return Err(EngineError::invalid(format!(
                "member[{i}] = {} is not a member id (n_members = {n_members})",
                self.member[i]
            )));
        }
        Ok(())
    }
}

/// Which metric an orders condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Count,
    Sum,
    Max,
    Avg,
    DistinctStores,
    FirstDay,
    LastDay,
}

impl Metric {
    /// Parses the package spelling.
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "count" => Metric::Count,
            "sum" => Metric::Sum,
            "max" => Metric::Max,
            "avg" => Metric::Avg,
            "distinct_stores" => Metric::DistinctStores,
            "first_day" => Metric::FirstDay,
            "last_day" => Metric::LastDay,
            _ => return None,
        })
    }
}

/// The orders an orders condition looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Sorted distinct store ids, or `None` for all stores.
    pub stores: Option<Vec<u32>>,
    pub from_day: i32,
    pub to_day: i32,
}

/// One comparison on one metric.
#[derive(Clone, Debug)]
pub struct MetricCond {
    pub metric: Metric,
    pub pred: Pred,
}

/// Per-member accumulators for one block of 65,536 members.
struct Acc {
    present: Box<Words>,
    count: Vec<u32>,
    /// Sums wrap in i64 (half the cache footprint of i128); `carries` keeps the exact
    /// correction (a multiple of 2^64) for the rare member whose sum overflowed.
    sum: Vec<i64>,
    carries: HashMap<usize, i128>,
    max: Vec<i64>,
    first: Vec<i32>,
    last: Vec<i32>,
    pairs: Vec<u64>,
    distinct: Vec<u32>,
    /// Indices of the orders of one day and block that pass the store filter.
    picked: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Needs {
    count: bool,
    sum: bool,
    max: bool,
    days: bool,
    distinct: bool,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            present: words::zeroed(),
            count: Vec::new(),
            sum: Vec::new(),
            carries: HashMap::new(),
            max: Vec::new(),
            first: Vec::new(),
            last: Vec::new(),
            pairs: Vec::new(),
            distinct: Vec::new(),
            picked: Vec::new(),
        }
    }

    /// Allocates the accumulators `n` needs (once per thread; they are reset after each block).
    fn prepare(&mut self, n: Needs) {
        const B: usize = 1 << 16;
        if n.count && self.count.is_empty() {
            self.count = vec![0; B];
        }
        if n.sum && self.sum.is_empty() {
            self.sum = vec![0; B];
        }
        if n.max && self.max.is_empty() {
            self.max = vec![i64::MIN; B];
        }
        if n.days && self.first.is_empty() {
            self.first = vec![i32::MAX; B];
            self.last = vec![i32::MIN; B];
        }
        if n.distinct && self.distinct.is_empty() {
            self.distinct = vec![0; B];
        }
    }
}

thread_local! {
    static ACC: std::cell::RefCell<Acc> = std::cell::RefCell::new(Acc::new());
}

/// Runs `f` with this thread's accumulators, kept between calls so their pages stay mapped.
fn with_acc<T>(f: impl FnOnce(&mut Acc) -> T) -> T {
    ACC.with(|a| match a.try_borrow_mut() {
        Ok(mut a) => f(&mut a),
        Err(_) => f(&mut Acc::new()),
    })
}

impl Orders {
    /// Number of orders.
    pub fn len(&self) -> u64 {
        self.days.values().map(|d| d.len() as u64).sum()
    }

    /// Whether there are no orders.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.days.values().map(|d| d.heap_bytes() + 64).sum::<usize>()
            + self.store_ids.capacity() * 4
            + self.codes.capacity() * 16
    }

    fn narrow(&self) -> bool {
        self.store_ids.len() <= 1 << 16
    }

    /// Rebuilds the store code lookup after loading `store_ids`; false when ids repeat.
    pub fn rebuild_codes(&mut self) -> bool {
        self.codes = self.store_ids.iter().enumerate().map(|(c, &s)| (s, c as u32)).collect();
        self.codes.len() == self.store_ids.len()
    }

    /// Stores every day's store codes as u32.
    pub fn widen_all(&mut self) {
        for d in self.days.values_mut() {
            d.stores.widen();
        }
    }

    /// The code of each store in `stores`, adding codes for new stores.
    fn encode_stores(&mut self, stores: &[u32]) -> Vec<u32> {
        let was_narrow = self.narrow();
        let mut distinct: Vec<u32> = {
            let mut seen: Vec<u32> = stores.to_vec();
            seen.par_sort_unstable();
            seen.dedup();
            seen
        };
        distinct.retain(|s| !self.codes.contains_key(s));
        for s in distinct {
            self.codes.insert(s, self.store_ids.len() as u32);
            self.store_ids.push(s);
        }
        if was_narrow && !self.narrow() {
            for d in self.days.values_mut() {
                d.stores.widen();
            }
        }
        let codes = &self.codes;
        stores.par_iter().map(|s| codes[s]).collect()
    }

    /// Adds a batch of orders (validated by the caller).
    pub fn append(&mut self, b: &OrderBatch<'_>) {
        if b.member.is_empty() {
            return;
        }
        let codes = self.encode_stores(b.store);
        let narrow = self.narrow();
        // Group row indices by day.
        let mut by_day: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        let (min, max) = b
            .day
            .par_iter()
            .fold(|| (i32::MAX, i32::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)))
            .reduce(|| (i32::MAX, i32::MIN), |a, c| (a.0.min(c.0), a.1.max(c.1)));
        let span = (max as i64 - min as i64 + 1) as usize;
        if span <= 1 << 22 {
            let mut counts = vec![0u32; span + 1];
            for &d in b.day {
                counts[(d as i64 - min as i64) as usize + 1] += 1;
            }
            for i in 1..counts.len() {
                counts[i] += counts[i - 1];
            }
            let mut perm = vec![0u32; b.day.len()];
            let mut next = counts.clone();
            for (i, &d) in b.day.iter().enumerate() {
                let slot = &mut next[(d as i64 - min as i64) as usize];
                perm[*slot as usize] = i as u32;
                *slot += 1;
            }
            for off in 0..span {
                let (s, e) = (counts[off] as usize, counts[off + 1] as usize);
                if s < e {
                    by_day.insert((min as i64 + off as i64) as i32, perm[s..e].to_vec());
                }
            }
        } else {
            for (i, &d) in b.day.iter().enumerate() {
                by_day.entry(d).or_default().push(i as u32);
            }
        }
        let existing: Vec<(i32, Vec<u32>, Option<DayPart>)> = by_day
            .into_iter()
            .map(|(d, idx)| (d, idx, self.days.remove(&d)))
            .collect();
        let built: Vec<(i32, DayPart)> = existing
            .into_par_iter()
            .map(|(d, idx, old)| {
                let mut rows: Vec<(u32, u32, i64)> =
                    Vec::with_capacity(idx.len() + old.as_ref().map_or(0, |o| o.len()));
                if let Some(o) = &old {
                    rows.extend(o.rows());
                }
                rows.extend(idx.iter().map(|&i| {
                    let i = i as usize;
                    (b.member[i], codes[i], b.amount[i])
                }));
                (d, DayPart::from_rows(rows, narrow))
            })
            .collect();
        self.days.extend(built);
    }

    /// For each condition, the members whose metric over the window's orders matches.
    pub fn evaluate(&self, n_members: u64, w: &Window, conds: &[MetricCond]) -> Vec<RoaringSet> {
        let days: Vec<&DayPart> = if w.from_day <= w.to_day {
            self.days.range(w.from_day..=w.to_day).map(|(_, p)| p).collect()
        } else {
            Vec::new()
        };
        let day_nums: Vec<i32> = if w.from_day <= w.to_day {
            self.days.range(w.from_day..=w.to_day).map(|(d, _)| *d).collect()
        } else {
            Vec::new()
        };
        // One flag per store code: a table lookup per order, no hashing.
        let filter: Option<Vec<bool>> = w.stores.as_ref().map(|stores| {
            let mut pass = vec![false; self.store_ids.len()];
            for s in stores {
                if let Some(&c) = self.codes.get(s) {
                    pass[c as usize] = true;
                }
            }
            pass
        });
        if days.is_empty() || conds.is_empty() || filter.as_ref().is_some_and(|f| !f.contains(&true)) {
            return conds.iter().map(|_| RoaringSet::new()).collect();
        }
        let needs = Needs {
            count: conds.iter().any(|c| matches!(c.metric, Metric::Count | Metric::Avg)),
            sum: conds.iter().any(|c| matches!(c.metric, Metric::Sum | Metric::Avg)),
            max: conds.iter().any(|c| c.metric == Metric::Max),
            days: conds
                .iter()
                .any(|c| matches!(c.metric, Metric::FirstDay | Metric::LastDay)),
            distinct: conds.iter().any(|c| c.metric == Metric::DistinctStores),
        };
        let n_keys = n_members.div_ceil(1 << 16) as usize;
        // Contiguous runs of keys, each scanned with one set of accumulators (allocated once per
        // run, not per key: they are over a megabyte).
        let runs = (rayon::current_num_threads() * 4).clamp(1, n_keys.max(1));
        let per_run = n_keys.div_ceil(runs).max(1);
        let per_key: Vec<Vec<Option<Container>>> = (0..n_keys)
            .step_by(per_run)
            .collect::<Vec<_>>()
            .into_par_iter()
            .flat_map_iter(|start| {
                with_acc(|acc| {
                    (start..(start + per_run).min(n_keys))
                        .map(|k| scan_key(k as u32, &days, &day_nums, filter.as_deref(), needs, conds, acc))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        (0..conds.len())
            .map(|ci| {
                RoaringSet::from_pairs(
                    per_key
                        .iter()
                        .enumerate()
                        .filter_map(|(k, cs)| cs[ci].clone().map(|c| (k as u16, c))),
                )
            })
            .collect()
    }
}

/// Adds one order (index `i` of `part`) to the accumulators.
#[inline(always)]
fn add_order(acc: &mut Acc, needs: Needs, part: &DayPart, i: usize, day: i32) {
    let m = (part.members[i] & 0xFFFF) as usize;
    acc.present[m / 64] |= 1 << (m % 64);
    if needs.count {
        acc.count[m] += 1;
    }
    if needs.sum {
        let a = part.amounts[i];
        let (total, wrapped) = acc.sum[m].overflowing_add(a);
        acc.sum[m] = total;
        if wrapped {
            *acc.carries.entry(m).or_insert(0) += if a > 0 { 1i128 << 64 } else { -(1i128 << 64) };
        }
    }
    if needs.max {
        acc.max[m] = acc.max[m].max(part.amounts[i]);
    }
    if needs.days {
        acc.first[m] = acc.first[m].min(day);
        acc.last[m] = acc.last[m].max(day);
    }
    if needs.distinct {
        acc.pairs.push((m as u64) << 32 | part.stores.get(i) as u64);
    }
}

/// Indices in `range` whose store passes, compacted without branches.
fn pick<S: Copy + Into<u32>>(stores: &[S], range: std::ops::Range<usize>, pass: &[bool], out: &mut Vec<u32>) {
    out.clear();
    out.resize(range.len(), 0);
    let mut k = 0usize;
    for i in range {
        out[k] = i as u32;
        k += pass[stores[i].into() as usize] as usize;
    }
    out.truncate(k);
}

#[allow(clippy::too_many_arguments)]
fn scan_key(
    key: u32,
    days: &[&DayPart],
    day_nums: &[i32],
    filter: Option<&[bool]>,
    needs: Needs,
    conds: &[MetricCond],
    acc: &mut Acc,
) -> Vec<Option<Container>> {
    acc.prepare(needs);
    let mut any = false;
    for (part, &day) in days.iter().zip(day_nums) {
        let r = part.block_range(key);
        if r.is_empty() {
            continue;
        }
        match filter {
            None => {
                any = true;
                for i in r {
                    add_order(acc, needs, part, i, day);
                }
            }
            Some(pass) => {
                let mut picked = std::mem::take(&mut acc.picked);
                match &part.stores {
                    StoreCol::Narrow(v) => pick(v, r, pass, &mut picked),
                    StoreCol::Wide(v) => pick(v, r, pass, &mut picked),
                }
                any |= !picked.is_empty();
                for &i in &picked {
                    add_order(acc, needs, part, i as usize, day);
                }
                acc.picked = picked;
            }
        }
    }
    if !any {
        return conds.iter().map(|_| None).collect();
    }
    if needs.distinct {
        acc.pairs.sort_unstable();
        acc.pairs.dedup();
        for &p in &acc.pairs {
            acc.distinct[(p >> 32) as usize] += 1;
        }
        acc.pairs.clear();
    }
    let mut outs: Vec<Box<Words>> = conds.iter().map(|_| words::zeroed()).collect();
    for wi in 0..words::WORDS {
        let mut bits = acc.present[wi];
        if bits == 0 {
            continue;
        }
        acc.present[wi] = 0;
        while bits != 0 {
            let m = wi * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let sum = if needs.sum {
                acc.sum[m] as i128 + acc.carries.get(&m).copied().unwrap_or(0)
            } else {
                0
            };
            for (c, out) in conds.iter().zip(outs.iter_mut()) {
                let hit = match c.metric {
                    Metric::Count => c.pred.test(acc.count[m] as i128),
                    Metric::Sum => c.pred.test(sum),
                    Metric::Max => c.pred.test(acc.max[m] as i128),
                    Metric::Avg => c.pred.test_mean(sum, acc.count[m] as i128),
                    Metric::DistinctStores => c.pred.test(acc.distinct[m] as i128),
                    Metric::FirstDay => c.pred.test(acc.first[m] as i128),
                    Metric::LastDay => c.pred.test(acc.last[m] as i128),
                };
                if hit {
                    out[m / 64] |= 1 << (m % 64);
                }
            }
            if needs.count {
                acc.count[m] = 0;
            }
            if needs.sum {
                acc.sum[m] = 0;
            }
            if needs.max {
                acc.max[m] = i64::MIN;
            }
            if needs.days {
                acc.first[m] = i32::MAX;
                acc.last[m] = i32::MIN;
            }
            if needs.distinct {
                acc.distinct[m] = 0;
            }
        }
    }
    acc.carries.clear();
    outs.into_iter()
        .map(|w| {
            let c = words::popcount(&w);
            (c > 0).then(|| Container::from_words(w, c))
        })
        .collect()
}
