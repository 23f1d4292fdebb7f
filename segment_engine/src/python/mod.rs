//! The Python face of the engine (`segment_engine._core`): classes and functions that convert
//! their arguments (`input`), release the GIL and call the core.

pub mod bitmap;
pub mod error;
pub mod expr;
pub mod index;
pub mod input;
