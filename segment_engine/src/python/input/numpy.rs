//! Reading integer and bool numpy arrays into Rust values without copying where possible.

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::error::{EngineError, Result};
use crate::ints::{to_u32_vec, IntLike};

/// Calls `$body` with `$slice` bound to a `&[T]` view of `$obj` for each supported integer dtype.
/// Non-contiguous arrays are copied once.
macro_rules! with_int_slice {
    ($obj:expr, $name:expr, |$slice:ident| $body:expr) => {{
        let obj: &Bound<'_, PyAny> = $obj;
        with_int_slice!(@try obj, $name, $slice, $body, u8, i8, u16, i16, u32, i32, u64, i64, bool)
    }};
    (@try $obj:ident, $name:expr, $slice:ident, $body:expr, $($t:ty),*) => {{
        let mut done = None;
        $(
            if done.is_none() {
                if let Ok(arr) = $obj.cast::<PyArray1<$t>>() {
                    let ro = numpy::PyArrayMethods::readonly(arr);
                    let owned: Vec<$t>;
                    let $slice: &[$t] = match ro.as_slice() {
                        Ok(s) => s,
                        Err(_) => {
                            owned = ro.as_array().iter().copied().collect();
                            &owned
                        }
                    };
                    done = Some($body);
                }
            }
        )*
        match done {
            Some(v) => v,
            None => Err($crate::python::input::numpy::not_an_int_array($obj, $name)),
        }
    }};
}
pub(crate) use with_int_slice;

/// The error for an argument that is not a 1-d integer or bool numpy array.
pub fn not_an_int_array(obj: &Bound<'_, PyAny>, name: &str) -> EngineError {
    let what = match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a {}-d array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "an unknown object".to_string()),
    };
    EngineError::invalid(format!("{name} must be a 1-d integer numpy array, got {what}"))
}

/// Reads any 1-d integer numpy array as `u32` values (copying).
pub fn read_u32_array(obj: &Bound<'_, PyAny>, name: &str) -> Result<Vec<u32>> {
    if let Ok(arr) = obj.cast::<PyArray1<u32>>() {
        let ro = arr.readonly();
        return Ok(match ro.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => ro.as_array().iter().copied().collect(),
        });
    }
    with_int_slice!(obj, name, |s| to_u32_vec(s, name))
}

/// A 1-d numpy array seen as `&[T]`: borrowed when it already has dtype `T` and is contiguous,
/// otherwise converted once (with a range check).
pub enum Slice<'py, T: numpy::Element> {
    Borrowed(numpy::PyReadonlyArray1<'py, T>),
    Owned(Vec<T>),
}

impl<T: numpy::Element> Slice<'_, T> {
    /// The values.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Slice::Borrowed(a) => a.as_slice().expect("checked contiguous"),
            Slice::Owned(v) => v,
        }
    }
}

/// A numpy element type that integer values can be range-checked into.
pub trait Target: numpy::Element + Copy {
    const NAME: &'static str;
    fn from_i128(v: i128) -> Option<Self>;
}
macro_rules! target {
    ($($t:ty => $n:expr),*) => {$(
        impl Target for $t {
            const NAME: &'static str = $n;
            fn from_i128(v: i128) -> Option<Self> { <$t>::try_from(v).ok() }
        }
    )*};
}
target!(u32 => "uint32", i32 => "int32", i64 => "int64");

/// Reads a 1-d integer (or bool) numpy array as `T`, without copying when the dtype already matches.
pub fn read_as<'py, T: Target>(obj: &Bound<'py, PyAny>, name: &str) -> Result<Slice<'py, T>> {
    if let Ok(arr) = obj.cast::<PyArray1<T>>() {
        let ro = arr.readonly();
        if ro.as_slice().is_ok() {
            return Ok(Slice::Borrowed(ro));
        }
        return Ok(Slice::Owned(ro.as_array().iter().copied().collect()));
    }
    let converted: Vec<T> = with_int_slice!(obj, name, |s| {
        let mut out = Vec::with_capacity(s.len());
        let mut err = None;
        for (i, &v) in s.iter().enumerate() {
            match T::from_i128(v.to_i128()) {
                Some(x) => out.push(x),
                None => {
                    err = Some(EngineError::invalid(format!(
                        "{name}[{i}] = {} does not fit in {}",
                        v.to_i128(),
                        T::NAME
                    )));
                    break;
                }
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })?;
    Ok(Slice::Owned(converted))
}

/// Reads an optional 1-d bool numpy array.
pub fn read_bool<'py>(obj: &Bound<'py, PyAny>, name: &str) -> Result<Slice<'py, bool>> {
    let arr = obj
        .cast::<PyArray1<bool>>()
        .map_err(|_| EngineError::invalid(format!("{name} must be a 1-d bool numpy array")))?;
    let ro = arr.readonly();
    if ro.as_slice().is_ok() {
        return Ok(Slice::Borrowed(ro));
    }
    Ok(Slice::Owned(ro.as_array().iter().copied().collect()))
}
