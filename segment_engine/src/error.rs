//! The engine's single error type and its mapping to Python exceptions.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::PyErr;

/// Every failure the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A bad argument; the message names the argument or the bad part of a package.
    #[error("{0}")]
    Invalid(String),
    /// Bytes that are not a valid roaring portable bitmap or snapshot.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A file system failure while saving or loading a snapshot.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results carrying [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// A bad argument, naming it.
    pub fn invalid(msg: impl Into<String>) -> Self {
        EngineError::Invalid(msg.into())
    }

    /// Corrupt serialized bytes.
    pub fn corrupt(msg: impl Into<String>) -> Self {
        EngineError::Corrupt(msg.into())
    }
}

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
