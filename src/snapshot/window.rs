//! Tumbling calendar windows in a time zone: which window an event time falls in, and the
//! window's stable label (the `window=<label>` part of a snapshot's address).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use crate::product::WindowSize;

/// One window: `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Window {
    /// First millisecond of the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

/// Calendar windows of one size in one time zone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Calendar {
    size: WindowSize,
    tz: Tz,
}

impl Calendar {
    /// Windows of `size` in `tz`.
    pub(super) fn new(size: WindowSize, tz: Tz) -> Self {
        Self { size, tz }
    }

    /// The window holding the instant `ms` (epoch milliseconds).
    pub(super) fn window_of(&self, ms: i64) -> Window {
        let local = self.local(ms);
        let start = self.floor(local);
        let end = self.next(start);
        Window {
            start: self.instant(start),
            end: self.instant(end),
        }
    }

    /// The label of the window starting at `start`: `2026-11-25T10-31` (minute),
    /// `2026-11-25T10` (hour), `2026-11-25` (day), `2026-W48` (ISO week), `2026-11` (month), in
    /// the calendar's time zone. Labels sort like their windows within a year.
    pub(super) fn label(&self, window: Window) -> String {
        let local = self.local(window.start);
        match self.size {
            WindowSize::Minute => local.format("%Y-%m-%dT%H-%M").to_string(),
            WindowSize::Hour => local.format("%Y-%m-%dT%H").to_string(),
            WindowSize::Day => local.format("%Y-%m-%d").to_string(),
            WindowSize::Week => {
                let week = local.date().iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            WindowSize::Month => local.format("%Y-%m").to_string(),
        }
    }

    fn local(&self, ms: i64) -> NaiveDateTime {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        utc.with_timezone(&self.tz).naive_local()
    }

    /// The local start of the window holding `local`.
    fn floor(&self, local: NaiveDateTime) -> NaiveDateTime {
        let date = local.date();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.size {
            WindowSize::Minute => local
                .date()
                .and_hms_opt(local.hour(), local.minute(), 0)
                .unwrap_or(local),
            WindowSize::Hour => local
                .date()
                .and_hms_opt(local.hour(), 0, 0)
                .unwrap_or(local),
            WindowSize::Day => midnight(date),
            WindowSize::Week => {
                midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
            }
            WindowSize::Month => midnight(date.with_day(1).unwrap_or(date)),
        }
    }

    fn next(&self, start: NaiveDateTime) -> NaiveDateTime {
        match self.size {
            WindowSize::Minute => start + Duration::minutes(1),
            WindowSize::Hour => start + Duration::hours(1),
            WindowSize::Day => start + Duration::days(1),
            WindowSize::Week => start + Duration::days(7),
            WindowSize::Month => start
                .date()
                .checked_add_months(chrono::Months::new(1))
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(start + Duration::days(31)),
        }
    }

    /// The instant of a local time: the earlier one when a clock change repeats it, the moment
    /// the clock jumps when a clock change skips it.
    fn instant(&self, local: NaiveDateTime) -> i64 {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
            LocalResult::None => {
                // skipped by a clock change (e.g. 02:00–03:00 in spring): the window starts when
                // the local clock resumes
                let mut probe = local;
                for _ in 0..180 {
                    probe += Duration::minutes(1);
                    if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                        self.tz.from_local_datetime(&probe)
                    {
                        return t.timestamp_millis();
                    }
                }
                local.and_utc().timestamp_millis()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn window(size: WindowSize, tz: &str, at: &str) -> (String, i64, i64) {
        let calendar = Calendar::new(size, tz.parse().unwrap());
        let w = calendar.window_of(ms(at));
        (calendar.label(w), w.start, w.end)
    }

    #[test]
    fn utc_windows_of_every_size() {
        let at = "2026-11-25T10:31:12.345Z";
        assert_eq!(
            window(WindowSize::Minute, "UTC", at),
            (
                "2026-11-25T10-31".into(),
                ms("2026-11-25T10:31:00Z"),
                ms("2026-11-25T10:32:00Z")
            )
        );
        assert_eq!(
            window(WindowSize::Hour, "UTC", at),
            (
                "2026-11-25T10".into(),
                ms("2026-11-25T10:00:00Z"),
                ms("2026-11-25T11:00:00Z")
            )
        );
        assert_eq!(
            window(WindowSize::Day, "UTC", at),
            (
                "2026-11-25".into(),
                ms("2026-11-25T00:00:00Z"),
                ms("2026-11-26T00:00:00Z")
            )
        );
        // 2026-11-25 is a Wednesday of ISO week 48
        assert_eq!(
            window(WindowSize::Week, "UTC", at),
            (
                "2026-W48".into(),
                ms("2026-11-23T00:00:00Z"),
                ms("2026-11-30T00:00:00Z")
            )
        );
        assert_eq!(
            window(WindowSize::Month, "UTC", "2026-12-31T23:59:59.999Z"),
            (
                "2026-12".into(),
                ms("2026-12-01T00:00:00Z"),
                ms("2027-01-01T00:00:00Z")
            )
        );
    }

    #[test]
    fn days_follow_the_time_zone_and_its_clock_changes() {
        // 23:30 UTC is already the next day in Stockholm (UTC+1 in winter)
        assert_eq!(
            window(WindowSize::Day, "Europe/Stockholm", "2026-11-25T23:30:00Z"),
            (
                "2026-11-26".into(),
                ms("2026-11-25T23:00:00Z"),
                ms("2026-11-26T23:00:00Z")
            )
        );
        // the day the clocks go forward has 23 hours, the day they go back 25
        let (_, start, end) = window(WindowSize::Day, "Europe/Stockholm", "2026-03-29T12:00:00Z");
        assert_eq!(end - start, 23 * 3_600_000);
        let (_, start, end) = window(WindowSize::Day, "Europe/Stockholm", "2026-10-25T12:00:00Z");
        assert_eq!(end - start, 25 * 3_600_000);
    }

    #[test]
    fn consecutive_windows_tile_time() {
        let calendar = Calendar::new(WindowSize::Hour, "Europe/Stockholm".parse().unwrap());
        let mut w = calendar.window_of(ms("2026-03-28T20:00:00Z"));
        for _ in 0..48 {
            let next = calendar.window_of(w.end);
            assert_eq!(next.start, w.end);
            assert!(next.end > next.start);
            w = next;
        }
    }
}
