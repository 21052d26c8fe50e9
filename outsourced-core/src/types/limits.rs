//! Run limits: how many of a queue's jobs may run at once and how fast they may start, counted
//! across every worker and every server, and enforced by the backend when it hands jobs out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// The longest concurrency key, in bytes (as long as an indexed text column may be everywhere).
pub const MAX_CONCURRENCY_KEY: usize = 191;

/// A queue's limits on its running jobs. All off by default: a queue hands out as many jobs as
/// workers ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// At most this many of its jobs run at once, wherever the workers are.
    pub max_running: Option<u32>,
    /// At most this many start per period, evenly spaced (see [`Rate`]).
    pub rate: Option<Rate>,
    /// At most this many jobs of one concurrency key run at once (jobs without a key are not
    /// limited by it); 1 runs each key's jobs one after another.
    pub max_running_per_key: Option<u32>,
    /// At most this many jobs of one concurrency key start per period, evenly spaced, each key
    /// on its own clock (jobs without a key are not limited by it).
    pub rate_per_key: Option<Rate>,
}

impl RunLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != RunLimits::default()
    }

    /// Refuses limits no backend enforces: zero running jobs (pause the queue instead) or a
    /// rate of nothing.
    pub fn check(&self) -> Result<(), Error> {
        if self.max_running == Some(0) {
            return Err(Error::invalid(
                "max_running must be at least 1 (pause the queue to run none)",
            ));
        }
        if self.max_running_per_key == Some(0) {
            return Err(Error::invalid("max_running_per_key must be at least 1"));
        }
        for rate in [self.rate, self.rate_per_key].into_iter().flatten() {
            rate.check()?;
        }
        Ok(())
    }
}

/// A rate of starts: `starts` per `per`, spaced evenly. A queue with a rate starts one job,
/// then the next no sooner than `per / starts` later, so that no window of length `per` ever
/// holds more than `starts` starts, with no burst at a period's turn (and none after a quiet
/// spell either: the unused time is not saved up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// How many starts.
    pub starts: u32,
    /// In how long.
    pub per: Duration,
}

impl Rate {
    /// The least time between two starts.
    pub fn interval(&self) -> Duration {
        self.per / self.starts.max(1)
    }

    /// Its period as the rate is written ([`duration_text`]), so that what is printed can be
    /// given back.
    pub fn per_text(&self) -> String {
        duration_text(self.per)
    }

    /// `at most 1 start per 6s`, `at most 100 starts per 1m`: the rate in words.
    pub fn in_words(&self) -> String {
        let starts = match self.starts {
            1 => "1 start".to_owned(),
            n => format!("{n} starts"),
        };
        format!("at most {starts} per {}", self.per_text())
    }

    fn check(&self) -> Result<(), Error> {
        if self.starts == 0 {
            return Err(Error::invalid("a rate needs at least 1 start per period"));
        }
        if self.per.is_zero() {
            return Err(Error::invalid(format!(
                "a rate of {} starts per nothing: its period must be longer than zero, such as {}/1s",
                self.starts, self.starts
            )));
        }
        if self.interval() < Duration::from_millis(1) {
            return Err(Error::invalid(format!(
                "a rate of {self} asks for starts less than a millisecond apart; at most one start per millisecond"
            )));
        }
        Ok(())
    }
}

/// A duration as one whole number of the largest unit that divides it (`90m`, not `1h 30m`;
/// `1d`, not `1day`; `36h`, `1500ms`), which reads back as the same duration.
pub fn duration_text(duration: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let ms = duration.as_millis();
    let whole_ms = duration.subsec_nanos().is_multiple_of(1_000_000);
    match UNITS.iter().find(|(_, unit)| ms.is_multiple_of(*unit)) {
        Some((name, unit)) if whole_ms && ms > 0 => format!("{}{name}", ms / unit),
        // Below a millisecond: humantime's words, run together so that they read back.
        _ => humantime::format_duration(duration)
            .to_string()
            .replace(' ', ""),
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.starts, self.per_text())
    }
}

impl FromStr for Rate {
    type Err = Error;

    /// `100/1m`, `5/1s`, `1000/1h`: a count of starts, a slash, a duration; a unit alone is one
    /// of it (`100/m`).
    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::invalid(format!(
                "rate {text:?}: {why}; give starts/period, such as 100/1m or 5/1s"
            ))
        };
        let (starts, per) = text
            .split_once('/')
            .ok_or_else(|| bad("no slash".to_owned()))?;
        let starts = starts.trim().parse::<u32>().map_err(|_| {
            bad(format!(
                "{starts:?} is not a count of starts (a whole number from 1 to {})",
                u32::MAX
            ))
        })?;
        let per = per.trim();
        let per = match !per.is_empty() && per.chars().all(char::is_alphabetic) {
            // Refused in the words typed, not the "1" put before them.
            true => parse_period(&format!("1{per}")).map_err(|why| {
                match why.ends_with(" is not a duration") {
                    true => format!("{per:?} is not a unit of time (s, m, h or d)"),
                    false => why,
                }
            }),
            false => parse_period(per),
        };
        let rate = Rate {
            starts,
            per: per.map_err(bad)?,
        };
        rate.check()?;
        Ok(rate)
    }
}

/// A period (`1m`, `90s`, `1d`, `1h 30m`) in units of a fixed length: humantime reads `M` as
/// months, a step from `m`, minutes, and months and years of its own lengths (30.44 and
/// 365.25 days), which no user means; each is refused with what to write instead.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let units = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|u| !u.is_empty());
    for unit in units {
        match unit {
            "M" => {
                return Err(format!(
                    "{text:?}: a capital M reads as months; write 1m for a minute"
                ));
            }
            "month" | "months" | "y" | "year" | "years" => {
                return Err(format!(
                    "{text:?}: months and years vary in length; give days, such as 30d"
                ));
            }
            _ => {}
        }
    }
    humantime::parse_duration(text).map_err(|_| format!("{text:?} is not a duration"))
}

/// Refuses a concurrency key no backend can store: empty, longer than
/// [`MAX_CONCURRENCY_KEY`] bytes, or with a control character.
pub fn check_concurrency_key(key: &str) -> Result<(), Error> {
    if key.trim().is_empty()
        || key.len() > MAX_CONCURRENCY_KEY
        || key.chars().any(crate::types::is_unprintable)
    {
        return Err(Error::invalid(format!(
            "a concurrency key must be 1 to {MAX_CONCURRENCY_KEY} bytes, not blank, none of them a control character"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_and_print_as_starts_per_period() {
        let rate: Rate = "100/1m".parse().expect("a rate");
        assert_eq!(rate.starts, 100);
        assert_eq!(rate.interval(), Duration::from_millis(600));
        assert_eq!(rate.to_string(), "100/1m");
        assert_eq!(
            "5 / 2s".parse::<Rate>().map(|r| r.per).ok(),
            Some(Duration::from_secs(2))
        );
        // A unit alone is one of it.
        assert_eq!("100/m".parse::<Rate>().ok(), Some(rate));
        assert_eq!(
            "10/hour".parse::<Rate>().map(|r| r.per).ok(),
            Some(Duration::from_secs(3600))
        );
        for bad in [
            "100", "x/1m", "/1m", "1.5/1m", "0/1m", "100/soon", "5000/1s", "100/1M", "100/M",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_printed_rate_reads_back_as_the_same_rate() {
        for (given, printed) in [
            ("4/1h 30m", "4/90m"),
            ("1/36h", "1/36h"),
            ("2/1d", "2/1d"),
            ("10/1500ms", "10/1500ms"),
            ("1/100000000000days", "1/100000000000d"),
            ("1/60s", "1/1m"),
        ] {
            let rate: Rate = given.parse().expect(given);
            assert_eq!(rate.to_string(), printed, "{given}");
            assert_eq!(printed.parse::<Rate>().ok(), Some(rate), "{printed}");
        }
        let sub_ms = Rate {
            starts: 1,
            per: Duration::from_micros(1_500),
        };
        assert_eq!(sub_ms.to_string().parse::<Rate>().ok(), Some(sub_ms));
        let one: Rate = "1/6s".parse().expect("a rate");
        assert_eq!(one.in_words(), "at most 1 start per 6s");
        let many: Rate = "100/1m".parse().expect("a rate");
        assert_eq!(many.in_words(), "at most 100 starts per 1m");
    }

    #[test]
    fn a_rate_of_no_time_names_its_period() {
        let error = "10/0s".parse::<Rate>().expect_err("refused").to_string();
        assert!(error.contains("period must be longer than zero"), "{error}");
    }

    #[test]
    fn zero_limits_are_refused() {
        let none = RunLimits::default();
        assert!(!none.any() && none.check().is_ok());
        let zero = RunLimits {
            max_running: Some(0),
            ..RunLimits::default()
        };
        assert!(zero.any() && zero.check().is_err());
    }
}
