//! One roaring container: the low 16 bits of the ids that share one high 16-bit key,
//! stored as a sorted array, a 64K-bit bitset or a list of runs, as in the roaring format.

use crate::sorted;
use crate::words::{self, Words, WORDS};

/// Largest cardinality kept as a sorted array; above it a bitset is smaller.
pub const ARRAY_MAX: usize = 4096;

/// An inclusive run of ids `start..=last`.
pub type Run = (u16, u16);

/// The ids of one 64K block. Never empty when stored in a bitmap.
#[derive(Clone, Debug)]
pub enum Container {
    /// Sorted, distinct values.
    Array(Vec<u16>),
    /// A bitset and its population.
    Bits(Box<Words>, u32),
    /// Sorted, disjoint, non-adjacent inclusive runs.
    Run(Vec<Run>),
}

impl Container {
    /// The full block `0..=65535`.
    pub fn full() -> Container {
        Container::Run(vec![(0, u16::MAX)])
    }

    /// A block holding `start..=last`.
    pub fn range(start: u16, last: u16) -> Container {
        Container::Run(vec![(start, last)])
    }

    /// Chooses an array or a bitset for sorted distinct values.
    pub fn from_sorted(values: Vec<u16>) -> Container {
        if values.len() <= ARRAY_MAX {
            Container::Array(values)
        } else {
            let mut w = words::zeroed();
            for &v in &values {
                w[v as usize / 64] |= 1 << (v % 64);
            }
            Container::Bits(w, values.len() as u32)
        }
    }

    /// Chooses an array or a bitset for a bitset of known population.
    pub fn from_words(w: Box<Words>, card: u32) -> Container {
        if card as usize <= ARRAY_MAX {
            Container::Array(words::to_array(&w, card))
        } else {
            Container::Bits(w, card)
        }
    }

    /// Like [`Container::from_words`] but copies from a borrowed block.
    pub fn from_words_ref(w: &Words, card: u32) -> Container {
        if card as usize <= ARRAY_MAX {
            Container::Array(words::to_array(w, card))
        } else {
            Container::Bits(Box::new(*w), card)
        }
    }

    /// Number of ids.
    pub fn len(&self) -> u32 {
        match self {
            Container::Array(v) => v.len() as u32,
            Container::Bits(_, c) => *c,
            Container::Run(r) => r.iter().map(|&(s, l)| (l - s) as u32 + 1).sum(),
        }
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        match self {
            Container::Array(v) => v.is_empty(),
            Container::Bits(_, c) => *c == 0,
            Container::Run(r) => r.is_empty(),
        }
    }

    /// Whether the block holds all 65536 ids.
    pub fn is_full(&self) -> bool {
        match self {
            Container::Run(r) => r.len() == 1 && r[0] == (0, u16::MAX),
            Container::Bits(_, c) => *c == 65536,
            Container::Array(_) => false,
        }
    }

    /// Whether `v` is present.
    #[inline]
    pub fn contains(&self, v: u16) -> bool {
        match self {
            Container::Array(a) => a.binary_search(&v).is_ok(),
            Container::Bits(w, _) => words::get(w, v),
            Container::Run(r) => run_index(r, v).is_ok(),
        }
    }

    /// Calls `f(j)` for each `j` whose `sorted[j]` (ascending, distinct) is present: one merge
    /// walk over arrays and runs, a bit test per value in a bitset.
    pub fn for_each_present(&self, sorted: &[u16], mut f: impl FnMut(usize)) {
        match self {
            Container::Bits(w, _) => {
                for (j, &v) in sorted.iter().enumerate() {
                    if words::get(w, v) {
                        f(j);
                    }
                }
            }
            Container::Array(a) => {
                let mut i = 0usize;
                for (j, &v) in sorted.iter().enumerate() {
                    i += a[i..].partition_point(|&x| x < v);
                    if i == a.len() {
                        break;
                    }
                    if a[i] == v {
                        f(j);
                    }
                }
            }
            Container::Run(r) => {
                let mut i = 0usize;
                for (j, &v) in sorted.iter().enumerate() {
                    while i < r.len() && r[i].1 < v {
                        i += 1;
                    }
                    if i == r.len() {
                        break;
                    }
                    if r[i].0 <= v {
                        f(j);
                    }
                }
            }
        }
    }

    /// Number of ids `<= v`.
    pub fn rank(&self, v: u16) -> u32 {
        match self {
            Container::Array(a) => a.partition_point(|&x| x <= v) as u32,
            Container::Bits(w, _) => words::popcount_range(w, 0, v),
            Container::Run(r) => {
                let mut n = 0;
                for &(s, l) in r {
                    if s > v {
                        break;
                    }
                    n += (l.min(v) - s) as u32 + 1;
                }
                n
            }
        }
    }

    /// The id of rank `n` (0-based); `n` must be below `len()`.
    pub fn select(&self, mut n: u32) -> u16 {
        match self {
            Container::Array(a) => a[n as usize],
            Container::Bits(w, _) => words::select(w, n),
            Container::Run(r) => {
                for &(s, l) in r {
                    let len = (l - s) as u32 + 1;
                    if n < len {
                        return s + n as u16;
                    }
                    n -= len;
                }
                unreachable!("select past the population")
            }
        }
    }

    /// Smallest id.
    pub fn min(&self) -> Option<u16> {
        match self {
            Container::Array(a) => a.first().copied(),
            Container::Bits(_, 0) => None,
            Container::Bits(w, _) => Some(words::select(w, 0)),
            Container::Run(r) => r.first().map(|r| r.0),
        }
    }

    /// Largest id.
    pub fn max(&self) -> Option<u16> {
        match self {
            Container::Array(a) => a.last().copied(),
            Container::Bits(_, 0) => None,
            Container::Bits(w, c) => Some(words::select(w, c - 1)),
            Container::Run(r) => r.last().map(|r| r.1),
        }
    }

    /// Appends ids of ranks `from..` (at most `limit` of them), each OR-ed with `high`.
    pub fn extend_values_from(&self, high: u32, from: u32, limit: usize, out: &mut Vec<u32>) {
        let end = out.len() + limit;
        match self {
            Container::Array(a) => {
                let a = &a[(from as usize).min(a.len())..];
                out.extend(a.iter().take(limit).map(|&v| high | v as u32));
            }
            Container::Bits(w, card) => {
                if from == 0 && limit >= *card as usize {
                    words::extend_values(w, high, out);
                    return;
                }
                if from >= *card {
                    return;
                }
                let first = words::select(w, from) as usize;
                let mut i = first / 64;
                let mut word = w[i] & (!0u64 << (first % 64));
                loop {
                    while word != 0 {
                        if out.len() == end {
                            return;
                        }
                        out.push(high | (i as u32 * 64 + word.trailing_zeros()));
                        word &= word - 1;
                    }
                    i += 1;
                    if i == WORDS {
                        return;
                    }
                    word = w[i];
                }
            }
            Container::Run(r) => {
                let mut skip = from;
                for &(s, l) in r {
                    let len = (l - s) as u32 + 1;
                    if skip >= len {
                        skip -= len;
                        continue;
                    }
                    let mut v = s as u32 + skip;
                    skip = 0;
                    while v <= l as u32 {
                        if out.len() == end {
                            return;
                        }
                        out.push(high | v);
                        v += 1;
                    }
                }
            }
        }
    }

    /// Appends every id, OR-ed with `high`.
    pub fn extend_values(&self, high: u32, out: &mut Vec<u32>) {
        self.extend_values_from(high, 0, usize::MAX / 2, out)
    }

    /// Writes the block as a bitset into `out`, overwriting it.
    pub fn write_words(&self, out: &mut Words) {
        match self {
            Container::Bits(w, _) => out.copy_from_slice(&w[..]),
            _ => {
                out.fill(0);
                self.or_into_words(out);
            }
        }
    }

    /// `out |= self`.
    pub fn or_into_words(&self, out: &mut Words) {
        match self {
            Container::Array(a) => {
                for &v in a {
                    out[v as usize / 64] |= 1 << (v % 64);
                }
            }
            Container::Bits(w, _) => words::or_assign(out, w),
            Container::Run(r) => {
                for &(s, l) in r {
                    words::set_range(out, s, l);
                }
            }
        }
    }

    /// `out &= self`.
    pub fn and_into_words(&self, out: &mut Words) {
        match self {
            Container::Bits(w, _) => words::and_assign_nocount(out, w),
            Container::Array(a) => {
                let mut keep = [0u64; WORDS];
                for &v in a {
                    keep[v as usize / 64] |= 1 << (v % 64);
                }
                words::and_assign_nocount(out, &keep);
            }
            Container::Run(r) => {
                let mut prev: u32 = 0;
                for &(s, l) in r {
                    if s as u32 > prev {
                        words::clear_range(out, prev as u16, s - 1);
                    }
                    prev = l as u32 + 1;
                }
                if prev <= u16::MAX as u32 {
                    words::clear_range(out, prev as u16, u16::MAX);
                }
            }
        }
    }

    /// `out &= !self`.
    pub fn andnot_into_words(&self, out: &mut Words) {
        match self {
            Container::Array(a) => {
                for &v in a {
                    out[v as usize / 64] &= !(1 << (v % 64));
                }
            }
            Container::Bits(w, _) => words::andnot_assign(out, w),
            Container::Run(r) => {
                for &(s, l) in r {
                    words::clear_range(out, s, l);
                }
            }
        }
    }

    /// `out ^= self`.
    pub fn xor_into_words(&self, out: &mut Words) {
        match self {
            Container::Array(a) => {
                for &v in a {
                    out[v as usize / 64] ^= 1 << (v % 64);
                }
            }
            Container::Bits(w, _) => words::xor_assign(out, w),
            Container::Run(r) => {
                let mut m = [0u64; WORDS];
                for &(s, l) in r {
                    words::set_range(&mut m, s, l);
                }
                words::xor_assign(out, &m);
            }
        }
    }

    /// The block as a freshly allocated bitset.
    pub fn to_words(&self) -> Box<Words> {
        let mut w = words::zeroed();
        self.or_into_words(&mut w);
        w
    }

    /// The ids as a sorted array (any cardinality).
    pub fn to_array(&self) -> Vec<u16> {
        match self {
            Container::Array(a) => a.clone(),
            Container::Bits(w, c) => words::to_array(w, *c),
            Container::Run(r) => {
                let mut out = Vec::with_capacity(self.len() as usize);
                for &(s, l) in r {
                    out.extend(s..=l);
                }
                out
            }
        }
    }

    /// The ids as runs.
    pub fn to_runs(&self) -> Vec<Run> {
        match self {
            Container::Run(r) => r.clone(),
            Container::Array(a) => runs_of_sorted(a),
            Container::Bits(w, _) => words::to_runs(w),
        }
    }

    /// Number of runs of consecutive ids.
    pub fn count_runs(&self) -> u32 {
        match self {
            Container::Run(r) => r.len() as u32,
            Container::Array(a) => {
                if a.is_empty() {
                    return 0;
                }
                1 + a.windows(2).filter(|p| p[1] != p[0] + 1).count() as u32
            }
            Container::Bits(w, _) => words::count_runs(w),
        }
    }

    /// Converts to the smallest of array, bitset and runs, with CRoaring's `run_optimize` rule,
    /// so that optimized bitmaps serialize byte for byte as pyroaring's do.
    pub fn optimized(self) -> Container {
        let card = self.len();
        let runs = self.count_runs();
        let run_size = 2 + 4 * runs as usize;
        let natural_is_array = card as usize <= ARRAY_MAX;
        let natural_size = if natural_is_array { 2 * card as usize } else { 8192 };
        if run_size < natural_size {
            match self {
                Container::Run(_) => self,
                other => Container::Run(other.to_runs()),
            }
        } else {
            self.normalized()
        }
    }

    /// Converts runs and wrongly sized arrays or bitsets to the array/bitset chosen by cardinality.
    pub fn normalized(self) -> Container {
        match self {
            Container::Array(a) if a.len() > ARRAY_MAX => Container::from_sorted(a),
            Container::Bits(w, c) if c as usize <= ARRAY_MAX => Container::from_words(w, c),
            Container::Run(ref r) => {
                let card = self.len();
                if card as usize <= ARRAY_MAX {
                    let mut out = Vec::with_capacity(card as usize);
                    for &(s, l) in r {
                        out.extend(s..=l);
                    }
                    Container::Array(out)
                } else {
                    Container::Bits(self.to_words(), card)
                }
            }
            other => other,
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Container::Array(a) => a.capacity() * 2,
            Container::Bits(..) => WORDS * 8,
            Container::Run(r) => r.capacity() * 4,
        }
    }

    /// Inserts `v`; returns whether it was absent.
    pub fn insert(&mut self, v: u16) -> bool {
        match self {
            Container::Array(a) => match a.binary_search(&v) {
                Ok(_) => false,
                Err(i) => {
                    a.insert(i, v);
                    if a.len() > ARRAY_MAX {
                        let taken = std::mem::take(a);
                        *self = Container::from_sorted(taken);
                    }
                    true
                }
            },
            Container::Bits(w, c) => {
                let (i, b) = (v as usize / 64, 1u64 << (v % 64));
                if w[i] & b != 0 {
                    return false;
                }
                w[i] |= b;
                *c += 1;
                true
            }
            Container::Run(_) => {
                if self.contains(v) {
                    return false;
                }
                let taken = std::mem::replace(self, Container::Array(Vec::new()));
                *self = taken.normalized();
                self.insert(v)
            }
        }
    }

    /// Removes `v`; returns whether it was present.
    pub fn remove(&mut self, v: u16) -> bool {
        match self {
            Container::Array(a) => match a.binary_search(&v) {
                Ok(i) => {
                    a.remove(i);
                    true
                }
                Err(_) => false,
            },
            Container::Bits(w, c) => {
                let (i, b) = (v as usize / 64, 1u64 << (v % 64));
                if w[i] & b == 0 {
                    return false;
                }
                w[i] &= !b;
                *c -= 1;
                if *c as usize <= ARRAY_MAX / 2 {
                    let w = std::mem::replace(w, words::zeroed());
                    let c = *c;
                    *self = Container::from_words(w, c);
                }
                true
            }
            Container::Run(_) => {
                if !self.contains(v) {
                    return false;
                }
                let taken = std::mem::replace(self, Container::Array(Vec::new()));
                *self = taken.normalized();
                self.remove(v)
            }
        }
    }

    /// Equality of the id sets, whatever the representations.
    pub fn same_ids(&self, other: &Container) -> bool {
        if self.len() != other.len() {
            return false;
        }
        match (self, other) {
            (Container::Array(a), Container::Array(b)) => a == b,
            (Container::Bits(a, _), Container::Bits(b, _)) => a[..] == b[..],
            (Container::Run(a), Container::Run(b)) => a == b,
            (Container::Array(a), o) | (o, Container::Array(a)) => a.iter().all(|&v| o.contains(v)),
            (a, b) => a.to_words()[..] == b.to_words()[..],
        }
    }

    /// `self & other`, or `None` when empty.
    pub fn and(&self, other: &Container) -> Option<Container> {
        let out = match (self, other) {
            (Container::Array(a), Container::Array(b)) => Container::Array(intersect_sorted(a, b)),
            (Container::Array(a), o) | (o, Container::Array(a)) => {
                Container::Array(a.iter().copied().filter(|&v| o.contains(v)).collect())
            }
            (Container::Bits(a, _), Container::Bits(b, _)) => {
                let mut w = words::zeroed();
                words::and_to(&mut w, a, b);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
            (Container::Run(a), Container::Run(b)) => Container::Run(runs_and(a, b)),
            (Container::Bits(w, _), r @ Container::Run(_)) | (r @ Container::Run(_), Container::Bits(w, _)) => {
                if r.is_full() {
                    return Some(other_of(self, other, r).clone());
                }
                let mut out = Box::new(**w);
                r.and_into_words(&mut out);
                let c = words::popcount(&out);
                Container::from_words(out, c)
            }
        };
        (!out.is_empty()).then_some(out)
    }

    /// `len(self & other)` without building it.
    pub fn and_len(&self, other: &Container) -> u32 {
        match (self, other) {
            (Container::Array(a), Container::Array(b)) => intersect_count(a, b),
            (Container::Array(a), o) | (o, Container::Array(a)) => a.iter().filter(|&&v| o.contains(v)).count() as u32,
            (Container::Bits(a, _), Container::Bits(b, _)) => words::and_popcount(a, b),
            (Container::Bits(w, _), Container::Run(r)) | (Container::Run(r), Container::Bits(w, _)) => {
                r.iter().map(|&(s, l)| words::popcount_range(w, s, l)).sum()
            }
            (Container::Run(a), Container::Run(b)) => Container::Run(runs_and(a, b)).len(),
        }
    }

    /// `self | other`.
    pub fn or(&self, other: &Container) -> Container {
        match (self, other) {
            (Container::Array(a), Container::Array(b)) if a.len() + b.len() <= ARRAY_MAX => {
                Container::Array(union_sorted(a, b))
            }
            (Container::Run(a), Container::Run(b)) => Container::Run(runs_or(a, b)),
            (a, b) if a.is_full() || b.is_full() => Container::full(),
            (Container::Bits(a, _), Container::Bits(b, _)) => {
                let mut w = words::zeroed();
                words::or_to(&mut w, a, b);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
            (Container::Bits(a, _), o) | (o, Container::Bits(a, _)) => {
                let mut w = Box::new(**a);
                o.or_into_words(&mut w);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
            (a, b) => {
                let mut w = a.to_words();
                b.or_into_words(&mut w);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
        }
    }

    /// `self - other`, or `None` when empty.
    pub fn andnot(&self, other: &Container) -> Option<Container> {
        let out = match (self, other) {
            (Container::Array(a), Container::Array(b)) => Container::Array(difference_sorted(a, b)),
            (Container::Array(a), o) => Container::Array(a.iter().copied().filter(|&v| !o.contains(v)).collect()),
            (_, o) if o.is_full() => return None,
            (Container::Run(a), Container::Run(b)) => Container::Run(runs_andnot(a, b)),
            (Container::Bits(a, _), Container::Bits(b, _)) => {
                let mut w = words::zeroed();
                words::andnot_to(&mut w, a, b);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
            (s, o) => {
                let mut w = s.to_words();
                o.andnot_into_words(&mut w);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
        };
        (!out.is_empty()).then_some(out)
    }

    /// `self ^ other`, or `None` when empty.
    pub fn xor(&self, other: &Container) -> Option<Container> {
        let out = match (self, other) {
            (Container::Array(a), Container::Array(b)) if a.len() + b.len() <= ARRAY_MAX => {
                Container::Array(symmetric_difference_sorted(a, b))
            }
            (Container::Bits(a, _), o) | (o, Container::Bits(a, _)) => {
                let mut w = Box::new(**a);
                o.xor_into_words(&mut w);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
            (a, b) => {
                let mut w = a.to_words();
                b.xor_into_words(&mut w);
                let c = words::popcount(&w);
                Container::from_words(w, c)
            }
        };
        (!out.is_empty()).then_some(out)
    }
}

fn other_of<'a>(a: &'a Container, b: &'a Container, r: &Container) -> &'a Container {
    if std::ptr::eq(a, r) {
        b
    } else {
        a
    }
}

/// Index of the run holding `v` (`Ok`) or where such a run would go (`Err`).
#[inline]
pub fn run_index(runs: &[Run], v: u16) -> Result<usize, usize> {
    let i = runs.partition_point(|&(s, _)| s <= v);
    if i > 0 && runs[i - 1].1 >= v {
        Ok(i - 1)
    } else {
        Err(i)
    }
}

/// The runs of a sorted distinct array.
pub fn runs_of_sorted(a: &[u16]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for &v in a {
        match runs.last_mut() {
            Some(last) if last.1 as u32 + 1 == v as u32 => last.1 = v,
            _ => runs.push((v, v)),
        }
    }
    runs
}

pub fn runs_and(a: &[Run], b: &[Run]) -> Vec<Run> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let l = a[i].1.min(b[j].1);
        if s <= l {
            out.push((s, l));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn push_run(out: &mut Vec<Run>, r: Run) {
    match out.last_mut() {
        Some(last) if last.1 as u32 + 1 >= r.0 as u32 => last.1 = last.1.max(r.1),
        _ => out.push(r),
    }
}

pub fn runs_or(a: &[Run], b: &[Run]) -> Vec<Run> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_a = j == b.len() || (i < a.len() && a[i].0 <= b[j].0);
        if take_a {
            push_run(&mut out, a[i]);
            i += 1;
        } else {
            push_run(&mut out, b[j]);
            j += 1;
        }
    }
    out
}

pub fn runs_andnot(a: &[Run], b: &[Run]) -> Vec<Run> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(s, l) in a {
        let mut cur = s as u32;
        let l = l as u32;
        while j < b.len() && (b[j].1 as u32) < cur {
            j += 1;
        }
        let mut k = j;
        while cur <= l {
            if k < b.len() && (b[k].0 as u32) <= l {
                let (bs, bl) = (b[k].0 as u32, b[k].1 as u32);
                if bs > cur {
                    out.push((cur as u16, (bs - 1) as u16));
                }
                cur = cur.max(bl + 1);
                k += 1;
            } else {
                out.push((cur as u16, l as u16));
                break;
            }
        }
    }
    out
}

/// Sorted intersection of two sorted distinct arrays (vectorised, galloping when sizes differ a lot).
pub fn intersect_sorted(a: &[u16], b: &[u16]) -> Vec<u16> {
    sorted::intersect(a, b)
}

fn intersect_count(a: &[u16], b: &[u16]) -> u32 {
    sorted::intersect_count(a, b)
}

/// Sorted union of two sorted distinct arrays.
pub fn union_sorted(a: &[u16], b: &[u16]) -> Vec<u16> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Sorted `a - b` of two sorted distinct arrays.
pub fn difference_sorted(a: &[u16], b: &[u16]) -> Vec<u16> {
    sorted::difference(a, b)
}

fn symmetric_difference_sorted(a: &[u16], b: &[u16]) -> Vec<u16> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
