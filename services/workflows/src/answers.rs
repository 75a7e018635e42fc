//! What an ask step takes as an answer: each answer type's check and the form it is
//! saved in.
use ism_proto::workflows::v1::{AnswerType, AskStep};

/// The most stars a rating takes.
const MAX_RATING: usize = 5;

/// `text` as `ask` saves it, or the sentence telling the Contact what is expected.
pub fn take(ask: &AskStep, text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Please answer with text.".into());
    }
    match ask.answer_type() {
        AnswerType::Unspecified | AnswerType::Text => Ok(text.to_owned()),
        AnswerType::Choice => choice(&ask.options, text),
        AnswerType::Number => number(ask.min, ask.max, text),
        AnswerType::Email => {
            let lower = text.to_lowercase();
            email_address::EmailAddress::is_valid(&lower)
                .then_some(lower)
                .ok_or_else(|| "Please answer with an email address, like name@example.com.".into())
        }
        AnswerType::Phone => phonenumber::parse(None, text)
            .ok()
            .filter(phonenumber::is_valid)
            .map(|n| n.format().mode(phonenumber::Mode::E164).to_string())
            .ok_or_else(|| {
                "Please answer with a phone number including the country code, like +4915112345678."
                    .into()
            }),
        AnswerType::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| "Please answer with a date as YYYY-MM-DD, like 2026-12-24.".into()),
        AnswerType::Url => url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .map(String::from)
            .ok_or_else(|| "Please answer with a web address, like https://example.com.".into()),
        AnswerType::Rating => rating(text),
    }
}

fn choice(options: &[String], text: &str) -> Result<String, String> {
    let by_number = text
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| options.get(i));
    by_number
        .or_else(|| options.iter().find(|o| o.trim().eq_ignore_ascii_case(text)))
        .map(|o| o.trim().to_owned())
        .ok_or_else(|| {
            let listed: Vec<String> = options
                .iter()
                .enumerate()
                .map(|(i, o)| format!("{} {}", i + 1, o.trim()))
                .collect();
            format!("Please answer with one of: {}.", listed.join(", "))
        })
}

fn number(min: Option<f64>, max: Option<f64>, text: &str) -> Result<String, String> {
    let bounds = match (min, max) {
        (Some(lo), Some(hi)) => format!(" from {lo} to {hi}"),
        (Some(lo), None) => format!(" of at least {lo}"),
        (None, Some(hi)) => format!(" of at most {hi}"),
        (None, None) => String::new(),
    };
    text.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .filter(|n| min.is_none_or(|lo| *n >= lo) && max.is_none_or(|hi| *n <= hi))
        .map(|n| n.to_string())
        .ok_or_else(|| format!("Please answer with a number{bounds}."))
}

fn rating(text: &str) -> Result<String, String> {
    let stars = text.chars().filter(|c| *c == '⭐' || *c == '★').count();
    let value = if stars > 0
        && text
            .chars()
            .all(|c| c == '⭐' || c == '★' || c.is_whitespace())
    {
        Some(stars)
    } else {
        text.parse::<usize>().ok()
    };
    value
        .filter(|n| (1..=MAX_RATING).contains(n))
        .map(|n| n.to_string())
        .ok_or_else(|| format!("Please answer with a rating from 1 to {MAX_RATING}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(answer_type: AnswerType) -> AskStep {
        AskStep {
            answer_type: answer_type.into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_answer_type_takes_its_form_and_refuses_others_saying_what_it_expects() {
        let mut choice = ask(AnswerType::Choice);
        choice.options = vec!["Sales".into(), "Support".into()];
        assert_eq!(take(&choice, " support ").unwrap(), "Support");
        assert_eq!(take(&choice, "1").unwrap(), "Sales");
        assert_eq!(
            take(&choice, "3").unwrap_err(),
            "Please answer with one of: 1 Sales, 2 Support."
        );
        let mut number = ask(AnswerType::Number);
        number.min = Some(1.0);
        number.max = Some(10.0);
        assert_eq!(take(&number, "2,5").unwrap(), "2.5");
        assert_eq!(
            take(&number, "11").unwrap_err(),
            "Please answer with a number from 1 to 10."
        );
        assert!(take(&number, "NaN").is_err());
        assert_eq!(
            take(&ask(AnswerType::Email), "Ada@Example.com").unwrap(),
            "ada@example.com"
        );
        assert!(take(&ask(AnswerType::Email), "ada@").is_err());
        assert_eq!(
            take(&ask(AnswerType::Phone), "+49 151 1234 5678").unwrap(),
            "+4915112345678"
        );
        assert!(take(&ask(AnswerType::Phone), "12345").is_err());
        assert_eq!(
            take(&ask(AnswerType::Date), "2026-12-24").unwrap(),
            "2026-12-24"
        );
        assert!(take(&ask(AnswerType::Date), "2026-02-30").is_err());
        assert_eq!(
            take(&ask(AnswerType::Url), "https://example.com/a").unwrap(),
            "https://example.com/a"
        );
        assert!(take(&ask(AnswerType::Url), "ftp://example.com").is_err());
        assert_eq!(take(&ask(AnswerType::Rating), "⭐⭐⭐⭐").unwrap(), "4");
        assert_eq!(take(&ask(AnswerType::Rating), "5").unwrap(), "5");
        assert!(take(&ask(AnswerType::Rating), "6").is_err());
        assert_eq!(take(&ask(AnswerType::Text), "  hi ").unwrap(), "hi");
        assert!(take(&ask(AnswerType::Text), "   ").is_err());
    }
}
