//! `segment_engine.evaluate(expr, leaves)` and `count`: an AND/OR/ANDNOT tree over named Bitmaps.

use pyo3::prelude::*;

use crate::expr;
use crate::python::input::expr::{parse, to_node};
use crate::python::bitmap::PyBitmap;

/// Evaluates `expr` over `leaves` in one call, block by block, with the GIL released.
#[pyfunction]
pub fn evaluate(py: Python<'_>, expr: &Bound<'_, PyAny>, leaves: &Bound<'_, PyAny>) -> PyResult<PyBitmap> {
    let (tree, sets) = parse(expr, leaves)?;
    let out = py.detach(|| expr::evaluate(to_node(&tree, &sets)));
    Ok(PyBitmap::new(out))
}

/// `len(evaluate(expr, leaves))` without building the result.
#[pyfunction]
pub fn count(py: Python<'_>, expr: &Bound<'_, PyAny>, leaves: &Bound<'_, PyAny>) -> PyResult<u64> {
    let (tree, sets) = parse(expr, leaves)?;
    Ok(py.detach(|| expr::count(to_node(&tree, &sets))))
}
