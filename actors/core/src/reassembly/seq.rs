//! TCP sequence-number arithmetic.
//!
//! Sequence numbers live in a 32-bit space that wraps (RFC 9293 §3.4: "all arithmetic
//! dealing with sequence numbers must be performed modulo 2**32"). Comparisons follow
//! serial-number arithmetic (RFC 1982 §3.2): `a` is before `b` when the forward distance
//! from `a` to `b` is less than 2^31.

/// Signed distance from `from` to `to` in sequence space: positive when `to` is after `from`.
/// Exact for distances below 2^31 in either direction (RFC 1982 §3.2).
pub fn seq_diff(to: u32, from: u32) -> i32 {
    to.wrapping_sub(from) as i32
}

/// `a` comes strictly before `b` in sequence space.
pub fn seq_lt(a: u32, b: u32) -> bool {
    seq_diff(b, a) > 0
}

/// `a` comes at or before `b` in sequence space.
pub fn seq_le(a: u32, b: u32) -> bool {
    seq_diff(b, a) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        assert!(seq_lt(u32::MAX - 10, 5));
        assert_eq!(seq_diff(5, u32::MAX - 10), 16);
        assert_eq!(seq_diff(u32::MAX - 10, 5), -16);
        assert!(seq_le(7, 7));
        assert!(!seq_lt(7, 7));
    }

    proptest! {
        #[test]
        fn distance_is_exact_below_half_space(base: u32, d in 0u32..(1 << 31)) {
            let later = base.wrapping_add(d);
            prop_assert_eq!(i64::from(seq_diff(later, base)), i64::from(d));
            prop_assert!(seq_le(base, later));
            prop_assert_eq!(seq_lt(base, later), d != 0);
        }
    }
}
