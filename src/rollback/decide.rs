//! The rollback decisions, over plain data: which ledger record an ECS event is about, and what
//! to do when a deployment failed.

use crate::ecs_event::DeploymentState;
use crate::ledger::{DeploymentRecord, Kind, Status};
use crate::plan::ecs_rollback;
use crate::resolved::ResolvedImages;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, DeploymentStrategy, Service};
use chrono::{DateTime, Utc};

/// The ledger record of the deployment `deployment_id` of `service`, if pushdeploy started it.
/// By the ECS deployment id recorded from UpdateService; otherwise by task definition: the one
/// ECS lists for that deployment id, or, when ECS no longer lists the id, the revision the
/// service runs now, for a deployment still in flight.
pub(crate) fn find_deployment<'a>(
    history: &'a [DeploymentRecord],
    deployment_id: &str,
    service: &Service,
) -> Option<&'a DeploymentRecord> {
    if let Some(record) = history
        .iter()
        .find(|r| r.deployment_id.as_deref() == Some(deployment_id))
    {
        return Some(record);
    }
    let listed = service
        .deployments()
        .iter()
        .find(|d| d.id() == Some(deployment_id));
    let (definition, in_flight_only) = match listed {
        Some(deployment) => (deployment.task_definition()?, false),
        None => (service.task_definition()?, true),
    };
    history.iter().find(|r| {
        // A record that already knows its own deployment id is some other deployment.
        r.deployment_id.is_none()
            && r.new_task_definition.as_deref() == Some(definition)
            && (!in_flight_only || r.status == Status::Deployed)
    })
}

/// Whether the function only says what it would do about a deployment of a service. A
/// deployment the ledger records (`recorded`) was made for real: the deploy function writes no
/// record in a dry run. So a `pushdeploy:dry-run` tag (`tagged`) added after it started does not
/// stop its rollback, quarantine or last-known-good record: anyone who may tag the service
/// could otherwise leave a failed deployment running. Only the stack's DryRun (`stack`) holds
/// those back. A deployment pushdeploy did not start is only ever noted, and the tag keeps
/// even that note out of the ledger, as it does every write for that service.
pub(crate) fn dry_run_for(stack: bool, tagged: bool, recorded: bool) -> bool {
    stack || (tagged && !recorded)
}

/// How far ahead of AWS's clock a sweep's `time` may be and still run: clocks
/// disagree a little, never by minutes.
pub(crate) const SWEEP_AHEAD_AT_MOST: chrono::Duration = chrono::Duration::minutes(5);
/// How old a sweep's `time` may be: the sweep rule's event age limit. "MaximumEventAgeInSeconds:
/// The maximum amount of time, in seconds, to continue to make retry attempts. [...] Maximum
/// value of 86400." (EventBridge API `RetryPolicy`; template.yaml sets that maximum.)
pub(crate) const SWEEP_AGE_AT_MOST: chrono::Duration = chrono::Duration::hours(24);

/// Why a sweep whose event says `claimed` is refused at `now` (AWS's clock), if it is.
/// The sweep measures from `now` whatever the event says; a `time` far from it is not a sweep
/// EventBridge sent on schedule (the payload is anyone's who may invoke the function), and a
/// missed sweep is made up by the next one.
pub(crate) fn sweep_refused(claimed: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (claimed_text, now_text) = (stamp(claimed), stamp(now));
    if claimed - now > SWEEP_AHEAD_AT_MOST {
        Some(format!(
            "the sweep's time {claimed_text} is more than {} minutes ahead of AWS's clock ({now_text}): not a scheduled sweep, refused; nothing moved",
            SWEEP_AHEAD_AT_MOST.num_minutes()
        ))
    } else if now - claimed > SWEEP_AGE_AT_MOST {
        Some(format!(
            "the sweep's time {claimed_text} is more than {} hours before AWS's clock ({now_text}), older than any delivery of the sweep rule: refused; the next sweep makes it up",
            SWEEP_AGE_AT_MOST.num_hours()
        ))
    } else {
        None
    }
}

/// `Ok` when ECS shows what an `ECS Deployment State Change` event claims of deployment
/// `deployment_id`; otherwise what ECS shows, in its words. The event is anyone's who may invoke
/// the function; the service's `deployments` (the DescribeServices answer the function reads
/// anyway) are ECS's:
///
/// - COMPLETED: "When the service reaches a steady state, the deployment transitions to a
///   COMPLETED state" (API `Deployment.rolloutState`): ECS lists the deployment with rollout
///   state COMPLETED. "The rolloutState of a service is only returned for services that use the
///   rolling update (ECS) deployment type that aren't behind a Classic Load Balancer": without
///   one, the steady state itself: the PRIMARY deployment, alone, all its tasks running.
/// - FAILED: "If the service fails to reach a steady state and circuit breaker is turned on, the
///   deployment transitions to a FAILED state" (same), and the event "is sent for services with
///   deployment circuit breaker logic turned on" (Developer Guide, "Amazon ECS service
///   deployment state change events"): ECS lists the deployment with rollout state FAILED. It
///   keeps that state when ECS rolls the service back by itself (the failed deployment turns
///   ACTIVE beside the rollback's PRIMARY one, and drains).
/// - IN_PROGRESS (it only links an id to a record): ECS lists the deployment.
///
/// A deployment ECS no longer lists confirms nothing: "INACTIVE: A deployment that has been
/// completely replaced" (API `Deployment.status`); the sweep settles its record from what ECS
/// shows.
pub(crate) fn ecs_confirms(
    claimed: DeploymentState,
    deployment_id: &str,
    service: &Service,
) -> Result<(), String> {
    let listed = service
        .deployments()
        .iter()
        .find(|d| d.id() == Some(deployment_id));
    let Some(d) = listed else {
        return Err(format!(
            "ECS does not list deployment {deployment_id} ({})",
            listed_deployments(service)
        ));
    };
    let confirmed = match claimed {
        DeploymentState::InProgress => true,
        DeploymentState::Completed => match d.rollout_state() {
            Some(state) => *state == DeploymentRolloutState::Completed,
            None => {
                d.status() == Some("PRIMARY")
                    && service.deployments().len() == 1
                    && d.running_count() >= d.desired_count()
                    && d.failed_tasks() == 0
            }
        },
        DeploymentState::Failed => d.rollout_state() == Some(&DeploymentRolloutState::Failed),
    };
    if confirmed {
        Ok(())
    } else {
        Err(format!("ECS shows {}", deployment_text(d)))
    }
}

/// One deployment as ECS lists it: id, status, rollout state, task counts.
fn deployment_text(d: &Deployment) -> String {
    format!(
        "deployment {} {}, rollout {}, {} of {} tasks running, {} failed",
        d.id().unwrap_or("?"),
        d.status().unwrap_or("?"),
        d.rollout_state()
            .map(|s| s.as_str())
            .unwrap_or("not reported"),
        d.running_count(),
        d.desired_count(),
        d.failed_tasks()
    )
}

fn listed_deployments(service: &Service) -> String {
    let listed: Vec<String> = service
        .deployments()
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d.id().unwrap_or("?"),
                d.status().unwrap_or("?"),
                d.rollout_state().map(|s| s.as_str()).unwrap_or("-")
            )
        })
        .collect();
    if listed.is_empty() {
        "it lists none".to_string()
    } else {
        format!("it lists {}", listed.join(", "))
    }
}

/// What to do about a failed (or never finishing) deployment that pushdeploy started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FailureAction {
    /// Already handled: a duplicate event, or the sweep and ECS both reporting it.
    AlreadySettled(String),
    /// A rollback failed. pushdeploy never rolls back a rollback.
    NeedsHuman(String),
    /// ECS rolls the service back by itself: record, quarantine, do not touch.
    EcsRollsBack(String),
    /// The service no longer runs the failed revision: a human's later change wins.
    ChangedSince(String),
    /// Put the service back on `target`: the last known good revision, or the one before.
    RollBack { target: String, why: String },
    /// ECS owns this service's rollbacks (its strategy is BLUE_GREEN, LINEAR or CANARY): ask it
    /// to roll back, with StopServiceDeployment.
    AskEcsToRollBack(String),
}

/// What to do about `failed`, a deployment pushdeploy started that ECS reports FAILED or the
/// sweep found stuck: decided from `service` and `history` (newest first) alone, with no call.
/// Nothing when it is settled; a person when it was itself a rollback; an earlier attempt's
/// rollback finished; ECS's own rollback when ECS makes or owns it; nothing when the service
/// was changed since; else back to the last known good revision, or the one before it.
///
/// A `superseded` record is not settled here: supersession is read from what ECS lists, and
/// ECS's own report that the deployment FAILED outranks it (the digest did fail).
pub(crate) fn on_failure(
    failed: &DeploymentRecord,
    service: &Service,
    history: &[DeploymentRecord],
) -> FailureAction {
    decide_failure(failed, service, history, true)
}

/// [`on_failure`] for a deployment whose rollback ECS was expected to make and did not (the
/// sweep saw the failed deployment still primary): pushdeploy acts as for a service without
/// native rollback.
pub(crate) fn on_failure_ecs_did_not_roll_back(
    failed: &DeploymentRecord,
    service: &Service,
    history: &[DeploymentRecord],
) -> FailureAction {
    decide_failure(failed, service, history, false)
}

fn decide_failure(
    failed: &DeploymentRecord,
    service: &Service,
    history: &[DeploymentRecord],
    expect_ecs_rollback: bool,
) -> FailureAction {
    let failed_revision = failed.new_task_definition.as_deref().unwrap_or_default();
    if let Some(action) = not_pushdeploys_to_roll_back(failed) {
        return action;
    }
    if let Some(action) = rollback_started_earlier(failed, history) {
        return action;
    }
    if let Some(how) = ecs_rollback(service).filter(|_| expect_ecs_rollback) {
        return FailureAction::EcsRollsBack(format!(
            "ECS rolls the service back by itself ({how}); pushdeploy did not call UpdateService, and its sweep checks that ECS did"
        ));
    }
    let running = service.task_definition().unwrap_or_default();
    if running != failed_revision {
        return FailureAction::ChangedSince(format!(
            "the service now runs {running}, not the failed revision {failed_revision}: it was changed since, and that change wins"
        ));
    }
    if let Some(strategy) = native_strategy(service) {
        return FailureAction::AskEcsToRollBack(format!(
            "the service's {strategy} strategy has ECS own its rollbacks: asked ECS to roll it back (StopServiceDeployment, ROLLBACK)"
        ));
    }
    roll_back_to_last_good(failed, history)
}

/// A failure that is not pushdeploy's to roll back: one already settled, or a failed rollback
/// (pushdeploy does not roll back a rollback).
fn not_pushdeploys_to_roll_back(failed: &DeploymentRecord) -> Option<FailureAction> {
    if matches!(
        failed.status,
        Status::Failed | Status::NeedsHuman | Status::Succeeded
    ) {
        return Some(FailureAction::AlreadySettled(format!(
            "this deployment is already recorded as {}",
            failed.status.as_str()
        )));
    }
    let failed_revision = failed.new_task_definition.as_deref().unwrap_or_default();
    (failed.kind == Kind::Rollback).then(|| {
        FailureAction::NeedsHuman(format!(
            "the rollback to {failed_revision} failed; pushdeploy does not roll back a rollback: the service needs a person"
        ))
    })
}

/// The rollback an earlier attempt started (its record is written before UpdateService) and
/// did not finish recording: finished, whatever the service runs now.
fn rollback_started_earlier(
    failed: &DeploymentRecord,
    history: &[DeploymentRecord],
) -> Option<FailureAction> {
    let sk = failed.sk();
    let started = history
        .iter()
        .find(|r| r.kind == Kind::Rollback && r.reverts.as_deref() == Some(sk.as_str()))?;
    let target = started.new_task_definition.clone().unwrap_or_default();
    Some(FailureAction::RollBack {
        why: format!("to {target} (finishing the rollback an earlier attempt started)"),
        target,
    })
}

/// The rollback pushdeploy makes itself: to the newest completed revision other than the failed
/// one, or, when none is known, to the revision that ran before.
fn roll_back_to_last_good(
    failed: &DeploymentRecord,
    history: &[DeploymentRecord],
) -> FailureAction {
    let failed_revision = failed.new_task_definition.as_deref().unwrap_or_default();
    let last_good = history.iter().find(|r| {
        r.status == Status::Succeeded
            && r.new_task_definition.is_some()
            && r.new_task_definition.as_deref() != Some(failed_revision)
    });
    match last_good {
        Some(good) => FailureAction::RollBack {
            target: good.new_task_definition.clone().unwrap_or_default(),
            why: format!(
                "to the last known good revision ({} pushed {}, completed)",
                good.digest, good.pushed_at
            ),
        },
        None => FailureAction::RollBack {
            target: failed.previous_task_definition.clone(),
            why: "to the revision that ran before (no completed deployment is known)".to_string(),
        },
    }
}

/// What ECS shows of a deployment pushdeploy still has in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EcsShows {
    /// The service's primary deployment, still rolling out.
    Primary,
    /// Completed (its COMPLETED event not handled yet, or lost).
    Completed,
    /// Failed: ECS reports it.
    Failed,
    /// Replaced by a newer deployment before it completed; why, in ECS's words.
    Replaced(String),
    /// Nothing that settles it.
    Unknown,
}

/// What ECS shows of `record`'s deployment in `service` (a DescribeServices answer read after
/// the ledger, so that every deployment a record names had started before the answer). Found by
/// the ECS id recorded, or by task definition while no id is. "PRIMARY: The most recent
/// deployment of a service. ACTIVE: A service deployment that still has running tasks, but are
/// in the process of being replaced with a new PRIMARY deployment" (API `Deployment.status`): one
/// that is no longer PRIMARY and never reached COMPLETED or FAILED was replaced, and so was one
/// ECS no longer lists at all while another is PRIMARY (its tasks drained away).
pub(crate) fn ecs_shows(record: &DeploymentRecord, service: &Service) -> EcsShows {
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    let listed = deployment_of(record, service);
    let primary_id = primary.and_then(|d| d.id()).unwrap_or("?");
    let ours = record.deployment_id.as_deref().unwrap_or("?");
    match (listed, primary) {
        (Some(d), _) => match d.rollout_state() {
            Some(DeploymentRolloutState::Completed) => EcsShows::Completed,
            Some(DeploymentRolloutState::Failed) => EcsShows::Failed,
            _ if d.status() == Some("PRIMARY") => EcsShows::Primary,
            _ => EcsShows::Replaced(format!(
                "ECS replaced deployment {ours} with {primary_id} before it completed"
            )),
        },
        (None, Some(_)) => EcsShows::Replaced(format!(
            "ECS no longer lists deployment {ours}; {primary_id} replaced it"
        )),
        (None, None) => EcsShows::Unknown,
    }
}

/// `record`'s deployment among those ECS lists for `service`: by the ECS id recorded, or by
/// task definition while no id is.
pub(crate) fn deployment_of<'a>(
    record: &DeploymentRecord,
    service: &'a Service,
) -> Option<&'a Deployment> {
    service
        .deployments()
        .iter()
        .find(|d| match &record.deployment_id {
            Some(id) => d.id() == Some(id.as_str()),
            None => {
                d.task_definition().is_some()
                    && d.task_definition() == record.new_task_definition.as_deref()
            }
        })
}

/// What the sweep makes of a deployment ECS still rolls out past the deploy timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Healthy or moving: look again one timeout later. Why, in ECS's figures.
    Progressing(String),
    /// Failing tasks, or no progress since the last look: failed. Why, in ECS's figures.
    Stuck(String),
}

/// Whether a deployment past the deploy timeout is progressing or stuck, from what ECS shows of
/// it and the running count the last look saw (none: the deployment started from 0). The
/// timeout is when the sweep looks, not a verdict: a blue/green deployment bakes with all its
/// tasks running (BLUE_GREEN's `bakeTimeInMinutes`, LINEAR and CANARY steps keep them running
/// between shifts), and a slow rolling one keeps adding tasks. Failing tasks are stuck at once:
/// the circuit breaker, where it is on, counts the same tasks.
pub(crate) fn progress(deployment: &Deployment, last_running: Option<i32>) -> Progress {
    let (running, desired) = (deployment.running_count(), deployment.desired_count());
    let (pending, failed) = (deployment.pending_count(), deployment.failed_tasks());
    let figures = format!(
        "ECS shows {running} of {desired} tasks running, {pending} pending, {failed} failed, rollout {}",
        deployment
            .rollout_state()
            .map(|s| s.as_str())
            .unwrap_or("unknown")
    );
    let before = last_running.unwrap_or(0);
    if failed > 0 {
        Progress::Stuck(format!("stuck with failing tasks: {figures}"))
    } else if running >= desired && desired > 0 {
        Progress::Progressing(format!(
            "all tasks running, none failed (settling or baking): {figures}"
        ))
    } else if running > before {
        Progress::Progressing(format!(
            "running tasks rose from {before} to {running}: {figures}"
        ))
    } else {
        Progress::Stuck(format!(
            "no progress since the last look ({before} running then): {figures}"
        ))
    }
}

/// The service's deployment strategy when ECS owns its rollbacks (BLUE_GREEN, LINEAR, CANARY):
/// pushdeploy then asks ECS to roll back (StopServiceDeployment, stop type ROLLBACK) and never
/// sends an UpdateService of its own.
pub(crate) fn native_strategy(service: &Service) -> Option<&str> {
    let strategy = service.deployment_configuration()?.strategy()?;
    matches!(
        strategy,
        DeploymentStrategy::BlueGreen | DeploymentStrategy::Linear | DeploymentStrategy::Canary
    )
    .then(|| strategy.as_str())
}

/// Whether ECS made the rollback it was expected to make of `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EcsRollback {
    /// The failed deployment is no longer primary: ECS rolled back, or a newer deployment of
    /// pushdeploy's replaced it.
    Seen(String),
    /// ECS's own rollback deployment failed too: a person must look.
    Failed(String),
    /// The failed deployment is still the service's primary one: no rollback started.
    NotStarted,
}

/// What ECS shows of the rollback it was expected to make of `failed`.
pub(crate) fn ecs_rollback_verdict(
    failed: &DeploymentRecord,
    service: &Service,
    history: &[DeploymentRecord],
) -> EcsRollback {
    if deployment_of(failed, service).is_some_and(|d| d.status() == Some("PRIMARY")) {
        return EcsRollback::NotStarted;
    }
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    let id = primary.and_then(|d| d.id()).unwrap_or("?");
    let ours = history
        .iter()
        .any(|r| r.deployment_id.as_deref() == Some(id));
    let failed_too =
        primary.is_some_and(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed));
    if failed_too && !ours {
        EcsRollback::Failed(format!(
            "ECS's own rollback ({id}) failed too: the service needs a person"
        ))
    } else if ours {
        EcsRollback::Seen(format!(
            "a newer deployment of pushdeploy's ({id}) replaced the failed one"
        ))
    } else {
        EcsRollback::Seen(format!(
            "ECS rolled the service back as expected ({id} replaced the failed deployment)"
        ))
    }
}

/// What ECS recorded that `target` ran, as read when a deployment replaced it: the failed
/// deployment's own reading when it replaced `target`, else that of any deployment in the
/// history that did.
pub(crate) fn digests_ran<'a>(
    target: &str,
    failed: &'a DeploymentRecord,
    history: &'a [DeploymentRecord],
) -> Option<&'a ResolvedImages> {
    std::iter::once(failed)
        .chain(history)
        .filter(|r| r.previous_task_definition == target)
        .find_map(|r| r.previous_images.as_ref())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
