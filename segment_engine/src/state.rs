//! The index itself, without Python: member columns, named member sets and orders, and the
//! operations on them. `python::index::PyMemberIndex` holds one behind a lock and converts
//! Python arguments; `snapshot` saves and loads one; criterion benches and tests use it directly.
//!
//! Member ids are the row numbers `0..n`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::columns::Column;
use crate::error::{EngineError, Result};
use crate::expr::{self, Node};
use crate::orders::{MetricCond, OrderBatch, Orders, Window};
use crate::package::{Cond, GroupOp, Package};
use crate::set::RoaringSet;

/// Largest number of members: ids are u32.
pub const MAX_MEMBERS: u64 = 1 << 32;

fn bad(path: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("{path}: {msg}"))
}

/// Everything the index holds.
#[derive(Clone, Debug, Default)]
pub struct IndexState {
    pub n: u64,
    pub columns: BTreeMap<String, Column>,
    pub bitmaps: BTreeMap<String, Arc<RoaringSet>>,
    pub orders: Orders,
}

impl IndexState {
    /// An empty index of `n_members` members.
    pub fn new(n_members: u64) -> Result<IndexState> {
        if n_members > MAX_MEMBERS {
            return Err(EngineError::invalid(format!(
                "n_members must be in 0..=2^32, got {n_members}"
            )));
        }
        Ok(IndexState {
            n: n_members,
            ..Default::default()
        })
    }

    /// Heap bytes held by columns, bitmaps and orders.
    pub fn heap_bytes(&self) -> usize {
        self.columns.values().map(|c| c.heap_bytes()).sum::<usize>()
            + self.bitmaps.values().map(|b| b.heap_bytes()).sum::<usize>()
            + self.orders.heap_bytes()
    }

    /// Adds members up to `n_members` (new members are null in every column and in no bitmap).
    pub fn grow(&mut self, n_members: u64) -> Result<()> {
        if n_members < self.n || n_members > MAX_MEMBERS {
            return Err(EngineError::invalid(format!(
                "n_members must be in {}..=2^32 (grow never removes members), got {n_members}",
                self.n
            )));
        }
        self.n = n_members;
        Ok(())
    }

    /// Names a member set; its ids must be member ids.
    pub fn set_bitmap(&mut self, name: String, set: Arc<RoaringSet>) -> Result<()> {
        if let Some(m) = set.max() {
            if m as u64 >= self.n {
                return Err(EngineError::invalid(format!(
                    "bitmap {name:?} holds id {m}, not a member id (n_members = {})",
                    self.n
                )));
            }
        }
        self.bitmaps.insert(name, set);
        Ok(())
    }

    /// Sets column `name` of member `m` to `v` (`None` is null) for each `(m, v)`, in place.
    pub fn update(&mut self, name: &str, updates: &[(u32, Option<i64>)]) -> Result<()> {
        let n = self.n;
        if let Some(i) = updates.iter().position(|&(m, _)| m as u64 >= n) {
            return Err(EngineError::invalid(format!(
                "member_ids[{i}] = {} is not a member id (n_members = {n})",
                updates[i].0
            )));
        }
        let col = self
            .columns
            .get_mut(name)
            .ok_or_else(|| EngineError::invalid(format!("name: unknown column {name:?}")))?;
        col.set_many(updates, n as usize);
        Ok(())
    }

    /// Adds a batch of orders after checking it.
    pub fn append_orders(&mut self, batch: &OrderBatch<'_>) -> Result<()> {
        batch.validate(self.n)?;
        self.orders.append(batch);
        Ok(())
    }

    /// The orders of `batch` alone, checked against this index (to replace all orders with).
    pub fn orders_of(&self, batch: &OrderBatch<'_>) -> Result<Orders> {
        batch.validate(self.n)?;
        let mut fresh = Orders::default();
        fresh.append(batch);
        Ok(fresh)
    }

    /// A column's values (0 where null) and its valid mask.
    pub fn column_values(&self, name: &str) -> Result<(Vec<i64>, Vec<bool>)> {
        let col = self
            .columns
            .get(name)
            .ok_or_else(|| EngineError::invalid(format!("name: unknown column {name:?}")))?;
        let (mut v, ok) = col.decode(self.n as usize);
        for (x, k) in v.iter_mut().zip(&ok) {
            if !k {
                *x = 0;
            }
        }
        Ok((v, ok))
    }

    /// The members matching a package.
    pub fn evaluate(&self, pkg: &Package) -> Result<RoaringSet> {
        Ok(expr::evaluate(self.plan(pkg)?))
    }

    /// How many members match a package, without building the set.
    pub fn count(&self, pkg: &Package) -> Result<u64> {
        Ok(expr::count(self.plan(pkg)?))
    }

    /// Plans the package over the index: orders conditions are aggregated first (conditions sharing
    /// a window share one pass), then everything else becomes one fused expression.
    pub fn plan<'a>(&'a self, pkg: &Package) -> Result<Node<'a>> {
        let st = self;
        // Check names before doing any work.
        for g in &pkg.groups {
            for c in &g.all {
                match c {
                    Cond::Field { path, field, .. } if !st.columns.contains_key(field) => {
                        return Err(bad(&format!("{path}.field"), format!("unknown field {field:?}")));
                    }
                    Cond::Bitmap { path, name, .. } if !st.bitmaps.contains_key(name) => {
                        return Err(bad(path, format!("unknown bitmap {name:?}")));
                    }
                    _ => {}
                }
            }
        }
        // Orders conditions, grouped by window.
        let mut windows: Vec<(Window, Vec<MetricCond>)> = Vec::new();
        let mut slot: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        for (gi, g) in pkg.groups.iter().enumerate() {
            for (ci, c) in g.all.iter().enumerate() {
                if let Cond::Orders { window, cond } = c {
                    let wi = match windows.iter().position(|(w, _)| w == window) {
                        Some(i) => i,
                        None => {
                            windows.push((window.clone(), Vec::new()));
                            windows.len() - 1
                        }
                    };
                    windows[wi].1.push(cond.clone());
                    slot.insert((gi, ci), (wi, windows[wi].1.len() - 1));
                }
            }
        }
        let mut results: Vec<Vec<Option<RoaringSet>>> = windows
            .iter()
            .map(|(w, conds)| st.orders.evaluate(st.n, w, conds).into_iter().map(Some).collect())
            .collect();
        let mut acc: Option<Node<'a>> = None;
        for (gi, g) in pkg.groups.iter().enumerate() {
            let mut parts = Vec::with_capacity(g.all.len());
            for (ci, c) in g.all.iter().enumerate() {
                parts.push(match c {
                    Cond::Field { field, pred, .. } => st.columns[field].plan(pred),
                    Cond::Bitmap {
                        name, negate: false, ..
                    } => Node::Set(st.bitmaps[name].as_ref()),
                    Cond::Bitmap { name, negate: true, .. } => Node::AndNot(
                        Box::new(Node::Universe(st.n)),
                        Box::new(Node::Set(st.bitmaps[name].as_ref())),
                    ),
                    Cond::Orders { .. } => {
                        let (wi, k) = slot[&(gi, ci)];
                        Node::Owned(results[wi][k].take().expect("each orders result is used once"))
                    }
                });
            }
            let node = Node::And(parts);
            acc = Some(match (acc, g.op) {
                (None, _) => node,
                (Some(a), GroupOp::Or) => Node::Or(vec![a, node]),
                (Some(a), GroupOp::Exclude) => Node::AndNot(Box::new(a), Box::new(node)),
                (Some(a), GroupOp::Include) => Node::And(vec![a, node]),
            });
        }
        Ok(acc.unwrap_or(Node::Empty))
    }
}
