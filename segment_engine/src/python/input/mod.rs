//! Python values read into the engine's Rust values, with the GIL held: numpy arrays, crowd
//! packages and expressions. Every check that names a bad argument happens here, so the core
//! never sees a Python object (as pydantic-core keeps its `input/`).

pub mod expr;
pub mod numpy;
pub mod package;
