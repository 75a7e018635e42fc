//! CSV cells a spreadsheet opens safely. A cell that begins with `=`, `+`, `-`, `@`, a
//! tab or a carriage return is read as a formula by Excel, LibreOffice and Google
//! Sheets (`=HYPERLINK(...)`, `-2+3+cmd|...`): exports write such a cell with a leading
//! `'`, which spreadsheets show as text and hide, and imports take it off again. A
//! number (`-12.5`) or a phone number (`+4915112345678`) is left as it is: it cannot
//! call anything, and a leading quote would spoil it for other readers.
use std::borrow::Cow;

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `value` as a CSV cell that no spreadsheet runs as a formula.
pub fn neutralised(value: &str) -> Cow<'_, str> {
    match value.chars().next() {
        Some(first) if FORMULA_STARTS.contains(&first) && !numeric(value) => {
            Cow::Owned(format!("'{value}"))
        }
        _ => Cow::Borrowed(value),
    }
}

/// A cell of an exported file as it was before [`neutralised`].
pub fn restored(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if neutralised(rest).len() != rest.len() => rest,
        _ => cell,
    }
}

/// A number or a phone number: a sign, then digits with at most one decimal point, and
/// nothing else.
fn numeric(value: &str) -> bool {
    let digits = value.trim_start_matches(['+', '-']);
    value.len() - digits.len() == 1
        && digits.chars().next().is_some_and(|c| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_and_numbers_kept() {
        for formula in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "@SUM(A1)",
            "-2+3+cmd|' /C calc'!A0",
            "+1+1",
            "\tx",
            "=1",
        ] {
            let cell = neutralised(formula);
            assert_eq!(cell, format!("'{formula}"));
            assert_eq!(restored(&cell), formula);
        }
        for plain in ["+4915112345678", "-12.5", "Ada", "", "'quoted", "1-2"] {
            assert_eq!(neutralised(plain), plain);
            assert_eq!(restored(plain), plain);
        }
    }
}
