//! The rollback function: follows every deployment pushdeploy started to its end. COMPLETED
//! makes a revision the last known good; FAILED (or no end within the deploy timeout)
//! quarantines the digest and puts the service back on the last known good revision, unless
//! ECS does that itself, a person changed the service since, or the failed deployment was
//! itself a rollback.

pub mod decide;

use crate::aws::Aws;
use crate::config::Config;
use crate::deploy::{now_ms, now_text, Invocation, DEFAULT_LEASE_MS};
use crate::ecs_event::{parse_trigger, DeploymentChange, DeploymentState, RollbackTrigger};
use crate::follow::ServiceKey;
use crate::ledger::{DeploymentRecord, Kind, Ledger, Status};
use crate::outcome::{log_outcome, Outcome, OutcomeKind, Report, RetryableFailure, Subject};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::Service;
use decide::{find_deployment, on_failure, FailureAction};
use serde_json::Value;

/// How many of a service's latest records an ECS event is matched against.
const HISTORY: i32 = 25;

pub struct RollbackHandler {
    aws: Aws,
    ledger: Ledger,
    config: Config,
}

impl RollbackHandler {
    pub fn new(sdk: &SdkConfig, config: Config) -> RollbackHandler {
        RollbackHandler::with_aws(Aws::new(sdk), config)
    }

    pub fn with_aws(aws: Aws, config: Config) -> RollbackHandler {
        RollbackHandler {
            ledger: Ledger::new(aws.dynamodb.clone(), config.table.clone()),
            aws,
            config,
        }
    }

    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        self.aws.calls.take();
        let deadline = if invocation.deadline_ms > 0 {
            invocation.deadline_ms
        } else {
            now_ms() + DEFAULT_LEASE_MS
        };
        let (event_id, outcomes) = match parse_trigger(payload) {
            Err(ignored) => {
                let reason = ignored.reason.to_string();
                tracing::info!(
                    event_id = ignored.event_id.as_deref(),
                    outcome = "ignored",
                    reason = reason.as_str(),
                    "event ignored"
                );
                return Ok(Report {
                    event_id: ignored.event_id,
                    outcomes: vec![],
                    reason: Some(reason),
                    aws_calls: self.aws.calls.take(),
                });
            }
            Ok(RollbackTrigger::Deployment(change)) => (
                Some(change.event_id.clone()),
                vec![self.on_change(&change, deadline).await],
            ),
            Ok(RollbackTrigger::Sweep { at }) => (None, self.sweep(at, deadline).await),
        };
        let subject = Subject {
            event_id: event_id.as_deref().unwrap_or("sweep"),
            repository: "",
            tag: "",
            digest: "",
        };
        for outcome in &outcomes {
            log_outcome(subject, outcome);
        }
        let report = Report {
            event_id,
            outcomes,
            reason: None,
            aws_calls: self.aws.calls.take(),
        };
        let retryable: Vec<_> = report
            .outcomes
            .iter()
            .filter(|o| o.retryable)
            .map(|o| format!("{}/{}", o.cluster, o.service))
            .collect();
        if retryable.is_empty() {
            Ok(report)
        } else {
            Err(RetryableFailure {
                summary: format!(
                    "{} must be retried ({}); the ledger makes the retry act once",
                    retryable.len(),
                    retryable.join(", ")
                ),
                report,
            })
        }
    }

    async fn describe(&self, key: &ServiceKey) -> Result<Option<Service>, Outcome> {
        match self
            .aws
            .describe_services(&key.cluster, std::slice::from_ref(&key.service))
            .await
        {
            Ok(found) => Ok(found
                .services
                .into_iter()
                .find(|s| s.service_name() == Some(key.service.as_str()))),
            Err(e) => Err(Outcome::failed(key, e.to_string(), e.retryable)),
        }
    }

    async fn on_change(&self, change: &DeploymentChange, deadline_ms: u64) -> Outcome {
        let key = &change.service;
        let service = match self.describe(key).await {
            Ok(Some(service)) => service,
            Ok(None) => return self.seen(change, "ECS no longer knows the service").await,
            Err(outcome) => return outcome,
        };
        let history = match self.ledger.latest(&change.service_arn, HISTORY).await {
            Ok(history) => history,
            Err(e) => {
                return Outcome::failed(key, format!("cannot read the ledger: {e}"), e.retryable())
            }
        };
        let Some(record) = find_deployment(&history, &change.deployment_id, &service).cloned()
        else {
            return self
                .seen(
                    change,
                    "not a deployment pushdeploy started: recorded, not acted on",
                )
                .await;
        };
        let mut record = DeploymentRecord {
            deployment_id: record
                .deployment_id
                .clone()
                .or_else(|| Some(change.deployment_id.clone())),
            ..record
        };
        match change.state {
            DeploymentState::InProgress => {
                let reason = format!("deployment {} in progress", change.deployment_id);
                self.write(&record, Outcome::recorded(&record, reason))
                    .await
            }
            DeploymentState::Completed if record.status == Status::Deployed => {
                record.status = Status::Succeeded;
                record.updated_at = now_text();
                let revision = record.new_task_definition.clone().unwrap_or_default();
                let reason =
                    format!("completed: {revision} is now the service's last known good revision");
                self.write(&record, Outcome::recorded(&record, reason))
                    .await
            }
            DeploymentState::Completed => {
                let reason = format!("completed; already recorded as {}", record.status.as_str());
                Outcome::recorded(&record, reason)
            }
            DeploymentState::Failed => {
                let reason = if change.reason.is_empty() {
                    "ECS reported the deployment FAILED".to_string()
                } else {
                    change.reason.clone()
                };
                self.on_failure(record, &service, &history, &reason, deadline_ms)
                    .await
            }
        }
    }

    /// Deployments still rolling out past the deploy timeout are failed deployments.
    async fn sweep(&self, at: chrono::DateTime<chrono::Utc>, deadline_ms: u64) -> Vec<Outcome> {
        let timeout = self.config.deploy_timeout;
        let cutoff = crate::event::timestamp_text(
            &(at - chrono::Duration::from_std(timeout).unwrap_or_default()),
        );
        let stuck = match self.ledger.in_flight_since_before(&cutoff).await {
            Ok(stuck) => stuck,
            Err(e) => {
                let key = ServiceKey {
                    cluster: String::new(),
                    service: String::new(),
                };
                return vec![Outcome::failed(
                    &key,
                    format!("the sweep cannot read the ledger: {e}"),
                    e.retryable(),
                )];
            }
        };
        let mut outcomes = Vec::new();
        for record in stuck {
            let key = ServiceKey {
                cluster: record.cluster.clone(),
                service: record.service.clone(),
            };
            let reason = format!("the deployment did not complete within {} s of UpdateService (PUSHDEPLOY_DEPLOY_TIMEOUT)", timeout.as_secs());
            let outcome = match self.describe(&key).await {
                Ok(Some(service)) => match self.ledger.latest(&record.service_arn, HISTORY).await {
                    Ok(history) => {
                        self.on_failure(record, &service, &history, &reason, deadline_ms)
                            .await
                    }
                    Err(e) => {
                        Outcome::failed(&key, format!("cannot read the ledger: {e}"), e.retryable())
                    }
                },
                Ok(None) => Outcome::failed(&key, "ECS no longer knows the service", false),
                Err(outcome) => outcome,
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn on_failure(
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

    /// Writes the record and answers `outcome`, or a failure when the write failed.
    async fn write(&self, record: &DeploymentRecord, outcome: Outcome) -> Outcome {
        match self.ledger.put(record).await {
            Ok(()) => outcome,
            Err(e) => Outcome::failed(
                &key_of(record),
                format!("could not record it: {e}"),
                e.retryable(),
            ),
        }
    }

    async fn seen(&self, change: &DeploymentChange, why: &str) -> Outcome {
        let key = &change.service;
        match self
            .ledger
            .record_seen(
                &change.service_arn,
                &change.deployment_id,
                change.state.as_str(),
                &change.reason,
                &now_text(),
            )
            .await
        {
            Ok(()) => Outcome::new(key, OutcomeKind::Recorded, Some(why.to_string())),
            Err(e) => Outcome::failed(
                key,
                format!("{why}, but could not record it: {e}"),
                e.retryable(),
            ),
        }
    }
}

fn key_of(record: &DeploymentRecord) -> ServiceKey {
    ServiceKey {
        cluster: record.cluster.clone(),
        service: record.service.clone(),
    }
}

/// The rollback record's image fields: those of the good deployment it returns to, if known.
fn good_or(
    failed: &DeploymentRecord,
    history: &[DeploymentRecord],
    target: &str,
) -> DeploymentRecord {
    history
        .iter()
        .find(|r| r.new_task_definition.as_deref() == Some(target) && r.status == Status::Succeeded)
        .cloned()
        .unwrap_or_else(|| DeploymentRecord {
            digest: String::new(),
            tag: String::new(),
            pushed_at: String::new(),
            ..failed.clone()
        })
}
