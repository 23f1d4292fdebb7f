//! `RoaringSet`: a roaring bitmap of u32 ids, kept as containers sorted by their high 16-bit key.
//!
//! The containers are public to the crate so that evaluation can work block by block.

use rayon::prelude::*;

use crate::container::Container;

/// Containers per rayon task for binary operations; below `PAR_MIN` containers it stays serial.
const PAR_MIN: usize = 32;

/// A set of u32 ids in roaring layout.
#[derive(Clone, Debug, Default)]
pub struct RoaringSet {
    pub(crate) keys: Vec<u16>,
    pub(crate) containers: Vec<Container>,
}

#[inline]
fn split(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, v as u16)
}

impl PartialEq for RoaringSet {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self
                .containers
                .iter()
                .zip(&other.containers)
                .all(|(a, b)| a.same_ids(b))
    }
}
impl Eq for RoaringSet {}

impl RoaringSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from parallel key and container lists (keys ascending, containers non-empty).
    pub fn from_parts(keys: Vec<u16>, containers: Vec<Container>) -> Self {
        debug_assert_eq!(keys.len(), containers.len());
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(containers.iter().all(|c| !c.is_empty()));
        RoaringSet { keys, containers }
    }

    /// Builds from `(key, container)` pairs in ascending key order, dropping empty containers.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, Container)>) -> Self {
        let pairs = pairs.into_iter();
        let (low, high) = pairs.size_hint();
        let mut s = RoaringSet::new();
        s.keys.reserve(high.unwrap_or(low));
        s.containers.reserve(high.unwrap_or(low));
        for (k, c) in pairs {
            if !c.is_empty() {
                s.keys.push(k);
                s.containers.push(c);
            }
        }
        s
    }

    /// Builds from sorted, distinct ids.
    pub fn from_sorted_unique(values: &[u32]) -> Self {
        let mut s = RoaringSet::new();
        let mut i = 0;
        while i < values.len() {
            let key = (values[i] >> 16) as u16;
            let end = i + values[i..].partition_point(|&v| (v >> 16) as u16 == key);
            let low: Vec<u16> = values[i..end].iter().map(|&v| v as u16).collect();
            s.keys.push(key);
            s.containers.push(Container::from_sorted(low));
            i = end;
        }
        s
    }

    /// Builds from ids in any order, with duplicates; containers are run-optimized.
    pub fn from_unsorted(mut values: Vec<u32>) -> Self {
        if !values.is_sorted() {
            if values.len() > 1 << 16 {
                values.par_sort_unstable();
            } else {
                values.sort_unstable();
            }
        }
        values.dedup();
        let mut s = Self::from_sorted_unique(&values);
        s.optimize();
        s
    }

    /// The ids `0..n`.
    pub fn universe(n: u64) -> Self {
        let mut s = RoaringSet::new();
        let mut start = 0u64;
        while start < n {
            let key = (start >> 16) as u16;
            let last = ((key as u64 + 1) << 16).min(n) - 1;
            s.keys.push(key);
            s.containers.push(Container::range(0, (last & 0xFFFF) as u16));
            start = last + 1;
        }
        s
    }

    /// Converts containers to CRoaring's `run_optimize` choice of representation.
    pub fn optimize(&mut self) {
        for c in &mut self.containers {
            let taken = std::mem::replace(c, Container::Array(Vec::new()));
            *c = taken.optimized();
        }
    }

    /// Number of ids.
    pub fn len(&self) -> u64 {
        self.containers.iter().map(|c| c.len() as u64).sum()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Largest id.
    pub fn max(&self) -> Option<u32> {
        let (k, c) = (self.keys.last()?, self.containers.last()?);
        c.max().map(|low| (*k as u32) << 16 | low as u32)
    }

    /// The container for `key`, if any. Where the keys run without gaps from the first (every
    /// block of a set holding more than a few ids per 64K), its index is `key - first` and no
    /// search is needed: the evaluation of a tree looks every leaf up at every key.
    #[inline]
    pub fn container(&self, key: u16) -> Option<&Container> {
        let first = *self.keys.first()?;
        let guess = key.wrapping_sub(first) as usize;
        if self.keys.get(guess) == Some(&key) {
            return Some(&self.containers[guess]);
        }
        self.keys.binary_search(&key).ok().map(|i| &self.containers[i])
    }

    /// Whether `v` is present.
    pub fn contains(&self, v: u32) -> bool {
        let (k, low) = split(v);
        self.container(k).is_some_and(|c| c.contains(low))
    }

    /// Inserts `v`; returns whether it was absent.
    pub fn insert(&mut self, v: u32) -> bool {
        let (k, low) = split(v);
        match self.keys.binary_search(&k) {
            Ok(i) => self.containers[i].insert(low),
            Err(i) => {
                self.keys.insert(i, k);
                self.containers.insert(i, Container::Array(vec![low]));
                true
            }
        }
    }

    /// Removes `v`; returns whether it was present.
    pub fn remove(&mut self, v: u32) -> bool {
        let (k, low) = split(v);
        match self.keys.binary_search(&k) {
            Ok(i) => {
                let removed = self.containers[i].remove(low);
                if removed && self.containers[i].is_empty() {
                    self.keys.remove(i);
                    self.containers.remove(i);
                }
                removed
            }
            Err(_) => false,
        }
    }

    /// Inserts (`true`) or removes (`false`) each id; ids must be ascending and distinct.
    /// Walks the keys once instead of searching them for every id.
    pub fn assign_sorted(&mut self, items: impl IntoIterator<Item = (u32, bool)>) {
        let mut ki = 0usize;
        for (v, on) in items {
            let (k, low) = split(v);
            while ki < self.keys.len() && self.keys[ki] < k {
                ki += 1;
            }
            if ki < self.keys.len() && self.keys[ki] == k {
                let c = &mut self.containers[ki];
                if on {
                    c.insert(low);
                } else if c.remove(low) && c.is_empty() {
                    self.keys.remove(ki);
                    self.containers.remove(ki);
                }
            } else if on {
                self.keys.insert(ki, k);
                self.containers.insert(ki, Container::Array(vec![low]));
            }
        }
    }

    /// All ids in ascending order.
    pub fn to_vec(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for (k, c) in self.keys.iter().zip(&self.containers) {
            c.extend_values((*k as u32) << 16, &mut out);
        }
        out
    }

    /// The ids of ranks `offset .. offset + limit`.
    pub fn page(&self, offset: u64, limit: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let mut skip = offset;
        let mut want = limit;
        for (k, c) in self.keys.iter().zip(&self.containers) {
            if want == 0 {
                break;
            }
            let n = c.len() as u64;
            if skip >= n {
                skip -= n;
                continue;
            }
            let before = out.len();
            c.extend_values_from((*k as u32) << 16, skip as u32, want.min(n) as usize, &mut out);
            want -= (out.len() - before) as u64;
            skip = 0;
        }
        out
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 2
            + self.containers.capacity() * std::mem::size_of::<Container>()
            + self.containers.iter().map(|c| c.heap_bytes()).sum::<usize>()
    }

    /// Pairs up containers by key for a binary operation.
    fn zip_keys<'a>(
        &'a self,
        other: &'a RoaringSet,
        keep_left: bool,
        keep_right: bool,
    ) -> Vec<(u16, Option<&'a Container>, Option<&'a Container>)> {
        let (a, b) = (self, other);
        let mut out = Vec::with_capacity(a.keys.len().max(b.keys.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.keys.len() || j < b.keys.len() {
            let ka = a.keys.get(i).copied().map_or(u32::MAX, u32::from);
            let kb = b.keys.get(j).copied().map_or(u32::MAX, u32::from);
            if ka < kb {
                if keep_left {
                    out.push((ka as u16, Some(&a.containers[i]), None));
                }
                i += 1;
            } else if kb < ka {
                if keep_right {
                    out.push((kb as u16, None, Some(&b.containers[j])));
                }
                j += 1;
            } else {
                out.push((ka as u16, Some(&a.containers[i]), Some(&b.containers[j])));
                i += 1;
                j += 1;
            }
        }
        out
    }

    fn combine(
        &self,
        other: &RoaringSet,
        keep_left: bool,
        keep_right: bool,
        f: impl Fn(Option<&Container>, Option<&Container>) -> Option<Container> + Sync,
    ) -> RoaringSet {
        let pairs = self.zip_keys(other, keep_left, keep_right);
        let results: Vec<(u16, Option<Container>)> = if pairs.len() >= PAR_MIN {
            pairs
                .par_iter()
                .with_min_len(8)
                .map(|&(k, a, b)| (k, f(a, b)))
                .collect()
        } else {
            pairs.iter().map(|&(k, a, b)| (k, f(a, b))).collect()
        };
        RoaringSet::from_pairs(results.into_iter().filter_map(|(k, c)| c.map(|c| (k, c))))
    }

    /// `self & other`.
    pub fn and(&self, other: &RoaringSet) -> RoaringSet {
        self.combine(other, false, false, |a, b| a?.and(b?))
    }

    /// `self | other`.
    pub fn or(&self, other: &RoaringSet) -> RoaringSet {
        self.combine(other, true, true, |a, b| match (a, b) {
            (Some(a), Some(b)) => Some(a.or(b)),
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        })
    }

    /// `self - other`.
    pub fn andnot(&self, other: &RoaringSet) -> RoaringSet {
        self.combine(other, true, false, |a, b| match b {
            Some(b) => a?.andnot(b),
            None => a.cloned(),
        })
    }

    /// `self ^ other`.
    pub fn xor(&self, other: &RoaringSet) -> RoaringSet {
        self.combine(other, true, true, |a, b| match (a, b) {
            (Some(a), Some(b)) => a.xor(b),
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        })
    }

    /// `len(self & other)` without building it.
    pub fn intersection_len(&self, other: &RoaringSet) -> u64 {
        self.zip_keys(other, false, false)
            .iter()
            .map(|&(_, a, b)| a.zip(b).map_or(0, |(a, b)| a.and_len(b) as u64))
            .sum()
    }

    /// `len(self - other)` without building it.
    pub fn difference_len(&self, other: &RoaringSet) -> u64 {
        self.len() - self.intersection_len(other)
    }

    /// `len(self | other)` without building it.
    pub fn union_len(&self, other: &RoaringSet) -> u64 {
        self.len() + other.len() - self.intersection_len(other)
    }
}

impl FromIterator<u32> for RoaringSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        RoaringSet::from_unsorted(iter.into_iter().collect())
    }
}
