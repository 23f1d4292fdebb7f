//! The engine's single error type (`python::error` maps it to Python exceptions).

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
