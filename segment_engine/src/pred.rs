//! Comparison predicates shared by attribute and orders conditions.

/// One end of an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Unbounded,
    Incl(i64),
    Excl(i64),
}

/// Values between two bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub lo: Bound,
    pub hi: Bound,
}

/// What a comparison selects. Members without a value (null, or no orders) never match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred {
    /// In at least one interval (`eq`, `in`, `between`, `gte`, `lte`, `gt`, `lt`).
    AnyOf(Vec<Interval>),
    /// In none of the intervals (`ne`, `not_in`).
    NoneOf(Vec<Interval>),
}

impl Interval {
    /// The single value `v`.
    pub fn point(v: i64) -> Interval {
        Interval {
            lo: Bound::Incl(v),
            hi: Bound::Incl(v),
        }
    }

    /// Whether `x` lies inside.
    #[inline]
    pub fn contains(&self, x: i128) -> bool {
        (match self.lo {
            Bound::Unbounded => true,
            Bound::Incl(v) => x >= v as i128,
            Bound::Excl(v) => x > v as i128,
        }) && (match self.hi {
            Bound::Unbounded => true,
            Bound::Incl(v) => x <= v as i128,
            Bound::Excl(v) => x < v as i128,
        })
    }

    /// Whether the mean `sum / count` lies inside, compared exactly as `sum op v * count` (`count > 0`).
    #[inline]
    pub fn contains_mean(&self, sum: i128, count: i128) -> bool {
        (match self.lo {
            Bound::Unbounded => true,
            Bound::Incl(v) => sum >= v as i128 * count,
            Bound::Excl(v) => sum > v as i128 * count,
        }) && (match self.hi {
            Bound::Unbounded => true,
            Bound::Incl(v) => sum <= v as i128 * count,
            Bound::Excl(v) => sum < v as i128 * count,
        })
    }

    /// The same interval over integers as inclusive `(lo, hi)`, or `None` when it holds no integer.
    pub fn to_inclusive(&self) -> Option<(i64, i64)> {
        let lo = match self.lo {
            Bound::Unbounded => i64::MIN,
            Bound::Incl(v) => v,
            Bound::Excl(v) => v.checked_add(1)?,
        };
        let hi = match self.hi {
            Bound::Unbounded => i64::MAX,
            Bound::Incl(v) => v,
            Bound::Excl(v) => v.checked_sub(1)?,
        };
        (lo <= hi).then_some((lo, hi))
    }
}

impl Pred {
    /// Whether a value `x` matches.
    #[inline]
    pub fn test(&self, x: i128) -> bool {
        match self {
            Pred::AnyOf(iv) => iv.iter().any(|i| i.contains(x)),
            Pred::NoneOf(iv) => !iv.iter().any(|i| i.contains(x)),
        }
    }

    /// Whether a mean `sum / count` matches, exactly.
    #[inline]
    pub fn test_mean(&self, sum: i128, count: i128) -> bool {
        match self {
            Pred::AnyOf(iv) => iv.iter().any(|i| i.contains_mean(sum, count)),
            Pred::NoneOf(iv) => !iv.iter().any(|i| i.contains_mean(sum, count)),
        }
    }
}
