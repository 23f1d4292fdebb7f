//! How an [`EngineError`] reaches Python: a bad argument or corrupt bytes are a `ValueError`
//! naming the bad part; file system failures keep their `OSError` subclass.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::PyErr;

use crate::error::EngineError;

impl From<EngineError> for PyErr {
    fn from(err: EngineError) -> PyErr {
        match err {
            EngineError::Invalid(_) | EngineError::Corrupt(_) => PyValueError::new_err(err.to_string()),
            EngineError::Io { ref source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(err.to_string()),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(err.to_string()),
                _ => PyOSError::new_err(err.to_string()),
            },
        }
    }
}
