//! The workflows service's own settings, the `[workflows]` section of `default.toml`.
use std::collections::HashMap;

use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use serde::Deserialize;
use uuid::Uuid;

/// Limits and pace of workflows.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowsSettings {
    /// Steps a workflow may have.
    pub max_steps: usize,
    /// Workflows a Workspace may have.
    pub max_workflows: i64,
    /// Workspaces with limits of their own, by id (`[workflows.workspace_limits.<id>]`).
    #[serde(default)]
    pub workspace_limits: HashMap<Uuid, Limits>,
    /// Steps one run may take before it fails (stops runaway loops).
    pub step_budget: i32,
    /// How often due runs and timers are looked for when nothing wakes the engine.
    pub poll_ms: u64,
    /// How long a replica holds a run it claimed before another may take it over.
    pub lease_seconds: u64,
    /// How often an assign step with rules tries again while no User is eligible.
    pub assign_retry_seconds: u64,
    /// The least time between two firings of a scheduled workflow.
    pub min_schedule_seconds: u64,
}

/// One Workspace's own limits; what is left out is the default's.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_steps: Option<usize>,
    pub max_workflows: Option<i64>,
}

impl WorkflowsSettings {
    /// Steps a workflow of `workspace_id` may have.
    pub fn max_steps(&self, workspace_id: Uuid) -> usize {
        self.limits(workspace_id)
            .max_steps
            .unwrap_or(self.max_steps)
    }

    /// Workflows `workspace_id` may have.
    pub fn max_workflows(&self, workspace_id: Uuid) -> i64 {
        self.limits(workspace_id)
            .max_workflows
            .unwrap_or(self.max_workflows)
    }

    fn limits(&self, workspace_id: Uuid) -> Limits {
        self.workspace_limits
            .get(&workspace_id)
            .copied()
            .unwrap_or_default()
    }
}

impl Section for WorkflowsSettings {
    const NAME: &'static str = "workflows";

    fn validate(&self) -> Result<(), Violations> {
        let mut v = Violations::new();
        if !(1..=1000).contains(&self.max_steps) {
            v.push(FieldError::new("max_steps", "must be 1 to 1000"));
        }
        if self.max_workflows < 1 {
            v.push(FieldError::new("max_workflows", "must be at least 1"));
        }
        for (id, limits) in &self.workspace_limits {
            if limits.max_steps.is_some_and(|n| !(1..=1000).contains(&n)) {
                v.push(FieldError::new(
                    format!("workspace_limits.{id}.max_steps"),
                    "must be 1 to 1000",
                ));
            }
            if limits.max_workflows.is_some_and(|n| n < 1) {
                v.push(FieldError::new(
                    format!("workspace_limits.{id}.max_workflows"),
                    "must be at least 1",
                ));
            }
        }
        if self.step_budget < 1 {
            v.push(FieldError::new("step_budget", "must be at least 1"));
        }
        if self.poll_ms < 10 {
            v.push(FieldError::new("poll_ms", "must be at least 10"));
        }
        if self.assign_retry_seconds < 1 {
            v.push(FieldError::new(
                "assign_retry_seconds",
                "must be at least 1",
            ));
        }
        if self.min_schedule_seconds < 1 {
            v.push(FieldError::new(
                "min_schedule_seconds",
                "must be at least 1",
            ));
        }
        if self.lease_seconds < 1 {
            v.push(FieldError::new("lease_seconds", "must be at least 1"));
        }
        v.into_result()
    }
}
