//! Property tests: every way of computing a result agrees, on empty, sparse, dense, run-heavy and
//! 2^32-1 inputs: the engine's sets against `BTreeSet` and the `roaring` crate, fused evaluation
//! against pairwise set algebra, bit-sliced ranges and orders aggregation against plain loops.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use segment_engine::columns::{zones_of, Column, Encoding, Kind, Zone};
use segment_engine::expr::{self, Node, Scratch, Threads};
use segment_engine::orders::{Metric, MetricCond, OrderBatch, Orders, Window};
use segment_engine::portable;
use segment_engine::pred::{Bound, Interval, Pred};
use segment_engine::set::RoaringSet;
use segment_engine::words::{self, Level, Words};

/// Ids of one kind: empty, sparse anywhere, dense blocks, runs, or the edges of the range.
fn ids() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u32>(), 0..300),
        (0u32..4, 0.05f64..0.95, any::<u64>()).prop_map(|(block, density, seed)| block_ids(block, density, seed)),
        // Arrays of tens to hundreds of ids in a few blocks, as sparse leaves have (the vectorised
        // intersection, an OR of arrays turning into a bitset).
        prop::collection::vec((0u32..3, 0.0005f64..0.02, any::<u64>()), 1..3).prop_map(|blocks| {
            let mut out: Vec<u32> = blocks.into_iter().flat_map(|(b, d, s)| block_ids(b, d, s)).collect();
            out.sort_unstable();
            out.dedup();
            out
        }),
        prop::collection::vec((0u32..300_000, 1u32..70_000), 1..6)
            .prop_map(|runs| runs.into_iter().flat_map(|(s, l)| s..s + l).collect()),
        prop::collection::vec(
            prop::sample::select(vec![
                0,
                1,
                65_535,
                65_536,
                131_071,
                u32::MAX - 65_536,
                u32::MAX - 1,
                u32::MAX
            ]),
            0..8
        ),
        (0u32..3).prop_map(|b| (b << 16..(b + 1) << 16).collect()),
    ]
}

/// The ids of block `block` drawn each with probability `density`.
fn block_ids(block: u32, density: f64, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    for low in 0..65536u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x % 10_000) as f64 / 10_000.0 < density {
            out.push(block << 16 | low);
        }
    }
    out
}

fn set_of(v: &[u32]) -> RoaringSet {
    RoaringSet::from_unsorted(v.to_vec())
}

fn btree(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

fn roaring_of(v: &[u32]) -> roaring::RoaringBitmap {
    v.iter().copied().collect()
}

fn has_full_container(s: &RoaringSet) -> bool {
    let v = s.to_vec();
    let mut per_key: BTreeMap<u32, u32> = BTreeMap::new();
    for x in v {
        *per_key.entry(x >> 16).or_default() += 1;
    }
    per_key.values().any(|&c| c == 65_536)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn set_ops_agree_with_btreeset_and_roaring(a in ids(), b in ids()) {
        let (x, y) = (set_of(&a), set_of(&b));
        let (p, q) = (btree(&a), btree(&b));
        let (r, s) = (roaring_of(&a), roaring_of(&b));
        prop_assert_eq!(x.to_vec(), p.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(x.len(), r.len());
        prop_assert_eq!(x.and(&y).to_vec(), p.intersection(&q).copied().collect::<Vec<_>>());
        prop_assert_eq!(x.or(&y).to_vec(), p.union(&q).copied().collect::<Vec<_>>());
        prop_assert_eq!(x.andnot(&y).to_vec(), p.difference(&q).copied().collect::<Vec<_>>());
        prop_assert_eq!(x.xor(&y).to_vec(), p.symmetric_difference(&q).copied().collect::<Vec<_>>());
        prop_assert_eq!(x.and(&y).to_vec(), (&r & &s).iter().collect::<Vec<_>>());
        prop_assert_eq!(x.xor(&y).to_vec(), (&r ^ &s).iter().collect::<Vec<_>>());
        prop_assert_eq!(x.intersection_len(&y), (&r & &s).len());
        prop_assert_eq!(x.union_len(&y), (&r | &s).len());
        prop_assert_eq!(x.difference_len(&y), (&r - &s).len());
        for v in a.iter().take(20) {
            prop_assert!(x.contains(*v));
        }
        prop_assert_eq!(x.max(), p.iter().next_back().copied());
    }

    #[test]
    fn portable_format_round_trips_with_roaring(a in ids()) {
        let x = set_of(&a);
        let bytes = portable::serialize(&x);
        prop_assert_eq!(bytes.len(), portable::serialized_size(&x));
        prop_assert_eq!(&portable::deserialize(&bytes).unwrap(), &x);
        // roaring-rs writes arrays and bitsets; we read them.
        let r = roaring_of(&a);
        let mut theirs = Vec::new();
        r.serialize_into(&mut theirs).unwrap();
        prop_assert_eq!(portable::deserialize(&theirs).unwrap().to_vec(), r.iter().collect::<Vec<_>>());
        // roaring 0.12 misreads a run container holding a whole block, so compare the rest only.
        if !has_full_container(&x) {
            let back = roaring::RoaringBitmap::deserialize_from(&bytes[..]).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), x.to_vec());
        }
    }

    #[test]
    fn corrupt_bytes_never_panic(a in ids(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = portable::serialize(&set_of(&a));
        if !bytes.is_empty() {
            for (i, v) in edits {
                let i = i.index(bytes.len());
                bytes[i] = v;
            }
            if cut.index(4) == 0 {
                bytes.truncate(cut.index(bytes.len()));
            }
        }
        if let Ok(s) = portable::deserialize(&bytes) {
            prop_assert_eq!(s.len() as usize, s.to_vec().len());
        }
    }

    #[test]
    fn page_matches_slicing(a in ids(), offset in 0u64..70_000, limit in 0u64..70_000) {
        let x = set_of(&a);
        let all = x.to_vec();
        let lo = (offset as usize).min(all.len());
        let hi = (offset.saturating_add(limit) as usize).min(all.len());
        prop_assert_eq!(x.page(offset, limit), all[lo..hi].to_vec());
    }
}

#[derive(Clone, Debug)]
enum Tree {
    Leaf(usize),
    And(Vec<Tree>),
    Or(Vec<Tree>),
    AndNot(Box<Tree>, Box<Tree>),
    Universe(u64),
}

fn trees() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (0usize..5).prop_map(Tree::Leaf),
        (0u64..200_000).prop_map(Tree::Universe)
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Tree::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Tree::Or),
            (inner.clone(), inner).prop_map(|(a, b)| Tree::AndNot(Box::new(a), Box::new(b))),
        ]
    })
}

fn to_node<'a>(t: &Tree, sets: &'a [RoaringSet]) -> Node<'a> {
    match t {
        Tree::Leaf(i) => Node::Set(&sets[*i]),
        Tree::Universe(n) => Node::Universe(*n),
        Tree::And(c) => Node::And(c.iter().map(|x| to_node(x, sets)).collect()),
        Tree::Or(c) => Node::Or(c.iter().map(|x| to_node(x, sets)).collect()),
        Tree::AndNot(a, b) => Node::AndNot(Box::new(to_node(a, sets)), Box::new(to_node(b, sets))),
    }
}

fn naive(t: &Tree, sets: &[RoaringSet]) -> RoaringSet {
    match t {
        Tree::Leaf(i) => sets[*i].clone(),
        Tree::Universe(n) => RoaringSet::universe(*n),
        Tree::And(c) => c.iter().map(|x| naive(x, sets)).reduce(|a, b| a.and(&b)).unwrap(),
        Tree::Or(c) => c.iter().map(|x| naive(x, sets)).reduce(|a, b| a.or(&b)).unwrap(),
        Tree::AndNot(a, b) => naive(a, sets).andnot(&naive(b, sets)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn fused_evaluation_agrees_with_pairwise(leaves in prop::collection::vec(ids(), 5), t in trees()) {
        let sets: Vec<RoaringSet> = leaves.iter().map(|v| set_of(v)).collect();
        let expected = naive(&t, &sets);
        let got = expr::evaluate(to_node(&t, &sets));
        prop_assert_eq!(got.to_vec(), expected.to_vec());
        prop_assert_eq!(expr::count(to_node(&t, &sets)), expected.len());
        // The keys shared with a helper thread from the first one (whichever thread takes
        // which key), as large trees do.
        prop_assert_eq!(expr::evaluate_with(to_node(&t, &sets), Threads::Split(1)).to_vec(), expected.to_vec());
        prop_assert_eq!(expr::count_with(to_node(&t, &sets), Threads::Split(1)), expected.len());
    }
}

fn interval() -> impl Strategy<Value = Interval> {
    let bound = prop_oneof![
        Just(Bound::Unbounded),
        (-70i64..70).prop_map(Bound::Incl),
        (-70i64..70).prop_map(Bound::Excl),
        prop::sample::select(vec![i64::MIN, i64::MAX]).prop_map(Bound::Incl),
    ];
    (bound.clone(), bound).prop_map(|(lo, hi)| Interval { lo, hi })
}

fn pred() -> impl Strategy<Value = Pred> {
    prop_oneof![
        prop::collection::vec(interval(), 0..3).prop_map(Pred::AnyOf),
        prop::collection::vec(interval(), 0..3).prop_map(Pred::NoneOf),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn columns_agree_with_a_scan(
        n in 1usize..140_000,
        spread in prop::sample::select(vec![3i64, 40, 64, 1 << 20, i64::MAX]),
        seed in any::<u64>(),
        p in pred(),
        updates in prop::collection::vec((any::<prop::sample::Index>(), -100i64..100, any::<bool>()), 0..40),
    ) {
        let mut x = seed | 1;
        let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        let mut values: Vec<i64> = (0..n).map(|_| {
            let r = next();
            if spread == i64::MAX { r as i64 } else { (r % (2 * spread as u64)) as i64 - spread }
        }).collect();
        let mut valid: Vec<bool> = (0..n).map(|_| next() % 10 != 0).collect();
        let mut col = Column::build(&values, Some(&valid), Kind::Int, "values").unwrap();
        for (i, v, ok) in updates {
            let m = i.index(n);
            col.set(m as u32, ok.then_some(v), n);
            values[m] = v;
            valid[m] = ok;
        }
        let got = expr::evaluate(col.plan(&p)).to_vec();
        let expected: Vec<u32> = (0..n).filter(|&i| valid[i] && p.test(values[i] as i128)).map(|i| i as u32).collect();
        prop_assert_eq!(got, expected);
        let (dv, dm) = col.decode(n);
        prop_assert_eq!(&dm, &valid);
        for i in 0..n {
            if valid[i] {
                prop_assert_eq!(dv[i], values[i]);
            }
        }
    }

    #[test]
    fn orders_metrics_agree_with_a_loop(
        rows in prop::collection::vec((0u32..140_000, 0u32..6, 0i32..20, -50i64..1000), 0..400),
        from in 0i32..20,
        len in 0i32..20,
        stores in prop::option::of(prop::collection::btree_set(0u32..8, 0..4)),
        metric in prop::sample::select(vec![Metric::Count, Metric::Sum, Metric::Max, Metric::Avg, Metric::DistinctStores, Metric::FirstDay, Metric::LastDay]),
        p in pred(),
        split in any::<prop::sample::Index>(),
    ) {
        let n = 140_000u64;
        let to = from + len;
        let (m, s): (Vec<u32>, Vec<u32>) = rows.iter().map(|r| (r.0, r.1)).unzip();
        let (d, a): (Vec<i32>, Vec<i64>) = rows.iter().map(|r| (r.2, r.3)).unzip();
        let mut orders = Orders::default();
        let k = split.index(rows.len() + 1);
        for range in [0..k, k..rows.len()] {
            let batch = OrderBatch { member: &m[range.clone()], store: &s[range.clone()], day: &d[range.clone()], amount: &a[range] };
            batch.validate(n).unwrap();
            orders.append(&batch);
        }
        let stores_v = stores.map(|s| s.into_iter().collect::<Vec<u32>>());
        let w = Window { stores: stores_v.clone(), from_day: from, to_day: to };
        let got = orders.evaluate(n, &w, &[MetricCond { metric, pred: p.clone() }]).pop().unwrap().to_vec();
        let mut per: BTreeMap<u32, Vec<(u32, i32, i64)>> = BTreeMap::new();
        for &(mm, ss, dd, aa) in &rows {
            if dd >= from && dd <= to && stores_v.as_ref().is_none_or(|v| v.contains(&ss)) {
                per.entry(mm).or_default().push((ss, dd, aa));
            }
        }
        let expected: Vec<u32> = per.iter().filter(|(_, os)| {
            let count = os.len() as i128;
            let sum: i128 = os.iter().map(|o| o.2 as i128).sum();
            match metric {
                Metric::Count => p.test(count),
                Metric::Sum => p.test(sum),
                Metric::Max => p.test(os.iter().map(|o| o.2).max().unwrap() as i128),
                Metric::Avg => p.test_mean(sum, count),
                Metric::DistinctStores => p.test(os.iter().map(|o| o.0).collect::<BTreeSet<_>>().len() as i128),
                Metric::FirstDay => p.test(os.iter().map(|o| o.1).min().unwrap() as i128),
                Metric::LastDay => p.test(os.iter().map(|o| o.1).max().unwrap() as i128),
            }
        }).map(|(m, _)| *m).collect();
        prop_assert_eq!(got, expected);
    }
}

/// Column values of one shape: random, imported in ranges sharing a value (runs), or ascending.
fn shaped_values(n: usize, shape: u8, spread: i64, seed: u64) -> (Vec<i64>, Vec<bool>) {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let draw = |r: u64| (r % (2 * spread as u64)) as i64 - spread;
    let mut values = Vec::with_capacity(n);
    let mut valid = Vec::with_capacity(n);
    while values.len() < n {
        let r = next();
        let (len, v, ok) = match shape {
            0 => (1, draw(r), r % 10 != 0),
            1 => (1 + (r >> 20) as usize % 5_000, draw(r), r % 10 != 0),
            _ => (1 + (r >> 20) as usize % 3_000, values.len() as i64 / 1_000 - spread, r % 17 != 0),
        };
        for _ in 0..len.min(n - values.len()) {
            values.push(v);
            valid.push(ok);
        }
    }
    (values, valid)
}

/// Each zone bounds the offsets of its key's non-null values (and is exact when `exact`).
fn check_zones(col: &Column, values: &[i64], valid: &[bool], exact: bool) -> Result<(), TestCaseError> {
    let Encoding::Bsi(b) = &col.enc else {
        return Ok(());
    };
    let mut actual: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for (i, (&v, &ok)) in values.iter().zip(valid).enumerate() {
        if ok {
            let u = (v as i128 - b.base as i128) as u64;
            let e = actual.entry(i >> 16).or_insert((u, u));
            e.0 = e.0.min(u);
            e.1 = e.1.max(u);
        }
    }
    for (&key, &(lo, hi)) in &actual {
        let z = b.zones.get(key).copied().unwrap_or(Zone::EMPTY);
        prop_assert!(z.min <= lo && hi <= z.max, "key {}: zone {:?} misses {}..={}", key, z, lo, hi);
    }
    prop_assert!(b.zones.len() <= actual.keys().last().map_or(0, |k| k + 1) || !exact);
    if exact {
        prop_assert_eq!(&b.zones, &zones_of(&b.slices, &col.nonnull));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn zone_maps_skip_only_what_a_scan_excludes(
        n in 1usize..300_000,
        shape in 0u8..3,
        spread in prop::sample::select(vec![40i64, 1_000, 1 << 20]),
        seed in any::<u64>(),
        p in pred(),
        updates in prop::collection::vec((any::<prop::sample::Index>(), -100i64..100, any::<bool>()), 0..40),
    ) {
        let (mut values, mut valid) = shaped_values(n, shape, spread, seed);
        let mut col = Column::build(&values, Some(&valid), Kind::Int, "values").unwrap();
        check_zones(&col, &values, &valid, true)?;
        let scan = |values: &[i64], valid: &[bool]| -> Vec<u32> {
            (0..n).filter(|&i| valid[i] && p.test(values[i] as i128)).map(|i| i as u32).collect()
        };
        prop_assert_eq!(expr::evaluate(col.plan(&p)).to_vec(), scan(&values, &valid));
        for (i, v, ok) in updates {
            let m = i.index(n);
            col.set(m as u32, ok.then_some(v), n);
            values[m] = v;
            valid[m] = ok;
        }
        check_zones(&col, &values, &valid, false)?;
        prop_assert_eq!(expr::evaluate(col.plan(&p)).to_vec(), scan(&values, &valid));
    }
}

/// A tree whose leaves 0..3 are stored sets and 3..5 ranges over columns (computed leaves).
fn mixed_node<'a>(t: &Tree, sets: &'a [RoaringSet], cols: &'a [(Column, Pred)]) -> Node<'a> {
    match t {
        Tree::Leaf(i) if *i >= 3 => cols[i - 3].0.plan(&cols[i - 3].1),
        Tree::Leaf(i) => Node::Set(&sets[*i]),
        Tree::Universe(n) => Node::Universe(*n),
        Tree::And(c) => Node::And(c.iter().map(|x| mixed_node(x, sets, cols)).collect()),
        Tree::Or(c) => Node::Or(c.iter().map(|x| mixed_node(x, sets, cols)).collect()),
        Tree::AndNot(a, b) => Node::AndNot(Box::new(mixed_node(a, sets, cols)), Box::new(mixed_node(b, sets, cols))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Evaluation restricted to a sparse running result (an AND operand or an excluded side
    /// looked up at the candidates' values only) equals the plain pairwise algebra, and so does
    /// `Node::filter` on any candidates.
    #[test]
    fn candidate_restricted_evaluation_agrees_with_pairwise(
        stored in prop::collection::vec(ids(), 3),
        shapes in prop::collection::vec((0u8..3, prop::sample::select(vec![40i64, 1_000, 1 << 20]), any::<u64>(), pred()), 2),
        n in 1usize..200_000,
        t in trees(),
        cand in prop::collection::btree_set(0u16..=u16::MAX, 0..1300),
        keep in any::<bool>(),
    ) {
        let sets: Vec<RoaringSet> = stored.iter().map(|v| set_of(v)).collect();
        let cols: Vec<(Column, Pred)> = shapes.into_iter().map(|(shape, spread, seed, p)| {
            let (values, valid) = shaped_values(n, shape, spread, seed);
            (Column::build(&values, Some(&valid), Kind::Int, "values").unwrap(), p)
        }).collect();
        let mut all = sets.clone();
        all.extend(cols.iter().map(|(c, p)| expr::evaluate(c.plan(p))));
        let expected = naive(&t, &all);
        prop_assert_eq!(expr::evaluate(mixed_node(&t, &sets, &cols)).to_vec(), expected.to_vec());
        prop_assert_eq!(expr::count(mixed_node(&t, &sets, &cols)), expected.len());
        prop_assert_eq!(
            expr::evaluate_with(mixed_node(&t, &sets, &cols), Threads::Split(1)).to_vec(),
            expected.to_vec()
        );
        prop_assert_eq!(expr::count_with(mixed_node(&t, &sets, &cols), Threads::Split(1)), expected.len());
        let node = mixed_node(&t, &sets, &cols).simplify();
        let cand: Vec<u16> = cand.into_iter().collect();
        let mut scratch = Scratch::default();
        for key in [0u16, 1, 2, 3, 4, u16::MAX] {
            let got = node.filter(key, &cand, keep, &mut scratch);
            let want: Vec<u16> = cand.iter().copied()
                .filter(|&v| expected.contains((key as u32) << 16 | v as u32) == keep).collect();
            prop_assert_eq!(got, want, "key {}", key);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The array merges (galloping for very different lengths) agree with `BTreeSet`.
    #[test]
    fn array_merges_agree_with_btreeset(
        a in prop::collection::btree_set(0u16..2_000, 0..600),
        b in prop::collection::btree_set(0u16..2_000, 0..600),
        cut in 1usize..64,
    ) {
        use segment_engine::container::{difference_sorted, intersect_sorted, union_sorted};
        // `cut` thins b, so that the lengths range from equal to far apart.
        let av: Vec<u16> = a.iter().copied().collect();
        let bv: Vec<u16> = b.iter().copied().step_by(cut).collect();
        let bs: BTreeSet<u16> = bv.iter().copied().collect();
        for (x, y, xs, ys) in [(&av, &bv, &a, &bs), (&bv, &av, &bs, &a)] {
            prop_assert_eq!(intersect_sorted(x, y), xs.intersection(ys).copied().collect::<Vec<_>>());
            prop_assert_eq!(union_sorted(x, y), xs.union(ys).copied().collect::<Vec<_>>());
            prop_assert_eq!(difference_sorted(x, y), xs.difference(ys).copied().collect::<Vec<_>>());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A bit-sliced range over run-shaped members (runs of 1,000-5,000 sharing a value, more
    /// distinct values than a value-bitmap column keeps), evaluated as runs and looked up at
    /// many candidates through the block's runs, agrees with a scan.
    #[test]
    fn run_shaped_ranges_agree_with_a_scan(
        seed in any::<u64>(),
        spread in prop::sample::select(vec![100i64, 1_000, 1 << 20]),
        p in pred(),
        cand in prop::collection::btree_set(0u16..=u16::MAX, 0..1024),
        keep in any::<bool>(),
    ) {
        let n = 140_000;
        let mut x = seed | 1;
        let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        let (mut values, mut valid) = (Vec::with_capacity(n), Vec::with_capacity(n));
        while values.len() < n {
            let r = next();
            let len = (1_000 + r % 4_000) as usize;
            let v = (next() % (2 * spread as u64)) as i64 - spread;
            let ok = r % 13 != 0;
            for _ in 0..len.min(n - values.len()) {
                values.push(v);
                valid.push(ok);
            }
        }
        let col = Column::build(&values, Some(&valid), Kind::Int, "values").unwrap();
        let expected: Vec<u32> = (0..n).filter(|&i| valid[i] && p.test(values[i] as i128)).map(|i| i as u32).collect();
        prop_assert_eq!(expr::evaluate(col.plan(&p)).to_vec(), expected.clone());
        let set = RoaringSet::from_sorted_unique(&expected);
        let node = col.plan(&p).simplify();
        let cand: Vec<u16> = cand.into_iter().collect();
        let mut scratch = Scratch::default();
        for key in 0u16..3 {
            let got = node.filter(key, &cand, keep, &mut scratch);
            let want: Vec<u16> = cand.iter().copied()
                .filter(|&v| set.contains((key as u32) << 16 | v as u32) == keep).collect();
            prop_assert_eq!(got, want, "key {}", key);
        }
    }
}

/// One 64K-bit block: empty, full, or each bit set with a probability from very sparse to
/// nearly full.
fn block() -> impl Strategy<Value = Box<Words>> {
    prop_oneof![
        Just(0.0f64),
        Just(1.0f64),
        0.0001f64..0.02,
        0.02f64..0.98,
        0.98f64..0.9999,
    ]
    .prop_flat_map(|density| (Just(density), any::<u64>()))
    .prop_map(|(density, seed)| {
        let mut w = words::zeroed();
        let mut x = seed | 1;
        for (i, word) in w.iter_mut().enumerate() {
            for bit in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if ((x >> 11) as f64 / (1u64 << 53) as f64) < density {
                    *word |= 1 << bit;
                }
            }
            // A few words of all ones or zeros, as run-heavy data has.
            if i % 97 == (seed % 97) as usize {
                *word = if density > 0.5 { !0 } else { 0 };
            }
        }
        w
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every copy of every block kernel that this CPU can run (AVX2, AVX-512) agrees with the
    /// baseline copy, on the same inputs.
    #[test]
    fn block_kernels_agree_at_every_level(
        blocks in prop::collection::vec(block(), 2..10),
        split in 0usize..10,
        ones in prop::collection::vec(any::<bool>(), 0..10),
    ) {
        let refs: Vec<&Words> = blocks.iter().map(|b| &**b).collect();
        let (a, b) = (&*blocks[0], &*blocks[1]);
        let split = split.min(refs.len());
        let (ands, ors) = refs.split_at(split);
        let ones: Vec<u64> = ones.iter().map(|&o| if o { !0 } else { 0 }).collect();
        let slices = &refs[..ones.len().min(refs.len())];
        // Each kernel at `level`, its outputs gathered as words.
        let run = |level: Level| -> Vec<Vec<u64>> {
            let mut out = Vec::new();
            let mut d = words::zeroed();
            out.push(vec![words::popcount_at(level, a) as u64, words::and_popcount_at(level, a, b) as u64,
                          words::count_runs_at(level, a) as u64, words::any_at(level, a) as u64]);
            out.push(words::to_array_at(level, a, words::popcount(a)).into_iter().map(u64::from).collect());
            let binary: [fn(Level, &mut Words, &Words); 5] = [
                |l, d, s| { words::and_assign_at(l, d, s); },
                words::and_assign_nocount_at,
                words::or_assign_at,
                words::andnot_assign_at,
                words::xor_assign_at,
            ];
            for f in binary {
                d.copy_from_slice(a);
                f(level, &mut d, b);
                out.push(d.to_vec());
            }
            d.copy_from_slice(a);
            out.push(vec![words::and_assign_at(level, &mut d, b) as u64]);
            let ternary: [fn(Level, &mut Words, &Words, &Words); 3] = [words::and_to_at, words::or_to_at, words::andnot_to_at];
            for f in ternary {
                f(level, &mut d, a, b);
                out.push(d.to_vec());
            }
            d.copy_from_slice(a);
            words::not_assign_at(level, &mut d);
            out.push(d.to_vec());
            words::or_many_at(level, &mut d, &refs);
            out.push(d.to_vec());
            for and_not in [false, true] {
                if and_not && ands.is_empty() {
                    continue;
                }
                let n = words::combine_at(level, &mut d, ands, ors, and_not);
                out.push(d.to_vec());
                out.push(vec![n as u64]);
            }
            let (mut lt, mut eq) = (words::zeroed(), words::zeroed());
            eq.copy_from_slice(a);
            words::bsi_compare_at(level, &mut lt, &mut eq, slices, &ones);
            out.push(lt.to_vec());
            out.push(eq.to_vec());
            lt.copy_from_slice(b);
            eq.copy_from_slice(a);
            words::bsi_step_one_at(level, &mut lt, &mut eq, &blocks[blocks.len() - 1]);
            words::bsi_step_zero_at(level, &mut eq, &blocks[blocks.len() / 2]);
            out.push(lt.to_vec());
            out.push(eq.to_vec());
            out
        };
        let base = run(Level::Portable);
        // The combined kernel against its definition, at the baseline.
        let mut want = vec![0u64; words::WORDS];
        for (i, w) in want.iter_mut().enumerate() {
            let o = ors.iter().fold(0u64, |x, s| x | s[i]);
            *w = if ands.is_empty() { o } else { ands.iter().fold(!0u64, |x, s| x & s[i]) | o };
        }
        let mut d = words::zeroed();
        prop_assert_eq!(words::combine_at(Level::Portable, &mut d, ands, ors, false), want.iter().map(|w| w.count_ones()).sum::<u32>());
        prop_assert_eq!(&d[..], &want[..]);
        for level in Level::ALL {
            prop_assert_eq!(&run(level), &base, "level {:?} (this CPU: {:?})", level, Level::best());
        }
    }
}

/// A leaf of mostly dense blocks (bitsets, the fused kernels' inputs), some sparse or full.
fn dense_leaf() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(
        (0u32..3, prop_oneof![4 => 0.1f64..0.95, 1 => 0.001f64..0.02, 1 => Just(1.0f64)], any::<u64>()),
        1..4,
    )
    .prop_map(|blocks| {
        let mut out: Vec<u32> = blocks.into_iter().flat_map(|(b, d, s)| block_ids(b, d, s)).collect();
        out.sort_unstable();
        out.dedup();
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The package shapes whose blocks of stored bitsets are computed and counted in one pass
    /// (an OR of leaves and of an AND; an AND minus an OR), alone and inside other operators,
    /// agree with pairwise set algebra.
    #[test]
    fn one_pass_shapes_agree_with_pairwise(leaves in prop::collection::vec(dense_leaf(), 9)) {
        use Tree::{And, AndNot, Leaf, Or};
        let sets: Vec<RoaringSet> = leaves.iter().map(|v| set_of(v)).collect();
        let l = |i: usize| Leaf(i);
        let or7 = Or(vec![l(0), l(1), l(2), l(3), l(4), l(5), l(6), And(vec![l(7), l(8)])]);
        let excl = AndNot(Box::new(And(vec![l(0), l(1)])), Box::new(Or((2..9).map(l).collect())));
        let shapes = vec![
            or7.clone(),
            excl.clone(),
            Or(vec![l(0), And(vec![l(1), l(2)])]),
            Or(vec![l(0), l(1), And(vec![l(2), l(3), l(4)]), And(vec![l(5), l(6)])]),
            AndNot(Box::new(l(0)), Box::new(Or(vec![l(1), l(2)]))),
            AndNot(Box::new(And(vec![l(0), l(1)])), Box::new(l(2))),
            And(vec![Or(vec![l(0), l(1), l(2)]), excl.clone(), l(8)]),
            AndNot(Box::new(or7), Box::new(Or(vec![l(3), l(4), l(5)]))),
            Or(vec![excl, l(7), l(8)]),
        ];
        for t in &shapes {
            let expected = naive(t, &sets);
            let got = expr::evaluate(to_node(t, &sets));
            prop_assert_eq!(got.to_vec(), expected.to_vec(), "{:?}", t);
            prop_assert_eq!(expr::count(to_node(t, &sets)), expected.len(), "{:?}", t);
            let split = expr::evaluate_with(to_node(t, &sets), Threads::Split(1));
            prop_assert_eq!(split.to_vec(), expected.to_vec(), "{:?}", t);
        }
    }
}
