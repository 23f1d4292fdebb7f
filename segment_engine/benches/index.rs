//! The index: the three package shapes evaluated from member columns (booleans, a 10-value
//! enum, a bit-sliced wide integer), on every shape of data.
//!
//! `cargo bench --bench index`; ids are `BenchmarkId::new(package, dataset)`, throughput is the
//! members scanned.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use segment_engine::columns::{Column, Kind};
use segment_engine::package::{Cond, Group, GroupOp, Package};
use segment_engine::pred::{Bound, Interval, Pred};
use segment_engine::state::IndexState;

mod data;

const MEMBERS: usize = 10_000_000;
const WIDE_MAX: i64 = 50_000;

/// Nine columns `c0..c8` (bool, enum, wide, ...) and the condition of each leaf.
fn index(n: usize, shape: &str) -> (IndexState, Vec<Cond>) {
    let mut rng = data::Rng::new(7);
    let mut st = IndexState::new(n as u64).expect("size");
    let mut conds = Vec::new();
    for i in 0..9 {
        let style = data::leaf_style(shape, i);
        let f = if style == "sparse" { data::SPARSE_F[i] } else { data::DENSE_F[i] };
        let u = data::draws(n, style, &mut rng);
        let name = format!("c{i}");
        let (col, pred) = match i % 3 {
            0 => {
                let v: Vec<bool> = u.iter().map(|&x| x < f).collect();
                (Column::build(&v, None, Kind::Bool, &name), Pred::AnyOf(vec![Interval::point(1)]))
            }
            1 => {
                let other = data::draws(n, style, &mut rng);
                let v: Vec<u8> = u
                    .iter()
                    .zip(&other)
                    .map(|(&x, &o)| if x < f { 9 } else { ((o * 9.0) as u8).min(8) })
                    .collect();
                (Column::build(&v, None, Kind::Int, &name), Pred::AnyOf(vec![Interval::point(9)]))
            }
            _ => {
                let v: Vec<i32> = u.iter().map(|&x| ((x * (WIDE_MAX + 1) as f64) as i32).min(WIDE_MAX as i32)).collect();
                let t = (f * (WIDE_MAX + 1) as f64).round() as i64;
                let lt = Interval {
                    lo: Bound::Unbounded,
                    hi: Bound::Excl(t),
                };
                (Column::build(&v, None, Kind::Int, &name), Pred::AnyOf(vec![lt]))
            }
        };
        st.columns.insert(name.clone(), col.expect("valid column"));
        conds.push(Cond::Field {
            path: format!("c{i}"),
            field: name,
            pred,
        });
    }
    (st, conds)
}

fn package(kind: &str, c: &[Cond]) -> Package {
    let group = |op, all: &[Cond]| Group { op, all: all.to_vec() };
    let groups = match kind {
        "and" => vec![group(GroupOp::Include, c)],
        "or" => (0..7)
            .map(|i| group(if i == 0 { GroupOp::Include } else { GroupOp::Or }, &c[i..i + 1]))
            .chain([group(GroupOp::Or, &c[7..])])
            .collect(),
        _ => [group(GroupOp::Include, &c[..2])]
            .into_iter()
            .chain((2..9).map(|i| group(GroupOp::Exclude, &c[i..i + 1])))
            .collect(),
    };
    Package { groups }
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("index");
    g.sample_size(20);
    g.throughput(Throughput::Elements(MEMBERS as u64));
    for shape in data::SHAPES {
        let (st, conds) = index(MEMBERS, shape);
        for kind in ["and", "or", "exclude"] {
            let pkg = package(kind, &conds);
            g.bench_with_input(BenchmarkId::new(kind, shape), &pkg, |b, pkg| {
                b.iter(|| st.evaluate(pkg).expect("known columns"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
