//! Kernels over one 64K-bit block held as 1024 `u64` words.
//!
//! These loops are the hot path of every bitmap operation. They are written so that the
//! compiler vectorises them, and each is compiled twice: once for the baseline CPU and once
//! with AVX2 + POPCNT, picked at run time.

/// Words in one 64K-bit block.
pub const WORDS: usize = 1024;
/// One 64K-bit block.
pub type Words = [u64; WORDS];

/// A zeroed block on the heap.
pub fn zeroed() -> Box<Words> {
    Box::new([0u64; WORDS])
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    // std caches what the CPU reports: each call is a load and a test.
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt")
}

/// Defines `pub fn $name` with a baseline body and an AVX2+POPCNT copy of the same body.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[inline]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,popcnt")]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? $body
                if has_avx2() {
                    // SAFETY: the CPU was checked for AVX2 and POPCNT above.
                    return unsafe { fast($($arg),*) };
                }
            }
            #[inline(never)]
            fn slow($($arg: $ty),*) $(-> $ret)? $body
            slow($($arg),*)
        }
    };
}

multiversion! {
    /// Number of set bits.
    pub fn popcount(a: &Words) -> u32 {
        let mut n = 0u32;
        for w in a.iter() {
            n += w.count_ones();
        }
        n
    }
}

multiversion! {
    /// `dst &= src`, returning the new population.
    pub fn and_assign(dst: &mut Words, src: &Words) -> u32 {
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
    pub fn and_assign_nocount(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d &= *s;
        }
    }
}

multiversion! {
    /// `dst = srcs[0] | srcs[1] | ...` in one pass: each word of `dst` is written once, and the
    /// running value of eight words stays in registers while every source is read.
    pub fn or_many(dst: &mut Words, srcs: &[&Words]) {
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
    /// `dst = a & b` without counting.
    pub fn and_to(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] & b[i];
        }
    }
}

multiversion! {
    /// `dst |= src` without counting.
    pub fn or_assign(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d |= *s;
        }
    }
}

multiversion! {
    /// `dst = a | b` without counting.
    pub fn or_to(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] | b[i];
        }
    }
}

multiversion! {
    /// `dst &= !src` without counting.
    pub fn andnot_assign(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d &= !*s;
        }
    }
}

multiversion! {
    /// `dst = a & !b` without counting.
    pub fn andnot_to(dst: &mut Words, a: &Words, b: &Words) {
        for i in 0..WORDS {
            dst[i] = a[i] & !b[i];
        }
    }
}

multiversion! {
    /// `dst ^= src` without counting.
    pub fn xor_assign(dst: &mut Words, src: &Words) {
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            *d ^= *s;
        }
    }
}

multiversion! {
    /// `dst = !dst`.
    pub fn not_assign(dst: &mut Words) {
        for d in dst.iter_mut() {
            *d = !*d;
        }
    }
}

multiversion! {
    /// `popcount(a & b)` without writing anything.
    pub fn and_popcount(a: &Words, b: &Words) -> u32 {
        let mut n = 0u32;
        for i in 0..WORDS {
            n += (a[i] & b[i]).count_ones();
        }
        n
    }
}

multiversion! {
    /// Number of runs of consecutive set bits.
    pub fn count_runs(a: &Words) -> u32 {
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
    pub fn bsi_compare(lt: &mut Words, eq: &mut Words, slices: &[&Words], ones: &[u64]) {
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
    pub fn bsi_step_one(lt: &mut Words, eq: &mut Words, s: &Words) {
        for i in 0..WORDS {
            lt[i] |= eq[i] & !s[i];
            eq[i] &= s[i];
        }
    }
}

multiversion! {
    /// One step of the bit-sliced comparison for a constant bit of 0: `eq &= !s`.
    pub fn bsi_step_zero(eq: &mut Words, s: &Words) {
        for i in 0..WORDS {
            eq[i] &= !s[i];
        }
    }
}

multiversion! {
    /// Whether any bit is set.
    pub fn any(a: &Words) -> bool {
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
    pub fn to_array(a: &Words, card: u32) -> Vec<u16> {
        let card = card as usize;
        let mut out = vec![0u16; card + 8];
        let mut n = 0usize;
        if card <= 2 * WORDS {
            // Sparse: most words are zero, and the loop below would still write eight slots for
            // each; visit only the set bits.
            for (i, &w) in a.iter().enumerate() {
                let mut w = w;
                while w != 0 {
                    out[n] = (i * 64) as u16 | w.trailing_zeros() as u16;
                    n += 1;
                    w &= w - 1;
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
