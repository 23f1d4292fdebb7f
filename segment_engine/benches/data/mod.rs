//! Data shared by the benches: the four shapes of member sets the Python matrix uses
//! (tests/bench/segment_matrix.py), from a seeded xorshift so every run sees the same ids.

use segment_engine::set::RoaringSet;

pub const SHAPES: [&str; 4] = ["dense", "sparse", "runs", "mixed"];
pub const DENSE_F: [f64; 9] = [0.6, 0.5, 0.4, 0.3, 0.7, 0.55, 0.45, 0.35, 0.65];
pub const SPARSE_F: [f64; 9] = [0.01, 0.005, 0.002, 0.008, 0.004, 0.006, 0.003, 0.009, 0.007];

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A draw in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How leaf `i` of a shape lies among the ids: "dense", "sparse" or "runs".
pub fn leaf_style(shape: &str, i: usize) -> &'static str {
    match shape {
        "dense" => "dense",
        "sparse" => "sparse",
        "runs" => "runs",
        _ => ["dense", "sparse", "runs"][i % 3],
    }
}

/// One draw in [0, 1) per member; for runs, one per imported range of 1,000-100,000 ids.
pub fn draws(n: usize, style: &str, rng: &mut Rng) -> Vec<f64> {
    if style != "runs" {
        return (0..n).map(|_| rng.unit()).collect();
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = 1_000 + (rng.next_u64() % 99_001) as usize;
        let u = rng.unit();
        out.extend(std::iter::repeat_n(u, len.min(n - out.len())));
    }
    out
}

/// The nine leaves of a shape (used by the algebra bench, not the index bench): leaf `i` holds the members whose draw is below its fraction.
#[allow(dead_code)]
pub fn leaves(n: usize, shape: &str, seed: u64) -> Vec<RoaringSet> {
    let mut rng = Rng::new(seed);
    (0..9)
        .map(|i| {
            let style = leaf_style(shape, i);
            let f = if style == "sparse" { SPARSE_F[i] } else { DENSE_F[i] };
            let ids: Vec<u32> = draws(n, style, &mut rng)
                .iter()
                .enumerate()
                .filter(|(_, &u)| u < f)
                .map(|(m, _)| m as u32)
                .collect();
            RoaringSet::from_unsorted(ids)
        })
        .collect()
}
