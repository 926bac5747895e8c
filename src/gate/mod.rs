//! The gate function: the lifecycle-hook target of BLUE_GREEN, LINEAR and CANARY services. ECS
//! invokes it at the stages the service's `lifecycleHooks` name; it runs the checks configured
//! for the service and answers SUCCEEDED, FAILED (ECS rolls back) or IN_PROGRESS (ECS calls
//! again after `callBackDelay`, so no invocation waits for a streak of successes). It fails
//! closed: no checks configured, checks that do not read, or AWS out of reach for too long all
//! answer FAILED.

pub mod alarms;
pub mod checks;
pub mod hook;
mod listener;
mod probe;
mod verdict;

use crate::aws::Aws;
use crate::clock::now_text;
use crate::config::Config;
use crate::follow::ServiceKey;
use crate::ledger::{Kind, Ledger};
use crate::notify::Notifier;
use crate::outcome::{Milestone, Outcome, OutcomeKind};
use crate::telemetry::Subject;
use alarms::{judge, AlarmCheck, Alarms};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::{Service, ServiceDeploymentStatus};
use checks::{configured, GateChecks, HOW_TO_CONFIGURE};
use hook::{HookAnswer, HookInvocation, HookStatus, PROGRESS_KEY};
use listener::{test_listener_rule, Listeners};
use probe::Prober;
use serde_json::{Map, Value};
use verdict::{after_round, combine, Progress, Verdict, ERRORS_AT_MOST};

/// How long ECS waits before it calls an IN_PROGRESS gate again. "By default, the delay is 30
/// seconds" (Developer Guide, "Lambda hooks for Amazon ECS service deployments"); a smoke
/// streak's tries are closer together than that.
pub const CALLBACK_DELAY_SECONDS: u64 = 10;

/// The only stage the HTTP smoke checks run at: test traffic reaches the green revision and
/// production traffic does not yet.
pub const SMOKE_STAGE: &str = "POST_TEST_TRAFFIC_SHIFT";

/// The gate function: one answer per hook invocation, never an error (ECS would roll back on an
/// error without saying why).
pub struct GateHandler {
    aws: Aws,
    ledger: Ledger,
    notifier: Notifier,
    config: Config,
    listeners: Listeners,
    alarms: Alarms,
    /// Made at the first smoke round, not at init: loading the system's root certificates is
    /// most of a cold start (measured in `make bench`), and most invocations never probe.
    prober: std::sync::OnceLock<Prober>,
}

impl GateHandler {
    /// The gate on the standard AWS configuration and its settings.
    pub fn new(sdk: &SdkConfig, config: Config) -> GateHandler {
        let aws = Aws::new(sdk);
        GateHandler {
            alarms: Alarms::new(sdk, aws.clock.clone()),
            ledger: Ledger::new(aws.dynamodb.clone(), config.table.clone()),
            notifier: Notifier::new(aws.sns.clone(), config.notify_topic()),
            prober: std::sync::OnceLock::new(),
            listeners: Listeners::new(sdk),
            aws,
            config,
        }
    }

    /// One hook invocation: parsed, decided, reported; the answer ECS reads.
    pub async fn handle(&self, payload: Value) -> HookAnswer {
        let hook = match HookInvocation::parse(&payload) {
            Ok(hook) => hook,
            Err(not_a_hook) => {
                let reason = not_a_hook.to_string();
                tracing::warn!(
                    outcome = "failed",
                    reason = reason.as_str(),
                    "gate: refused"
                );
                return answer(Verdict::Fail(reason), &Progress::default());
            }
        };
        let mut progress: Progress = hook
            .progress
            .clone()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        let verdict = self.decide(&hook, &mut progress).await;
        self.report(&hook, &verdict).await;
        answer(verdict, &progress)
    }

    async fn decide(&self, hook: &HookInvocation, progress: &mut Progress) -> Verdict {
        if hook.is_rollback() {
            return Verdict::Pass(format!(
                "ECS is rolling back at {} (the green revision's traffic weight is 0): a gate never holds a rollback",
                hook.stage
            ));
        }
        let checks = match self.checks_of(hook).await {
            Ok(checks) => checks,
            Err(Unread::Retry(why)) => return cannot_check(progress, &why),
            Err(Unread::Final(why)) => return Verdict::Fail(why),
        };
        let alarms = match &checks.alarms {
            Some(check) => match self.alarm_round(check, progress).await {
                Ok(verdict) => Some(verdict),
                Err(Unread::Retry(why)) => return cannot_check(progress, &why),
                Err(Unread::Final(why)) => return Verdict::Fail(why),
            },
            None => None,
        };
        progress.errors = 0;
        let smoke = if hook.stage == SMOKE_STAGE && !checks.smoke.is_empty() {
            Some(self.smoke_round(&checks, progress).await)
        } else {
            None
        };
        combine(&hook.stage, smoke, alarms)
    }

    /// The alarms as CloudWatch shows them now, judged on AWS's clock.
    async fn alarm_round(
        &self,
        check: &AlarmCheck,
        progress: &mut Progress,
    ) -> Result<alarms::AlarmVerdict, Unread> {
        let (seen, now) = self.alarms.states_of(&check.names).await.map_err(|e| {
            if e.retryable {
                Unread::Retry(e.to_string())
            } else {
                Unread::Final(format!("cannot read the alarms: {e}"))
            }
        })?;
        let verdict = judge(check, &seen, now, &mut progress.insufficient_rounds);
        progress.alarms = seen;
        Ok(verdict)
    }

    /// One round of the smoke checks against the test listener.
    async fn smoke_round(&self, checks: &GateChecks, progress: &mut Progress) -> Verdict {
        let Some(base_url) = checks.base_url.as_deref() else {
            return Verdict::Fail(format!(
                "smoke checks are configured but no base URL (no tag or rule names it, and the service names no test listener rule): {HOW_TO_CONFIGURE}"
            ));
        };
        let prober = self.prober.get_or_init(Prober::new);
        let probes = prober.round(base_url, &checks.smoke).await;
        match after_round(&checks.smoke, progress, probes) {
            Verdict::Fail(why) => Verdict::Fail(format!("{why} (against {base_url})")),
            verdict => verdict,
        }
    }

    /// The checks configured for the hook's service, read from ECS (its tags) and the rules.
    async fn checks_of(&self, hook: &HookInvocation) -> Result<GateChecks, Unread> {
        let (cluster, name) = hook
            .cluster_and_service()
            .ok_or_else(|| Unread::Final(format!("{} is not a service ARN", hook.service_arn)))?;
        let service = self.service(cluster, name).await?;
        let mut checks = match configured(&service, &self.config.rules) {
            Ok(checks) if checks.is_empty() => {
                let why =
                    format!("no checks configured: the gate fails closed; {HOW_TO_CONFIGURE}");
                return Err(Unread::Final(why));
            }
            Ok(checks) => checks,
            Err(why) => {
                return Err(Unread::Final(format!(
                    "the gate's checks do not read: {why}"
                )))
            }
        };
        if checks.base_url.is_none() && hook.stage == SMOKE_STAGE {
            if let Some(rule) = test_listener_rule(&service) {
                checks.base_url =
                    self.listeners
                        .base_url_of(rule)
                        .await
                        .map_err(|e| match e.retryable {
                            true => Unread::Retry(e.to_string()),
                            false => Unread::Final(format!("cannot find the test listener: {e}")),
                        })?;
            }
        }
        Ok(checks)
    }

    async fn service(&self, cluster: &str, name: &str) -> Result<Service, Unread> {
        let described = self
            .aws
            .describe_services(cluster, &[name.to_string()])
            .await
            .map_err(|e| match e.retryable {
                true => Unread::Retry(e.to_string()),
                false => Unread::Final(format!("cannot read the service: {e}")),
            })?;
        described
            .services
            .into_iter()
            .find(|s| s.service_name() == Some(name))
            .ok_or_else(|| Unread::Final(format!("ECS does not know service {cluster}/{name}")))
    }

    /// One log line per decision; a failure also quarantines the green digest and notifies.
    async fn report(&self, hook: &HookInvocation, verdict: &Verdict) {
        let (outcome, reason) = match verdict {
            Verdict::Pass(why) => ("succeeded", why),
            Verdict::Again(why) => ("in_progress", why),
            Verdict::Fail(why) => ("failed", why),
        };
        let (cluster, service) = hook.cluster_and_service().unwrap_or(("", ""));
        tracing::info!(
            cluster,
            service,
            service_arn = hook.service_arn.as_str(),
            service_deployment = hook.service_deployment_arn.as_str(),
            lifecycle_stage = hook.stage.as_str(),
            execution_id = hook.execution_id.as_str(),
            outcome,
            reason = reason.as_str(),
            "gate: {outcome}"
        );
        if let Verdict::Fail(why) = verdict {
            self.failed(hook, why).await;
        }
    }

    /// A FAILED gate: ECS rolls back; the digest pushdeploy deployed is quarantined with the
    /// evidence (the rollback function records the deployment failed when ECS shows the
    /// rollback), and the notification says why.
    async fn failed(&self, hook: &HookInvocation, why: &str) {
        let key = match hook.cluster_and_service() {
            Some((cluster, service)) => ServiceKey {
                cluster: cluster.into(),
                service: service.into(),
            },
            None => return,
        };
        let reason = format!("the gate answered FAILED at {}: {why}", hook.stage);
        let mut outcome = Outcome {
            milestone: Some(Milestone::Failed),
            ..Outcome::new(&key, OutcomeKind::Failed, Some(reason.clone()))
        };
        match self.quarantine_green(hook, &reason).await {
            Ok(Some(digest)) => {
                outcome.reason = Some(format!(
                    "{reason}; {digest} is now quarantined for this service"
                ));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                reason = e.as_str(),
                "gate: could not quarantine the green digest"
            ),
        }
        self.notifier
            .send(Subject::event(&hook.execution_id), &[outcome])
            .await;
    }

    /// Quarantines the digest of pushdeploy's deployment onto the green revision, found in the
    /// ledger by the revision's task definition; `None` when the deployment is not pushdeploy's.
    async fn quarantine_green(
        &self,
        hook: &HookInvocation,
        reason: &str,
    ) -> Result<Option<String>, String> {
        // Believe ECS, not the payload: anyone who may invoke the gate could name any revision.
        if !self.in_flight_as_claimed(hook).await? {
            tracing::warn!(
                service_deployment = hook.service_deployment_arn.as_str(),
                target_revision = hook.target_revision_arn.as_str(),
                "gate: ECS does not show this service deployment in flight onto this revision; nothing quarantined"
            );
            return Ok(None);
        }
        let revisions = self
            .aws
            .describe_service_revisions(std::slice::from_ref(&hook.target_revision_arn))
            .await
            .map_err(|e| e.to_string())?;
        let Some(definition) = revisions.first().and_then(|r| r.task_definition()) else {
            return Ok(None);
        };
        let history = self
            .ledger
            .latest(&hook.service_arn, 25)
            .await
            .map_err(|e| e.to_string())?;
        let Some(record) = history.iter().find(|r| {
            r.kind == Kind::Deploy && r.new_task_definition.as_deref() == Some(definition)
        }) else {
            return Ok(None);
        };
        self.ledger
            .quarantine(record, reason, &now_text())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(record.digest.clone()))
    }
}

impl GateHandler {
    /// Whether ECS shows the hook's service deployment, of the hook's service, still in flight
    /// onto the hook's green revision.
    async fn in_flight_as_claimed(&self, hook: &HookInvocation) -> Result<bool, String> {
        let deployment = self
            .aws
            .describe_service_deployment(&hook.service_deployment_arn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(deployment.is_some_and(|d| {
            d.service_arn() == Some(hook.service_arn.as_str())
                && d.target_service_revision().and_then(|r| r.arn())
                    == Some(hook.target_revision_arn.as_str())
                && matches!(
                    d.status(),
                    Some(ServiceDeploymentStatus::Pending | ServiceDeploymentStatus::InProgress)
                )
        }))
    }
}

/// AWS was out of reach this invocation: call again, up to [`ERRORS_AT_MOST`] times in a row.
fn cannot_check(progress: &mut Progress, why: &str) -> Verdict {
    progress.errors += 1;
    if progress.errors >= ERRORS_AT_MOST {
        return Verdict::Fail(format!(
            "the gate could not check, {} times in a row: {why}",
            progress.errors
        ));
    }
    Verdict::Again(format!("the gate cannot check yet: {why}"))
}

/// Why the checks could not be read.
enum Unread {
    /// AWS may answer next time: ask ECS to call again.
    Retry(String),
    /// Nothing will change by calling again: FAILED.
    Final(String),
}

/// The verdict in ECS's words, with the progress (and the reason) in `hookDetails`.
fn answer(verdict: Verdict, progress: &Progress) -> HookAnswer {
    let (status, reason) = match verdict {
        Verdict::Pass(why) => (HookStatus::Succeeded, why),
        Verdict::Again(why) => (HookStatus::InProgress, why),
        Verdict::Fail(why) => (HookStatus::Failed, why),
    };
    let mut details = serde_json::to_value(progress).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut details {
        map.insert("reason".into(), Value::String(reason));
    }
    HookAnswer {
        status,
        callback_delay_seconds: (status == HookStatus::InProgress)
            .then_some(CALLBACK_DELAY_SECONDS),
        details: Map::from_iter([(PROGRESS_KEY.to_string(), details)]),
    }
}
