//! `segment_engine.Bitmap`: a roaring bitmap of u32 member ids.

use std::sync::Arc;

use numpy::{PyArray1, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};

use crate::error::EngineError;
use crate::expr::{self, Node};
use crate::python::input::numpy::read_u32_array;
use crate::portable;
use crate::set::RoaringSet;

/// A roaring bitmap of u32 member ids. Immutable: operators return new bitmaps.
#[pyclass(name = "Bitmap", module = "segment_engine", frozen, eq)]
#[derive(Clone, Default, PartialEq)]
pub struct PyBitmap {
    pub inner: Arc<RoaringSet>,
}

impl PyBitmap {
    pub fn new(bm: RoaringSet) -> Self {
        PyBitmap { inner: Arc::new(bm) }
    }

    /// This bitmap's set followed by the others' (shared, not copied).
    fn with(&self, others: &[PyRef<'_, PyBitmap>]) -> Vec<Arc<RoaringSet>> {
        std::iter::once(self.inner.clone())
            .chain(others.iter().map(|o| o.inner.clone()))
            .collect()
    }
}

fn values_from_iterable(iterable: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    if let Ok(b) = iterable.cast::<PyBitmap>() {
        return Ok(b.get().inner.to_vec());
    }
    if iterable.cast::<numpy::PyUntypedArray>().is_ok() {
        return Ok(read_u32_array(iterable, "iterable")?);
    }
    let mut values = Vec::new();
    for item in iterable.try_iter()? {
        let item = item?;
        let v: i128 = item.extract().map_err(|_| {
            EngineError::invalid(format!(
                "iterable must yield integers in 0..{}, got {}",
                u32::MAX,
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        let v = u32::try_from(v)
            .map_err(|_| EngineError::invalid(format!("iterable value {v} is outside 0..{}", u32::MAX)))?;
        values.push(v);
    }
    Ok(values)
}

#[pymethods]
impl PyBitmap {
    #[new]
    #[pyo3(signature = (iterable=None))]
    fn py_new(py: Python<'_>, iterable: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let values = match iterable {
            None => return Ok(PyBitmap::default()),
            Some(it) => values_from_iterable(it)?,
        };
        Ok(PyBitmap::new(py.detach(|| RoaringSet::from_unsorted(values))))
    }

    /// Builds a bitmap from a 1-d numpy array of any integer dtype with values in 0..2^32-1.
    #[staticmethod]
    fn from_numpy(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<Self> {
        let values = read_u32_array(array, "array")?;
        Ok(PyBitmap::new(py.detach(|| RoaringSet::from_unsorted(values))))
    }

    /// The ids as a sorted uint32 numpy array.
    fn to_numpy<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        let inner = self.inner.clone();
        let v: Vec<u32> = py.detach(|| inner.to_vec());
        PyArray1::from_vec(py, v)
    }

    /// The roaring portable serialization (compatible with pyroaring and CRoaring).
    fn serialize<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let inner = self.inner.clone();
        let bytes = py.detach(|| portable::serialize(&inner));
        PyBytes::new(py, &bytes)
    }

    /// Decodes the roaring portable format; corrupt or truncated bytes raise ValueError.
    #[staticmethod]
    fn deserialize(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let bm = py.detach(|| portable::deserialize(data))?;
        Ok(PyBitmap::new(bm))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let deser = PyType::new::<PyBitmap>(py).getattr("deserialize")?;
        Ok((deser, (slf.get().serialize(py),)))
    }

    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    fn __contains__(&self, value: &Bound<'_, PyAny>) -> bool {
        match value.extract::<i128>() {
            Ok(v) => u32::try_from(v).map(|v| self.inner.contains(v)).unwrap_or(false),
            Err(_) => false,
        }
    }

    fn __iter__(&self) -> BitmapIter {
        BitmapIter {
            inner: self.inner.clone(),
            next_container: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn __bool__(&self) -> bool {
        !self.inner.is_empty()
    }

    fn __repr__(&self) -> String {
        let n = self.inner.len();
        let head: Vec<String> = self.inner.page(0, 8).iter().map(|v| v.to_string()).collect();
        if n > 8 {
            format!("Bitmap([{}, ...]) (len {n})", head.join(", "))
        } else {
            format!("Bitmap([{}])", head.join(", "))
        }
    }

    fn __and__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Option<PyBitmap> {
        let o = other.cast::<PyBitmap>().ok()?.get().inner.clone();
        let s = self.inner.clone();
        Some(PyBitmap::new(py.detach(|| s.and(&o))))
    }

    fn __or__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Option<PyBitmap> {
        let o = other.cast::<PyBitmap>().ok()?.get().inner.clone();
        let s = self.inner.clone();
        Some(PyBitmap::new(py.detach(|| s.or(&o))))
    }

    fn __sub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Option<PyBitmap> {
        let o = other.cast::<PyBitmap>().ok()?.get().inner.clone();
        let s = self.inner.clone();
        Some(PyBitmap::new(py.detach(|| s.andnot(&o))))
    }

    fn __xor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Option<PyBitmap> {
        let o = other.cast::<PyBitmap>().ok()?.get().inner.clone();
        let s = self.inner.clone();
        Some(PyBitmap::new(py.detach(|| s.xor(&o))))
    }

    /// `self | others[0] | ...`, like `set.union`: one fused pass over every operand.
    #[pyo3(signature = (*others))]
    fn union(&self, py: Python<'_>, others: Vec<PyRef<'_, PyBitmap>>) -> PyBitmap {
        let sets = self.with(&others);
        PyBitmap::new(py.detach(|| expr::evaluate(Node::Or(sets.iter().map(|s| Node::Set(s)).collect()))))
    }

    /// `self & others[0] & ...`, like `set.intersection`: one fused pass, smallest operand first.
    #[pyo3(signature = (*others))]
    fn intersection(&self, py: Python<'_>, others: Vec<PyRef<'_, PyBitmap>>) -> PyBitmap {
        let sets = self.with(&others);
        PyBitmap::new(py.detach(|| expr::evaluate(Node::And(sets.iter().map(|s| Node::Set(s)).collect()))))
    }

    /// `self - others[0] - ...`, like `set.difference`: one fused pass.
    #[pyo3(signature = (*others))]
    fn difference(&self, py: Python<'_>, others: Vec<PyRef<'_, PyBitmap>>) -> PyBitmap {
        let sets = self.with(&others);
        PyBitmap::new(py.detach(|| {
            let (first, rest) = sets.split_first().expect("self is first");
            expr::evaluate(Node::AndNot(
                Box::new(Node::Set(first)),
                Box::new(Node::Or(rest.iter().map(|s| Node::Set(s)).collect())),
            ))
        }))
    }

    /// `self ^ other`, like `set.symmetric_difference`.
    fn symmetric_difference(&self, py: Python<'_>, other: PyRef<'_, PyBitmap>) -> PyBitmap {
        let (s, o) = (self.inner.clone(), other.inner.clone());
        PyBitmap::new(py.detach(|| s.xor(&o)))
    }

    /// `len(self & other)` without building the intersection.
    fn intersection_len(&self, py: Python<'_>, other: PyRef<'_, PyBitmap>) -> u64 {
        let (s, o) = (self.inner.clone(), other.inner.clone());
        py.detach(|| s.intersection_len(&o))
    }

    /// `len(self | other)` without building the union.
    fn union_len(&self, py: Python<'_>, other: PyRef<'_, PyBitmap>) -> u64 {
        let (s, o) = (self.inner.clone(), other.inner.clone());
        py.detach(|| s.union_len(&o))
    }

    /// `len(self - other)` without building the difference.
    fn difference_len(&self, py: Python<'_>, other: PyRef<'_, PyBitmap>) -> u64 {
        let (s, o) = (self.inner.clone(), other.inner.clone());
        py.detach(|| s.difference_len(&o))
    }

    /// The ids at ranks `offset .. offset+limit` as a uint32 array.
    fn page<'py>(&self, py: Python<'py>, offset: i64, limit: i64) -> PyResult<Bound<'py, PyArray1<u32>>> {
        if offset < 0 {
            return Err(EngineError::invalid(format!("offset must be >= 0, got {offset}")).into());
        }
        if limit < 0 {
            return Err(EngineError::invalid(format!("limit must be >= 0, got {limit}")).into());
        }
        let inner = self.inner.clone();
        let v: Vec<u32> = py.detach(|| inner.page(offset as u64, limit as u64));
        Ok(v.to_pyarray(py))
    }
}

/// Iterator over a bitmap's ids, reading one container at a time.
#[pyclass(module = "segment_engine")]
pub struct BitmapIter {
    inner: Arc<RoaringSet>,
    next_container: usize,
    buf: Vec<u32>,
    pos: usize,
}

#[pymethods]
impl BitmapIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> Option<u32> {
        while self.pos == self.buf.len() {
            let i = self.next_container;
            let c = self.inner.containers.get(i)?;
            self.buf.clear();
            c.extend_values((self.inner.keys[i] as u32) << 16, &mut self.buf);
            self.next_container += 1;
            self.pos = 0;
        }
        let v = self.buf[self.pos];
        self.pos += 1;
        Some(v)
    }
}
