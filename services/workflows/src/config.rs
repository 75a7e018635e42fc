//! The workflows service's own settings, the `[workflows]` section of `default.toml`.
use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use serde::Deserialize;

/// Limits and pace of workflows.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkflowsSettings {
    /// Steps a workflow may have.
    pub max_steps: usize,
    /// Workflows a Workspace may have.
    pub max_workflows: i64,
    /// Steps one run may take before it fails (stops runaway loops).
    pub step_budget: i32,
    /// How often due runs and timers are looked for when nothing wakes the engine.
    pub poll_ms: u64,
    /// How long a replica holds a run it claimed before another may take it over.
    pub lease_seconds: u64,
    /// How often an assign step with rules tries again while no User is eligible.
    pub assign_retry_seconds: u64,
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
        if self.lease_seconds < 1 {
            v.push(FieldError::new("lease_seconds", "must be at least 1"));
        }
        v.into_result()
    }
}
