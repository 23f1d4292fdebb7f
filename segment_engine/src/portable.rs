//! The roaring portable serialization format, as written and read by CRoaring (and so pyroaring),
//! Java and Go: <https://github.com/RoaringBitmap/RoaringFormatSpec>.

use crate::container::{Container, Run, ARRAY_MAX};
use crate::error::{EngineError, Result};
use crate::set::RoaringSet;
use crate::words::{self, WORDS};

const COOKIE_NO_RUN: u32 = 12346;
const COOKIE_RUN: u16 = 12347;
const NO_OFFSET_THRESHOLD: usize = 4;

/// How a container is written: the kind follows the cardinality unless it is a run container.
enum Wire<'a> {
    Array(std::borrow::Cow<'a, [u16]>),
    Bits(std::borrow::Cow<'a, [u64]>),
    Run(&'a [Run]),
}

fn wire(c: &Container) -> Wire<'_> {
    use std::borrow::Cow;
    match c {
        Container::Run(r) => Wire::Run(r),
        Container::Array(a) if a.len() <= ARRAY_MAX => Wire::Array(Cow::Borrowed(a)),
        Container::Array(_) => Wire::Bits(Cow::Owned(c.to_words().to_vec())),
        Container::Bits(w, card) if *card as usize > ARRAY_MAX => Wire::Bits(Cow::Borrowed(&w[..])),
        Container::Bits(w, card) => Wire::Array(Cow::Owned(words::to_array(w, *card))),
    }
}

fn wire_len(w: &Wire<'_>) -> usize {
    match w {
        Wire::Array(a) => a.len() * 2,
        Wire::Bits(_) => WORDS * 8,
        Wire::Run(r) => 2 + r.len() * 4,
    }
}

/// Serialized size in bytes.
pub fn serialized_size(set: &RoaringSet) -> usize {
    let n = set.keys.len();
    let has_runs = set.containers.iter().any(|c| matches!(c, Container::Run(_)));
    header_len(n, has_runs)
        + set
            .containers
            .iter()
            .map(|c| match c {
                Container::Run(r) => 2 + r.len() * 4,
                c if c.len() as usize <= ARRAY_MAX => c.len() as usize * 2,
                _ => WORDS * 8,
            })
            .sum::<usize>()
}

fn header_len(n: usize, has_runs: bool) -> usize {
    if has_runs {
        4 + n.div_ceil(8) + 4 * n + if n >= NO_OFFSET_THRESHOLD { 4 * n } else { 0 }
    } else {
        8 + 8 * n
    }
}

/// Writes `set` in the portable format.
pub fn serialize(set: &RoaringSet) -> Vec<u8> {
    let n = set.keys.len();
    let wires: Vec<Wire<'_>> = set.containers.iter().map(wire).collect();
    let has_runs = wires.iter().any(|w| matches!(w, Wire::Run(_)));
    let mut out = Vec::with_capacity(header_len(n, has_runs) + wires.iter().map(wire_len).sum::<usize>());
    if has_runs {
        out.extend_from_slice(&(COOKIE_RUN as u32 | ((n as u32 - 1) << 16)).to_le_bytes());
        let mut flags = vec![0u8; n.div_ceil(8)];
        for (i, w) in wires.iter().enumerate() {
            if matches!(w, Wire::Run(_)) {
                flags[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&flags);
    } else {
        out.extend_from_slice(&COOKIE_NO_RUN.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (k, c) in set.keys.iter().zip(&set.containers) {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&((c.len() - 1) as u16).to_le_bytes());
    }
    if !has_runs || n >= NO_OFFSET_THRESHOLD {
        let mut offset = header_len(n, has_runs) as u32;
        for w in &wires {
            out.extend_from_slice(&offset.to_le_bytes());
            offset += wire_len(w) as u32;
        }
    }
    for w in &wires {
        match w {
            Wire::Array(a) => {
                for v in a.iter() {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Wire::Bits(b) => {
                for v in b.iter() {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Wire::Run(r) => {
                out.extend_from_slice(&(r.len() as u16).to_le_bytes());
                for &(s, l) in r.iter() {
                    out.extend_from_slice(&s.to_le_bytes());
                    out.extend_from_slice(&(l - s).to_le_bytes());
                }
            }
        }
    }
    out
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| EngineError::corrupt(format!("truncated at byte {} while reading {what}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
}

/// Reads the portable format, checking every invariant; never panics on bad input.
pub fn deserialize(data: &[u8]) -> Result<RoaringSet> {
    let mut r = Reader { data, pos: 0 };
    let cookie = r.u32("the cookie")?;
    let (n, run_flags) = if cookie == COOKIE_NO_RUN {
        let n = r.u32("the container count")? as usize;
        if n > 1 << 16 {
            return Err(EngineError::corrupt(format!("container count {n} exceeds 65536")));
        }
        (n, None)
    } else if cookie as u16 == COOKIE_RUN {
        let n = (cookie >> 16) as usize + 1;
        (n, Some(r.take(n.div_ceil(8), "the run flags")?))
    } else {
        return Err(EngineError::corrupt(format!("unknown cookie {cookie:#x}")));
    };
    let descr = r.take(4 * n, "the container descriptions")?;
    if run_flags.is_none() || n >= NO_OFFSET_THRESHOLD {
        r.take(4 * n, "the container offsets")?;
    }
    let mut keys = Vec::with_capacity(n);
    let mut containers = Vec::with_capacity(n);
    for i in 0..n {
        let key = u16::from_le_bytes([descr[4 * i], descr[4 * i + 1]]);
        let card = u16::from_le_bytes([descr[4 * i + 2], descr[4 * i + 3]]) as usize + 1;
        if let Some(&last) = keys.last() {
            if key <= last {
                return Err(EngineError::corrupt(format!(
                    "container keys not ascending at key {key}"
                )));
            }
        }
        let is_run = run_flags.is_some_and(|f| f[i / 8] >> (i % 8) & 1 == 1);
        let c = if is_run {
            let nruns = r.u16("a run count")? as usize;
            if nruns == 0 {
                return Err(EngineError::corrupt(format!("run container {key} has no runs")));
            }
            let raw = r.take(4 * nruns, "runs")?;
            let mut runs: Vec<Run> = Vec::with_capacity(nruns);
            let mut total = 0usize;
            for j in 0..nruns {
                let s = u16::from_le_bytes([raw[4 * j], raw[4 * j + 1]]);
                let len = u16::from_le_bytes([raw[4 * j + 2], raw[4 * j + 3]]);
                let l = s
                    .checked_add(len)
                    .ok_or_else(|| EngineError::corrupt(format!("run {s}+{len} in container {key} passes 65535")))?;
                match runs.last_mut() {
                    Some(prev) if s as u32 <= prev.1 as u32 => {
                        return Err(EngineError::corrupt(format!(
                            "runs overlap or are unsorted in container {key}"
                        )))
                    }
                    Some(prev) if s as u32 == prev.1 as u32 + 1 => prev.1 = l,
                    _ => runs.push((s, l)),
                }
                total += len as usize + 1;
            }
            if total != card {
                return Err(EngineError::corrupt(format!(
                    "container {key} declares {card} ids but its runs hold {total}"
                )));
            }
            Container::Run(runs)
        } else if card <= ARRAY_MAX {
            let raw = r.take(2 * card, "an array container")?;
            let values: Vec<u16> = raw.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
            if !values.windows(2).all(|w| w[0] < w[1]) {
                return Err(EngineError::corrupt(format!(
                    "array container {key} is not strictly ascending"
                )));
            }
            Container::Array(values)
        } else {
            let raw = r.take(8 * WORDS, "a bitset container")?;
            let mut w = words::zeroed();
            for (d, b) in w.iter_mut().zip(raw.chunks_exact(8)) {
                *d = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
            let pop = words::popcount(&w) as usize;
            if pop != card {
                return Err(EngineError::corrupt(format!(
                    "bitset container {key} declares {card} ids but holds {pop}"
                )));
            }
            Container::Bits(w, pop as u32)
        };
        keys.push(key);
        containers.push(c);
    }
    if r.pos != data.len() {
        return Err(EngineError::corrupt(format!("{} trailing bytes", data.len() - r.pos)));
    }
    Ok(RoaringSet::from_parts(keys, containers))
}
