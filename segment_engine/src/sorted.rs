//! Kernels over sorted, distinct `u16` arrays (the array containers of one 64K block).
//!
//! The intersection compares eight values of each side at once with SSE4.2's `pcmpestrm`
//! (every value of one block against every value of the other, in one instruction), keeps the
//! matched lanes with one byte shuffle and advances the block whose largest value is smaller;
//! picked at run time, with a branch-free scalar merge as the fallback and for the tails. A
//! short array against a much longer one gallops (binary search from the last position) instead.
//! The difference walks the same blocks, each block of the left side keeping the lanes no block
//! of the right side matched.

/// A much longer side is searched rather than walked: below `len(short) * GALLOP < len(long)`.
const GALLOP: usize = 32;

#[cfg(target_arch = "x86_64")]
fn has_sse42() -> bool {
    // std caches what the CPU reports: each call is a load and a test.
    std::is_x86_feature_detected!("sse4.2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("popcnt")
}

/// For each 8-bit mask of lanes, the byte shuffle that moves those `u16` lanes to the front.
#[cfg(target_arch = "x86_64")]
static COMPACT: [[u8; 16]; 256] = compact_table();

#[cfg(target_arch = "x86_64")]
const fn compact_table() -> [[u8; 16]; 256] {
    let mut t = [[0x80u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut lane, mut k) = (0, 0);
        while lane < 8 {
            if m & (1 << lane) != 0 {
                t[m][2 * k] = 2 * lane as u8;
                t[m][2 * k + 1] = 2 * lane as u8 + 1;
                k += 1;
            }
            lane += 1;
        }
        m += 1;
    }
    t
}

/// Appends `a ∩ b` to `out`, ascending.
pub fn intersect_into(a: &[u16], b: &[u16], out: &mut Vec<u16>) {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return;
    }
    if small.len() * GALLOP < large.len() {
        return gallop_intersect(small, large, out);
    }
    #[cfg(target_arch = "x86_64")]
    if small.len() >= 8 && has_sse42() {
        // SAFETY: the CPU was checked for SSE4.2, SSSE3 and POPCNT above.
        return unsafe { intersect_sse42(a, b, out) };
    }
    merge_intersect(a, b, 0, 0, out);
}

/// `a ∩ b` as a new array.
pub fn intersect(a: &[u16], b: &[u16]) -> Vec<u16> {
    // Eight lanes of slack: the vectorised path stores whole blocks of eight past the result.
    let mut out = Vec::with_capacity(a.len().min(b.len()) + 8);
    intersect_into(a, b, &mut out);
    out
}

/// `len(a ∩ b)` without building it.
pub fn intersect_count(a: &[u16], b: &[u16]) -> u32 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return 0;
    }
    if small.len() * GALLOP < large.len() {
        let mut n = 0;
        let mut base = 0;
        for &v in small {
            match large[base..].binary_search(&v) {
                Ok(i) => {
                    n += 1;
                    base += i + 1;
                }
                Err(i) => base += i,
            }
            if base >= large.len() {
                break;
            }
        }
        return n;
    }
    #[cfg(target_arch = "x86_64")]
    if small.len() >= 8 && has_sse42() {
        // SAFETY: the CPU was checked for SSE4.2, SSSE3 and POPCNT above.
        return unsafe { count_sse42(a, b) };
    }
    merge_count(a, b, 0, 0)
}

fn gallop_intersect(small: &[u16], large: &[u16], out: &mut Vec<u16>) {
    let mut base = 0;
    for &v in small {
        match large[base..].binary_search(&v) {
            Ok(i) => {
                out.push(v);
                base += i + 1;
            }
            Err(i) => base += i,
        }
        if base >= large.len() {
            break;
        }
    }
}

/// Branch-free merge of `a[i..]` and `b[j..]`, appending the common values.
fn merge_intersect(a: &[u16], b: &[u16], mut i: usize, mut j: usize, out: &mut Vec<u16>) {
    out.reserve((a.len() - i).min(b.len() - j));
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x == y {
            out.push(x);
        }
        i += (x <= y) as usize;
        j += (y <= x) as usize;
    }
}

fn merge_count(a: &[u16], b: &[u16], mut i: usize, mut j: usize) -> u32 {
    let mut n = 0;
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        i += (x <= y) as usize;
        j += (y <= x) as usize;
        n += (x == y) as u32;
    }
    n
}

/// Compares blocks of eight until either side has fewer than eight left; returns where the
/// scalar merge takes over. `emit(block of a, mask of its lanes present in b)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2,ssse3,popcnt")]
unsafe fn blocks_sse42(a: &[u16], b: &[u16], mut emit: impl FnMut(std::arch::x86_64::__m128i, u32)) -> (usize, usize) {
    use std::arch::x86_64::*;
    const MODE: i32 = _SIDD_UWORD_OPS | _SIDD_CMP_EQUAL_ANY | _SIDD_BIT_MASK;
    let (na, nb) = (a.len() / 8 * 8, b.len() / 8 * 8);
    let (mut i, mut j) = (0usize, 0usize);
    if na == 0 || nb == 0 {
        return (0, 0);
    }
    // SAFETY (loads): i + 8 <= na <= a.len() and j + 8 <= nb <= b.len() whenever a block is read.
    let mut va = unsafe { _mm_loadu_si128(a.as_ptr() as *const __m128i) };
    let mut vb = unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) };
    loop {
        // Bit k set: lane k of `va` equals some lane of `vb`.
        let m = _mm_cvtsi128_si32(_mm_cmpestrm::<MODE>(vb, 8, va, 8)) as u32 & 0xFF;
        emit(va, m);
        let (amax, bmax) = (a[i + 7], b[j + 7]);
        if amax <= bmax {
            i += 8;
            if i == na {
                break;
            }
            va = unsafe { _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i) };
        }
        if bmax <= amax {
            j += 8;
            if j == nb {
                break;
            }
            vb = unsafe { _mm_loadu_si128(b.as_ptr().add(j) as *const __m128i) };
        }
    }
    (i, j)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2,ssse3,popcnt")]
unsafe fn intersect_sse42(a: &[u16], b: &[u16], out: &mut Vec<u16>) {
    use std::arch::x86_64::*;
    // Each block stores eight lanes, of which the matched ones count: room for eight past the result.
    out.reserve(a.len().min(b.len()) + 8);
    let base = out.len();
    let dst = out.as_mut_ptr();
    let mut k = base;
    // SAFETY: `k - base` never exceeds the common values found so far, at most
    // `min(len(a), len(b))`, so the 16-byte store at `k` stays within the reserved capacity.
    let (i, j) = unsafe {
        blocks_sse42(a, b, |va, m| {
            let shuffle = _mm_loadu_si128(COMPACT[m as usize].as_ptr() as *const __m128i);
            _mm_storeu_si128(dst.add(k) as *mut __m128i, _mm_shuffle_epi8(va, shuffle));
            k += m.count_ones() as usize;
        })
    };
    // SAFETY: the first `k` values are initialised (the stores above wrote them).
    unsafe { out.set_len(k) };
    merge_intersect(a, b, i, j, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2,ssse3,popcnt")]
unsafe fn count_sse42(a: &[u16], b: &[u16]) -> u32 {
    let mut n = 0u32;
    // SAFETY: forwarded from the caller (the CPU features).
    let (i, j) = unsafe { blocks_sse42(a, b, |_, m| n += m.count_ones()) };
    n + merge_count(a, b, i, j)
}

/// `a - b`, ascending; a short `a` searches `b` instead of walking it.
pub fn difference(a: &[u16], b: &[u16]) -> Vec<u16> {
    let mut out = Vec::with_capacity(a.len() + 8);
    if a.len() * GALLOP < b.len() {
        let mut base = 0;
        for (n, &v) in a.iter().enumerate() {
            match b[base..].binary_search(&v) {
                Ok(i) => base += i + 1,
                Err(i) => {
                    out.push(v);
                    base += i;
                }
            }
            if base >= b.len() {
                out.extend_from_slice(&a[n + 1..]);
                break;
            }
        }
        return out;
    }
    #[cfg(target_arch = "x86_64")]
    if a.len() >= 8 && b.len() >= 8 && has_sse42() {
        // SAFETY: the CPU was checked for SSE4.2, SSSE3 and POPCNT above.
        unsafe { difference_sse42(a, b, &mut out) };
        return out;
    }
    merge_difference(a, b, 0, 0, 0, &mut out);
    out
}

/// Branch-free merge appending `a[i..] - b[j..]` to `out`, except the values `a[i + l]` with bit
/// `l` of `found` set (already found in `b` before `j`). Whether a value is in `b` is a coin toss
/// for the branch predictor, so each step writes the value and keeps it by moving the end.
fn merge_difference(a: &[u16], b: &[u16], mut i: usize, mut j: usize, found: u32, out: &mut Vec<u16>) {
    let start = i;
    let base = out.len();
    out.resize(base + (a.len() - i), 0);
    let mut k = base;
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let seen = i - start < 32 && found >> (i - start) & 1 == 1;
        out[k] = x;
        k += (x < y && !seen) as usize;
        i += (x <= y) as usize;
        j += (y <= x) as usize;
    }
    while i < a.len() {
        let seen = i - start < 32 && found >> (i - start) & 1 == 1;
        out[k] = a[i];
        k += !seen as usize;
        i += 1;
    }
    out.truncate(k);
}

/// `a - b` by blocks of eight (`blocks_sse42`'s walk): a block of `a` collects its lanes found
/// in each block of `b` it meets, and its other lanes are kept when it is done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2,ssse3,popcnt")]
unsafe fn difference_sse42(a: &[u16], b: &[u16], out: &mut Vec<u16>) {
    use std::arch::x86_64::*;
    const MODE: i32 = _SIDD_UWORD_OPS | _SIDD_CMP_EQUAL_ANY | _SIDD_BIT_MASK;
    let (na, nb) = (a.len() / 8 * 8, b.len() / 8 * 8);
    // Each block stores eight lanes, of which the kept ones count: room for eight past the result.
    out.reserve(a.len() + 8);
    let base = out.len();
    let dst = out.as_mut_ptr();
    let mut k = base;
    let (mut i, mut j, mut found) = (0usize, 0usize, 0u32);
    // SAFETY (loads): i + 8 <= na <= a.len() and j + 8 <= nb <= b.len() whenever a block is read;
    // (stores): `k - base` is at most the lanes of `a` passed, so 16 bytes at `k` stay within
    // the `len(a) + 8` reserved.
    let mut va = unsafe { _mm_loadu_si128(a.as_ptr() as *const __m128i) };
    let mut vb = unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) };
    loop {
        found |= _mm_cvtsi128_si32(_mm_cmpestrm::<MODE>(vb, 8, va, 8)) as u32 & 0xFF;
        let (amax, bmax) = (a[i + 7], b[j + 7]);
        if amax <= bmax {
            let keep = !found & 0xFF;
            let shuffle = unsafe { _mm_loadu_si128(COMPACT[keep as usize].as_ptr() as *const __m128i) };
            unsafe { _mm_storeu_si128(dst.add(k) as *mut __m128i, _mm_shuffle_epi8(va, shuffle)) };
            k += keep.count_ones() as usize;
            found = 0;
            i += 8;
            if i == na {
                break;
            }
            va = unsafe { _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i) };
        }
        if bmax <= amax {
            j += 8;
            if j == nb {
                break;
            }
            vb = unsafe { _mm_loadu_si128(b.as_ptr().add(j) as *const __m128i) };
        }
    }
    // SAFETY: the first `k` values are initialised (the stores above wrote them).
    unsafe { out.set_len(k) };
    // The rest: `a[i..]` against `b[j..]`, the lanes of a block of `a` cut short already found
    // in `b[..j]` left out.
    merge_difference(a, b, i, j, found, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_and(a: &[u16], b: &[u16]) -> Vec<u16> {
        a.iter().copied().filter(|v| b.binary_search(v).is_ok()).collect()
    }

    fn arr(seed: u64, n: usize, step: u64) -> Vec<u16> {
        let mut x = seed | 1;
        let mut v: Vec<u16> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % step) as u16
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn intersection_and_difference_agree_with_a_lookup_on_every_size_mix() {
        for (na, nb, range) in [
            (0, 10, 100),
            (7, 9, 20),
            (8, 8, 16),
            (100, 100, 300),
            (9, 4000, 65535),
            (600, 450, 65535),
            (3000, 2900, 4000),
            (16, 17, 17),
            (4096, 4096, 65535),
            (5, 1000, 2000),
            (8, 64, 100),
            (33, 17, 60),
            (24, 24, 30),
            (64, 8, 80),
            (200, 600, 2000),
        ] {
            for seed in 1..6u64 {
                let a = arr(seed, na, range);
                let b = arr(seed * 7919, nb, range);
                let want = naive_and(&a, &b);
                assert_eq!(intersect(&a, &b), want, "{na} {nb} {range}");
                assert_eq!(intersect(&b, &a), want);
                assert_eq!(intersect_count(&a, &b) as usize, want.len());
                let diff: Vec<u16> = a.iter().copied().filter(|v| b.binary_search(v).is_err()).collect();
                assert_eq!(difference(&a, &b), diff);
                let mut scalar = Vec::new();
                merge_difference(&a, &b, 0, 0, 0, &mut scalar);
                assert_eq!(scalar, diff);
                let mut pre = vec![1u16];
                intersect_into(&a, &b, &mut pre);
                assert_eq!(pre[1..], want[..]);
            }
        }
        let full: Vec<u16> = (0..=u16::MAX).collect();
        assert_eq!(intersect(&full, &full), full);
        assert_eq!(intersect_count(&full, &full[1..]), 65535);
        assert!(difference(&full, &full).is_empty());
    }
}
