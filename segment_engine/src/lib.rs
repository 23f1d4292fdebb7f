//! Crowdpack's segment engine: which members match a crowd package.
//!
//! # Layout
//!
//! The core, bottom up, knows nothing of Python:
//! `words` (64K-bit block kernels), `sorted` (sorted-array kernels), `container` (one roaring container), `set` (a roaring
//! bitmap), `portable` (its serialization), `expr` (fused evaluation), `pred`, `ints`, `columns`
//! and `orders` (member data), `package` (the package format as values), `state` (the index and
//! its planner), `snapshot` (save/load of a state). `error` is the one error type.
//!
//! `python` is the binding: `python::input` reads Python values (numpy arrays, package dicts,
//! expressions) into core values with the GIL held, and `python::{bitmap, index, expr}` are the
//! classes and functions of `segment_engine._core`, which run the core with the GIL released.
//! Nothing in the core imports `python`.
//!
//! # Why our own container layer, not the `roaring` crate
//!
//! A crowd package is a tree of ten or so leaves. Pairwise set algebra (`a & b`, then `| c`, ...)
//! builds and frees a full intermediate bitmap per operator; the engine instead evaluates the
//! whole tree one 64K-id block at a time, in a few 8 KiB scratch blocks that stay in L1, and
//! spreads the blocks over rayon. That needs, per key, the leaves' containers themselves (to
//! AND an array against a bitset without converting it, to stop an AND at its first empty block,
//! to count without building), and leaves that are not stored bitmaps at all: a range over a
//! bit-sliced column is computed block by block (`expr::ChunkSource`). `roaring` keeps its
//! containers private and offers only operators that materialise their result, so the engine
//! keeps its own containers (array, bitset, runs), byte-compatible with the portable format
//! pyroaring and CRoaring write. `roaring` stays a dev-dependency: the property tests check
//! every operation against it.

pub mod columns;
pub mod container;
pub mod error;
pub mod expr;
pub mod ints;
pub mod orders;
pub mod package;
pub mod portable;
pub mod pred;
pub mod python;
pub mod set;
pub mod share;
pub mod snapshot;
pub mod sorted;
pub mod state;
pub mod words;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<python::bitmap::PyBitmap>()?;
    m.add_class::<python::bitmap::BitmapIter>()?;
    m.add_class::<python::index::PyMemberIndex>()?;
    m.add_function(wrap_pyfunction!(python::expr::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(python::expr::count, m)?)?;
    Ok(())
}
