//! Assignment: explicit assign and unassign, and the one AssignNext decision shared by
//! workflows and auto-assignment (round-robin or least open, online only, under a cap).
//!
//! A decision holds the conversation's row lock. Round-robin then locks its pool's cursor
//! row and the candidates' load rows in id order. Least-open locks the lightest User
//! under the cap with SKIP LOCKED in one statement, so concurrent decisions spread over
//! Users, and falls back to locking every candidate in id order when the only ones under
//! the cap were busy. Either way a
//! User's count is read under its row lock before it is raised, so no slot beyond the cap
//! is handed out, and locks taken in id order (or skipped) never deadlock.
use ism_proto::events::v1::{ConversationAssigned, ConversationUnassigned};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Error;
use crate::publish::{emit, id_or_empty};
use crate::states::Status;
use crate::store::{self, CONVERSATION, Conversation};
use ism_platform::events::topics;

/// How a decision chooses among eligible Users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    LeastOpen,
}

/// The rules of one decision.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub strategy: Strategy,
    /// The Team whose members are eligible; `None` for the whole Workspace.
    pub team_id: Option<Uuid>,
    pub online_only: bool,
    /// Most not-closed conversations per User; 0 is no cap.
    pub cap: i32,
}

/// A User who may be chosen.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub user_id: Uuid,
    pub online: bool,
}

/// Locks a conversation to assign it; a closed one is FAILED_PRECONDITION naming
/// `field`.
pub async fn lock_assignable(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    field: &'static str,
) -> Result<Conversation, Error> {
    let current = store::lock_conversation(conn, workspace_id, id).await?;
    if current.status == Status::Closed {
        return Err(Error::precondition(
            field,
            "a closed conversation is not assigned",
        ));
    }
    Ok(current)
}

/// Sets the conversation's User and Team, emitting `conversations.conversation.assigned`.
pub async fn assign(
    conn: &mut PgConnection,
    current: &Conversation,
    user_id: Option<Uuid>,
    team_id: Option<Uuid>,
    assigned_by: &str,
) -> Result<Conversation, Error> {
    let conversation = set_assignee(conn, current.id, user_id, team_id).await?;
    let assigned = ConversationAssigned {
        conversation_id: current.id.to_string(),
        user_id: id_or_empty(user_id),
        team_id: id_or_empty(team_id),
        previous_user_id: id_or_empty(current.assignee_user_id),
        previous_team_id: id_or_empty(current.assignee_team_id),
        assigned_by: assigned_by.to_owned(),
    };
    emit(
        conn,
        &topics::CONVERSATION_ASSIGNED,
        current.workspace_id,
        current.id,
        &assigned,
    )
    .await?;
    Ok(conversation)
}

/// Clears the conversation's User and Team, emitting `conversations.conversation.unassigned`.
pub async fn unassign(
    conn: &mut PgConnection,
    current: &Conversation,
) -> Result<Conversation, Error> {
    let conversation = set_assignee(conn, current.id, None, None).await?;
    let unassigned = ConversationUnassigned {
        conversation_id: current.id.to_string(),
        previous_user_id: id_or_empty(current.assignee_user_id),
        previous_team_id: id_or_empty(current.assignee_team_id),
    };
    emit(
        conn,
        &topics::CONVERSATION_UNASSIGNED,
        current.workspace_id,
        current.id,
        &unassigned,
    )
    .await?;
    Ok(conversation)
}

async fn set_assignee(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Option<Uuid>,
    team_id: Option<Uuid>,
) -> Result<Conversation, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET assignee_user_id = $2, assignee_team_id = $3 WHERE id = $1 RETURNING {CONVERSATION}"
    )))
    .bind(id)
    .bind(user_id)
    .bind(team_id)
    .fetch_one(conn)
    .await?)
}

/// Chooses a User for the locked, not closed conversation `current` among `candidates`
/// by `rules`, and assigns it; `None` when nobody is eligible (it stays as it is).
pub async fn decide(
    conn: &mut PgConnection,
    current: &Conversation,
    rules: &Rules,
    candidates: &[Candidate],
    assigned_by: &str,
) -> Result<Option<Conversation>, Error> {
    let workspace_id = current.workspace_id;
    let eligible: Vec<Uuid> = candidates
        .iter()
        .filter(|c| c.online || !rules.online_only)
        .map(|c| c.user_id)
        .collect();
    if eligible.is_empty() {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO agent_load (workspace_id, user_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
    )
    .bind(workspace_id)
    .bind(&eligible)
    .execute(&mut *conn)
    .await?;
    let chosen = match rules.strategy {
        Strategy::LeastOpen => match lightest_free(conn, current, rules, &eligible).await? {
            Lightest::Chosen(user) => Some(user),
            Lightest::AllFull => None,
            Lightest::Busy => locked_choice(conn, current, rules, &eligible, None).await?,
        },
        Strategy::RoundRobin => {
            let pool = rules
                .team_id
                .map_or_else(|| "workspace".to_owned(), |team| format!("team:{team}"));
            sqlx::query(
                "INSERT INTO assignment_cursors (workspace_id, pool) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(workspace_id)
            .bind(&pool)
            .execute(&mut *conn)
            .await?;
            let last: Option<Uuid> = sqlx::query_scalar(
                "SELECT last_user_id FROM assignment_cursors WHERE workspace_id = $1 AND pool = $2 FOR UPDATE",
            )
            .bind(workspace_id)
            .bind(&pool)
            .fetch_one(&mut *conn)
            .await?;
            let chosen = locked_choice(conn, current, rules, &eligible, last).await?;
            sqlx::query(
                "UPDATE assignment_cursors SET last_user_id = coalesce($3, last_user_id)
                 WHERE workspace_id = $1 AND pool = $2",
            )
            .bind(workspace_id)
            .bind(&pool)
            .bind(chosen)
            .execute(&mut *conn)
            .await?;
            chosen
        }
    };
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    let team_id = rules.team_id.or(current.assignee_team_id);
    assign(conn, current, Some(chosen), team_id, assigned_by)
        .await
        .map(Some)
}

/// Locks every eligible User's load row in id order and chooses by `rules`.
async fn locked_choice(
    conn: &mut PgConnection,
    current: &Conversation,
    rules: &Rules,
    eligible: &[Uuid],
    last: Option<Uuid>,
) -> Result<Option<Uuid>, Error> {
    let loads: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT user_id, open_count FROM agent_load WHERE workspace_id = $1 AND user_id = ANY($2)
         ORDER BY user_id FOR UPDATE",
    )
    .bind(current.workspace_id)
    .bind(eligible)
    .fetch_all(&mut *conn)
    .await?;
    Ok(choose(&loads, current.assignee_user_id, rules, last))
}

/// What the lock-free attempt of a least-open decision found.
enum Lightest {
    Chosen(Uuid),
    /// Every User is at the cap.
    AllFull,
    /// Some User was being decided on concurrently: decide again, waiting.
    Busy,
}

/// Locks the lightest User under the cap in one statement, skipping load rows another
/// decision holds, so concurrent decisions spread over Users instead of queueing. The cap
/// is tested again on the row as locked (its latest version), so a count raised meanwhile
/// is never taken beyond the cap.
async fn lightest_free(
    conn: &mut PgConnection,
    current: &Conversation,
    rules: &Rules,
    eligible: &[Uuid],
) -> Result<Lightest, Error> {
    // `$3` is the conversation's own assignee: it does not count against them.
    const UNDER_CAP: &str = "workspace_id = $1 AND user_id = ANY($2)
         AND ($4 = 0 OR open_count - (user_id IS NOT DISTINCT FROM $3)::int < $4)";
    let chosen: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT user_id FROM agent_load WHERE {UNDER_CAP}
         ORDER BY open_count - (user_id IS NOT DISTINCT FROM $3)::int, user_id
         LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(current.workspace_id)
    .bind(eligible)
    .bind(current.assignee_user_id)
    .bind(rules.cap)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(user) = chosen {
        return Ok(Lightest::Chosen(user));
    }
    let busy: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM agent_load WHERE {UNDER_CAP})"
    )))
    .bind(current.workspace_id)
    .bind(eligible)
    .bind(current.assignee_user_id)
    .bind(rules.cap)
    .fetch_one(&mut *conn)
    .await?;
    Ok(if busy {
        Lightest::Busy
    } else {
        Lightest::AllFull
    })
}

/// The User to choose from `loads` (sorted by id): under the cap (not counting the
/// conversation itself for its current assignee), then by strategy.
fn choose(
    loads: &[(Uuid, i32)],
    current_assignee: Option<Uuid>,
    rules: &Rules,
    last: Option<Uuid>,
) -> Option<Uuid> {
    let under_cap = loads.iter().filter_map(|&(user, count)| {
        let count = if Some(user) == current_assignee {
            count - 1
        } else {
            count
        };
        (rules.cap == 0 || count < rules.cap).then_some((user, count))
    });
    match rules.strategy {
        Strategy::LeastOpen => under_cap.min_by_key(|&(user, count)| (count, user)),
        Strategy::RoundRobin => {
            let open: Vec<(Uuid, i32)> = under_cap.collect();
            open.iter()
                .find(|(user, _)| last.is_none_or(|last| *user > last))
                .or_else(|| open.first())
                .copied()
        }
    }
    .map(|(user, _)| user)
}

/// The oldest open, unassigned conversation of the Workspace nobody else is deciding on,
/// locked.
pub async fn oldest_unassigned(
    conn: &mut PgConnection,
    workspace_id: Uuid,
) -> Result<Option<Conversation>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations
         WHERE workspace_id = $1 AND status = 'open' AND assignee_user_id IS NULL
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(workspace_id)
    .fetch_optional(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(strategy: Strategy, cap: i32) -> Rules {
        Rules {
            strategy,
            team_id: None,
            online_only: false,
            cap,
        }
    }

    #[test]
    fn round_robin_takes_the_next_user_after_the_last_and_wraps() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let loads = [(a, 5), (b, 0), (c, 9)];
        let rr = rules(Strategy::RoundRobin, 0);
        assert_eq!(choose(&loads, None, &rr, None), Some(a));
        assert_eq!(choose(&loads, None, &rr, Some(a)), Some(b));
        assert_eq!(choose(&loads, None, &rr, Some(c)), Some(a));
        let capped = rules(Strategy::RoundRobin, 6);
        assert_eq!(
            choose(&loads, None, &capped, Some(b)),
            Some(a),
            "c is at the cap"
        );
    }

    #[test]
    fn least_open_takes_the_lightest_user_under_the_cap() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let loads = [(a, 2), (b, 1)];
        assert_eq!(
            choose(&loads, None, &rules(Strategy::LeastOpen, 0), None),
            Some(b)
        );
        assert_eq!(
            choose(&loads, None, &rules(Strategy::LeastOpen, 1), None),
            None
        );
        assert_eq!(
            choose(&loads, Some(b), &rules(Strategy::LeastOpen, 1), None),
            Some(b),
            "the conversation itself does not count against its own assignee"
        );
    }
}
