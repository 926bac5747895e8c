//! What the deploy function answers and logs: one outcome per service, one report per event.

use crate::event::Push;
use crate::follow::ServiceKey;
use crate::ledger::DeploymentRecord;
use aws_sdk_ecs::types::Service;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Deployed,
    Skipped,
    Failed,
    /// pushdeploy put the service back on its last known good revision.
    RolledBack,
    /// A rollback failed: pushdeploy stops there and a person must look.
    NeedsHuman,
    /// A deployment's state was written to the ledger; ECS was not touched.
    Recorded,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Deployed => "deployed",
            OutcomeKind::Skipped => "skipped",
            OutcomeKind::Failed => "failed",
            OutcomeKind::RolledBack => "rolled_back",
            OutcomeKind::NeedsHuman => "needs_human",
            OutcomeKind::Recorded => "recorded",
        }
    }
}

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub cluster: String,
    pub service: String,
    pub outcome: OutcomeKind,
    pub task_definition: Option<String>,
    pub previous_task_definition: Option<String>,
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The image a rollback outcome is about (a deploy's is the push's, in the report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Something the operator should know even though the outcome is fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
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
            retryable: false,
        }
    }

    pub(crate) fn skipped(key: &ServiceKey, reason: impl Into<String>) -> Outcome {
        Outcome::new(key, OutcomeKind::Skipped, Some(reason.into()))
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
}

/// The handler's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub event_id: Option<String>,
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
    pub summary: String,
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
    ) -> Report {
        tracing::info!(
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
    pub fn into_result(self, what: &str) -> Result<Report, RetryableFailure> {
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

/// The image an outcome is about, for its log line.
#[derive(Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub event_id: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
    pub digest: &'a str,
}

impl<'a> From<&'a Push> for Subject<'a> {
    fn from(push: &'a Push) -> Self {
        Subject {
            event_id: &push.event_id,
            repository: &push.repository,
            tag: &push.tag,
            digest: push.digest.as_str(),
        }
    }
}

/// The one log line of a decision, with the field names every pushdeploy line uses.
pub(crate) fn log_outcome(subject: Subject<'_>, o: &Outcome) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                event_id = subject.event_id,
                repository = o.repository.as_deref().unwrap_or(subject.repository),
                tag = o.tag.as_deref().unwrap_or(subject.tag),
                digest = o.digest.as_deref().unwrap_or(subject.digest),
                cluster = o.cluster.as_str(),
                service = o.service.as_str(),
                container = o.container.as_deref(),
                task_definition = o.task_definition.as_deref(),
                previous_task_definition = o.previous_task_definition.as_deref(),
                deployment_id = o.deployment_id.as_deref(),
                warning = o.warning.as_deref(),
                outcome = o.outcome.as_str(),
                reason = o.reason.as_deref(),
                retryable = o.retryable,
                "{} {}/{}",
                o.outcome.as_str(),
                o.cluster,
                o.service
            )
        };
    }
    match o.outcome {
        OutcomeKind::Failed | OutcomeKind::NeedsHuman => line!(error),
        OutcomeKind::RolledBack => line!(warn),
        _ => line!(info),
    }
}
