//! Kernels over one 64K-bit block held as 1024 `u64` words.
//!
//! These loops are the hot path of every bitmap operation. They are written so that the
//! compiler vectorises them, and each is compiled three times: for the baseline CPU, with AVX2 +
//! POPCNT and with AVX-512 (F, BW, VL, VPOPCNTDQ), the copy picked at run time.

/// Words in one 64K-bit block.
pub const WORDS: usize = 1024;
/// One 64K-bit block.
pub type Words = [u64; WORDS];

/// A zeroed block on the heap.
pub fn zeroed() -> Box<Words> {
    Box::new([0u64; WORDS])
}

/// The instruction sets the kernels are compiled for, from the baseline up; each kernel `f` has a
/// twin `f_at(level, ...)` that runs the copy for a given level (clamped to what the CPU has), so
/// that tests can check every copy against the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Whatever the target's baseline allows (SSE2 on x86-64).
    Portable,
    /// AVX2 and POPCNT.
    Avx2,
    /// AVX-512 F, BW, VL and VPOPCNTDQ (Ice Lake and later, Zen 4), with AVX2 and POPCNT.
    Avx512,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The highest level this CPU supports. std caches what the CPU reports: each check is a load
    /// and a test.
    #[inline]
    pub fn best() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vpopcntdq")
                {
                    return Level::Avx512;
                }
                return Level::Avx2;
            }
        }
        Level::Portable
    }
}

/// Defines `pub fn $name` and `pub fn $at(level, ...)` with a baseline body, an AVX2+POPCNT copy
/// and an AVX-512 copy of the same body; `$name` runs the best copy for this CPU. Where the
/// compiler's vectorisation of the body for AVX-512 is poor, `avx512 = f;` names a hand-written
/// `#[target_feature]` function to run instead.
macro_rules! multiversion {
    (avx512 = $fast:path; $(#[$m:meta])* pub fn $name:ident / $at:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        multiversion!(@emit [$fast] $(#[$m])* pub fn $name / $at ($($arg: $ty),*) $(-> $ret)? $body);
    };
    ($(#[$m:meta])* pub fn $name:ident / $at:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        multiversion!(@emit [avx512] $(#[$m])* pub fn $name / $at ($($arg: $ty),*) $(-> $ret)? $body);
    };
    (@emit [$fast:path] $(#[$m:meta])* pub fn $name:ident / $at:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[inline]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            $at(Level::best(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] as compiled for `level` (or the best level below it this CPU has).")]
        #[inline]
        pub fn $at(level: Level, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(dead_code)]
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt")]
                fn avx512($($arg: $ty),*) $(-> $ret)? $body
                #[target_feature(enable = "avx2,popcnt")]
                fn avx2($($arg: $ty),*) $(-> $ret)? $body
                match level.min(Level::best()) {
                    // SAFETY: `Level::best` checked that the CPU has these features.
                    Level::Avx512 => return unsafe { $fast($($arg),*) },
                    // SAFETY: as above.
                    Level::Avx2 => return unsafe { avx2($($arg),*) },
                    Level::Portable => {}
                }
            }
            #[inline(never)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            portable($($arg),*)
        }
    };
}

/// Hand-written AVX-512 kernels, for loops the compiler vectorises poorly at that width.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Words, WORDS};
    use std::arch::x86_64::*;

    /// Words per step: four 512-bit registers.
    const STEP: usize = 32;

    #[inline(always)]
    unsafe fn load(p: *const u64) -> __m512i {
        _mm512_loadu_si512(p as *const __m512i)
    }

    #[inline(always)]
    unsafe fn store(p: *mut u64, v: __m512i) {
        _mm512_storeu_si512(p as *mut __m512i, v)
    }

    /// [`super::combine`]: per 32 words, the AND and the OR of the sources are kept in registers
    /// while every source is read, the result is written once and counted in the same pass.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt")]
    pub(super) fn combine(dst: &mut Words, ands: &[&Words], ors: &[&Words], and_not: bool) -> u32 {
        let mut count = _mm512_setzero_si512();
        let a0 = if ands.is_empty() { _mm512_setzero_si512() } else { _mm512_set1_epi64(-1) };
        for c in (0..WORDS).step_by(STEP) {
            let mut a = [a0; 4];
            let mut o = [_mm512_setzero_si512(); 4];
            for s in ands {
                let p = s.as_ptr().wrapping_add(c);
                for (k, a) in a.iter_mut().enumerate() {
                    // SAFETY: `c + STEP <= WORDS`: the loads stay inside the block.
                    unsafe { *a = _mm512_and_si512(*a, load(p.add(8 * k))) };
                }
            }
            for s in ors {
                let p = s.as_ptr().wrapping_add(c);
                for (k, o) in o.iter_mut().enumerate() {
                    // SAFETY: as above.
                    unsafe { *o = _mm512_or_si512(*o, load(p.add(8 * k))) };
                }
            }
            let d = dst.as_mut_ptr().wrapping_add(c);
            for k in 0..4 {
                let r = if and_not { _mm512_andnot_si512(o[k], a[k]) } else { _mm512_or_si512(o[k], a[k]) };
                count = _mm512_add_epi64(count, _mm512_popcnt_epi64(r));
                // SAFETY: inside the block, as above.
                unsafe { store(d.add(8 * k), r) };
            }
        }
        _mm512_reduce_add_epi64(count) as u32
    }

    /// `dst = srcs[0] | srcs[1] | ...`: 32 words of the union stay in four registers while every
    /// source is read.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt")]
    pub(super) fn or_many(dst: &mut Words, srcs: &[&Words]) {
        for c in (0..WORDS).step_by(STEP) {
            let mut acc = [_mm512_setzero_si512(); 4];
            for s in srcs {
                let p = s.as_ptr().wrapping_add(c);
                // SAFETY: `c + STEP <= WORDS`, so the four loads stay inside the block.
                unsafe {
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_or_si512(*a, load(p.add(8 * k)));
                    }
                }
            }
            let d = dst.as_mut_ptr().wrapping_add(c);
            for (k, a) in acc.iter().enumerate() {
                // SAFETY: inside the block, as above.
                unsafe { store(d.add(8 * k), *a) };
            }
        }
    }
}

multiversion! {
    /// Number of set bits.
    pub fn popcount / popcount_at(a: &Words) -> u32 {
        let mut n = 0u32;
        for w in a.iter() {
            n += w.count_ones();
        }
        n
    }
}

multiversion! {
    /// `dst &= src`, returning the new population.
    pub fn and_assign / and_assign_at(dst: &mut Words, src: &Words) -> u32 {
        let mut n = 0u32;
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d &= *s;
            n += d.count_ones();
        }
        n
    }
}

multiversion! {
    /// `dst &= src` without counting.
    pub fn and_assign_nocount / and_assign_nocount_at(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d &= *s;
        }
    }
}

multiversion! {
    avx512 = avx512::or_many;
    /// `dst = srcs[0] | srcs[1] | ...` in one pass: each word of `dst` is written once, and the
    /// running value of eight words stays in registers while every source is read.
    pub fn or_many / or_many_at(dst: &mut Words, srcs: &[&Words]) {
        const CHUNK: usize = 8;
        for c in (0..WORDS).step_by(CHUNK) {
            let mut acc = [0u64; CHUNK];
            for s in srcs {
                for k in 0..CHUNK {
                    acc[k] |= s[c + k];
                }
            }
            dst[c..c + CHUNK].copy_from_slice(&acc);
        }
    }
}

multiversion! {
    avx512 = avx512::combine;
    /// In one pass, returning the population of the result: `dst = (ands[0] & ands[1] & ...) &
    /// !(ors[0] | ors[1] | ...)` when `and_not` (then `ands` is not empty), else `dst = (ands[0] &
    /// ands[1] & ...) | ors[0] | ors[1] | ...` (with no `ands`, the OR alone). Each word of `dst`
    /// is written once; no intermediate block is written or read again.
    pub fn combine / combine_at(dst: &mut Words, ands: &[&Words], ors: &[&Words], and_not: bool) -> u32 {
        const CHUNK: usize = 8;
        let a0 = if ands.is_empty() { 0 } else { !0u64 };
        let mut n = 0u32;
        for c in (0..WORDS).step_by(CHUNK) {
            let mut a = [a0; CHUNK];
            let mut o = [0u64; CHUNK];
            for s in ands {
                for k in 0..CHUNK {
                    a[k] &= s[c + k];
                }
            }
            for s in ors {
                for k in 0..CHUNK {
                    o[k] |= s[c + k];
                }
            }
            for k in 0..CHUNK {
                let r = if and_not { a[k] & !o[k] } else { a[k] | o[k] };
                dst[c + k] = r;
                n += r.count_ones();
            }
        }
        n
    }
}

multiversion! {
    /// `dst = a & b` without counting.
    pub fn and_to / and_to_at(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] & b[i];
        }
    }
}

multiversion! {
    /// `dst |= src` without counting.
    pub fn or_assign / or_assign_at(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d |= *s;
        }
    }
}

multiversion! {
    /// `dst = a | b` without counting.
    pub fn or_to / or_to_at(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] | b[i];
        }
    }
}

multiversion! {
    /// `dst &= !src` without counting.
    pub fn andnot_assign / andnot_assign_at(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d &= !*s;
        }
    }
}

multiversion! {
    /// `dst = a & !b` without counting.
    pub fn andnot_to / andnot_to_at(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] & !b[i];
        }
    }
}

multiversion! {
    /// `dst ^= src` without counting.
    pub fn xor_assign / xor_assign_at(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d ^= *s;
        }
    }
}

multiversion! {
    /// `dst = !dst`.
    pub fn not_assign / not_assign_at(dst: &mut Words) {
        for d in dst.iter_mut() {
            *d = !*d;
        }
    }
}

multiversion! {
    /// `popcount(a & b)` without writing anything.
    pub fn and_popcount / and_popcount_at(a: &Words, b: &Words) -> u32 {
        let mut n = 0u32;
        for i in 0..WORDS {
            n += (a[i] & b[i]).count_ones();
        }
        n
    }
}

multiversion! {
    /// Number of runs of consecutive set bits.
    pub fn count_runs / count_runs_at(a: &Words) -> u32 {
        let mut n = 0u32;
        let mut carry = 0u64;
        for w in a.iter() {
            n += (w & !((w << 1) | carry)).count_ones();
            carry = w >> 63;
        }
        n
    }
}

multiversion! {
    /// The whole bit-sliced comparison against a constant in one pass: `slices` from the highest
    /// down, `ones[j]` all ones where the constant's bit for `slices[j]` is 1, else zero; `eq`
    /// starts as the candidates. Leaves in `lt` the candidates below the constant and in `eq`
    /// those equal to it in the bits visited. The running `lt` and `eq` of eight words stay in
    /// registers while every slice is read, where a step per slice rereads and rewrites both.
    pub fn bsi_compare / bsi_compare_at(lt: &mut Words, eq: &mut Words, slices: &[&Words], ones: &[u64]) {
        const CHUNK: usize = 8;
        for c in (0..WORDS).step_by(CHUNK) {
            let mut l = [0u64; CHUNK];
            let mut e = [0u64; CHUNK];
            e.copy_from_slice(&eq[c..c + CHUNK]);
            for (s, &one) in slices.iter().zip(ones) {
                let s: &[u64; CHUNK] = s[c..c + CHUNK].try_into().expect("a chunk");
                for k in 0..CHUNK {
                    // bit 1: lt |= eq & !s, eq &= s;  bit 0: eq &= !s.
                    l[k] |= e[k] & !s[k] & one;
                    e[k] &= !(s[k] ^ one);
                }
            }
            lt[c..c + CHUNK].copy_from_slice(&l);
            eq[c..c + CHUNK].copy_from_slice(&e);
        }
    }
}

multiversion! {
    /// One step of the bit-sliced comparison for a constant bit of 1: `lt |= eq & !s; eq &= s`.
    pub fn bsi_step_one / bsi_step_one_at(lt: &mut Words, eq: &mut Words, s: &Words) {
        for i in 0..WORDS {
            lt[i] |= eq[i] & !s[i];
            eq[i] &= s[i];
        }
    }
}

multiversion! {
    /// One step of the bit-sliced comparison for a constant bit of 0: `eq &= !s`.
    pub fn bsi_step_zero / bsi_step_zero_at(eq: &mut Words, s: &Words) {
        for i in 0..WORDS {
            eq[i] &= !s[i];
        }
    }
}

multiversion! {
    /// Whether any bit is set.
    pub fn any / any_at(a: &Words) -> bool {
        let mut acc = 0u64;
        for w in a.iter() {
            acc |= *w;
        }
        acc != 0
    }
}

/// Sets bits `start..=last`.
pub fn set_range(a: &mut Words, start: u16, last: u16) {
    let (s, l) = (start as usize, last as usize);
    let (sw, lw) = (s / 64, l / 64);
    let smask = !0u64 << (s % 64);
    let lmask = !0u64 >> (63 - l % 64);
    if sw == lw {
        a[sw] |= smask & lmask;
        return;
    }
    a[sw] |= smask;
    for w in &mut a[sw + 1..lw] {
        *w = !0;
    }
    a[lw] |= lmask;
}

/// Clears bits `start..=last`.
pub fn clear_range(a: &mut Words, start: u16, last: u16) {
    let (s, l) = (start as usize, last as usize);
    let (sw, lw) = (s / 64, l / 64);
    let smask = !0u64 << (s % 64);
    let lmask = !0u64 >> (63 - l % 64);
    if sw == lw {
        a[sw] &= !(smask & lmask);
        return;
    }
    a[sw] &= !smask;
    for w in &mut a[sw + 1..lw] {
        *w = 0;
    }
    a[lw] &= !lmask;
}

/// Number of set bits in `start..=last`.
pub fn popcount_range(a: &Words, start: u16, last: u16) -> u32 {
    let (s, l) = (start as usize, last as usize);
    let (sw, lw) = (s / 64, l / 64);
    let smask = !0u64 << (s % 64);
    let lmask = !0u64 >> (63 - l % 64);
    if sw == lw {
        return (a[sw] & smask & lmask).count_ones();
    }
    let mut n = (a[sw] & smask).count_ones() + (a[lw] & lmask).count_ones();
    for w in &a[sw + 1..lw] {
        n += w.count_ones();
    }
    n
}

/// Whether bit `v` is set.
#[inline]
pub fn get(a: &Words, v: u16) -> bool {
    a[v as usize / 64] >> (v % 64) & 1 == 1
}

/// Appends the set bits, each OR-ed with `high`, to `out`.
pub fn extend_values(a: &Words, high: u32, out: &mut Vec<u32>) {
    for (i, &w) in a.iter().enumerate() {
        let mut w = w;
        let base = high | (i as u32 * 64);
        while w != 0 {
            out.push(base | w.trailing_zeros());
            w &= w - 1;
        }
    }
}

multiversion! {
    /// The set bits as sorted u16 values (`card` must be the population).
    ///
    /// Above two ids per word on average, writes eight values per word unconditionally into a
    /// buffer with slack, so that the loop branches only for words with more than eight bits set
    /// instead of once per value; below, visits the set bits only.
    pub fn to_array / to_array_at(a: &Words, card: u32) -> Vec<u16> {
        let card = card as usize;
        let mut out = vec![0u16; card + 8];
        let mut n = 0usize;
        if card <= 2 * WORDS {
            // Sparse: most words are zero, and the loop below would still write eight slots for
            // each; visit only the set bits. A mask of the non-zero words of each 64 (one
            // vector compare per eight words) is walked instead of testing every word: a
            // test per word mispredicts at each of the few non-zero ones.
            for g in 0..WORDS / 64 {
                let group = &a[g * 64..g * 64 + 64];
                let mut nonzero = 0u64;
                for (i, &w) in group.iter().enumerate() {
                    nonzero |= ((w != 0) as u64) << i;
                }
                while nonzero != 0 {
                    let i = nonzero.trailing_zeros() as usize;
                    nonzero &= nonzero - 1;
                    let base = ((g * 64 + i) * 64) as u16;
                    let mut w = group[i];
                    loop {
                        out[n] = base | w.trailing_zeros() as u16;
                        n += 1;
                        w &= w - 1;
                        if w == 0 {
                            break;
                        }
                    }
                }
            }
            debug_assert_eq!(n, card);
            out.truncate(card);
            return out;
        }
        for (i, &w) in a.iter().enumerate() {
            let base = (i * 64) as u16;
            let cnt = w.count_ones() as usize;
            let mut w = w;
            let dst: &mut [u16; 8] = (&mut out[n..n + 8]).try_into().expect("eight slots of slack");
            for slot in dst.iter_mut() {
                *slot = base | (w.trailing_zeros() as u16 & 63);
                w &= w.wrapping_sub(1);
            }
            if cnt > 8 {
                for slot in &mut out[n + 8..n + cnt] {
                    *slot = base | w.trailing_zeros() as u16;
                    w &= w - 1;
                }
            }
            n += cnt;
        }
        debug_assert_eq!(n, card);
        out.truncate(card);
        out
    }
}

/// The runs of set bits as inclusive `(start, last)` pairs.
pub fn to_runs(a: &Words) -> Vec<(u16, u16)> {
    let mut runs = Vec::new();
    let mut i = 0usize;
    while i < WORDS * 64 {
        let w = i / 64;
        let word = a[w] >> (i % 64);
        if word == 0 {
            i = (w + 1) * 64;
            continue;
        }
        let start = i + word.trailing_zeros() as usize;
        // find the end of the run
        let mut j = start;
        loop {
            let w = j / 64;
            let inv = !a[w] >> (j % 64);
            if inv == 0 {
                j = (w + 1) * 64;
                if j >= WORDS * 64 {
                    break;
                }
                continue;
            }
            j += inv.trailing_zeros() as usize;
            break;
        }
        runs.push((start as u16, (j - 1) as u16));
        i = j;
    }
    runs
}

/// The value of rank `n` (0-based) among the set bits; `n` must be below the population.
pub fn select(a: &Words, mut n: u32) -> u16 {
    for (i, &w) in a.iter().enumerate() {
        let c = w.count_ones();
        if n < c {
            let mut w = w;
            for _ in 0..n {
                w &= w - 1;
            }
            return (i * 64) as u16 | w.trailing_zeros() as u16;
        }
        n -= c;
    }
    unreachable!("select past the population")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_runs() {
        let mut a = [0u64; WORDS];
        set_range(&mut a, 3, 70);
        set_range(&mut a, 65000, 65535);
        assert_eq!(popcount(&a), 68 + 536);
        assert_eq!(to_runs(&a), vec![(3, 70), (65000, 65535)]);
        assert_eq!(count_runs(&a), 2);
        assert_eq!(popcount_range(&a, 0, 10), 8);
        clear_range(&mut a, 10, 65100);
        assert_eq!(to_runs(&a), vec![(3, 9), (65101, 65535)]);
        assert_eq!(select(&a, 7), 65101);
        let mut f = [!0u64; WORDS];
        assert_eq!(to_runs(&f), vec![(0, 65535)]);
        clear_range(&mut f, 0, 65535);
        assert_eq!(popcount(&f), 0);
    }
}
