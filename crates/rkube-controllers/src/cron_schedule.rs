//! Cron schedules as CronJobs write them: five fields (minute, hour, day of month, month,
//! day of week) with `*`, `?`, ranges, steps, lists and month / weekday names, or a descriptor
//! (`@hourly`, `@daily`, `@every 90m`, …), evaluated in a time zone from the system tz
//! database. A `TZ=` / `CRON_TZ=` prefix is refused: CronJobs name their zone in
//! `spec.timeZone`.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// How far ahead a schedule is searched before it is taken to never fire (29 February on a
/// Monday, say, takes up to 28 years; nobody waits that long for a Job).
const SEARCH_YEARS: i16 = 5;

/// The most missed start times counted; past this upstream warns "too many missed start times".
pub const MAX_MISSED: usize = 100;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields, each a bit set.
    Fields {
        /// Bits 0–59.
        minutes: u64,
        /// Bits 0–23.
        hours: u64,
        /// Bits 1–31.
        days: u64,
        /// Bits 1–12.
        months: u64,
        /// Bits 0–6 (Sunday is 0).
        weekdays: u64,
        /// Day of month was `*` or `?`: only the weekday restricts days.
        any_day: bool,
        /// Day of week was `*` or `?`: only the day of month restricts days.
        any_weekday: bool,
    },
    /// `@every <duration>`: fixed intervals.
    Every(SignedDuration),
}

struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    Field {
        min: 0,
        max: 6,
        names: DAY_NAMES,
    },
];

impl Schedule {
    /// Parses a schedule; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty spec string".to_owned());
        }
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_owned(),
            );
        }
        if let Some(descriptor) = text.strip_prefix('@') {
            let fields = match descriptor {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                other => {
                    let Some(every) = other.strip_prefix("every ") else {
                        return Err(format!("unrecognized descriptor: {text}"));
                    };
                    return parse_duration(every.trim())
                        .filter(|d| d.as_secs() > 0)
                        .map(Schedule::Every)
                        .ok_or_else(|| format!("failed to parse duration {text}"));
                }
            };
            return Self::parse(fields);
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != FIELDS.len() {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                parts.len(),
                parts.join(" ")
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            for expr in part.split(',') {
                bits[i] |= parse_range(expr, field)?;
            }
        }
        let is_any = |p: &str| p == "*" || p == "?";
        Ok(Schedule::Fields {
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            // 7 is Sunday too.
            weekdays: bits[4],
            any_day: is_any(parts[2]),
            any_weekday: is_any(parts[4]),
        })
    }

    /// The first time strictly after `after` at which the schedule fires, in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(interval) => {
                // Whole seconds, as upstream's ConstantDelaySchedule rounds.
                let secs = after.as_second() + interval.as_secs();
                Timestamp::from_second(secs).ok()
            }
            Schedule::Fields { .. } => self.next_field_match(after, tz),
        }
    }

    fn next_field_match(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let Schedule::Fields {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        } = *self
        else {
            return None;
        };
        let start = tz.to_datetime(after);
        // The next whole minute after `after`.
        let mut t = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = start.year().saturating_add(SEARCH_YEARS);
        let has = |set: u64, v: i8| v >= 0 && set & (1u64 << v) != 0;
        while t.year() <= limit {
            if !has(months, t.month()) {
                let first = Date::new(t.year(), t.month(), 1).ok()?;
                t = first
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(Time::midnight());
                continue;
            }
            let day_ok = has(days, t.day());
            let weekday_ok = has(weekdays, t.weekday().to_sunday_zero_offset());
            let day_matches = if any_day || any_weekday {
                day_ok && weekday_ok
            } else {
                day_ok || weekday_ok
            };
            if !day_matches {
                t = t
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(Time::midnight());
                continue;
            }
            if !has(hours, t.hour()) {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !has(minutes, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            let zoned = tz.to_ambiguous_zoned(t).compatible().ok()?;
            let at = zoned.timestamp();
            // A wall time skipped by a DST jump maps forward; keep strictly later times.
            if at > after {
                return Some(at);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

/// The latest time in `(earliest, now]` the schedule fired, and how many times it fired in
/// that span (counted up to `MAX_MISSED + 1`), as upstream's `mostRecentScheduleTime`.
pub fn most_recent_unmet(
    schedule: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let mut missed = 0;
    let mut t = earliest;
    let mut last = None;
    while let Some(next) = schedule.next_after(t, tz) {
        if next > now {
            return (last, missed);
        }
        missed += 1;
        last = Some(next);
        t = next;
        if missed > MAX_MISSED {
            break;
        }
    }
    if missed <= MAX_MISSED {
        return (last, missed);
    }
    // Many missed: find the most recent one from windows ending at `now`, growing until one
    // holds a start time.
    for hours in [1i64, 24, 24 * 32, 24 * 366, 24 * 366 * 5] {
        let from = now
            .checked_sub(SignedDuration::from_hours(hours))
            .unwrap_or(earliest)
            .max(earliest);
        let mut t = from;
        let mut found = None;
        while let Some(next) = schedule.next_after(t, tz) {
            if next > now {
                break;
            }
            found = Some(next);
            t = next;
        }
        if found.is_some() {
            return (found, missed);
        }
    }
    (last, missed)
}

/// One comma-separated part of a field: `*`, `?`, `N`, `A-B`, each with an optional `/step`.
fn parse_range(expr: &str, field: &Field) -> Result<u64, String> {
    let (range, step) = match expr.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step
                .parse()
                .map_err(|_| format!("failed to parse int from {step}"))?;
            if step == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            (range, Some(step))
        }
        None => (expr, None),
    };
    let (start, end) = if range == "*" || range == "?" {
        (field.min, field.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a, field)?, value(b, field)?)
    } else {
        let v = value(range, field)?;
        // `N/step` runs from N to the field's end.
        (v, if step.is_some() { field.max } else { v })
    };
    // Sunday may be written 7.
    let (start, end) = if field.max == 6 && end == 7 {
        (start, 7)
    } else {
        (start, end)
    };
    if start < field.min || end > field.max.max(if field.max == 6 { 7 } else { 0 }) {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            field.min
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1u64 << (if field.max == 6 { v % 7 } else { v });
        v += step.unwrap_or(1);
    }
    Ok(bits)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        let offset = u32::try_from(i).unwrap_or(0);
        return Ok(field.min + offset);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("failed to parse int from {text}"))?;
    let max = if field.max == 6 { 7 } else { field.max };
    if v < field.min || v > max {
        return Err(format!(
            "end of range ({v}) above maximum ({}): {text}",
            field.max
        ));
    }
    Ok(v)
}

/// Go's duration syntax, as `@every` takes it (`1h30m`, `90s`).
fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += number * seconds;
    }
    SignedDuration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_default()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .ok()
            .and_then(|s| s.next_after(at(after), &TimeZone::UTC))
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn fields_ranges_steps_lists_and_names() {
        assert_eq!(
            next("* * * * *", "2024-01-01T10:00:30Z"),
            "2024-01-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T10:00:00Z"),
            "2024-01-01T10:15:00Z"
        );
        assert_eq!(
            next("5-10/5 * * * *", "2024-01-01T10:06:00Z"),
            "2024-01-01T10:10:00Z"
        );
        assert_eq!(
            next("0 9,17 * * *", "2024-01-01T10:00:00Z"),
            "2024-01-01T17:00:00Z"
        );
        assert_eq!(
            next("0 0 1 JAN *", "2024-03-01T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        // 2024-01-01 is a Monday.
        assert_eq!(
            next("30 8 * * fri", "2024-01-01T00:00:00Z"),
            "2024-01-05T08:30:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
    }

    #[test]
    fn day_of_month_and_weekday_both_given_match_either() {
        // The 10th or any Sunday: Sunday the 7th comes first.
        assert_eq!(
            next("0 0 10 * 0", "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00Z"
        );
        // With one of them `*`, the other alone decides.
        assert_eq!(
            next("0 0 10 * *", "2024-01-01T00:00:00Z"),
            "2024-01-10T00:00:00Z"
        );
    }

    #[test]
    fn descriptors() {
        assert_eq!(
            next("@hourly", "2024-01-01T10:20:00Z"),
            "2024-01-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2024-01-01T10:20:00Z"),
            "2024-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2024-01-01T10:20:00Z"),
            "2024-01-07T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2024-01-01T10:20:00Z"),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-01-01T10:20:00Z"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@every 90m", "2024-01-01T10:20:00Z"),
            "2024-01-01T11:50:00Z"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "@often",
            "5-1 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            Schedule::parse("TZ=UTC 0 * * * *"),
            Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_owned())
        );
        assert!(Schedule::parse("CRON_TZ=UTC 0 * * * *").is_err());
    }

    #[test]
    fn schedules_follow_the_time_zone_including_daylight_saving() {
        let schedule =
            Schedule::parse("0 9 * * *").unwrap_or(Schedule::Every(SignedDuration::ZERO));
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap_or(TimeZone::UTC);
        let t = schedule.next_after(at("2024-01-01T00:00:00Z"), &kolkata);
        assert_eq!(
            t.map(|t| t.to_string()).unwrap_or_default(),
            "2024-01-01T03:30:00Z"
        );
        // New York moves to UTC-4 on 2024-03-10: 09:00 local is 14:00 UTC before, 13:00 after.
        let new_york = TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC);
        let before = schedule.next_after(at("2024-03-09T00:00:00Z"), &new_york);
        let after = schedule.next_after(at("2024-03-10T12:00:00Z"), &new_york);
        assert_eq!(
            before.map(|t| t.to_string()).unwrap_or_default(),
            "2024-03-09T14:00:00Z"
        );
        assert_eq!(
            after.map(|t| t.to_string()).unwrap_or_default(),
            "2024-03-10T13:00:00Z"
        );
        // 02:30 does not exist that day: it fires at the first instant after the gap.
        let gap = Schedule::parse("30 2 * * *").unwrap_or(Schedule::Every(SignedDuration::ZERO));
        let t = gap.next_after(at("2024-03-10T05:00:00Z"), &new_york);
        assert_eq!(
            t.map(|t| t.to_string()).unwrap_or_default(),
            "2024-03-10T07:30:00Z"
        );
    }

    #[test]
    fn the_most_recent_missed_time_and_how_many_were_missed() {
        let every_minute =
            Schedule::parse("* * * * *").unwrap_or(Schedule::Every(SignedDuration::ZERO));
        let (last, missed) = most_recent_unmet(
            &every_minute,
            &TimeZone::UTC,
            at("2024-01-01T00:00:30Z"),
            at("2024-01-01T00:03:10Z"),
        );
        assert_eq!(
            (
                last.map(|t| t.to_string()).unwrap_or_default().as_str(),
                missed
            ),
            ("2024-01-01T00:03:00Z", 3)
        );
        let (last, missed) = most_recent_unmet(
            &every_minute,
            &TimeZone::UTC,
            at("2024-01-01T00:00:30Z"),
            at("2024-01-01T00:00:50Z"),
        );
        assert_eq!((last, missed), (None, 0));
        // Weeks of missed minutes: more than 100, and still the latest one.
        let (last, missed) = most_recent_unmet(
            &every_minute,
            &TimeZone::UTC,
            at("2024-01-01T00:00:00Z"),
            at("2024-02-01T12:34:56Z"),
        );
        assert!(missed > MAX_MISSED);
        assert_eq!(
            last.map(|t| t.to_string()).unwrap_or_default(),
            "2024-02-01T12:34:00Z"
        );
    }
}
