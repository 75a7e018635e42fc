//! Date and time conditions: whether a local moment falls within a Workspace's business
//! hours or a window of days and times.
use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime};
use ism_proto::workflows::v1::TimeWindow;
use ism_proto::workspaces::v1::BusinessHours;

pub fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub fn time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// Whether `now` (local) is within `hours`; no intervals means always open.
pub fn open(hours: &BusinessHours, now: NaiveDateTime) -> bool {
    let weekday = now.weekday().number_from_monday() as i32;
    hours.intervals.is_empty()
        || hours.intervals.iter().any(|i| {
            i.weekday == weekday
                && time(&i.open).is_some_and(|open| open <= now.time())
                && time(&i.close).is_some_and(|close| now.time() < close)
        })
}

/// Whether `now` (local) is within `window` (each part checked when saved).
pub fn within(window: &TimeWindow, now: NaiveDateTime) -> bool {
    let day = now.date();
    let from_ok = date(&window.from_date).is_none_or(|from| from <= day);
    let until_ok = date(&window.until_date).is_none_or(|until| day <= until);
    let weekday = now.weekday().number_from_monday() as i32;
    let weekday_ok = window.weekdays.is_empty() || window.weekdays.contains(&weekday);
    let at = now.time();
    let time_ok = match (time(&window.from_time), time(&window.until_time)) {
        (Some(from), Some(until)) if from <= until => from <= at && at < until,
        (Some(from), Some(until)) => at >= from || at < until,
        (Some(from), None) => from <= at,
        (None, Some(until)) => at < until,
        (None, None) => true,
    };
    from_ok && until_ok && weekday_ok && time_ok
}

/// The next local moment at `at` after `now`: today's while still ahead, else tomorrow's.
pub fn next_time(now: NaiveDateTime, at: NaiveTime) -> NaiveDateTime {
    let today = now.date().and_time(at);
    if today > now {
        today
    } else {
        today + Days::new(1)
    }
}

/// The first local moment from `now` on within `hours`: `now` itself while open; `None`
/// only when no interval is valid.
pub fn next_open(hours: &BusinessHours, now: NaiveDateTime) -> Option<NaiveDateTime> {
    if open(hours, now) {
        return Some(now);
    }
    (0..=7)
        .filter_map(|ahead| now.date().checked_add_days(Days::new(ahead)))
        .flat_map(|day| {
            let weekday = day.weekday().number_from_monday() as i32;
            hours
                .intervals
                .iter()
                .filter(move |i| i.weekday == weekday)
                .filter_map(move |i| Some(day.and_time(time(&i.open)?)))
        })
        .filter(|opens| *opens > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ism_proto::workspaces::v1::BusinessHoursInterval;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn business_hours_hold_within_an_interval_of_the_day() {
        let hours = BusinessHours {
            intervals: vec![BusinessHoursInterval {
                weekday: 1,
                open: "09:00".into(),
                close: "17:00".into(),
            }],
        };
        // 2026-12-07 is a Monday.
        assert!(open(&hours, at("2026-12-07 09:00")));
        assert!(!open(&hours, at("2026-12-07 17:00")));
        assert!(!open(&hours, at("2026-12-08 10:00")), "Tuesday");
        assert!(open(&BusinessHours::default(), at("2026-12-08 03:00")));
    }

    #[test]
    fn windows_bound_days_weekdays_and_times_across_midnight() {
        let nights = TimeWindow {
            from_date: "2026-12-01".into(),
            until_date: "2026-12-31".into(),
            weekdays: vec![5, 6],
            from_time: "22:00".into(),
            until_time: "06:00".into(),
        };
        // 2026-12-11 is a Friday, 2026-12-12 a Saturday.
        assert!(within(&nights, at("2026-12-11 23:30")));
        assert!(within(&nights, at("2026-12-12 05:59")));
        assert!(!within(&nights, at("2026-12-12 06:00")));
        assert!(!within(&nights, at("2026-12-10 23:30")), "Thursday");
        assert!(
            !within(&nights, at("2027-01-01 23:30")),
            "after the last day"
        );
        assert!(within(&TimeWindow::default(), at("2026-12-10 12:00")));
    }

    #[test]
    fn waits_end_at_the_next_time_of_day_or_the_next_opening() {
        let nine = time("09:00").unwrap();
        assert_eq!(
            next_time(at("2026-12-07 08:00"), nine),
            at("2026-12-07 09:00")
        );
        assert_eq!(
            next_time(at("2026-12-07 09:00"), nine),
            at("2026-12-08 09:00")
        );
        let interval = |weekday, open: &str, close: &str| BusinessHoursInterval {
            weekday,
            open: open.into(),
            close: close.into(),
        };
        let weekdays = BusinessHours {
            intervals: (1..=5).map(|d| interval(d, "09:00", "17:00")).collect(),
        };
        // 2026-12-11 is a Friday.
        assert_eq!(
            next_open(&weekdays, at("2026-12-11 18:00")),
            Some(at("2026-12-14 09:00")),
            "Friday evening waits for Monday"
        );
        let now = at("2026-12-11 10:00");
        assert_eq!(next_open(&weekdays, now), Some(now), "open now");
        assert_eq!(next_open(&BusinessHours::default(), now), Some(now));
    }
}
