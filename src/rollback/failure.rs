//! A failed (or never finishing) deployment: record it, quarantine its digest, and roll the
//! service back when that is pushdeploy's job.

use super::decide::{on_failure, FailureAction};
use super::pin::NoSafeTarget;
use super::{good_or, key_of, RollbackHandler};
use crate::aws::primary_deployment;
use crate::clock::{now_ms, now_text};
use crate::ledger::{DeploymentRecord, Kind, Lease, LedgerError, Status, Written};
use crate::outcome::{Milestone, Outcome, OutcomeKind, SkipReason};
use aws_sdk_ecs::types::Service;

impl RollbackHandler {
    pub(super) async fn on_failure(
        &self,
        failed: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        reason: &str,
        lease: &Lease,
    ) -> Outcome {
        let action = on_failure(&failed, service, history);
        self.act_on_failure(action, failed, service, history, reason, lease)
            .await
    }

    pub(super) async fn act_on_failure(
        &self,
        action: FailureAction,
        mut failed: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        reason: &str,
        lease: &Lease,
    ) -> Outcome {
        let now = now_text();
        failed.updated_at = now.clone();
        match action {
            FailureAction::AlreadySettled(why) => self.already_settled(&failed, why, &now).await,
            FailureAction::NeedsHuman(why) => {
                failed.status = Status::NeedsHuman;
                failed.reason = Some(format!("{reason}; {why}"));
                let outcome = Outcome::recorded(&failed, failed.reason.clone().unwrap_or_default())
                    .with_kind(OutcomeKind::NeedsHuman);
                self.write(&failed, outcome).await
            }
            FailureAction::EcsRollsBack(why) => {
                // Kept in the sweep's watch until it sees ECS's rollback.
                failed.awaits_ecs_rollback = true;
                self.fail_and_quarantine(failed, reason, &why, &now).await
            }
            FailureAction::ChangedSince(why) => {
                self.fail_and_quarantine(failed, reason, &why, &now).await
            }
            FailureAction::AskEcsToRollBack(why) => {
                self.ask_ecs_to_roll_back(failed, service, reason, &why, &now)
                    .await
            }
            FailureAction::RollBack { target, why } => {
                match self
                    .ledger
                    .claim_for_rollback(&failed, lease, now_ms(), &now)
                    .await
                {
                    Ok(true) => {
                        self.roll_back(failed, service, history, reason, &target, &why, &now)
                            .await
                    }
                    Ok(false) => {
                        let why = "a newer push owns the service now: not rolling back over it";
                        self.fail_and_quarantine(failed, reason, why, &now).await
                    }
                    Err(e) => {
                        let why = format!("not rolled back yet: {e}");
                        Outcome::failed(&key_of(&failed), why, e.retryable())
                    }
                }
            }
        }
    }

    /// A failure an earlier report already settled: a skip. An earlier attempt may have
    /// settled the record but not freed the service: freed now.
    async fn already_settled(&self, failed: &DeploymentRecord, why: String, now: &str) -> Outcome {
        if failed.status == Status::Failed {
            if let Err(e) = self.release_failed(failed, now).await {
                return Outcome::failed(
                    &key_of(failed),
                    format!("{why}, but the ledger could not free the service: {e}"),
                    e.retryable(),
                );
            }
        }
        Outcome {
            skip_reason: Some(SkipReason::AlreadyHandled),
            ..Outcome::recorded(failed, why).with_kind(OutcomeKind::Skipped)
        }
    }

    /// Puts the service back on `target` (the service is claimed). The rollback is recorded
    /// before UpdateService, so that a retry after a crash or a lost answer finishes this
    /// rollback instead of mistaking it for someone else's change.
    #[allow(clippy::too_many_arguments)]
    async fn roll_back(
        &self,
        failed: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        reason: &str,
        target: &str,
        why: &str,
        now: &str,
    ) -> Outcome {
        let good = good_or(&failed, history, target);
        let (target, pinned_digest) = if service.task_definition() == Some(target) {
            // An earlier attempt's UpdateService landed: that revision was already safe.
            (target.to_string(), None)
        } else {
            match self.pinned_target(&failed, history, target).await {
                Ok(pinned) => pinned,
                Err(NoSafeTarget::Aws(e)) => {
                    return self
                        .stop_rollback(&failed, why, &e.to_string(), e.retryable, now)
                        .await
                }
                Err(NoSafeTarget::Unknown(why_not)) => {
                    return self.no_safe_target(failed, reason, &why_not, now).await
                }
            }
        };
        let mut rollback =
            rollback_record(&failed, good, &target, pinned_digest, history, reason, now);
        if let Err(stopped) = self.record_intent(&failed, &rollback, why, now).await {
            return stopped;
        }
        if let Err(stopped) = self
            .send_rollback(&failed, service, &target, &mut rollback, why, now)
            .await
        {
            return stopped;
        }
        self.rolled_back(failed, rollback, reason, why, now).await
    }

    /// The failed deployment's ECS id first: once the service is back on the target, it is how
    /// a retry of this event finds the deployment; then the rollback's intent. `Err`: the
    /// rollback stops here, with its outcome.
    async fn record_intent(
        &self,
        failed: &DeploymentRecord,
        rollback: &DeploymentRecord,
        why: &str,
        now: &str,
    ) -> Result<(), Outcome> {
        let intent = match self.ledger.put_unsettled(failed).await {
            Ok(Written::Landed) => self.ledger.put(rollback).await,
            Ok(Written::MovedOn) => {
                let why = "another report of this deployment settled it meanwhile: not rolled back";
                let _ = self.release_failed(failed, now).await;
                return Err(Outcome {
                    skip_reason: Some(SkipReason::AlreadyHandled),
                    ..Outcome::recorded(failed, why).with_kind(OutcomeKind::Skipped)
                });
            }
            Err(e) => Err(e),
        };
        match intent {
            Ok(()) => Ok(()),
            Err(e) => {
                let retryable = e.retryable();
                let e = format!("the ledger could not record it: {e}");
                Err(self.stop_rollback(failed, why, &e, retryable, now).await)
            }
        }
    }

    /// UpdateService onto `target`, unless an earlier attempt's landed; the rollback's own ECS
    /// deployment id noted.
    async fn send_rollback(
        &self,
        failed: &DeploymentRecord,
        service: &Service,
        target: &str,
        rollback: &mut DeploymentRecord,
        why: &str,
        now: &str,
    ) -> Result<(), Outcome> {
        if service.task_definition() == Some(target) {
            // An earlier attempt's UpdateService landed: nothing to send again.
            rollback.deployment_id = rollback
                .deployment_id
                .take()
                .or_else(|| primary_deployment(service, target));
            return Ok(());
        }
        let cluster = service.cluster_arn().unwrap_or(&failed.cluster).to_string();
        match self
            .aws
            .update_service(&cluster, &failed.service, target)
            .await
        {
            Ok(updated) => {
                rollback.deployment_id = updated.deployment_id;
                Ok(())
            }
            Err(e) => Err(self
                .stop_rollback(failed, why, &e.to_string(), e.retryable, now)
                .await),
        }
    }

    /// The service is back: the rollback recorded, the failed push failed and its digest
    /// quarantined. A ledger write that fails leaves the retry only the ledger to complete.
    async fn rolled_back(
        &self,
        failed: DeploymentRecord,
        mut rollback: DeploymentRecord,
        reason: &str,
        why: &str,
        now: &str,
    ) -> Outcome {
        let key = key_of(&failed);
        rollback.status = Status::Deployed;
        rollback.updated_at = now_text();
        let summary = format!("rolled back {why}: the deployment of {} failed ({reason}); that digest is now quarantined for this service", failed.digest);
        // The line names the failed digest: that is what the operator looks for.
        let mut outcome = Outcome {
            digest: Some(failed.digest.clone()),
            ..Outcome::recorded(&rollback, summary.clone()).with_kind(OutcomeKind::RolledBack)
        };
        let recorded = match self.ledger.put(&rollback).await {
            Ok(()) => {
                self.fail_and_quarantine(failed, reason, "rolled back", now)
                    .await
            }
            Err(e) => Outcome::failed(&key, format!("could not record it: {e}"), e.retryable()),
        };
        if recorded.outcome == OutcomeKind::Failed {
            outcome.retryable = recorded.retryable;
            outcome.reason = Some(format!(
                "{summary} ({})",
                recorded.reason.unwrap_or_default()
            ));
        }
        outcome
    }

    /// A service whose strategy has ECS own its rollbacks: stop its current service deployment
    /// with the ROLLBACK stop type, then record, quarantine, free. No UpdateService.
    async fn ask_ecs_to_roll_back(
        &self,
        mut failed: DeploymentRecord,
        service: &Service,
        reason: &str,
        why: &str,
        now: &str,
    ) -> Outcome {
        // The deployment's own service deployment when known: the service's current one may
        // already be a newer push's.
        let arn = failed
            .service_deployment_arn
            .clone()
            .or_else(|| service.current_service_deployment().map(str::to_string));
        let Some(arn) = arn else {
            let why = "ECS lists no current service deployment to stop: not rolled back";
            return self.no_safe_target(failed, reason, why, now).await;
        };
        if let Err(e) = self.aws.stop_and_roll_back(&arn).await {
            return Outcome::failed(
                &key_of(&failed),
                format!("not rolled back yet: {e}"),
                e.retryable,
            );
        }
        // Kept in the sweep's watch until the service deployment shows ECS's rollback ended.
        failed.awaits_ecs_rollback = true;
        self.fail_and_quarantine(failed, reason, why, now).await
    }

    /// Leaves the failed deployment as it was and frees the service, so that the retry tries
    /// the rollback again.
    async fn stop_rollback(
        &self,
        failed: &DeploymentRecord,
        why: &str,
        error: &str,
        retryable: bool,
        now: &str,
    ) -> Outcome {
        let _ = self
            .ledger
            .release(
                &failed.service_arn,
                &failed.event_id,
                Status::Deploying,
                Some(error),
                now,
            )
            .await;
        Outcome::failed(
            &key_of(failed),
            format!("the rollback {why} failed: {error}"),
            retryable,
        )
    }

    /// Frees the service from a failed deployment, unless a newer push already took it.
    async fn release_failed(
        &self,
        failed: &DeploymentRecord,
        now: &str,
    ) -> Result<(), LedgerError> {
        self.ledger
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
                LedgerError::LostLease(_) => Ok(()),
                e => Err(e),
            })
    }

    /// The failed deployment has no revision to return to that is sure to run what it ran:
    /// quarantine, record, free the service, and call for a person.
    pub(super) async fn no_safe_target(
        &self,
        mut failed: DeploymentRecord,
        reason: &str,
        why_not: &str,
        now: &str,
    ) -> Outcome {
        failed.status = Status::NeedsHuman;
        let what_next = format!("not rolled back: {why_not}; the service needs a person");
        let outcome = self
            .fail_and_quarantine(failed, reason, &what_next, now)
            .await;
        if outcome.outcome == OutcomeKind::Failed {
            return outcome;
        }
        Outcome {
            milestone: Some(Milestone::NeedsHuman),
            ..outcome.with_kind(OutcomeKind::NeedsHuman)
        }
    }

    /// Marks the deployment failed (or, when it already says so, needing a person), quarantines
    /// its digest for the service, frees the service.
    pub(super) async fn fail_and_quarantine(
        &self,
        mut failed: DeploymentRecord,
        reason: &str,
        what_next: &str,
        now: &str,
    ) -> Outcome {
        if failed.status != Status::NeedsHuman {
            failed.status = Status::Failed;
        }
        failed.reason = Some(format!("{reason}; {what_next}"));
        let summary = format!("the deployment of {} failed ({reason}); {what_next}; that digest is now quarantined for this service", failed.digest);
        let written = match self.ledger.quarantine(&failed, reason, now).await {
            // Written unless another report of the deployment settled it first.
            Ok(()) => match self.ledger.put_unsettled(&failed).await {
                Ok(_) => self.release_failed(&failed, now).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => Outcome {
                milestone: Some(Milestone::Failed),
                ..Outcome::recorded(&failed, summary)
            },
            Err(e) => Outcome::failed(
                &key_of(&failed),
                format!("{summary}, but the ledger could not record it: {e}"),
                e.retryable(),
            ),
        }
    }
}

/// The rollback's ledger record: acting for the failed push (its event id holds the service),
/// ordered right after the deployment it reverts, the same in every attempt (an earlier
/// attempt's start and ECS id kept).
fn rollback_record(
    failed: &DeploymentRecord,
    good: DeploymentRecord,
    target: &str,
    pinned_digest: Option<String>,
    history: &[DeploymentRecord],
    reason: &str,
    now: &str,
) -> DeploymentRecord {
    let mut rollback = DeploymentRecord {
        kind: Kind::Rollback,
        reverts: Some(failed.sk()),
        event_id: failed.event_id.clone(),
        order_key: format!("{}#rollback", failed.order_key),
        previous_task_definition: failed.new_task_definition.clone().unwrap_or_default(),
        new_task_definition: Some(target.to_string()),
        deployment_id: None,
        previous_images: None,
        running_at_last_sweep: None,
        service_deployment_arn: None,
        codedeploy_deployment_id: None,
        awaits_ecs_rollback: false,
        status: Status::Deploying,
        reason: Some(format!("rolls back {} ({reason})", failed.digest)),
        created_at: now.to_string(),
        updated_at: now.to_string(),
        ..good
    };
    if let Some(digest) = pinned_digest {
        rollback.digest = digest;
    }
    if let Some(started) = history.iter().find(|r| r.sk() == rollback.sk()) {
        rollback.created_at = started.created_at.clone();
        rollback.deployment_id = started.deployment_id.clone();
    }
    rollback
}
