//! The algebra on every shape of data: pairwise operators, their counts, and the fused evaluation
//! of the three package shapes (AND-, OR- and EXCLUDE-heavy) over nine leaves.
//!
//! `cargo bench --bench algebra`; ids are `BenchmarkId::new(variant, dataset)`, throughput is the
//! ids read (the sum of the operands' lengths).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

use segment_engine::expr::{self, Node};
use segment_engine::set::RoaringSet;

mod data;

const MEMBERS: usize = 10_000_000;

fn package<'a>(kind: &str, l: &'a [RoaringSet]) -> Node<'a> {
    let set = |i: usize| Node::Set(&l[i]);
    match kind {
        "and" => Node::And((0..9).map(set).collect()),
        "or" => Node::Or((0..7).map(set).chain([Node::And(vec![set(7), set(8)])]).collect()),
        _ => Node::AndNot(
            Box::new(Node::And(vec![set(0), set(1)])),
            Box::new(Node::Or((2..9).map(set).collect())),
        ),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("algebra");
    g.sample_size(20);
    for shape in data::SHAPES {
        let l = data::leaves(MEMBERS, shape, 2024);
        let (a, b) = (&l[0], &l[1]);
        g.throughput(Throughput::Elements(a.len() + b.len()));
        g.bench_with_input(BenchmarkId::new("and", shape), &(a, b), |bn, (a, b)| bn.iter(|| a.and(b)));
        g.bench_with_input(BenchmarkId::new("or", shape), &(a, b), |bn, (a, b)| bn.iter(|| a.or(b)));
        g.bench_with_input(BenchmarkId::new("andnot", shape), &(a, b), |bn, (a, b)| bn.iter(|| a.andnot(b)));
        g.bench_with_input(BenchmarkId::new("xor", shape), &(a, b), |bn, (a, b)| bn.iter(|| a.xor(b)));
        g.bench_with_input(BenchmarkId::new("intersection_len", shape), &(a, b), |bn, (a, b)| {
            bn.iter(|| a.intersection_len(b))
        });
        g.throughput(Throughput::Elements(l.iter().map(|s| s.len()).sum()));
        for kind in ["and", "or", "exclude"] {
            g.bench_with_input(BenchmarkId::new(format!("fused_{kind}"), shape), &l, |bn, l| {
                bn.iter(|| expr::evaluate(black_box(package(kind, l))))
            });
            g.bench_with_input(BenchmarkId::new(format!("count_{kind}"), shape), &l, |bn, l| {
                bn.iter(|| expr::count(black_box(package(kind, l))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
