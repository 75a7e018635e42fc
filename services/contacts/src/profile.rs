//! The default Contact Fields: each value checked and normalized before it is stored.
use ism_platform::convert::{quoted, storable};
use ism_platform::error::{Checks, FieldError, Violations};
use ism_proto::contacts::v1 as pb;

/// Longest first or last name.
const MAX_NAME: usize = 200;

/// A lower-cased, syntactically valid email address; empty stays empty.
pub fn email(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let lower = value.to_lowercase();
    if lower.len() > 254 || !email_address::EmailAddress::is_valid(&lower) {
        return Err(FieldError::new(
            "email",
            format!("{} is not an email address", quoted(value)),
        ));
    }
    Ok(lower)
}

/// The E.164 form of a valid phone number. Without a leading `+`, `country` (ISO
/// 3166-1 alpha-2) says where it is a national number. Empty stays empty.
pub fn phone(value: &str, country: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let invalid = || {
        FieldError::new(
            "phone",
            format!(
                "{} is not a valid phone number (E.164, e.g. +4915112345678)",
                quoted(value)
            ),
        )
    };
    if value.len() > 40 {
        return Err(invalid());
    }
    let region = country.parse::<phonenumber::country::Id>().ok();
    let number = phonenumber::parse(region, value).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// An absolute http(s) URL; empty stays empty.
pub fn url(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let invalid = || {
        FieldError::new(
            "picture_url",
            format!("{} is not an http(s) URL", quoted(value)),
        )
    };
    if value.len() > 2048 {
        return Err(invalid());
    }
    let parsed = url::Url::parse(value).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid());
    }
    Ok(parsed.to_string())
}

/// A BCP 47 language tag of a primary language and optional subtags (`en`, `pt-BR`).
pub fn language(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let mut parts = value.split('-');
    let primary = parts.next().unwrap_or_default();
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !primary_ok || !rest_ok || value.len() > 35 {
        return Err(FieldError::new(
            "language",
            format!(
                "{} is not a language tag such as en or pt-BR",
                quoted(value)
            ),
        ));
    }
    Ok(value.to_owned())
}

/// An upper-cased ISO 3166-1 alpha-2 code.
pub fn country(value: &str) -> Result<String, FieldError> {
    let value = value.trim().to_ascii_uppercase();
    if value.is_empty() {
        return Ok(value);
    }
    if value.parse::<phonenumber::country::Id>().is_err() {
        return Err(FieldError::new(
            "country",
            format!(
                "{} is not an ISO 3166-1 alpha-2 country code",
                quoted(&value)
            ),
        ));
    }
    Ok(value)
}

/// An IANA time zone name.
pub fn timezone(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    value
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            FieldError::new(
                "timezone",
                format!(
                    "{} is not an IANA time zone such as Europe/Berlin",
                    quoted(value)
                ),
            )
        })
}

/// A trimmed name of at most 200 bytes.
pub fn name(field: &'static str, value: &str) -> Result<String, FieldError> {
    let value = storable(field, value.trim())?;
    if value.len() > MAX_NAME {
        return Err(FieldError::new(field, format!("at most {MAX_NAME} bytes")));
    }
    Ok(value.to_owned())
}

/// The default fields of a Contact, normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub language: String,
    pub country: String,
    pub timezone: String,
    pub picture_url: String,
}

impl Profile {
    /// The default fields, by name, in the order [`Profile::from_values`] takes them.
    pub const FIELDS: [&'static str; 8] = ism_proto::contacts::v1::Contact::PROFILE_FIELDS;

    /// The profile of the values of [`Profile::FIELDS`], in order.
    pub fn from_values(values: [String; 8]) -> Self {
        let [
            first_name,
            last_name,
            email,
            phone,
            language,
            country,
            timezone,
            picture_url,
        ] = values;
        Profile {
            first_name,
            last_name,
            email,
            phone,
            language,
            country,
            timezone,
            picture_url,
        }
    }

    /// The values of [`Profile::FIELDS`], in order.
    pub fn values(&self) -> [&String; 8] {
        ism_proto::profile_values!(self)
    }

    /// Checks and normalizes every default field of `p`.
    pub fn from_proto(p: &pb::ContactProfile) -> Result<Self, Violations> {
        let country = country(&p.country);
        // A national number is read in the profile's country, when that one is valid.
        let phone = phone(&p.phone, country.as_deref().unwrap_or_default());
        let (first_name, last_name, email, phone, language, timezone, picture_url, country) = (
            name("first_name", &p.first_name),
            name("last_name", &p.last_name),
            email(&p.email),
            phone,
            language(&p.language),
            timezone(&p.timezone),
            url(&p.picture_url),
            country,
        )
            .all()?;
        Ok(Profile {
            first_name,
            last_name,
            email,
            phone,
            language,
            timezone,
            picture_url,
            country,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_with_three_bad_fields_names_all_three() {
        let profile = pb::ContactProfile {
            email: "ada@".into(),
            language: "portuguese".into(),
            timezone: "Mars/Olympus".into(),
            first_name: "Ada".into(),
            ..Default::default()
        };
        let violations = Profile::from_proto(&profile).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_ref()).collect();
        assert_eq!(fields, ["email", "language", "timezone"]);
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        assert_eq!(email("").unwrap(), "");
        assert_eq!(email("ada@").unwrap_err().field, "email");
    }

    #[test]
    fn phones_become_e164_with_the_country_for_national_numbers() {
        assert_eq!(phone("+49 151 12345678", "").unwrap(), "+4915112345678");
        assert_eq!(phone("0151 12345678", "DE").unwrap(), "+4915112345678");
        assert_eq!(phone("0151 12345678", "").unwrap_err().field, "phone");
        assert_eq!(phone("+1 555", "").unwrap_err().field, "phone");
    }

    #[test]
    fn language_country_timezone_and_url_are_checked() {
        assert_eq!(language("pt-BR").unwrap(), "pt-BR");
        assert!(language("portuguese").is_err());
        assert_eq!(country("de").unwrap(), "DE");
        assert!(country("XX").is_err());
        assert_eq!(timezone("Europe/Berlin").unwrap(), "Europe/Berlin");
        assert!(timezone("Mars/Olympus").is_err());
        assert!(url("https://cdn.example.com/a.png").is_ok());
        assert!(url("javascript:alert(1)").is_err());
    }
}
