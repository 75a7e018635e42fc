//! What an agent does to a conversation: snooze, wake, close, open, assign and unassign. Each
//! use case owns its transaction; assignment follow-ups run after the commit.
use chrono::{DateTime, Utc};
use ism_platform::auth::Caller;
use sqlx::PgPool;
use uuid::Uuid;

use crate::assign;
use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::error::Error;
use crate::lifecycle::{self, Closing};
use crate::publish;
use crate::settings;
use crate::states::Status;
use crate::store::{self, Conversation};
use crate::wire;

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

    /// An open conversation with the Contact of `id` on its Channel (see the API's
    /// OpenConversation), and whether this call opened it.
    pub async fn open(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<(Conversation, bool), Error> {
        let mut tx = self.pool.begin().await?;
        let current = store::lock_conversation(&mut tx, workspace_id, id).await?;
        if current.status != Status::Closed {
            return Ok((current, false));
        }
        let party = (workspace_id, current.contact_id, current.channel_id);
        if let Some(open) = store::lock_active(&mut tx, &[party]).await?.remove(&party) {
            return Ok((open, false));
        }
        let (opener, opener_id) = wire::author(caller);
        let at = self.clock.now();
        let opened = store::open_from_workspace(&mut tx, &current, opener, &opener_id, at).await?;
        publish::opened(&mut tx, &opened, opener, &opener_id).await?;
        tx.commit().await?;
        Ok((opened, true))
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
