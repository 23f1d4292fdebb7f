//! Crowdpack's segment engine: which members match a crowd package.
//!
//! Layers, bottom up: `words` (64K-bit block kernels), `container` (one roaring container),
//! `set` (a roaring bitmap), `portable` (its serialization), `expr` (fused evaluation),
//! `columns` and `orders` (member data), `package` (the package format), `index` (MemberIndex),
//! `snapshot` (save/load). `bitmap` and `py_expr` are the Python faces of `set` and `expr`.

pub mod bitmap;
pub mod columns;
pub mod container;
pub mod error;
pub mod expr;
pub mod index;
pub mod numpy_in;
pub mod orders;
pub mod package;
pub mod portable;
pub mod pred;
pub mod py_expr;
pub mod set;
pub mod snapshot;
pub mod words;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bitmap::PyBitmap>()?;
    m.add_class::<bitmap::BitmapIter>()?;
    m.add_class::<index::PyMemberIndex>()?;
    m.add_function(wrap_pyfunction!(py_expr::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(py_expr::count, m)?)?;
    Ok(())
}
