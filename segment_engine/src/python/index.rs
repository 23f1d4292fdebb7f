//! `segment_engine.MemberIndex`: an [`IndexState`] behind a lock, with Python arguments.
//!
//! Arguments are converted with the GIL held; the work runs with it released. Readers (evaluate,
//! count, save) share a read lock; updates take the write lock.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::columns::{Column, Kind};
use crate::error::{EngineError, Result};
use crate::ints::IntLike;
use crate::orders::OrderBatch;
use crate::python::bitmap::PyBitmap;
use crate::python::input::numpy::{read_as, read_bool, read_u32_array, with_int_slice};
use crate::python::input::package;
use crate::snapshot;
use crate::state::IndexState;

/// A column's values and valid mask as numpy arrays.
type ColumnArrays<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<bool>>);

/// Member columns, named member sets and orders, answering crowd packages.
#[pyclass(name = "MemberIndex", module = "segment_engine", frozen)]
pub struct PyMemberIndex {
    state: RwLock<IndexState>,
}

impl PyMemberIndex {
    fn read(&self) -> RwLockReadGuard<'_, IndexState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, IndexState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn n(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.read().n)
    }

    fn orders_batch(
        &self,
        py: Python<'_>,
        member: &Bound<'_, PyAny>,
        store: &Bound<'_, PyAny>,
        day: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        replace: bool,
    ) -> PyResult<()> {
        let member = read_as::<u32>(member, "member")?;
        let store = read_as::<u32>(store, "store")?;
        let day = read_as::<i32>(day, "day")?;
        let amount = read_as::<i64>(amount, "amount")?;
        let batch = OrderBatch {
            member: member.as_slice(),
            store: store.as_slice(),
            day: day.as_slice(),
            amount: amount.as_slice(),
        };
        py.detach(|| -> Result<()> {
            if replace {
                let fresh = self.read().orders_of(&batch)?;
                self.write().orders = fresh;
                Ok(())
            } else {
                self.write().append_orders(&batch)
            }
        })?;
        Ok(())
    }
}

fn check_len(name: &str, len: usize, n: u64) -> Result<()> {
    if len as u64 != n {
        return Err(EngineError::invalid(format!(
            "{name} has length {len}, expected n_members = {n}"
        )));
    }
    Ok(())
}

#[pymethods]
impl PyMemberIndex {
    #[new]
    fn py_new(n_members: i64) -> PyResult<Self> {
        let n = u64::try_from(n_members)
            .map_err(|_| EngineError::invalid(format!("n_members must be in 0..=2^32, got {n_members}")))?;
        Ok(PyMemberIndex {
            state: RwLock::new(IndexState::new(n)?),
        })
    }

    /// Number of members; ids are `0..n_members`.
    #[getter]
    fn n_members(&self, py: Python<'_>) -> u64 {
        self.n(py)
    }

    /// Number of stored orders.
    #[getter]
    fn n_orders(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.read().orders.len())
    }

    /// Names of the columns.
    fn columns(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.read().columns.keys().cloned().collect())
    }

    /// Names of the bitmaps.
    fn bitmaps(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.read().bitmaps.keys().cloned().collect())
    }

    /// Indexes a column from an integer or bool array of length n_members; rows where `valid`
    /// is False are null.
    #[pyo3(signature = (name, values, valid=None))]
    fn set_column(
        &self,
        py: Python<'_>,
        name: String,
        values: &Bound<'_, PyAny>,
        valid: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = self.n(py);
        let valid = valid
            .filter(|v| !v.is_none())
            .map(|v| read_bool(v, "valid"))
            .transpose()?;
        let valid_slice = valid.as_ref().map(|v| v.as_slice());
        if let Some(v) = valid_slice {
            check_len("valid", v.len(), n)?;
        }
        let kind = if values.cast::<PyArray1<bool>>().is_ok() {
            Kind::Bool
        } else {
            Kind::Int
        };
        let col = with_int_slice!(values, "values", |s| {
            check_len("values", s.len(), n).and_then(|_| py.detach(|| Column::build(s, valid_slice, kind, "values")))
        })?;
        py.detach(|| self.write().columns.insert(name, col));
        Ok(())
    }

    /// Sets `values[i]` for member `member_ids[i]` in place (rows where `valid` is False become null).
    #[pyo3(signature = (name, member_ids, values, valid=None))]
    fn update(
        &self,
        py: Python<'_>,
        name: String,
        member_ids: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        valid: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ids = read_u32_array(member_ids, "member_ids")?;
        let vals: Vec<i64> = with_int_slice!(values, "values", |s| {
            s.iter()
                .enumerate()
                .map(|(i, v)| {
                    i64::try_from(v.to_i128())
                        .map_err(|_| EngineError::invalid(format!("values[{i}] does not fit in int64")))
                })
                .collect::<Result<Vec<i64>>>()
        })?;
        if vals.len() != ids.len() {
            return Err(EngineError::invalid(format!(
                "values has length {} but member_ids has {}",
                vals.len(),
                ids.len()
            ))
            .into());
        }
        let valid = valid
            .filter(|v| !v.is_none())
            .map(|v| read_bool(v, "valid"))
            .transpose()?;
        let valid_slice = valid.as_ref().map(|v| v.as_slice());
        if let Some(v) = valid_slice {
            if v.len() != ids.len() {
                return Err(EngineError::invalid(format!(
                    "valid has length {} but member_ids has {}",
                    v.len(),
                    ids.len()
                ))
                .into());
            }
        }
        let ups: Vec<(u32, Option<i64>)> = ids
            .iter()
            .zip(&vals)
            .enumerate()
            .map(|(i, (&m, &v))| (m, valid_slice.is_none_or(|ok| ok[i]).then_some(v)))
            .collect();
        py.detach(|| self.write().update(&name, &ups))?;
        Ok(())
    }

    /// Adds members up to `n_members` (new members are null in every column and in no bitmap).
    fn grow(&self, py: Python<'_>, n_members: i64) -> PyResult<()> {
        let n = u64::try_from(n_members).map_err(|_| {
            EngineError::invalid(format!("n_members must be in 0..=2^32 (grow never removes members), got {n_members}"))
        })?;
        py.detach(|| self.write().grow(n))?;
        Ok(())
    }

    /// Names a member set (a tag, a group, a whitelist, a mall's interacting members).
    fn set_bitmap(&self, py: Python<'_>, name: String, bitmap: PyRef<'_, PyBitmap>) -> PyResult<()> {
        let set = bitmap.inner.clone();
        py.detach(|| self.write().set_bitmap(name, set))?;
        Ok(())
    }

    /// Removes a column; returns whether it existed.
    fn drop_column(&self, py: Python<'_>, name: String) -> bool {
        py.detach(|| self.write().columns.remove(&name).is_some())
    }

    /// Removes a bitmap; returns whether it existed.
    fn drop_bitmap(&self, py: Python<'_>, name: String) -> bool {
        py.detach(|| self.write().bitmaps.remove(&name).is_some())
    }

    /// Replaces all orders: parallel arrays of u32 member, u32 store, i32 day, i64 amount (fen).
    fn set_orders(
        &self,
        py: Python<'_>,
        member: &Bound<'_, PyAny>,
        store: &Bound<'_, PyAny>,
        day: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.orders_batch(py, member, store, day, amount, true)
    }

    /// Adds orders: parallel arrays of u32 member, u32 store, i32 day, i64 amount (fen).
    fn append_orders(
        &self,
        py: Python<'_>,
        member: &Bound<'_, PyAny>,
        store: &Bound<'_, PyAny>,
        day: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.orders_batch(py, member, store, day, amount, false)
    }

    /// The members matching a crowd package.
    fn evaluate(&self, py: Python<'_>, package: &Bound<'_, PyAny>) -> PyResult<PyBitmap> {
        let pkg = package::parse(package)?;
        let set = py.detach(|| self.read().evaluate(&pkg))?;
        Ok(PyBitmap::new(set))
    }

    /// How many members match a crowd package, without building the set.
    fn count(&self, py: Python<'_>, package: &Bound<'_, PyAny>) -> PyResult<u64> {
        let pkg = package::parse(package)?;
        Ok(py.detach(|| self.read().count(&pkg))?)
    }

    /// A column's values as `(int64 values, bool valid)` arrays (values of null rows are 0).
    fn column_values<'py>(&self, py: Python<'py>, name: String) -> PyResult<ColumnArrays<'py>> {
        let (values, valid) = py.detach(|| self.read().column_values(&name))?;
        Ok((PyArray1::from_vec(py, values), PyArray1::from_vec(py, valid)))
    }

    /// Heap bytes held by the index (columns, bitmaps and orders).
    fn memory_bytes(&self, py: Python<'_>) -> usize {
        py.detach(|| self.read().heap_bytes())
    }

    /// Heap bytes by part: `{"columns": {name: bytes}, "bitmaps": {name: bytes}, "orders": bytes, "total": bytes}`.
    fn memory_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (cols, bms, orders, total) = py.detach(|| {
            let st = self.read();
            let cols: Vec<(String, usize)> = st.columns.iter().map(|(k, c)| (k.clone(), c.heap_bytes())).collect();
            let bms: Vec<(String, usize)> = st.bitmaps.iter().map(|(k, b)| (k.clone(), b.heap_bytes())).collect();
            (cols, bms, st.orders.heap_bytes(), st.heap_bytes())
        });
        let out = PyDict::new(py);
        let c = PyDict::new(py);
        for (k, v) in cols {
            c.set_item(k, v)?;
        }
        let b = PyDict::new(py);
        for (k, v) in bms {
            b.set_item(k, v)?;
        }
        out.set_item("columns", c)?;
        out.set_item("bitmaps", b)?;
        out.set_item("orders", orders)?;
        out.set_item("total", total)?;
        Ok(out)
    }

    /// Writes a snapshot of the whole index to `path` (atomically, via a temporary file).
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| snapshot::save(&self.read(), &path))?;
        Ok(())
    }

    /// Reads a snapshot written by `save`.
    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let st = py.detach(|| snapshot::load(&path))?;
        Ok(PyMemberIndex { state: RwLock::new(st) })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        py.detach(|| {
            let st = self.read();
            format!(
                "MemberIndex(n_members={}, columns={}, bitmaps={}, orders={})",
                st.n,
                st.columns.len(),
                st.bitmaps.len(),
                st.orders.len()
            )
        })
    }
}
