//! What the deploy function answers and logs: one outcome per service, one report per event.

use crate::event::Push;
use crate::follow::ServiceKey;
use aws_sdk_ecs::types::Service;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Deployed,
    Skipped,
    Failed,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Deployed => "deployed",
            OutcomeKind::Skipped => "skipped",
            OutcomeKind::Failed => "failed",
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

pub(crate) fn log_outcome(push: &Push, o: &Outcome) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                event_id = push.event_id.as_str(),
                repository = push.repository.as_str(),
                tag = push.tag.as_str(),
                digest = push.digest.as_str(),
                cluster = o.cluster.as_str(),
                service = o.service.as_str(),
                container = o.container.as_deref(),
                task_definition = o.task_definition.as_deref(),
                previous_task_definition = o.previous_task_definition.as_deref(),
                deployment_id = o.deployment_id.as_deref(),
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
        OutcomeKind::Failed => line!(error),
        _ => line!(info),
    }
}
