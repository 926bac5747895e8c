//! What the deploy function answers and logs: one outcome per service, one report per event.

use crate::follow::ServiceKey;
use crate::ledger::DeploymentRecord;
use aws_sdk_ecs::types::Service;
use serde::Serialize;
use std::collections::BTreeMap;

/// What became of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// UpdateService accepted the new revision; ECS rolls it out.
    Deployed,
    /// Left as it was on purpose: `reason` says why (`skip_reason` too, as a code, where one
    /// applies).
    Skipped,
    /// Something went wrong for this service; `retryable` says whether Lambda runs it again.
    Failed,
    /// pushdeploy put the service back on its last known good revision.
    RolledBack,
    /// A rollback failed: pushdeploy stops there and a person must look.
    NeedsHuman,
    /// A deployment's state was written to the ledger; ECS was not touched.
    Recorded,
    /// Dry run: what would have happened, with nothing changed.
    DryRun,
}

impl OutcomeKind {
    /// The kind as the `outcome` log field names it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Deployed => "deployed",
            OutcomeKind::Skipped => "skipped",
            OutcomeKind::Failed => "failed",
            OutcomeKind::RolledBack => "rolled_back",
            OutcomeKind::NeedsHuman => "needs_human",
            OutcomeKind::Recorded => "recorded",
            OutcomeKind::DryRun => "dry_run",
        }
    }
}

/// Why a service was skipped, as a short code: the `skip_reason` log field and the `Reason`
/// metric dimension. A closed set, so that the dimension stays low-cardinality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The service is draining or inactive.
    NotActive,
    /// CODE_DEPLOY or EXTERNAL deployment controller.
    OtherController,
    /// The container already runs the pushed digest.
    AlreadyRunning,
    /// A newer push already reached the service.
    Stale,
    /// A semver policy: the pushed version is not newer than the one running.
    NotNewer,
    /// A semver policy: a bigger change than the policy allows, or a pre-release.
    OutsidePolicy,
    /// Another delivery of this push holds the service right now.
    InProgress,
    /// An earlier delivery of this push already handled the service.
    AlreadyHandled,
    /// The digest failed on this service before.
    Quarantined,
    /// The service's cluster is not in `PUSHDEPLOY_CLUSTERS`.
    ClusterNotAllowed,
    /// The service is tagged `pushdeploy:paused` = `true`.
    Paused,
    /// `PUSHDEPLOY_DRY_RUN` or the service's `pushdeploy:dry-run` tag.
    DryRun,
}

impl SkipReason {
    /// The code as the `skip_reason` log field and the `Reason` metric dimension give it.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotActive => "not_active",
            SkipReason::OtherController => "other_controller",
            SkipReason::AlreadyRunning => "already_running",
            SkipReason::Stale => "stale",
            SkipReason::NotNewer => "not_newer",
            SkipReason::OutsidePolicy => "outside_policy",
            SkipReason::InProgress => "in_progress",
            SkipReason::AlreadyHandled => "already_handled",
            SkipReason::Quarantined => "quarantined",
            SkipReason::ClusterNotAllowed => "cluster_not_allowed",
            SkipReason::Paused => "paused",
            SkipReason::DryRun => "dry_run",
        }
    }
}

/// What happened to a deployment, for metrics, notifications and the `milestone` log field:
/// the moments an operator wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Milestone {
    /// UpdateService accepted the new revision.
    Started,
    /// ECS reported the deployment COMPLETED.
    Completed,
    /// The deployment failed (ECS said so, it never finished, or it could not be started).
    Failed,
    /// The deployment failed and pushdeploy put the service back.
    RolledBack,
    /// A rollback failed: a person must look.
    NeedsHuman,
    /// The deployment is paused at a pause hook until a person approves or rejects it.
    AwaitingApproval,
}

impl Milestone {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Milestone::Started => "started",
            Milestone::Completed => "completed",
            Milestone::Failed => "failed",
            Milestone::RolledBack => "rolled_back",
            Milestone::NeedsHuman => "needs_human",
            Milestone::AwaitingApproval => "awaiting_approval",
        }
    }
}

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The name of the service's cluster.
    pub cluster: String,
    /// The service's name.
    pub service: String,
    /// What became of the service.
    pub outcome: OutcomeKind,
    /// The revision the service was put on (or found already running, or recorded), if any.
    pub task_definition: Option<String>,
    /// The revision the service ran before, if known.
    pub previous_task_definition: Option<String>,
    /// Why, in words for a person.
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    /// The ECS deployment the outcome started or is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The image a rollback outcome is about (a deploy's is the push's, in the report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) repository: Option<String>,
    /// The tag of the image a rollback outcome is about (see `repository`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) digest: Option<String>,
    /// Something the operator should know even though the outcome is fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Why the service was skipped (or only dry-run), as a short code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) milestone: Option<Milestone>,
    /// From the push to ECS's COMPLETED, for a completed deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_to_completed_ms: Option<u64>,
    /// A dry run's difference between the running and the planned revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<String>>,
    /// Lambda should run the invocation again for this service.
    #[serde(skip)]
    pub retryable: bool,
}

impl Outcome {
    pub(crate) fn new(key: &ServiceKey, outcome: OutcomeKind, reason: Option<String>) -> Outcome {
        Outcome {
            cluster: key.cluster.clone(),
            service: key.service.clone(),
            outcome,
            task_definition: None,
            previous_task_definition: None,
            reason,
            container: None,
            image: None,
            deployment_id: None,
            repository: None,
            tag: None,
            digest: None,
            warning: None,
            skip_reason: None,
            milestone: None,
            push_to_completed_ms: None,
            diff: None,
            retryable: false,
        }
    }

    pub(crate) fn skipped(
        key: &ServiceKey,
        code: SkipReason,
        reason: impl Into<String>,
    ) -> Outcome {
        Outcome {
            skip_reason: Some(code),
            ..Outcome::new(key, OutcomeKind::Skipped, Some(reason.into()))
        }
    }

    pub(crate) fn failed(key: &ServiceKey, reason: impl Into<String>, retryable: bool) -> Outcome {
        Outcome {
            retryable,
            ..Outcome::new(key, OutcomeKind::Failed, Some(reason.into()))
        }
    }

    /// What the ledger now says of `record`: no ECS change, unless the kind is changed after.
    pub(crate) fn recorded(record: &DeploymentRecord, reason: impl Into<String>) -> Outcome {
        let key = ServiceKey {
            cluster: record.cluster.clone(),
            service: record.service.clone(),
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Outcome {
            task_definition: record.new_task_definition.clone(),
            previous_task_definition: non_empty(&record.previous_task_definition),
            container: non_empty(&record.container),
            deployment_id: record.deployment_id.clone(),
            repository: non_empty(&record.repository),
            tag: non_empty(&record.tag),
            digest: non_empty(&record.digest),
            ..Outcome::new(&key, OutcomeKind::Recorded, Some(reason.into()))
        }
    }

    pub(crate) fn with_kind(self, outcome: OutcomeKind) -> Outcome {
        Outcome { outcome, ..self }
    }

    pub(crate) fn on(mut self, service: &Service) -> Outcome {
        self.previous_task_definition = service.task_definition().map(str::to_string);
        self
    }

    /// The milestone this outcome marks: set explicitly where the kind does not tell
    /// (a recorded COMPLETED or FAILED), otherwise read from the kind. A retryable failure is
    /// not a milestone: Lambda runs it again.
    pub(crate) fn milestone(&self) -> Option<Milestone> {
        self.milestone.or(match self.outcome {
            OutcomeKind::Deployed => Some(Milestone::Started),
            OutcomeKind::Failed if !self.retryable => Some(Milestone::Failed),
            OutcomeKind::RolledBack => Some(Milestone::RolledBack),
            OutcomeKind::NeedsHuman => Some(Milestone::NeedsHuman),
            _ => None,
        })
    }
}

/// The handler's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub(crate) event_id: Option<String>,
    /// One outcome per service the event concerned.
    pub outcomes: Vec<Outcome>,
    /// Why the event as a whole was not deployed (not a deployable push, or discovery failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// AWS operations this invocation made, by `service.Operation`.
    pub aws_calls: BTreeMap<String, u32>,
}

/// Something retryable failed: Lambda must run the event again. Safe, because the ledger lets
/// each service take a push once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{summary}")]
pub struct RetryableFailure {
    /// What must be retried and why: the error message Lambda records.
    pub summary: String,
    /// The event's report all the same, for the log.
    pub report: Report,
}

impl From<RetryableFailure> for lambda_runtime::Diagnostic {
    fn from(failure: RetryableFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "pushdeploy.Retryable".into(),
            error_message: failure.summary,
        }
    }
}

impl Report {
    /// The answer to an event that is not for this function, logged as such.
    pub(crate) fn ignored(
        event_id: Option<String>,
        reason: String,
        aws_calls: BTreeMap<String, u32>,
        request_id: Option<&str>,
    ) -> Report {
        tracing::info!(
            request_id,
            event_id = event_id.as_deref(),
            outcome = "ignored",
            reason = reason.as_str(),
            "event ignored"
        );
        Report {
            event_id,
            outcomes: vec![],
            reason: Some(reason),
            aws_calls,
        }
    }

    /// `Err` when any outcome must be retried, so that Lambda runs the event again; `what`
    /// names the event in the error message.
    pub(crate) fn into_result(self, what: &str) -> Result<Report, RetryableFailure> {
        let retryable: Vec<_> = self
            .outcomes
            .iter()
            .filter(|o| o.retryable)
            .map(|o| format!("{}/{}", o.cluster, o.service))
            .collect();
        if retryable.is_empty() {
            return Ok(self);
        }
        Err(RetryableFailure {
            summary: format!(
                "{what}: {} must be retried ({}); the ledger makes the retry act on each service once",
                retryable.len(),
                retryable.join(", ")
            ),
            report: self,
        })
    }
}
