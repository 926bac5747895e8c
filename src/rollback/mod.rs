//! The rollback function: follows every deployment pushdeploy started to its end. COMPLETED
//! makes a revision the last known good; a deployment a newer one replaced is superseded;
//! FAILED (or stuck, as the sweep finds it past the deploy timeout) quarantines the digest and
//! puts the service back on exactly the digest its last known good revision ran, unless ECS
//! does that itself (then the next sweep checks it did), a person changed the service since, or
//! the failed deployment was itself a rollback.

mod codedeploy;
pub(crate) mod decide;
mod dry_run;
mod failure;
mod followed;
mod native;
mod pin;

use crate::aws::Aws;
use crate::clock::now_text;
use crate::config::Config;
use crate::ecs_event::{parse_trigger, DeploymentChange, DeploymentState, RollbackTrigger};
use crate::follow::ServiceKey;
use crate::invocation::Invocation;
use crate::ledger::{DeploymentRecord, Lease, Ledger, LedgerError, Status, Written};
use crate::notify::Notifier;
use crate::outcome::{Milestone, Outcome, OutcomeKind, Report, RetryableFailure, SkipReason};
use crate::tags::{flag, TAG_DRY_RUN};
use crate::telemetry::{Run, Subject};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::Service;
use decide::{
    deployment_of, dry_run_for, ecs_confirms, ecs_rollback_verdict, ecs_shows, find_deployment,
    progress, sweep_refused, EcsRollback, EcsShows, Progress,
};
use native::NativeRollback;
use serde_json::Value;

/// How many of a service's latest records an ECS event is matched against.
const HISTORY: i32 = 25;

/// The rollback function: what it promises is that a deployment pushdeploy started and ECS
/// shows failed, or stuck past the deploy timeout, is put back on the last revision known good,
/// pinned to the images it ran, with the bad digest quarantined; and that it acts only on what
/// ECS confirms.
pub struct RollbackHandler {
    aws: Aws,
    ledger: Ledger,
    notifier: Notifier,
    config: Config,
}

impl RollbackHandler {
    /// The rollback function on the standard AWS configuration and its settings.
    pub fn new(sdk: &SdkConfig, config: Config) -> RollbackHandler {
        RollbackHandler::with_aws(Aws::new(sdk), config)
    }

    /// The rollback function on clients configured elsewhere.
    pub fn with_aws(aws: Aws, config: Config) -> RollbackHandler {
        RollbackHandler {
            ledger: Ledger::new(aws.dynamodb.clone(), config.table.clone()),
            notifier: Notifier::new(aws.sns.clone(), config.notify_topic()),
            aws,
            config,
        }
    }

    /// One invocation: an ECS deployment state change or the sweep, parsed once and acted on
    /// only as far as ECS confirms it; the report has one outcome per deployment concerned, or
    /// the reason the event was ignored. Never panics on input; an error is returned only when
    /// Lambda should retry.
    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Report, RetryableFailure> {
        let started = std::time::Instant::now();
        self.aws.calls.take();
        let request_id = invocation.request_id.as_deref();
        let lease = invocation.lease();
        let sent_id = payload
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        let (event_id, outcomes) = match parse_trigger(payload) {
            Err(ignored) => {
                let reason = ignored.reason.to_string();
                return Ok(Report::ignored(
                    ignored.event_id,
                    reason,
                    self.aws.calls.take(),
                    request_id,
                ));
            }
            Ok(RollbackTrigger::Deployment(change)) => (
                Some(change.event_id.clone()),
                self.on_change(&change, &lease).await,
            ),
            Ok(RollbackTrigger::HookAwaiting(hook)) => (
                Some(hook.event_id.clone()),
                vec![self.on_hook_awaiting(&hook).await],
            ),
            Ok(RollbackTrigger::Sweep { at: claimed }) => {
                // Read before this sweep marks any: ECS gets one sweep's interval to start its
                // rollback. An answer first, so that the clock is AWS's as of this invocation.
                let awaiting = self.ledger.awaiting_ecs_rollback().await;
                // The sweep measures from AWS's clock, never from the event's `time`.
                let now = self.aws.clock.now();
                if let Some(reason) = sweep_refused(claimed, now) {
                    // Logged by `ignored`, with both times in the reason.
                    let calls = self.aws.calls.take();
                    return Ok(Report::ignored(sent_id, reason, calls, request_id));
                }
                (None, self.sweep(now, awaiting, &lease).await)
            }
        };
        let subject = Subject::event(event_id.as_deref().unwrap_or("sweep"));
        let what = match &event_id {
            Some(id) => format!("ECS event {id}"),
            None => "the sweep".to_string(),
        };
        Run::new(subject, request_id, started, &self.config)
            .close(
                outcomes,
                event_id.clone(),
                None,
                &self.aws.calls,
                &self.notifier,
                &what,
            )
            .await
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

    /// The event's outcome, then one for each other deployment of the service that ECS shows
    /// replaced (superseded).
    async fn on_change(&self, change: &DeploymentChange, lease: &Lease) -> Vec<Outcome> {
        let key = &change.service;
        // Before any AWS call: the role's ecs:cluster condition denies the others anyway.
        if let Some(clusters) = &self.config.clusters {
            if !clusters.contains(&key.cluster) {
                let reason = format!(
                    "cluster {} is not one of PUSHDEPLOY_CLUSTERS: not pushdeploy's to follow",
                    key.cluster
                );
                return vec![Outcome::skipped(key, SkipReason::ClusterNotAllowed, reason)];
            }
        }
        // The ledger first: every deployment it names started before ECS's answer below, so
        // one that answer does not list is gone, not too new to be listed.
        let history = match self.ledger.latest(&change.service_arn, HISTORY).await {
            Ok(history) => history,
            Err(e) => {
                let reason = format!("cannot read the ledger: {e}");
                return vec![Outcome::failed(key, reason, e.retryable())];
            }
        };
        let service = match self.describe(key).await {
            Ok(Some(service)) => service,
            Ok(None) if self.config.dry_run => {
                return vec![dry_run_outcome(
                    key,
                    "would record the event: ECS no longer knows the service".into(),
                )]
            }
            Ok(None) => return vec![self.seen(change, "ECS no longer knows the service").await],
            Err(outcome) => return vec![outcome],
        };
        let tagged_dry_run = flag(&service, TAG_DRY_RUN);
        let mut outcomes = vec![
            self.on_change_of(change, lease, &service, &history, tagged_dry_run)
                .await,
        ];
        // The other records are deployments pushdeploy made for real: the tag does not hold
        // them back (see `dry_run_for`).
        // A native strategy's other deployments are settled from their own service deployments
        // by the sweep: ECS's `deployments` cannot tell a rolled-back one from a replaced one.
        let native = decide::native_strategy(&service).is_some();
        if !native && !dry_run_for(self.config.dry_run, tagged_dry_run, true) {
            let others = history
                .iter()
                .filter(|r| r.deployment_id.as_deref() != Some(change.deployment_id.as_str()));
            for record in others {
                if let Some(outcome) = self.supersede_if_replaced(record, &service).await {
                    outcomes.push(outcome);
                }
            }
        }
        outcomes
    }

    /// Records `record` as superseded when it is still in flight and ECS shows a newer
    /// deployment replaced it; `None` when it is not.
    async fn supersede_if_replaced(
        &self,
        record: &DeploymentRecord,
        service: &Service,
    ) -> Option<Outcome> {
        if record.status != Status::Deployed {
            return None;
        }
        let EcsShows::Replaced(why) = ecs_shows(record, service) else {
            return None;
        };
        Some(self.supersede(record, &why).await)
    }

    async fn supersede(&self, record: &DeploymentRecord, why: &str) -> Outcome {
        let superseded = self.ledger.mark_superseded(record, why, &now_text()).await;
        let outcome = Outcome::recorded(
            record,
            format!("superseded: {why}; its digest is not quarantined"),
        );
        let settled = "already settled by another report of this deployment";
        self.written(record, superseded, outcome, settled)
    }

    /// One state change of one deployment: matched to pushdeploy's record of it, confirmed
    /// with what ECS shows, then acted on (or, in a dry run, only told).
    async fn on_change_of(
        &self,
        change: &DeploymentChange,
        lease: &Lease,
        service: &Service,
        history: &[DeploymentRecord],
        tagged_dry_run: bool,
    ) -> Outcome {
        let key = &change.service;
        let stack_dry_run = self.config.dry_run;
        let Some(record) = find_deployment(history, &change.deployment_id, service).cloned() else {
            if dry_run_for(stack_dry_run, tagged_dry_run, false) {
                return dry_run_outcome(
                    key,
                    "would record the event: not a deployment pushdeploy started".into(),
                );
            }
            return self
                .seen(
                    change,
                    "not a deployment pushdeploy started: recorded, not acted on",
                )
                .await;
        };
        // A CODE_DEPLOY service's deployment ends as CodeDeploy says, whatever ECS reports of
        // its task sets: the event is only a prompt to read it, and nothing rolls back here.
        if let Some(id) = record.codedeploy_deployment_id.clone() {
            let shows = format!("CodeDeploy deployment {id} has not ended");
            let waiting = Outcome::recorded(&record, shows);
            return self
                .settle_codedeploy(record, &id, false)
                .await
                .unwrap_or(waiting);
        }
        // IN_PROGRESS writes only the id of a record that has none; COMPLETED and FAILED move
        // the record (last known good; quarantine and rollback). Each only once ECS shows it.
        let links = record.deployment_id.is_none();
        let record = DeploymentRecord {
            deployment_id: record
                .deployment_id
                .clone()
                .or_else(|| Some(change.deployment_id.clone())),
            ..record
        };
        if change.state != DeploymentState::InProgress && decide::native_strategy(service).is_some()
        {
            match self.find_service_deployment(&record).await {
                Ok(Some(found)) => {
                    let dry_run = dry_run_for(stack_dry_run, tagged_dry_run, true);
                    return self.on_native_change(change, record, found, dry_run).await;
                }
                // ECS lists none: the service's `deployments` decide, below.
                Ok(None) => {}
                Err(outcome) => return outcome,
            }
        }
        if change.state != DeploymentState::InProgress || links {
            if let Err(shows) = ecs_confirms(change.state, &change.deployment_id, service) {
                return not_confirmed(change, &record, &shows);
            }
        }
        if dry_run_for(stack_dry_run, tagged_dry_run, true) {
            return self.dry_run(record, change, service, history);
        }
        self.act_on(change, record, service, history, lease).await
    }

    /// A confirmed state change acted on: IN_PROGRESS links the ECS deployment to the record,
    /// COMPLETED makes it the last known good, FAILED quarantines and rolls back.
    async fn act_on(
        &self,
        change: &DeploymentChange,
        record: DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
        lease: &Lease,
    ) -> Outcome {
        match change.state {
            DeploymentState::InProgress => {
                let reason = format!("deployment {} in progress", change.deployment_id);
                let linked = self
                    .ledger
                    .link_deployment(&record, &change.deployment_id, &now_text())
                    .await;
                let known = "the record already names another ECS deployment: kept";
                self.written(&record, linked, Outcome::recorded(&record, reason), known)
            }
            DeploymentState::Completed => self.on_completed(record, change).await,
            DeploymentState::Failed => {
                let reason = if change.reason.is_empty() {
                    "ECS reported the deployment FAILED".to_string()
                } else {
                    change.reason.clone()
                };
                self.on_failure(record, service, history, &reason, lease)
                    .await
            }
        }
    }

    /// A confirmed COMPLETED: the revision is the service's last known good. A record in
    /// `deploying` too: ECS may report the end before the deploy function's last write.
    async fn on_completed(
        &self,
        mut record: DeploymentRecord,
        change: &DeploymentChange,
    ) -> Outcome {
        if !matches!(
            record.status,
            Status::Deployed | Status::Deploying | Status::Superseded
        ) {
            let reason = format!("completed; already recorded as {}", record.status.as_str());
            return Outcome::recorded(&record, reason);
        }
        let succeeded = self
            .ledger
            .mark_succeeded(&record, Some(&change.deployment_id), &now_text())
            .await;
        record.status = Status::Succeeded;
        let revision = record.new_task_definition.clone().unwrap_or_default();
        let reason = format!("completed: {revision} is now the service's last known good revision");
        let outcome = Outcome {
            milestone: Some(Milestone::Completed),
            push_to_completed_ms: push_to_completed_ms(&record.pushed_at, change.at),
            ..Outcome::recorded(&record, reason)
        };
        let settled = "already settled by an earlier report of this deployment";
        self.written(&record, succeeded, outcome, settled)
    }

    /// Deployments still rolling out past the deploy timeout: what ECS shows decides (see
    /// [`RollbackHandler::look_again`]); then the failures ECS was expected to roll back. `at`
    /// is AWS's clock (crate::clock), never the event's `time`.
    async fn sweep(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        awaiting: Result<Vec<DeploymentRecord>, LedgerError>,
        lease: &Lease,
    ) -> Vec<Outcome> {
        let timeout = self.config.deploy_timeout;
        let cutoff = crate::event::timestamp_text(
            &(at - chrono::Duration::from_std(timeout).unwrap_or_default()),
        );
        // Every deployment in flight: CodeDeploy's are read at each sweep (pushdeploy has no
        // event of theirs), the others once past the deploy timeout.
        let in_flight = match self
            .ledger
            .in_flight_since_before(&crate::event::timestamp_text(&at))
            .await
        {
            Ok(in_flight) => in_flight,
            Err(e) => return vec![cannot_read_the_ledger(&e)],
        };
        let mut outcomes = Vec::new();
        for record in in_flight {
            let young = record.updated_at.as_str() >= cutoff.as_str();
            if let Some(id) = record.codedeploy_deployment_id.clone() {
                outcomes.extend(self.settle_codedeploy(record, &id, young).await);
                continue;
            }
            if young {
                continue;
            }
            let key = key_of(&record);
            let outcome = match self.describe(&key).await {
                Ok(Some(service)) => self.look_again(record, &service, at, lease).await,
                Ok(None) => Outcome::failed(&key, "ECS no longer knows the service", false),
                Err(outcome) => outcome,
            };
            outcomes.push(outcome);
        }
        match awaiting {
            Ok(awaiting) => {
                for record in awaiting {
                    outcomes.push(self.confirm_ecs_rollback(record, lease).await);
                }
            }
            Err(e) => outcomes.push(cannot_read_the_ledger(&e)),
        }
        outcomes
    }

    /// A failed deployment ECS was expected to roll back: did it? ECS did when the failed
    /// deployment is no longer the service's primary one and the one that is has not failed
    /// too. If ECS's own rollback failed, a person must look; if ECS started none (no COMPLETED
    /// deployment to go back to, or alarms that never fired), pushdeploy rolls back itself.
    async fn confirm_ecs_rollback(&self, record: DeploymentRecord, lease: &Lease) -> Outcome {
        let key = key_of(&record);
        let service = match self.describe(&key).await {
            Ok(Some(service)) => service,
            Ok(None) => return Outcome::failed(&key, "ECS no longer knows the service", false),
            Err(outcome) => return outcome,
        };
        let history = match self.ledger.latest(&record.service_arn, HISTORY).await {
            Ok(history) => history,
            Err(e) => {
                let why = format!("cannot read the ledger: {e}");
                return Outcome::failed(&key, why, e.retryable());
            }
        };
        let now = now_text();
        let verdict = match self.rollback_verdict(&record, &service, &history).await {
            Ok(verdict) => verdict,
            Err(outcome) => return outcome,
        };
        if dry_run_for(self.config.dry_run, flag(&service, TAG_DRY_RUN), true) {
            return dry_run_outcome(&key, format!("would act on: {verdict:?}"));
        }
        let settled = "already handled";
        match verdict {
            EcsRollback::Seen(why) => {
                let seen = self.ledger.ecs_rollback_seen(&record, &now).await;
                return self.written(&record, seen, Outcome::recorded(&record, why), settled);
            }
            EcsRollback::Failed(why) => {
                let seen = self.ledger.ecs_rollback_seen(&record, &now).await;
                let outcome = Outcome {
                    milestone: Some(Milestone::NeedsHuman),
                    ..Outcome::recorded(&record, why).with_kind(OutcomeKind::NeedsHuman)
                };
                return self.written(&record, seen, outcome, settled);
            }
            EcsRollback::NotStarted => {}
        }
        match self.ledger.reopen_for_rollback(&record, &now).await {
            Ok(Written::Landed) => {}
            Ok(Written::MovedOn) => return Outcome::recorded(&record, settled),
            Err(e) => {
                let why = format!("could not record it: {e}");
                return Outcome::failed(&key, why, e.retryable());
            }
        }
        let record = DeploymentRecord {
            status: Status::Deployed,
            awaits_ecs_rollback: false,
            ..record
        };
        let reason = format!(
            "ECS was expected to roll the service back ({}) but has not: the failed deployment is still its primary one",
            crate::plan::ecs_rollback(&service).unwrap_or("native rollback")
        );
        let action = decide::on_failure_ecs_did_not_roll_back(&record, &service, &history);
        self.act_on_failure(action, record, &service, &history, &reason, lease)
            .await
    }

    /// Whether ECS made the rollback it was expected to make of `failed`: from its service
    /// deployment for a native strategy, else from the service's `deployments`. An `Err`
    /// outcome when there is nothing to decide yet (ECS is still at it) or ECS cannot be asked.
    async fn rollback_verdict(
        &self,
        failed: &DeploymentRecord,
        service: &Service,
        history: &[DeploymentRecord],
    ) -> Result<EcsRollback, Outcome> {
        if decide::native_strategy(service).is_some() {
            match self.native_rollback_verdict(failed).await? {
                Some(NativeRollback::Decided(verdict)) => return Ok(verdict),
                Some(NativeRollback::Waiting(why)) => return Err(Outcome::recorded(failed, why)),
                None => {}
            }
        }
        Ok(ecs_rollback_verdict(failed, service, history))
    }

    /// A deployment still in flight past the deploy timeout: what ECS shows decides. Completed
    /// or replaced, it is recorded so; progressing, it is looked at again one timeout later;
    /// only a stuck (or failed) one is failed.
    async fn look_again(
        &self,
        record: DeploymentRecord,
        service: &Service,
        at: chrono::DateTime<chrono::Utc>,
        lease: &Lease,
    ) -> Outcome {
        if crate::codedeploy::is_code_deploy(service) {
            // CodeDeploy owns these services' rollbacks, and no CodeDeploy deployment is known
            // for this record (one with its id never comes here): nothing to judge by ECS's
            // rules, nothing to send.
            let why = "a CODE_DEPLOY service's deployment with no CodeDeploy deployment recorded: pushdeploy does not judge or roll it back; see CodeDeploy";
            return Outcome::recorded(&record, why);
        }
        if decide::native_strategy(service).is_some() {
            return self.look_again_native(record, service, at, lease).await;
        }
        self.look_again_classic(record, service, at, lease).await
    }

    /// [`RollbackHandler::look_again`] from the service's `deployments`: ECS's rolling
    /// deployments, and any deployment without a service deployment to follow.
    async fn look_again_classic(
        &self,
        record: DeploymentRecord,
        service: &Service,
        at: chrono::DateTime<chrono::Utc>,
        lease: &Lease,
    ) -> Outcome {
        let dry_run = self.config.dry_run || flag(service, TAG_DRY_RUN);
        let timeout = self.config.deploy_timeout.as_secs();
        let shows = ecs_shows(&record, service);
        let verdict = match (&shows, deployment_of(&record, service)) {
            (EcsShows::Primary, Some(deployment)) => Some((
                progress(deployment, record.running_at_last_sweep),
                deployment.running_count(),
            )),
            _ => None,
        };
        match (shows, verdict) {
            (shows @ (EcsShows::Completed | EcsShows::Replaced(_)), _) if dry_run => {
                dry_run_outcome(
                    &key_of(&record),
                    format!("would record what ECS shows: {shows:?}"),
                )
            }
            (EcsShows::Completed, _) => self.completed_unreported(&record).await,
            (EcsShows::Replaced(why), _) => self.supersede(&record, &why).await,
            (_, Some((Progress::Progressing(why), _))) if dry_run => {
                dry_run_outcome(&key_of(&record), format!("would look again later: {why}"))
            }
            (_, Some((Progress::Progressing(why), running))) => {
                self.still_progressing(&record, running, at, &why).await
            }
            (_, Some((Progress::Stuck(why), _))) => {
                let reason = format!("{why}, past PUSHDEPLOY_DEPLOY_TIMEOUT ({timeout} s)");
                self.timed_out(record, service, &reason, lease).await
            }
            (EcsShows::Failed, None) => {
                let reason = "ECS shows the deployment FAILED (its event was not seen)";
                self.timed_out(record, service, reason, lease).await
            }
            (_, None) => {
                let reason = format!("ECS does not show the deployment, and it did not complete within {timeout} s of UpdateService (PUSHDEPLOY_DEPLOY_TIMEOUT)");
                self.timed_out(record, service, &reason, lease).await
            }
        }
    }

    /// The deployment is moving: keep the reading, look again one timeout after this sweep
    /// (its `at`, on AWS's clock, which the sweep's cutoff is measured from).
    async fn still_progressing(
        &self,
        record: &DeploymentRecord,
        running: i32,
        at: chrono::DateTime<chrono::Utc>,
        why: &str,
    ) -> Outcome {
        let at = crate::event::timestamp_text(&at);
        let noted = self.ledger.note_progress(record, running, &at).await;
        let outcome = Outcome::recorded(
            record,
            format!("still progressing, looking again after PUSHDEPLOY_DEPLOY_TIMEOUT: {why}"),
        );
        let settled = "already settled by a report of this deployment";
        self.written(record, noted, outcome, settled)
    }

    /// ECS shows the deployment COMPLETED, but its event never reached pushdeploy.
    async fn completed_unreported(&self, record: &DeploymentRecord) -> Outcome {
        self.completed_as_shown(record, "ECS shows it completed (its event was not seen)")
            .await
    }

    /// ECS shows the deployment completed (`shows`, in words): the last known good revision.
    async fn completed_as_shown(&self, record: &DeploymentRecord, shows: &str) -> Outcome {
        let id = record.deployment_id.as_deref();
        let succeeded = self.ledger.mark_succeeded(record, id, &now_text()).await;
        let revision = record.new_task_definition.clone().unwrap_or_default();
        let outcome = Outcome {
            milestone: Some(Milestone::Completed),
            ..Outcome::recorded(
                record,
                format!("{shows}: {revision} is now the service's last known good revision"),
            )
        };
        let settled = "already settled by another report of this deployment";
        self.written(record, succeeded, outcome, settled)
    }

    /// A deployment past the deploy timeout that ECS has not settled: failed.
    async fn timed_out(
        &self,
        record: DeploymentRecord,
        service: &Service,
        reason: &str,
        lease: &Lease,
    ) -> Outcome {
        let history = match self.ledger.latest(&record.service_arn, HISTORY).await {
            Ok(history) => history,
            Err(e) => {
                let why = format!("cannot read the ledger: {e}");
                return Outcome::failed(&key_of(&record), why, e.retryable());
            }
        };
        if self.config.dry_run || flag(service, TAG_DRY_RUN) {
            return self.dry_run_failure(record, service, &history, reason);
        }
        self.on_failure(record, service, &history, reason, lease)
            .await
    }

    /// `outcome` when a conditional write landed; `moved_on` when the record had moved on
    /// (another report of the same deployment got there first); a failure when the write failed.
    fn written(
        &self,
        record: &DeploymentRecord,
        written: Result<Written, LedgerError>,
        outcome: Outcome,
        moved_on: &str,
    ) -> Outcome {
        match written {
            Ok(Written::Landed) => outcome,
            Ok(Written::MovedOn) => {
                Outcome::recorded(record, format!("{moved_on}: nothing changed"))
            }
            Err(e) => Outcome::failed(
                &key_of(record),
                format!("could not record it: {e}"),
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

/// An event ECS does not bear out: nothing moved, and one line that says what the event claimed
/// and what ECS shows.
fn not_confirmed(change: &DeploymentChange, record: &DeploymentRecord, shows: &str) -> Outcome {
    let claimed = change.state.as_str();
    tracing::warn!(
        event_id = change.event_id.as_str(),
        cluster = change.service.cluster.as_str(),
        service = change.service.service.as_str(),
        deployment_id = change.deployment_id.as_str(),
        claimed,
        ecs_shows = shows,
        outcome = "skipped",
        "ECS does not confirm the event: not acted on"
    );
    let reason = format!(
        "not acted on: the event says deployment {} is {claimed}, but {shows}; nothing changed (the sweep settles the deployment from what ECS shows)",
        change.deployment_id
    );
    Outcome::recorded(record, reason).with_kind(OutcomeKind::Skipped)
}

/// The sweep's answer when it cannot read the ledger: about no service in particular.
fn cannot_read_the_ledger(e: &LedgerError) -> Outcome {
    let key = ServiceKey {
        cluster: String::new(),
        service: String::new(),
    };
    let reason = format!("the sweep cannot read the ledger: {e}");
    Outcome::failed(&key, reason, e.retryable())
}

/// Milliseconds from the push to `at` (ECS's COMPLETED), when both are known.
fn push_to_completed_ms(pushed_at: &str, at: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let pushed = chrono::DateTime::parse_from_rfc3339(pushed_at).ok()?;
    u64::try_from((at - pushed.with_timezone(&chrono::Utc)).num_milliseconds()).ok()
}

fn dry_run_outcome(key: &ServiceKey, what: String) -> Outcome {
    Outcome {
        skip_reason: Some(SkipReason::DryRun),
        ..Outcome::new(key, OutcomeKind::DryRun, Some(format!("dry run: {what}")))
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
