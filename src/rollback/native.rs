//! Deployments of services whose strategy is BLUE_GREEN, LINEAR or CANARY, followed by their
//! ECS service deployment (see [`super::followed`]): the sweep settles them from it, ECS's
//! events only prompt a look, and ECS's own rollback is confirmed from it.

use super::decide::{deployment_of, progress, EcsRollback, Progress};
use super::followed::{followed, Followed};
use super::{key_of, RollbackHandler};
use crate::clock::now_text;
use crate::ecs_event::{DeploymentChange, HookAwaiting};
use crate::ledger::{DeploymentRecord, Lease, Status};
use crate::outcome::{Milestone, Outcome, OutcomeKind, SkipReason};
use aws_sdk_ecs::types::{Service, ServiceDeploymentBrief};
use chrono::{DateTime, Utc};

/// How long before its record a deployment's service deployment is looked for: the record is
/// written before UpdateService on pushdeploy's clock, ECS stamps `createdAt` on its own.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(5);

/// A record's service deployment, found, and what it shows.
pub(super) struct Found {
    pub(super) arn: String,
    pub(super) followed: Followed,
}

impl RollbackHandler {
    /// The service deployment that moved the service onto `record`'s revision, and what it
    /// shows; `None` when ECS lists none (an `Err` outcome when ECS cannot be asked). Found by
    /// the ARN the deploy function recorded, else among those ECS lists since the record by
    /// their target revision's task definition.
    pub(super) async fn find_service_deployment(
        &self,
        record: &DeploymentRecord,
    ) -> Result<Option<Found>, Outcome> {
        let failed = |e: crate::aws::AwsError| {
            Outcome::failed(
                &key_of(record),
                format!("cannot follow it: {e}"),
                e.retryable,
            )
        };
        let since = DateTime::parse_from_rfc3339(&record.created_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            - CLOCK_SLACK;
        let listed = self
            .aws
            .list_service_deployments(&record.cluster, &record.service, since)
            .await
            .map_err(failed)?;
        let arn = match &record.service_deployment_arn {
            Some(arn) => Some(arn.clone()),
            None => self.onto_revision(record, &listed).await.map_err(failed)?,
        };
        let Some(arn) = arn else { return Ok(None) };
        let described = self
            .aws
            .describe_service_deployment(&arn)
            .await
            .map_err(failed)?;
        Ok(described.map(|deployment| Found {
            followed: followed(&deployment, &listed),
            arn,
        }))
    }

    /// The oldest of `listed` whose target revision runs `record`'s task definition.
    async fn onto_revision(
        &self,
        record: &DeploymentRecord,
        listed: &[ServiceDeploymentBrief],
    ) -> Result<Option<String>, crate::aws::AwsError> {
        let Some(definition) = record.new_task_definition.as_deref() else {
            return Ok(None);
        };
        let targets: Vec<String> = listed
            .iter()
            .filter_map(|b| b.target_service_revision_arn().map(str::to_string))
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let revisions = self.aws.describe_service_revisions(&targets).await?;
        let onto: Vec<&str> = revisions
            .iter()
            .filter(|r| r.task_definition() == Some(definition))
            .filter_map(|r| r.service_revision_arn())
            .collect();
        Ok(listed
            .iter()
            .filter(|b| {
                b.target_service_revision_arn()
                    .is_some_and(|t| onto.contains(&t))
            })
            .min_by_key(|b| b.created_at().map(|t| t.as_nanos()))
            .and_then(|b| b.service_deployment_arn().map(str::to_string)))
    }

    /// A settled service deployment recorded as it ended; `None` while it is not settled (in
    /// flight, or ECS is stopping it).
    pub(super) async fn settle_native(
        &self,
        mut record: DeploymentRecord,
        found: Found,
    ) -> Option<Outcome> {
        if !matches!(
            record.status,
            Status::Deploying | Status::Deployed | Status::Superseded
        ) {
            // A repeated report (ECS's events arrive more than once): settled, and told once.
            let why = format!("already recorded as {}", record.status.as_str());
            return Some(Outcome {
                skip_reason: Some(SkipReason::AlreadyHandled),
                ..Outcome::recorded(&record, why).with_kind(OutcomeKind::Skipped)
            });
        }
        let now = now_text();
        let arn = found.arn;
        record.service_deployment_arn = Some(arn.clone());
        record.updated_at = now.clone();
        let outcome = match found.followed {
            Followed::InFlight(_) | Followed::Stopping => return None,
            Followed::Completed => {
                let shows = format!("ECS shows service deployment {arn} SUCCESSFUL");
                self.completed_as_shown(&record, &shows).await
            }
            Followed::Superseded(why) => self.supersede(&record, &why).await,
            Followed::RolledBack(why) => {
                let reason = format!("ECS rolled service deployment {arn} back ({why})");
                let what_next = "ECS put the service back on the revision that ran before; pushdeploy sent no UpdateService";
                self.fail_and_quarantine(record, &reason, what_next, &now)
                    .await
            }
            Followed::RollingBack(why) => {
                record.awaits_ecs_rollback = true;
                let reason = format!("ECS is rolling service deployment {arn} back ({why})");
                let what_next = "the sweep confirms that ECS's rollback ends";
                self.fail_and_quarantine(record, &reason, what_next, &now)
                    .await
            }
            Followed::RollbackFailed(why) => {
                let reason = format!("ECS's rollback of service deployment {arn} failed ({why})");
                let why_not = "ECS's own rollback did not put the service back";
                self.no_safe_target(record, &reason, why_not, &now).await
            }
            Followed::StoppedWithoutRollback(why) => {
                let reason = format!("ECS stopped service deployment {arn} ({why})");
                let why_not = "ECS stopped it without rolling back";
                self.no_safe_target(record, &reason, why_not, &now).await
            }
        };
        Some(outcome)
    }

    /// ECS's COMPLETED or FAILED of a native deployment: only a prompt to read its service
    /// deployment, which alone settles it (whether ECS sends these events for these strategies
    /// is not documented; the sweep does not depend on them).
    pub(super) async fn on_native_change(
        &self,
        change: &DeploymentChange,
        record: DeploymentRecord,
        found: Found,
        dry_run: bool,
    ) -> Outcome {
        let shows = format!(
            "ECS shows service deployment {} {:?}",
            found.arn, found.followed
        );
        if dry_run {
            return super::dry_run_outcome(&key_of(&record), format!("would act on what {shows}"));
        }
        match self.settle_native(record.clone(), found).await {
            Some(outcome) => outcome,
            None => super::not_confirmed(change, &record, &shows),
        }
    }

    /// The sweep's look at a native deployment past the deploy timeout: settled from its
    /// service deployment; in flight, judged by its tasks as any other (a bake or a step keeps
    /// them all running: progressing); without one ECS lists, as any other deployment.
    pub(super) async fn look_again_native(
        &self,
        record: DeploymentRecord,
        service: &Service,
        at: DateTime<Utc>,
        lease: &Lease,
    ) -> Outcome {
        let found = match self.find_service_deployment(&record).await {
            Ok(Some(found)) => found,
            Ok(None) => return self.look_again_classic(record, service, at, lease).await,
            Err(outcome) => return outcome,
        };
        let dry_run = self.config.dry_run || crate::tags::flag(service, crate::tags::TAG_DRY_RUN);
        if dry_run {
            return super::dry_run_outcome(
                &key_of(&record),
                format!("would act on what ECS shows: {:?}", found.followed),
            );
        }
        let stage = match &found.followed {
            Followed::InFlight(stage) => stage.clone(),
            Followed::Stopping => {
                let why = format!(
                    "ECS is stopping service deployment {}: looking again at the next sweep",
                    found.arn
                );
                return Outcome::recorded(&record, why);
            }
            _ => None,
        };
        let arn = found.arn.clone();
        if let Some(outcome) = self.settle_native(record.clone(), found).await {
            return outcome;
        }
        let record = DeploymentRecord {
            service_deployment_arn: Some(arn.clone()),
            ..record
        };
        let stage = stage.unwrap_or_else(|| "no stage named".into());
        match deployment_of(&record, service) {
            Some(deployment) => match progress(deployment, record.running_at_last_sweep) {
                Progress::Progressing(why) => {
                    let why = format!("service deployment {arn} at {stage}; {why}");
                    self.still_progressing(&record, deployment.running_count(), at, &why)
                        .await
                }
                Progress::Stuck(why) => {
                    let timeout = self.config.deploy_timeout.as_secs();
                    let reason = format!("service deployment {arn} at {stage}: {why}, past PUSHDEPLOY_DEPLOY_TIMEOUT ({timeout} s)");
                    self.timed_out(record, service, &reason, lease).await
                }
            },
            None => {
                let why = format!("service deployment {arn} in flight at {stage}");
                self.still_progressing(&record, record.running_at_last_sweep.unwrap_or(0), at, &why)
                    .await
            }
        }
    }

    /// What ECS's service deployment shows of the rollback it was expected to make of
    /// `failed`; `None` while ECS is still at it (or shows no service deployment: the classic
    /// reading decides).
    pub(super) async fn native_rollback_verdict(
        &self,
        failed: &DeploymentRecord,
    ) -> Result<Option<NativeRollback>, Outcome> {
        let Some(found) = self.find_service_deployment(failed).await? else {
            return Ok(None);
        };
        let arn = &found.arn;
        Ok(Some(match found.followed {
            Followed::RolledBack(why) => NativeRollback::Decided(EcsRollback::Seen(format!(
                "ECS rolled service deployment {arn} back ({why})"
            ))),
            Followed::Completed | Followed::Superseded(_) => NativeRollback::Decided(
                EcsRollback::Seen(format!("ECS shows service deployment {arn} {:?}: nothing to roll back", found.followed)),
            ),
            Followed::RollbackFailed(why) | Followed::StoppedWithoutRollback(why) => {
                NativeRollback::Decided(EcsRollback::Failed(format!(
                    "ECS did not put the service back ({why}): service deployment {arn} needs a person"
                )))
            }
            Followed::RollingBack(_) | Followed::Stopping => NativeRollback::Waiting(format!(
                "ECS is still rolling service deployment {arn} back: looking again at the next sweep"
            )),
            Followed::InFlight(_) => NativeRollback::Decided(EcsRollback::NotStarted),
        }))
    }
}

impl RollbackHandler {
    /// A deployment of pushdeploy's paused at a pause hook: confirmed with ECS, then told, with
    /// the commands that answer it.
    pub(super) async fn on_hook_awaiting(&self, hook: &HookAwaiting) -> Outcome {
        let key = &hook.service;
        if let Some(clusters) = &self.config.clusters {
            if !clusters.contains(&key.cluster) {
                let why = format!("cluster {} is not one of PUSHDEPLOY_CLUSTERS", key.cluster);
                return Outcome::skipped(key, SkipReason::ClusterNotAllowed, why);
            }
        }
        let arn = &hook.service_deployment_arn;
        let deployment = match self.aws.describe_service_deployment(arn).await {
            Ok(deployment) => deployment,
            Err(e) => {
                let why = format!("cannot read service deployment {arn}: {e}");
                return Outcome::failed(key, why, e.retryable);
            }
        };
        if deployment
            .as_ref()
            .and_then(crate::approve::awaiting_pause)
            .as_deref()
            != Some(hook.hook_id.as_str())
        {
            let why = format!("not told: the event says pause hook {} of {arn} awaits a person, but ECS does not show it awaiting action", hook.hook_id);
            return Outcome::new(key, OutcomeKind::Skipped, Some(why));
        }
        let history = match self.ledger.latest(&hook.service_arn, super::HISTORY).await {
            Ok(history) => history,
            Err(e) => {
                return Outcome::failed(key, format!("cannot read the ledger: {e}"), e.retryable())
            }
        };
        let Some(record) = history
            .iter()
            .find(|r| r.service_deployment_arn.as_deref() == Some(arn.as_str()))
        else {
            let why = format!("{arn} is paused, but pushdeploy did not start it: not told");
            return Outcome::new(key, OutcomeKind::Recorded, Some(why));
        };
        let (cluster, service) = (&key.cluster, &key.service);
        let reason = format!(
            "paused at {} until a person answers: `pushdeploy approve --cluster {cluster} --service {service}` continues it, `pushdeploy reject --cluster {cluster} --service {service}` rolls it back",
            hook.stage.as_deref().unwrap_or("a pause hook")
        );
        Outcome {
            milestone: Some(Milestone::AwaitingApproval),
            ..Outcome::recorded(record, reason)
        }
    }
}

/// ECS's own rollback of a native deployment, as its service deployment shows it.
pub(super) enum NativeRollback {
    /// Settled one way or the other, or never started.
    Decided(EcsRollback),
    /// ECS is still at it.
    Waiting(String),
}
