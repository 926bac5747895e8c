//! The rollback function's dry run: the same decision over the same ledger and ECS state,
//! logged; nothing written to ECS, the ledger or SNS.

use super::decide::{on_failure, FailureAction};
use super::{dry_run_outcome, key_of, RollbackHandler};
use crate::ecs_event::{DeploymentChange, DeploymentState};
use crate::ledger::{DeploymentRecord, Status};
use crate::outcome::Outcome;
use aws_sdk_ecs::types::Service;

impl RollbackHandler {
    pub(super) fn dry_run(
        &self,
        record: DeploymentRecord,
        change: &DeploymentChange,
        service: &Service,
        history: &[DeploymentRecord],
    ) -> Outcome {
        let revision = record.new_task_definition.clone().unwrap_or_default();
        let what = match change.state {
            DeploymentState::InProgress => {
                format!(
                    "would record deployment {} as in progress",
                    change.deployment_id
                )
            }
            DeploymentState::Completed if record.status == Status::Deployed => {
                format!("would record {revision} as the service's last known good revision")
            }
            DeploymentState::Completed => format!(
                "would do nothing: already recorded as {}",
                record.status.as_str()
            ),
            DeploymentState::Failed => {
                let reason = if change.reason.is_empty() {
                    "ECS reported the deployment FAILED"
                } else {
                    change.reason.as_str()
                };
                return self.dry_run_failure(record, service, history, reason);
            }
        };
        with_record(dry_run_outcome(&key_of(&record), what), &record)
    }

    /// What the rollback of a failed deployment would do.
    pub(super) fn dry_run_failure(
        &self,
        failed: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        reason: &str,
    ) -> Outcome {
        let digest = &failed.digest;
        let what = match on_failure(&failed, service, history) {
            FailureAction::AlreadySettled(why) => format!("would do nothing: {why}"),
            FailureAction::NeedsHuman(why) => {
                format!("would mark the deployment as needing a human ({reason}; {why})")
            }
            FailureAction::AskEcsToRollBack(why) => format!(
                "would record the deployment as failed ({reason}), quarantine {digest} for this service, and ask ECS to roll back ({why})"
            ),
            FailureAction::EcsRollsBack(why) | FailureAction::ChangedSince(why) => format!(
                "would record the deployment as failed ({reason}), not roll back ({why}), and quarantine {digest} for this service"
            ),
            FailureAction::RollBack { target, why } => format!(
                "would roll the service back to {target} ({why}; pinned to the digests it ran when it names an image by tag) because the deployment failed ({reason}), and quarantine {digest} for this service"
            ),
        };
        with_record(dry_run_outcome(&key_of(&failed), what), &failed)
    }
}

/// The dry-run outcome, naming the deployment it is about.
fn with_record(outcome: Outcome, record: &DeploymentRecord) -> Outcome {
    let recorded = Outcome::recorded(record, String::new());
    Outcome {
        task_definition: recorded.task_definition,
        previous_task_definition: recorded.previous_task_definition,
        container: recorded.container,
        deployment_id: recorded.deployment_id,
        repository: recorded.repository,
        tag: recorded.tag,
        digest: recorded.digest,
        ..outcome
    }
}
