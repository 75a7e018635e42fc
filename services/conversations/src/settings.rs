//! What each Workspace chose about its conversations: auto-close, closing notes, replies
//! to closed conversations and auto-assignment.
use ism_platform::error::FieldError;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::error::Error;

/// Shortest and longest inactivity before auto-close: 30 minutes to 14 days.
pub const AUTO_CLOSE_MINUTES: std::ops::RangeInclusive<i32> = 30..=20_160;
/// Most closing categories a Workspace keeps.
const MAX_CATEGORIES: usize = 100;

/// A Workspace's conversation settings; every default when it never saved any.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct WorkspaceSettings {
    pub auto_close_minutes: i32,
    /// `off`, `optional`, `category_required` or `both_required`.
    pub closing_notes: String,
    pub closing_categories: Vec<String>,
    pub reply_to_closed: bool,
    /// `off`, `round_robin` or `least_open`.
    pub auto_assign: String,
    pub auto_assign_team_id: Option<Uuid>,
    pub auto_assign_online_only: bool,
    pub auto_assign_cap: i32,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        Self {
            auto_close_minutes: 1440,
            closing_notes: "off".into(),
            closing_categories: Vec::new(),
            reply_to_closed: true,
            auto_assign: "off".into(),
            auto_assign_team_id: None,
            auto_assign_online_only: true,
            auto_assign_cap: 0,
        }
    }
}

impl WorkspaceSettings {
    /// Field errors of settings a manager submits.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !AUTO_CLOSE_MINUTES.contains(&self.auto_close_minutes) {
            return Err(FieldError::new(
                "settings.auto_close_minutes",
                "must be between 30 (30 minutes) and 20160 (14 days)",
            ));
        }
        if self.closing_categories.len() > MAX_CATEGORIES {
            return Err(FieldError::new(
                "settings.closing_categories",
                format!("at most {MAX_CATEGORIES} categories"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for category in &self.closing_categories {
            if category.trim().is_empty() || category.chars().count() > 100 {
                return Err(FieldError::new(
                    "settings.closing_categories",
                    "each category has 1 to 100 characters",
                ));
            }
            if !seen.insert(category.to_lowercase()) {
                return Err(FieldError::new(
                    "settings.closing_categories",
                    format!("{category:?} is listed twice"),
                ));
            }
        }
        let needs_categories = matches!(
            self.closing_notes.as_str(),
            "category_required" | "both_required"
        );
        if needs_categories && self.closing_categories.is_empty() {
            return Err(FieldError::new(
                "settings.closing_categories",
                "required categories need at least one category to choose from",
            ));
        }
        if self.auto_assign_cap < 0 {
            return Err(FieldError::new(
                "settings.auto_assign.cap",
                "must be 0 (no cap) or more",
            ));
        }
        Ok(())
    }

    /// The closing note to store, or the field that is missing or wrong.
    pub fn closing_note(
        &self,
        category: &str,
        summary: &str,
    ) -> Result<(String, String), FieldError> {
        let category = category.trim();
        let summary = summary.trim();
        if summary.chars().count() > 2000 {
            return Err(FieldError::new(
                "closing_summary",
                "must be at most 2000 characters",
            ));
        }
        let required = match self.closing_notes.as_str() {
            "off" => return Ok((String::new(), String::new())),
            "category_required" => (true, false),
            "both_required" => (true, true),
            _ => (false, false),
        };
        if category.is_empty() && required.0 {
            return Err(FieldError::new(
                "closing_category",
                "is required by this Workspace",
            ));
        }
        if summary.is_empty() && required.1 {
            return Err(FieldError::new(
                "closing_summary",
                "is required by this Workspace",
            ));
        }
        let known = self
            .closing_categories
            .iter()
            .find(|c| c.eq_ignore_ascii_case(category));
        let category = match known {
            Some(known) => known.clone(),
            None if category.is_empty() => String::new(),
            None => {
                return Err(FieldError::new(
                    "closing_category",
                    format!("{category:?} is not one of the Workspace's closing categories"),
                ));
            }
        };
        Ok((category, summary.to_owned()))
    }
}

const COLUMNS: &str = "auto_close_minutes, closing_notes, closing_categories, reply_to_closed, auto_assign, \
     auto_assign_team_id, auto_assign_online_only, auto_assign_cap";

/// The Workspace's settings.
pub async fn load(conn: &mut PgConnection, workspace_id: Uuid) -> Result<WorkspaceSettings, Error> {
    let stored: Option<WorkspaceSettings> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM workspace_settings WHERE workspace_id = $1"
    )))
    .bind(workspace_id)
    .fetch_optional(conn)
    .await?;
    Ok(stored.unwrap_or_default())
}

/// Replaces the Workspace's settings.
pub async fn save(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    settings: &WorkspaceSettings,
) -> Result<(), Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO workspace_settings (workspace_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (workspace_id) DO UPDATE SET
             auto_close_minutes = excluded.auto_close_minutes, closing_notes = excluded.closing_notes,
             closing_categories = excluded.closing_categories, reply_to_closed = excluded.reply_to_closed,
             auto_assign = excluded.auto_assign, auto_assign_team_id = excluded.auto_assign_team_id,
             auto_assign_online_only = excluded.auto_assign_online_only, auto_assign_cap = excluded.auto_assign_cap"
    )))
    .bind(workspace_id)
    .bind(settings.auto_close_minutes)
    .bind(&settings.closing_notes)
    .bind(&settings.closing_categories)
    .bind(settings.reply_to_closed)
    .bind(&settings.auto_assign)
    .bind(settings.auto_assign_team_id)
    .bind(settings.auto_assign_online_only)
    .bind(settings.auto_assign_cap)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requiring(notes: &str) -> WorkspaceSettings {
        WorkspaceSettings {
            closing_notes: notes.into(),
            closing_categories: vec!["Resolved".into(), "Spam".into()],
            ..Default::default()
        }
    }

    #[test]
    fn closing_notes_follow_the_workspace_choice() {
        assert_eq!(
            requiring("off").closing_note("Spam", "x").unwrap(),
            (String::new(), String::new())
        );
        assert_eq!(
            requiring("optional").closing_note("", "").unwrap(),
            (String::new(), String::new())
        );
        assert_eq!(
            requiring("category_required")
                .closing_note("", "done")
                .unwrap_err()
                .field,
            "closing_category"
        );
        assert_eq!(
            requiring("category_required")
                .closing_note("spam", "")
                .unwrap(),
            ("Spam".to_owned(), String::new())
        );
        assert_eq!(
            requiring("both_required")
                .closing_note("Spam", " ")
                .unwrap_err()
                .field,
            "closing_summary"
        );
        assert_eq!(
            requiring("optional")
                .closing_note("Billing", "")
                .unwrap_err()
                .field,
            "closing_category"
        );
    }

    #[test]
    fn auto_close_stays_between_thirty_minutes_and_fourteen_days() {
        let with = |minutes| WorkspaceSettings {
            auto_close_minutes: minutes,
            ..Default::default()
        };
        assert!(with(30).validate().is_ok());
        assert!(with(20_160).validate().is_ok());
        assert_eq!(
            with(29).validate().unwrap_err().field,
            "settings.auto_close_minutes"
        );
        assert_eq!(
            with(20_161).validate().unwrap_err().field,
            "settings.auto_close_minutes"
        );
        let no_categories = WorkspaceSettings {
            closing_notes: "category_required".into(),
            ..Default::default()
        };
        assert_eq!(
            no_categories.validate().unwrap_err().field,
            "settings.closing_categories"
        );
    }
}
