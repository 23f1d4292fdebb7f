//! The crowd package format, as parsed and checked values (the Python side builds them in
//! `input::package`; `state::IndexState::plan` turns them into a fused expression).
//!
//! ```text
//! {"groups": [{"op": "include" | "or" | "exclude", "all": [condition, ...]}, ...]}
//! condition: {"field": name, "op": op, "value": v}
//!          | {"bitmap": name} | {"not_bitmap": name}
//!          | {"orders": {"stores": [ids] | None, "from_day": d0, "to_day": d1},
//!             "metric": metric, "op": op, "value": v}
//! ```

use crate::orders::{MetricCond, Window};
use crate::pred::Pred;

/// How a group combines with the result so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupOp {
    Include,
    Or,
    Exclude,
}

/// One condition, with its path in the package for error messages.
#[derive(Clone, Debug)]
pub enum Cond {
    Field { path: String, field: String, pred: Pred },
    Bitmap { path: String, name: String, negate: bool },
    Orders { window: Window, cond: MetricCond },
}

/// A group: all of its conditions must hold.
#[derive(Clone, Debug)]
pub struct Group {
    pub op: GroupOp,
    pub all: Vec<Cond>,
}

/// A parsed, structurally valid package.
#[derive(Clone, Debug)]
pub struct Package {
    pub groups: Vec<Group>,
}
