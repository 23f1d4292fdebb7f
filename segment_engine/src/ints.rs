//! Integers of any width seen as one type, and the range check into member ids.

use crate::error::{EngineError, Result};

/// A value that can be checked and widened into the engine's integer types.
pub trait IntLike: Copy {
    fn to_i128(self) -> i128;
}
macro_rules! int_like {
    ($($t:ty),*) => {$(impl IntLike for $t { #[inline] fn to_i128(self) -> i128 { self as i128 } })*};
}
int_like!(u8, i8, u16, i16, u32, i32, u64, i64);
impl IntLike for bool {
    #[inline]
    fn to_i128(self) -> i128 {
        self as i128
    }
}

/// Converts a slice to `u32` ids, failing with a message naming `name` on the first value outside 0..2^32-1.
pub fn to_u32_vec<T: IntLike>(values: &[T], name: &str) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        let w = v.to_i128();
        if !(0..=u32::MAX as i128).contains(&w) {
            return Err(EngineError::invalid(format!(
                "{name}[{i}] = {w} is outside 0..{}",
                u32::MAX
            )));
        }
        out.push(w as u32);
    }
    Ok(out)
}
