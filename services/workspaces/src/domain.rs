//! Input rules of the tenancy model: names, emails, time zones, languages, opening hours
//! and availability.
use chrono::NaiveTime;
use ism_platform::error::FieldError;
use serde::{Deserialize, Serialize};

/// A human-facing name: trimmed, 1 to 100 characters.
pub fn valid_name(field: &'static str, name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    match name.chars().count() {
        0 => Err(FieldError::new(field, "must not be empty")),
        1..=100 => Ok(name.to_owned()),
        _ => Err(FieldError::new(field, "must be at most 100 characters")),
    }
}

/// A syntactically valid email address (RFC 5322), at most 254 characters.
pub fn valid_email(email: &str) -> Result<String, FieldError> {
    let email = email.trim();
    if email.len() > 254 {
        return Err(FieldError::new("email", "must be at most 254 characters"));
    }
    email_address::EmailAddress::parse_with_options(
        email,
        email_address::Options::default().with_required_tld(),
    )
    .map(|_| email.to_owned())
    .map_err(|e| FieldError::new("email", format!("not an email address: {e}")))
}

/// An IANA time zone name such as `Europe/Berlin`.
pub fn valid_timezone(timezone: &str) -> Result<String, FieldError> {
    let timezone = timezone.trim();
    timezone
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            FieldError::new(
                "timezone",
                format!("{timezone:?} is not an IANA time zone such as Europe/Berlin"),
            )
        })
}

/// A BCP 47 language tag: a 2–3 letter language, then optional 2–8 character subtags.
pub fn valid_language(tag: &str) -> Result<String, FieldError> {
    let tag = tag.trim();
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if language_ok && rest_ok {
        Ok(tag.to_owned())
    } else {
        Err(FieldError::new(
            "default_language",
            format!("{tag:?} is not a BCP 47 language tag such as en or pt-BR"),
        ))
    }
}

/// One weekly opening interval, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningInterval {
    pub weekday: i32,
    pub open: String,
    pub close: String,
}

/// Opening intervals with ISO weekdays and `HH:MM` times, each opening before it closes.
pub fn valid_business_hours(
    intervals: Vec<OpeningInterval>,
) -> Result<Vec<OpeningInterval>, FieldError> {
    if intervals.len() > 50 {
        return Err(FieldError::new("business_hours", "at most 50 intervals"));
    }
    let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    intervals
        .into_iter()
        .enumerate()
        .map(|(i, interval)| {
            let bad = |why: &str| FieldError::new("business_hours", format!("interval {i}: {why}"));
            if !(1..=7).contains(&interval.weekday) {
                return Err(bad("weekday must be 1 (Monday) to 7 (Sunday)"));
            }
            let (Some(open), Some(close)) = (time(&interval.open), time(&interval.close)) else {
                return Err(bad("open and close must be HH:MM"));
            };
            if open >= close {
                return Err(bad("open must be before close"));
            }
            Ok(OpeningInterval {
                weekday: interval.weekday,
                open: open.format("%H:%M").to_string(),
                close: close.format("%H:%M").to_string(),
            })
        })
        .collect()
}

ism_platform::stored_enum! {
    /// Whether a User can take conversations now.
    pub enum Availability {
        Online = "online",
        Away = "away",
        Offline = "offline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(valid_name("name", "  Sales ").unwrap(), "Sales");
        assert_eq!(
            valid_name("name", " ").unwrap_err().reason,
            "must not be empty"
        );
        assert!(valid_name("name", &"x".repeat(101)).is_err());
        assert!(valid_name("name", &"é".repeat(100)).is_ok());
    }

    #[test]
    fn emails_need_a_domain_with_a_dot() {
        assert_eq!(valid_email(" ada@example.com ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "ada@", "ada@localhost", "a b@example.com"] {
            assert_eq!(valid_email(bad).unwrap_err().field, "email", "{bad}");
        }
    }

    #[test]
    fn time_zones_and_languages_are_checked() {
        assert_eq!(valid_timezone("Europe/Berlin").unwrap(), "Europe/Berlin");
        assert_eq!(valid_timezone("Mars/Base").unwrap_err().field, "timezone");
        assert_eq!(valid_language("pt-BR").unwrap(), "pt-BR");
        assert_eq!(valid_language("en").unwrap(), "en");
        for bad in ["", "e", "english-", "en_US", "12"] {
            assert!(valid_language(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn business_hours_must_be_real_open_intervals() {
        let interval = |weekday, open: &str, close: &str| OpeningInterval {
            weekday,
            open: open.into(),
            close: close.into(),
        };
        let ok = valid_business_hours(vec![interval(1, "9:00", "17:30")]).unwrap();
        assert_eq!(ok, vec![interval(1, "09:00", "17:30")]);
        for bad in [
            interval(0, "09:00", "17:00"),
            interval(8, "09:00", "17:00"),
            interval(1, "17:00", "09:00"),
            interval(1, "9am", "17:00"),
        ] {
            let error = valid_business_hours(vec![bad]).unwrap_err();
            assert_eq!(error.field, "business_hours");
        }
    }
}
