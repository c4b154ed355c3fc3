//! Decimation granularity (`ds`, spec section 5): `<positive integer><unit>` with the unit one of
//! `s m h d w M y`. Elapsed units are at most one day long; longer buckets are written with `d`.
//! Bucketing itself lives with decimation; this module only parses and prints.

use std::fmt;
use std::str::FromStr;

/// The unit of a granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GranularityUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl GranularityUnit {
    fn symbol(self) -> char {
        match self {
            Self::Second => 's',
            Self::Minute => 'm',
            Self::Hour => 'h',
            Self::Day => 'd',
            Self::Week => 'w',
            Self::Month => 'M',
            Self::Year => 'y',
        }
    }

    /// Seconds of one elapsed unit; `None` for calendar units.
    pub fn elapsed_seconds(self) -> Option<u64> {
        match self {
            Self::Second => Some(1),
            Self::Minute => Some(60),
            Self::Hour => Some(3600),
            _ => None,
        }
    }
}

/// A validated decimation granularity such as `15m` or `3M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Granularity {
    pub count: u32,
    pub unit: GranularityUnit,
}

/// Why a text is not a granularity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GranularityError {
    #[error("must be a positive integer followed by a unit (s, m, h, d, w, M, y), such as `15m`")]
    Malformed,
    #[error("has no unit; add one of s, m, h, d, w, M, y (such as `15m`)")]
    MissingUnit,
    #[error("has unknown unit `{0}`; use one of s, m, h, d, w, M, y")]
    UnknownUnit(String),
    #[error("must be a positive integer of units; 0 is not allowed")]
    Zero,
    #[error("is longer than a day in elapsed units; write days with `d` instead")]
    LongerThanADay,
    #[error("is too large")]
    TooLarge,
}

impl FromStr for Granularity {
    type Err = GranularityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(GranularityError::Malformed);
        }
        let (number, unit) = text.split_at(digits);
        let unit = match unit {
            "" => return Err(GranularityError::MissingUnit),
            "s" => GranularityUnit::Second,
            "m" => GranularityUnit::Minute,
            "h" => GranularityUnit::Hour,
            "d" => GranularityUnit::Day,
            "w" => GranularityUnit::Week,
            "M" => GranularityUnit::Month,
            "y" => GranularityUnit::Year,
            other => return Err(GranularityError::UnknownUnit(other.to_owned())),
        };
        let count: u32 = number.parse().map_err(|_| GranularityError::TooLarge)?;
        if count == 0 {
            return Err(GranularityError::Zero);
        }
        if count > 100_000 {
            return Err(GranularityError::TooLarge);
        }
        if let Some(secs) = unit.elapsed_seconds() {
            if u64::from(count) * secs > 86_400 {
                return Err(GranularityError::LongerThanADay);
            }
        }
        Ok(Self { count, unit })
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_what_the_contract_rejects() {
        let parse = |s: &str| s.parse::<Granularity>();
        assert_eq!(parse("0m"), Err(GranularityError::Zero));
        assert_eq!(parse("15"), Err(GranularityError::MissingUnit));
        assert!(matches!(parse("15x"), Err(GranularityError::UnknownUnit(_))));
        assert_eq!(parse("m"), Err(GranularityError::Malformed));
        assert_eq!(parse("25h"), Err(GranularityError::LongerThanADay));
        assert_eq!(parse("-1m"), Err(GranularityError::Malformed));
        assert_eq!(parse("1441m"), Err(GranularityError::LongerThanADay));
        assert!(parse("1440m").is_ok());
        assert_eq!(parse("3M").map(|g| g.unit), Ok(GranularityUnit::Month));
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_granularity(count in 1u32..=24, unit in 0usize..7) {
            let units = [
                GranularityUnit::Second, GranularityUnit::Minute, GranularityUnit::Hour,
                GranularityUnit::Day, GranularityUnit::Week, GranularityUnit::Month, GranularityUnit::Year,
            ];
            let g = Granularity { count, unit: units[unit] };
            prop_assert_eq!(g.to_string().parse::<Granularity>(), Ok(g));
        }
    }
}
