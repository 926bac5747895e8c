//! A failed (or never finishing) deployment: record it, quarantine its digest, and roll the
//! service back when that is pushdeploy's job.

use super::decide::{on_failure, FailureAction};
use super::{good_or, key_of, RollbackHandler};
use crate::deploy::{now_ms, now_text};
use crate::ledger::{DeploymentRecord, Kind, Status};
use crate::outcome::{Outcome, OutcomeKind};
use aws_sdk_ecs::types::Service;

impl RollbackHandler {
    pub(super) async fn on_failure(
        &self,
        mut failed: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        reason: &str,
        deadline_ms: u64,
    ) -> Outcome {
        let action = on_failure(&failed, service, history);
        let now = now_text();
        failed.updated_at = now.clone();
        match action {
            FailureAction::AlreadySettled(why) => {
                Outcome::recorded(&failed, why).with_kind(OutcomeKind::Skipped)
            }
            FailureAction::NeedsHuman(why) => {
                failed.status = Status::NeedsHuman;
                failed.reason = Some(format!("{reason}; {why}"));
                let outcome = Outcome::recorded(&failed, failed.reason.clone().unwrap_or_default())
                    .with_kind(OutcomeKind::NeedsHuman);
                self.write(&failed, outcome).await
            }
            FailureAction::EcsRollsBack(why) | FailureAction::ChangedSince(why) => {
                self.fail_and_quarantine(failed, reason, &why, &now).await
            }
            FailureAction::RollBack { target, why } => {
                match self
                    .ledger
                    .claim_for_rollback(&failed, deadline_ms, now_ms(), &now)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        let why = "a newer push owns the service now: not rolling back over it"
                            .to_string();
                        return self.fail_and_quarantine(failed, reason, &why, &now).await;
                    }
                    Err(e) => {
                        return Outcome::failed(
                            &key_of(&failed),
                            format!("not rolled back yet: {e}"),
                            e.retryable(),
                        )
                    }
                }
                let cluster = service.cluster_arn().unwrap_or(&failed.cluster).to_string();
                let updated = match self
                    .aws
                    .update_service(&cluster, &failed.service, &target)
                    .await
                {
                    Ok(updated) => updated,
                    Err(e) => {
                        // Leave the failed deployment as it was, so that the retry tries again.
                        let _ = self
                            .ledger
                            .release(
                                &failed.service_arn,
                                &failed.event_id,
                                Status::Deploying,
                                Some(&e.to_string()),
                                &now,
                            )
                            .await;
                        return Outcome::failed(
                            &key_of(&failed),
                            format!("the rollback {why} failed: {e}"),
                            e.retryable,
                        );
                    }
                };
                let rollback = DeploymentRecord {
                    kind: Kind::Rollback,
                    reverts: Some(failed.sk()),
                    // Acting for the failed push: its event id is what holds the service.
                    event_id: failed.event_id.clone(),
                    order_key: format!("{now}#rollback-{}", failed.event_id),
                    previous_task_definition: failed
                        .new_task_definition
                        .clone()
                        .unwrap_or_default(),
                    new_task_definition: Some(target.clone()),
                    deployment_id: updated.deployment_id.clone(),
                    status: Status::Deployed,
                    reason: Some(format!("rolls back {} ({reason})", failed.digest)),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    ..good_or(&failed, history, &target)
                };
                let summary = format!("rolled back {why}: the deployment of {} failed ({reason}); that digest is now quarantined for this service", failed.digest);
                // The line names the failed digest: that is what the operator looks for.
                let mut outcome = Outcome {
                    digest: Some(failed.digest.clone()),
                    ..Outcome::recorded(&rollback, summary.clone())
                        .with_kind(OutcomeKind::RolledBack)
                };
                if let Err(e) = self.ledger.put(&rollback).await {
                    outcome.reason = Some(format!(
                        "{summary} (the ledger could not record the rollback: {e})"
                    ));
                }
                let settled = self
                    .fail_and_quarantine(failed, reason, "rolled back", &now)
                    .await;
                if settled.outcome == OutcomeKind::Failed {
                    outcome.reason = Some(format!(
                        "{} ({})",
                        outcome.reason.unwrap_or_default(),
                        settled.reason.unwrap_or_default()
                    ));
                }
                outcome
            }
        }
    }

    /// Marks the deployment failed, quarantines its digest for the service, frees the service.
    async fn fail_and_quarantine(
        &self,
        mut failed: DeploymentRecord,
        reason: &str,
        what_next: &str,
        now: &str,
    ) -> Outcome {
        failed.status = Status::Failed;
        failed.reason = Some(format!("{reason}; {what_next}"));
        let summary = format!("the deployment of {} failed ({reason}); {what_next}; that digest is now quarantined for this service", failed.digest);
        let written = match self.ledger.quarantine(&failed, reason, now).await {
            Ok(()) => match self.ledger.put(&failed).await {
                Ok(()) => self
                    .ledger
                    .release(
                        &failed.service_arn,
                        &failed.event_id,
                        Status::Failed,
                        failed.reason.as_deref(),
                        now,
                    )
                    .await
                    .or_else(|e| match e {
                        // A newer push took the head: nothing of this deployment's to release.
                        crate::ledger::LedgerError::LostLease(_) => Ok(()),
                        e => Err(e),
                    }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => Outcome::recorded(&failed, summary),
            Err(e) => Outcome::failed(
                &key_of(&failed),
                format!("{summary}, but the ledger could not record it: {e}"),
                e.retryable(),
            ),
        }
    }
}
