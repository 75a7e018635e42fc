//! Runs as people see them: starting one by hand, the history of a workflow's or a
//! Contact's runs with every step, cancelling and retrying.
use std::sync::Arc;

use ism_platform::paging;
use ism_proto::conversations::v1 as cv;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::announce;
use crate::engine::Peers;
use crate::error::Error;
use crate::states::RunState;
use crate::store::{self, Run, RunStep};
use crate::triggers::{self, Subject};

#[derive(Clone)]
pub struct Runs {
    pub pool: PgPool,
    pub peers: Peers,
    pub wake: Arc<Notify>,
}

impl Runs {
    /// Starts the workflow's published version for a conversation; `None` when its reentry
    /// policy or once-per-Contact starts nothing.
    pub async fn start(
        &self,
        workspace_id: Uuid,
        workflow_id: Uuid,
        conversation_id: Uuid,
    ) -> Result<Option<Run>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let workflow = store::workflow(&mut conn, workspace_id, workflow_id)
            .await?
            .ok_or(Error::NotFound("workflow"))?;
        drop(conn);
        let Some((published, definition)) = workflow.startable()? else {
            return Err(Error::precondition(
                "workflow",
                "is not published and enabled",
            ));
        };
        let conversation = self
            .peers
            .conversations
            .call(
                workspace_id,
                "conversation",
                cv::GetConversationRequest {
                    id: conversation_id.to_string(),
                },
                |mut c, r| async move { c.get_conversation(r).await },
            )
            .await?
            .conversation
            .ok_or(Error::NotFound("conversation"))?;
        let parse = |value: &str| {
            Uuid::parse_str(value).map_err(|_| {
                Error::Unexpected(anyhow::anyhow!(
                    "conversations answered a bad id {}",
                    ism_platform::convert::quoted(value)
                ))
            })
        };
        let subject = Subject {
            workspace_id,
            contact_id: parse(&conversation.contact_id)?,
            conversation_id,
            channel_id: parse(&conversation.channel_id)?,
            text: String::new(),
            variables: Default::default(),
        };
        let mut tx = self.pool.begin().await?;
        let run = triggers::start(&mut tx, &self.peers, &published, &definition, &subject).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(run)
    }

    pub async fn list(
        &self,
        workspace_id: Uuid,
        workflow_id: Option<Uuid>,
        contact_id: Option<Uuid>,
        state: Option<RunState>,
        page_size: i64,
        after: Option<Uuid>,
    ) -> Result<(Vec<Run>, String), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let rows = store::runs(
            &mut conn,
            workspace_id,
            workflow_id,
            contact_id,
            state,
            after,
            page_size + 1,
        )
        .await?;
        Ok(paging::finish(rows, page_size, |r| r.id))
    }

    pub async fn read(&self, workspace_id: Uuid, id: Uuid) -> Result<(Run, Vec<RunStep>), Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let run = store::run(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("run"))?;
        let steps = store::run_steps(&mut conn, id).await?;
        Ok((run, steps))
    }

    /// Moves the run from one of `from` to `to` under its row lock.
    async fn change(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        from: &[RunState],
        to: RunState,
        why: &str,
    ) -> Result<(Run, Vec<RunStep>), Error> {
        let mut tx = self.pool.begin().await?;
        store::run(&mut tx, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("run"))?;
        let mut run = store::lock_run(&mut tx, id)
            .await?
            .ok_or(Error::NotFound("run"))?;
        if !from.contains(&run.state) {
            return Err(Error::precondition(
                "state",
                format!("is {}; {why}", run.state.as_str()),
            ));
        }
        run.state = to;
        run.wake_at = chrono::Utc::now();
        if to == RunState::Running {
            run.error.clear();
        }
        store::advance(&mut tx, &run).await?;
        announce::moved(&mut tx, &run).await?;
        tx.commit().await?;
        self.wake.notify_one();
        self.read(workspace_id, id).await
    }

    pub async fn cancel(&self, workspace_id: Uuid, id: Uuid) -> Result<(Run, Vec<RunStep>), Error> {
        self.change(
            workspace_id,
            id,
            &[RunState::Running, RunState::Waiting],
            RunState::Cancelled,
            "only a running or waiting run can be cancelled",
        )
        .await
    }

    pub async fn retry(&self, workspace_id: Uuid, id: Uuid) -> Result<(Run, Vec<RunStep>), Error> {
        self.change(
            workspace_id,
            id,
            &[RunState::Failed],
            RunState::Running,
            "only a failed run can be retried",
        )
        .await
    }
}
