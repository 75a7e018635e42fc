//! What an agent does to a conversation: snooze, wake, close, assign and unassign. Each
//! use case owns its transaction; assignment follow-ups run after the commit.
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::assign;
use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::error::Error;
use crate::lifecycle::{self, Closing};
use crate::settings;
use crate::store::{self, Conversation};

/// The handling use cases, with the server's dependencies.
pub struct Handling<'a> {
    pub pool: &'a PgPool,
    pub clock: Clock,
    pub assigner: &'a Assigner,
}

impl Handling<'_> {
    /// Snoozes an open conversation until `until`.
    pub async fn snooze(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        until: DateTime<Utc>,
    ) -> Result<Conversation, Error> {
        let mut tx = self.pool.begin().await?;
        let conversation =
            lifecycle::snooze(&mut tx, workspace_id, id, until, self.clock.now()).await?;
        tx.commit().await?;
        Ok(conversation)
    }

    /// Wakes a snoozed conversation by hand, then offers it for auto-assignment.
    pub async fn wake(&self, workspace_id: Uuid, id: Uuid) -> Result<Conversation, Error> {
        let mut tx = self.pool.begin().await?;
        let conversation = lifecycle::wake(&mut tx, workspace_id, id, "user").await?;
        tx.commit().await?;
        self.assigner
            .best_effort(
                "reassign woken",
                self.assigner.auto_assign(workspace_id, id),
            )
            .await;
        let mut conn = self.pool.acquire().await?;
        store::conversation(&mut conn, workspace_id, conversation.id).await
    }

    /// Closes a conversation with the Workspace's closing note rules; the agent it frees
    /// gets the next of the backlog.
    pub async fn close(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        closed_by: &str,
        category: &str,
        summary: &str,
    ) -> Result<Conversation, Error> {
        let mut tx = self.pool.begin().await?;
        let settings = settings::load(&mut tx, workspace_id).await?;
        let (category, summary) = settings.closing_note(category, summary)?;
        let closing = Closing {
            closed_by,
            category: &category,
            summary: &summary,
            at: self.clock.now(),
        };
        let conversation = lifecycle::close(&mut tx, workspace_id, id, &closing).await?;
        tx.commit().await?;
        if conversation.assignee_user_id.is_some() {
            let drained = async { self.assigner.drain_backlog(workspace_id).await.map(|_| ()) };
            self.assigner
                .best_effort("hand out the backlog", drained)
                .await;
        }
        Ok(conversation)
    }

    /// Assigns an open conversation to an active User, a Team or both, checked with the
    /// workspaces service first.
    pub async fn assign(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        user_id: Option<Uuid>,
        team_id: Option<Uuid>,
        assigned_by: &str,
    ) -> Result<Conversation, Error> {
        let mut conn = self.pool.acquire().await?;
        store::conversation(&mut conn, workspace_id, id).await?;
        drop(conn);
        let directory = &self.assigner.directory;
        if let Some(user_id) = user_id {
            directory.user(workspace_id, user_id, "user_id").await?;
        }
        if let Some(team_id) = team_id {
            directory
                .candidates(workspace_id, Some(team_id), "team_id")
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let current = assign::lock_assignable(&mut tx, workspace_id, id, "id").await?;
        let conversation = assign::assign(&mut tx, &current, user_id, team_id, assigned_by).await?;
        tx.commit().await?;
        Ok(conversation)
    }

    /// Takes a conversation from its User and Team.
    pub async fn unassign(&self, workspace_id: Uuid, id: Uuid) -> Result<Conversation, Error> {
        let mut tx = self.pool.begin().await?;
        let current = store::lock_conversation(&mut tx, workspace_id, id).await?;
        let conversation = assign::unassign(&mut tx, &current).await?;
        tx.commit().await?;
        Ok(conversation)
    }
}
