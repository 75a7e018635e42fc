//! Running assignment decisions: AssignNext for a caller, auto-assignment of new and
//! woken conversations, and handing out the unassigned backlog when a User frees up.
use sqlx::PgPool;
use uuid::Uuid;

use crate::assign::{self, Rules, Strategy};
use crate::directory::Directory;
use crate::error::Error;
use crate::settings::{self, WorkspaceSettings};
use crate::store::{self, Conversation};

/// Conversations handed out per backlog pass, so one pass stays short.
const BACKLOG_BATCH: usize = 100;

/// Decides assignments against the Users the workspaces service knows.
#[derive(Clone)]
pub struct Assigner {
    pub pool: PgPool,
    pub directory: Directory,
}

/// The Workspace's auto-assignment rules; `None` when it is off.
fn auto_rules(settings: &WorkspaceSettings) -> Option<Rules> {
    let strategy = match settings.auto_assign.as_str() {
        "round_robin" => Strategy::RoundRobin,
        "least_open" => Strategy::LeastOpen,
        _ => return None,
    };
    Some(Rules {
        strategy,
        team_id: settings.auto_assign_team_id,
        online_only: settings.auto_assign_online_only,
        cap: settings.auto_assign_cap,
    })
}

impl Assigner {
    /// One decision for `conversation_id` by `rules`; the conversation and whether a
    /// User was found.
    pub async fn assign_next(
        &self,
        workspace_id: Uuid,
        conversation_id: Uuid,
        rules: &Rules,
        assigned_by: &str,
    ) -> Result<(Conversation, bool), Error> {
        let candidates = self
            .directory
            .candidates(workspace_id, rules.team_id, "rules.team_id")
            .await?;
        let mut tx = self.pool.begin().await?;
        let current =
            assign::lock_assignable(&mut tx, workspace_id, conversation_id, "conversation_id")
                .await?;
        let decided = assign::decide(&mut tx, &current, rules, &candidates, assigned_by).await?;
        tx.commit().await?;
        Ok(match decided {
            Some(conversation) => (conversation, true),
            None => (current, false),
        })
    }

    /// Auto-assigns a new or reopened conversation when the Workspace wants it and the
    /// conversation has no available assignee.
    pub async fn auto_assign(
        &self,
        workspace_id: Uuid,
        conversation_id: Uuid,
    ) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let Some(rules) = auto_rules(&settings::load(&mut conn, workspace_id).await?) else {
            return Ok(());
        };
        let current = store::conversation(&mut conn, workspace_id, conversation_id).await?;
        drop(conn);
        if let Some(assignee) = current.assignee_user_id {
            let still_here = match self
                .directory
                .user(workspace_id, assignee, "assignee_user_id")
                .await
            {
                Ok(user) => user.online,
                Err(Error::Invalid(_)) => false,
                Err(e) => return Err(e),
            };
            if still_here {
                return Ok(());
            }
        }
        self.assign_next(workspace_id, conversation_id, &rules, "auto_assign")
            .await?;
        Ok(())
    }

    /// Hands the Workspace's unassigned open conversations out, oldest first, while
    /// some User is eligible. Returns how many were assigned.
    pub async fn drain_backlog(&self, workspace_id: Uuid) -> Result<usize, Error> {
        let mut conn = self.pool.acquire().await?;
        let Some(rules) = auto_rules(&settings::load(&mut conn, workspace_id).await?) else {
            return Ok(0);
        };
        drop(conn);
        let candidates = self
            .directory
            .candidates(workspace_id, rules.team_id, "auto_assign.team_id")
            .await?;
        let mut assigned = 0;
        while assigned < BACKLOG_BATCH {
            let mut tx = self.pool.begin().await?;
            let Some(oldest) = assign::oldest_unassigned(&mut tx, workspace_id).await? else {
                break;
            };
            if assign::decide(&mut tx, &oldest, &rules, &candidates, "auto_assign")
                .await?
                .is_none()
            {
                break;
            }
            tx.commit().await?;
            assigned += 1;
        }
        Ok(assigned)
    }

    /// Runs `work` after a commit without failing the caller: assignment that cannot
    /// happen now is retried when a User frees up.
    pub async fn best_effort(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<(), Error>>,
    ) {
        if let Err(e) = work.await {
            tracing::warn!(error = %e, what, "assignment postponed");
        }
    }
}
