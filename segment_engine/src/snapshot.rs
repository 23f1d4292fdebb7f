//! Snapshots of a whole index for a fast restart: bitmaps in the roaring portable format and
//! orders as raw little-endian columns, so loading rebuilds nothing.
//!
//! Layout (all integers little-endian):
//! ```text
//! "CPSEGIX1" u32:version u64:n_members
//! u32:n_columns { str:name u8:kind u8:encoding set:nonnull
//!                 encoding 0: u32:n { i64:value set }  encoding 1: i64:base u32:n { set } }
//! u32:n_bitmaps { str:name set }
//! u32:n_stores u32[n_stores] u32:n_days { i32:day u64:len u8:narrow u32[len] (u16|u32)[len] i64[len] }
//! str = u32:len bytes; set = u64:len portable-bytes
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use crate::columns::{Bsi, Column, Encoding, Kind};
use crate::error::{EngineError, Result};
use crate::state::{IndexState, MAX_MEMBERS};
use crate::orders::{DayPart, Orders, StoreCol};
use crate::portable;
use crate::set::RoaringSet;

const MAGIC: &[u8; 8] = b"CPSEGIX1";
const VERSION: u32 = 1;

struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> Out<W> {
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)
    }
    fn u8(&mut self, v: u8) -> std::io::Result<()> {
        self.bytes(&[v])
    }
    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn i64(&mut self, v: i64) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> std::io::Result<()> {
        self.u32(s.len() as u32)?;
        self.bytes(s.as_bytes())
    }
    fn set(&mut self, s: &RoaringSet) -> std::io::Result<()> {
        let b = portable::serialize(s);
        self.u64(b.len() as u64)?;
        self.bytes(&b)
    }
    /// Writes fixed-size values through a reusable buffer.
    fn array<T: Copy, const N: usize>(&mut self, vals: &[T], enc: impl Fn(T) -> [u8; N]) -> std::io::Result<()> {
        for chunk in vals.chunks(1 << 14) {
            self.buf.clear();
            for &v in chunk {
                self.buf.extend_from_slice(&enc(v));
            }
            self.w.write_all(&self.buf)?;
        }
        Ok(())
    }
}

fn write_state<W: Write>(o: &mut Out<W>, st: &IndexState) -> std::io::Result<()> {
    o.bytes(MAGIC)?;
    o.u32(VERSION)?;
    o.u64(st.n)?;
    o.u32(st.columns.len() as u32)?;
    for (name, c) in &st.columns {
        o.str(name)?;
        o.u8(match c.kind {
            Kind::Bool => 0,
            Kind::Int => 1,
        })?;
        match &c.enc {
            Encoding::Values(map) => {
                o.u8(0)?;
                o.set(&c.nonnull)?;
                o.u32(map.len() as u32)?;
                for (v, s) in map {
                    o.i64(*v)?;
                    o.set(s)?;
                }
            }
            Encoding::Bsi(b) => {
                o.u8(1)?;
                o.set(&c.nonnull)?;
                o.i64(b.base)?;
                o.u32(b.slices.len() as u32)?;
                for s in &b.slices {
                    o.set(s)?;
                }
            }
        }
    }
    o.u32(st.bitmaps.len() as u32)?;
    for (name, s) in &st.bitmaps {
        o.str(name)?;
        o.set(s)?;
    }
    o.u32(st.orders.store_ids.len() as u32)?;
    o.array(&st.orders.store_ids, u32::to_le_bytes)?;
    o.u32(st.orders.days.len() as u32)?;
    for (day, p) in &st.orders.days {
        o.bytes(&day.to_le_bytes())?;
        o.u64(p.members.len() as u64)?;
        o.array(&p.members, u32::to_le_bytes)?;
        match &p.stores {
            StoreCol::Narrow(v) => {
                o.u8(1)?;
                o.array(v, u16::to_le_bytes)?;
            }
            StoreCol::Wide(v) => {
                o.u8(0)?;
                o.array(v, u32::to_le_bytes)?;
            }
        }
        o.array(&p.amounts, i64::to_le_bytes)?;
    }
    Ok(())
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
}

/// Writes `st` to `path` via a temporary file renamed into place.
pub fn save(st: &IndexState, path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}tmp",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default()
    ));
    let file = File::create(&tmp).map_err(io_err(format!("cannot create {}", tmp.display())))?;
    let mut o = Out {
        w: BufWriter::with_capacity(1 << 20, file),
        buf: Vec::with_capacity(1 << 17),
    };
    let written = write_state(&mut o, st)
        .and_then(|_| o.w.flush())
        .and_then(|_| o.w.get_ref().sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(format!("cannot write {}", tmp.display()))(e));
    }
    std::fs::rename(&tmp, path).map_err(io_err(format!("cannot rename {} to {}", tmp.display(), path.display())))
}

struct In<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| EngineError::corrupt(format!("snapshot truncated at byte {} reading {what}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4")))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8")))
    }
    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8, what)?.try_into().expect("8")))
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4, what)?.try_into().expect("4")))
    }
    fn str(&mut self, what: &str) -> Result<String> {
        let n = self.u32(what)? as usize;
        String::from_utf8(self.take(n, what)?.to_vec())
            .map_err(|_| EngineError::corrupt(format!("snapshot {what} is not UTF-8")))
    }
    fn set(&mut self, what: &str, n_members: u64) -> Result<RoaringSet> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| EngineError::corrupt(format!("snapshot {what} too long")))?;
        let s = portable::deserialize(self.take(n, what)?)
            .map_err(|e| EngineError::corrupt(format!("snapshot {what}: {e}")))?;
        if s.max().is_some_and(|m| m as u64 >= n_members) {
            return Err(EngineError::corrupt(format!(
                "snapshot {what} holds ids beyond n_members"
            )));
        }
        Ok(s)
    }
    fn array<T, const N: usize>(&mut self, len: usize, what: &str, dec: impl Fn([u8; N]) -> T) -> Result<Vec<T>> {
        let bytes = len
            .checked_mul(N)
            .ok_or_else(|| EngineError::corrupt(format!("snapshot {what} too long")))?;
        let raw = self.take(bytes, what)?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| dec(c.try_into().expect("N bytes")))
            .collect())
    }
}

fn read_state(data: &[u8]) -> Result<IndexState> {
    let mut r = In { data, pos: 0 };
    if r.take(8, "the magic")? != MAGIC {
        return Err(EngineError::corrupt("not a segment engine snapshot (bad magic)"));
    }
    let version = r.u32("the version")?;
    if version != VERSION {
        return Err(EngineError::corrupt(format!(
            "snapshot version {version} is not supported (expected {VERSION})"
        )));
    }
    let n = r.u64("n_members")?;
    if n > MAX_MEMBERS {
        return Err(EngineError::corrupt(format!("snapshot n_members {n} exceeds 2^32")));
    }
    let mut columns = BTreeMap::new();
    for _ in 0..r.u32("the column count")? {
        let name = r.str("a column name")?;
        let what = format!("column {name:?}");
        let kind = match r.u8(&what)? {
            0 => Kind::Bool,
            1 => Kind::Int,
            k => return Err(EngineError::corrupt(format!("{what}: unknown kind {k}"))),
        };
        let enc_tag = r.u8(&what)?;
        let nonnull = r.set(&what, n)?;
        let enc = match enc_tag {
            0 => {
                let mut map = BTreeMap::new();
                for _ in 0..r.u32(&what)? {
                    let v = r.i64(&what)?;
                    map.insert(v, r.set(&what, n)?);
                }
                Encoding::Values(map)
            }
            1 => {
                let base = r.i64(&what)?;
                let k = r.u32(&what)?;
                if k > 64 {
                    return Err(EngineError::corrupt(format!("{what}: {k} slices")));
                }
                let slices = (0..k).map(|_| r.set(&what, n)).collect::<Result<Vec<_>>>()?;
                Encoding::Bsi(Bsi::new(base, slices, &nonnull))
            }
            t => return Err(EngineError::corrupt(format!("{what}: unknown encoding {t}"))),
        };
        columns.insert(name, Column { kind, nonnull, enc });
    }
    let mut bitmaps = BTreeMap::new();
    for _ in 0..r.u32("the bitmap count")? {
        let name = r.str("a bitmap name")?;
        let s = r.set(&format!("bitmap {name:?}"), n)?;
        bitmaps.insert(name, Arc::new(s));
    }
    let n_stores = r.u32("the store count")? as usize;
    let store_ids = r.array(n_stores, "store ids", u32::from_le_bytes)?;
    let mut days = BTreeMap::new();
    for _ in 0..r.u32("the day count")? {
        let day = r.i32("a day")?;
        let what = format!("orders of day {day}");
        let len = usize::try_from(r.u64(&what)?).map_err(|_| EngineError::corrupt(format!("{what}: too long")))?;
        let members = r.array(len, &what, u32::from_le_bytes)?;
        let stores = match r.u8(&what)? {
            1 => StoreCol::Narrow(r.array(len, &what, u16::from_le_bytes)?),
            0 => StoreCol::Wide(r.array(len, &what, u32::from_le_bytes)?),
            t => return Err(EngineError::corrupt(format!("{what}: unknown store width {t}"))),
        };
        let amounts = r.array(len, &what, i64::from_le_bytes)?;
        if !members.windows(2).all(|w| w[0] <= w[1]) || members.last().is_some_and(|&m| m as u64 >= n) {
            return Err(EngineError::corrupt(format!(
                "{what}: members unsorted or beyond n_members"
            )));
        }
        let max_code = match &stores {
            StoreCol::Narrow(v) => v.iter().map(|&c| c as usize).max(),
            StoreCol::Wide(v) => v.iter().map(|&c| c as usize).max(),
        };
        if max_code.is_some_and(|c| c >= n_stores) {
            return Err(EngineError::corrupt(format!("{what}: unknown store code")));
        }
        if days.insert(day, DayPart::new(members, stores, amounts)).is_some() {
            return Err(EngineError::corrupt(format!("{what}: day repeated")));
        }
    }
    if r.pos != data.len() {
        return Err(EngineError::corrupt(format!(
            "snapshot has {} trailing bytes",
            data.len() - r.pos
        )));
    }
    let mut orders = Orders {
        days,
        store_ids,
        ..Default::default()
    };
    if !orders.rebuild_codes() {
        return Err(EngineError::corrupt("snapshot store ids repeat"));
    }
    if orders.store_ids.len() > 1 << 16 {
        orders.widen_all();
    }
    Ok(IndexState {
        n,
        columns,
        bitmaps,
        orders,
    })
}

/// Reads a snapshot written by [`save`]; a damaged file is a ValueError, never a crash.
pub fn load(path: &Path) -> Result<IndexState> {
    let data = std::fs::read(path).map_err(io_err(format!("cannot read {}", path.display())))?;
    read_state(&data)
}
