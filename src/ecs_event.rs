//! The rollback function's edge: `ECS Deployment State Change` events and the sweep schedule's
//! `Scheduled Event`, parsed once into `RollbackTrigger`, or a reason they are ignored.

use crate::event::{source_and_detail_type, SCHEDULED_EVENT, SCHEDULE_SOURCE};
use crate::follow::{service_key_from_arn, ServiceKey};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

pub(crate) const ECS_SOURCE: &str = "aws.ecs";
pub(crate) const DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
/// "Amazon ECS emits an EventBridge event with the detail-type ECS Hook State Change and the
/// event name HOOK_AWAITING_ACTION" (Developer Guide, "Pause hooks for Amazon ECS service
/// deployments").
pub(crate) const HOOK_STATE_CHANGE: &str = "ECS Hook State Change";
pub(crate) const HOOK_AWAITING_ACTION: &str = "HOOK_AWAITING_ACTION";

/// An event the rollback function takes, as its `source` and `detail-type` name it: the one
/// place they are matched. An event that names one but does not parse is still that one,
/// ignored with its reason (replay routes it to the rollback function all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollbackEventKind {
    /// `aws.ecs` / `ECS Deployment State Change`.
    DeploymentStateChange,
    /// `aws.ecs` / `ECS Hook State Change`: a deployment paused at a pause hook.
    HookStateChange,
    /// `aws.events` / `Scheduled Event`: the sweep schedule.
    Schedule,
}

impl RollbackEventKind {
    /// The kind a raw payload names ([`source_and_detail_type`]), if the rollback function takes
    /// it.
    pub(crate) fn of(payload: &Value) -> Option<RollbackEventKind> {
        match source_and_detail_type(payload)? {
            (ECS_SOURCE, DEPLOYMENT_STATE_CHANGE) => Some(RollbackEventKind::DeploymentStateChange),
            (ECS_SOURCE, HOOK_STATE_CHANGE) => Some(RollbackEventKind::HookStateChange),
            (SCHEDULE_SOURCE, SCHEDULED_EVENT) => Some(RollbackEventKind::Schedule),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentStateChangeDetail {
    pub(crate) event_name: Option<String>,
    pub(crate) deployment_id: Option<String>,
    pub(crate) updated_at: Option<String>,
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeploymentState {
    InProgress,
    Completed,
    Failed,
}

impl DeploymentState {
    fn parse(event_name: &str) -> Option<DeploymentState> {
        match event_name {
            "SERVICE_DEPLOYMENT_IN_PROGRESS" => Some(DeploymentState::InProgress),
            "SERVICE_DEPLOYMENT_COMPLETED" => Some(DeploymentState::Completed),
            "SERVICE_DEPLOYMENT_FAILED" => Some(DeploymentState::Failed),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "IN_PROGRESS",
            DeploymentState::Completed => "COMPLETED",
            DeploymentState::Failed => "FAILED",
        }
    }
}

/// One ECS deployment of one service changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeploymentChange {
    pub(crate) event_id: String,
    pub(crate) service_arn: String,
    pub(crate) service: ServiceKey,
    pub(crate) deployment_id: String,
    pub(crate) state: DeploymentState,
    pub(crate) reason: String,
    pub(crate) at: DateTime<Utc>,
}

/// A service deployment paused at a pause hook, waiting for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookAwaiting {
    pub(crate) event_id: String,
    pub(crate) service_arn: String,
    pub(crate) service: ServiceKey,
    pub(crate) service_deployment_arn: String,
    pub(crate) hook_id: String,
    pub(crate) stage: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookStateChangeDetail {
    event_name: Option<String>,
    hook_id: Option<String>,
    lifecycle_stage: Option<String>,
    service_arn: Option<String>,
    service_deployment_arn: Option<String>,
}

/// What the rollback function was invoked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RollbackTrigger {
    Deployment(DeploymentChange),
    /// A pause hook awaits a person's answer.
    HookAwaiting(HookAwaiting),
    /// The periodic sweep for deployments that never finish.
    Sweep {
        /// The event's `time` (now, when it has none): only its claim. The rollback function
        /// sweeps on its own clock and refuses a sweep whose `time` is far from it.
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotARollbackTrigger {
    #[error("the payload is not an EventBridge event: {0}")]
    NotEventBridge(String),
    #[error("the event is {event_source:?} / {detail_type:?}, neither an ECS deployment or hook state change nor the sweep schedule")]
    WrongKind {
        event_source: String,
        detail_type: String,
    },
    #[error("the deployment event's detail is malformed: {0}")]
    BadDetail(String),
    #[error("the deployment event has no {0}")]
    Missing(&'static str),
    #[error("eventName {0:?} is not a deployment state this function acts on")]
    UnknownState(String),
    #[error("resources holds no ECS service ARN with a cluster: {0:?}")]
    NoService(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IgnoredTrigger {
    pub(crate) event_id: Option<String>,
    /// What the event named itself, when it is an event the rollback function takes.
    pub(crate) kind: Option<RollbackEventKind>,
    pub(crate) reason: NotARollbackTrigger,
}

pub(crate) fn parse_trigger(payload: Value) -> Result<RollbackTrigger, IgnoredTrigger> {
    let kind = RollbackEventKind::of(&payload);
    let envelope: EventBridgeEvent<Value> =
        serde_json::from_value(payload).map_err(|e| IgnoredTrigger {
            event_id: None,
            kind,
            reason: NotARollbackTrigger::NotEventBridge(e.to_string()),
        })?;
    let event_id = envelope.id.clone().filter(|id| !id.is_empty());
    let ignored = |reason| IgnoredTrigger {
        event_id: event_id.clone(),
        kind,
        reason,
    };
    match kind {
        Some(RollbackEventKind::Schedule) => Ok(RollbackTrigger::Sweep {
            at: envelope.time.unwrap_or_else(Utc::now),
        }),
        Some(RollbackEventKind::DeploymentStateChange) => {
            deployment_change(&envelope, event_id.clone())
                .map(RollbackTrigger::Deployment)
                .map_err(ignored)
        }
        Some(RollbackEventKind::HookStateChange) => hook_awaiting(&envelope, event_id.clone())
            .map(RollbackTrigger::HookAwaiting)
            .map_err(ignored),
        None => Err(ignored(NotARollbackTrigger::WrongKind {
            event_source: envelope.source,
            detail_type: envelope.detail_type,
        })),
    }
}

/// An `ECS Hook State Change` of a pause hook awaiting action, or the first thing it lacks.
fn hook_awaiting(
    envelope: &EventBridgeEvent<Value>,
    event_id: Option<String>,
) -> Result<HookAwaiting, NotARollbackTrigger> {
    let detail: HookStateChangeDetail = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| NotARollbackTrigger::BadDetail(e.to_string()))?;
    let name = detail
        .event_name
        .ok_or(NotARollbackTrigger::Missing("detail.eventName"))?;
    if name != HOOK_AWAITING_ACTION {
        return Err(NotARollbackTrigger::UnknownState(name));
    }
    let given = |v: Option<String>, what| {
        v.filter(|s| !s.is_empty())
            .ok_or(NotARollbackTrigger::Missing(what))
    };
    let service_arn = given(detail.service_arn, "detail.serviceArn")?;
    let service = service_key_from_arn(&service_arn)
        .ok_or_else(|| NotARollbackTrigger::NoService(vec![service_arn.clone()]))?;
    Ok(HookAwaiting {
        event_id: event_id.ok_or(NotARollbackTrigger::Missing("id"))?,
        service,
        service_arn,
        service_deployment_arn: given(
            detail.service_deployment_arn,
            "detail.serviceDeploymentArn",
        )?,
        hook_id: given(detail.hook_id, "detail.hookId")?,
        stage: detail.lifecycle_stage.filter(|s| !s.is_empty()),
    })
}

/// An `ECS Deployment State Change`'s deployment, or the first thing it lacks.
fn deployment_change(
    envelope: &EventBridgeEvent<Value>,
    event_id: Option<String>,
) -> Result<DeploymentChange, NotARollbackTrigger> {
    let detail: DeploymentStateChangeDetail = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| NotARollbackTrigger::BadDetail(e.to_string()))?;
    let name = detail
        .event_name
        .ok_or(NotARollbackTrigger::Missing("detail.eventName"))?;
    let state = DeploymentState::parse(&name)
        .ok_or_else(|| NotARollbackTrigger::UnknownState(name.clone()))?;
    let deployment_id = detail
        .deployment_id
        .filter(|d| !d.is_empty())
        .ok_or(NotARollbackTrigger::Missing("detail.deploymentId"))?;
    let resources = envelope.resources.clone().unwrap_or_default();
    let (service_arn, service) = resources
        .iter()
        .find_map(|arn| Some((arn.clone(), service_key_from_arn(arn)?)))
        .ok_or_else(|| NotARollbackTrigger::NoService(resources.clone()))?;
    // An event without its own time is taken as of when it was sent.
    let at = detail
        .updated_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc())
        .unwrap_or_else(|| envelope.time.unwrap_or_else(Utc::now));
    Ok(DeploymentChange {
        event_id: event_id.ok_or(NotARollbackTrigger::Missing("id"))?,
        service_arn,
        service,
        deployment_id,
        state,
        reason: detail.reason.unwrap_or_default(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> Value {
        json!({
            "version": "0", "id": "e-1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
            "account": "123456789012", "time": "2026-11-26T12:00:10Z", "region": "us-east-1",
            "resources": ["arn:aws:ecs:us-east-1:123456789012:service/prod/web"], "detail": detail
        })
    }

    #[test]
    fn deployment_events_are_typed() {
        let trigger = parse_trigger(event(json!({
            "eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": "ecs-svc/1",
            "updatedAt": "2026-11-26T12:00:09Z", "reason": "ECS deployment circuit breaker: task failed to start."
        })))
        .unwrap();
        let RollbackTrigger::Deployment(change) = trigger else {
            panic!("{trigger:?}")
        };
        assert_eq!(change.state, DeploymentState::Failed);
        assert_eq!(change.deployment_id, "ecs-svc/1");
        assert_eq!(
            (
                change.service.cluster.as_str(),
                change.service.service.as_str()
            ),
            ("prod", "web")
        );
        assert!(change.reason.contains("circuit breaker"));
    }

    /// What an event named itself survives its being ignored: replay routes on it.
    #[test]
    fn an_ignored_event_keeps_the_kind_it_named() {
        let kind = |payload: Value| parse_trigger(payload).unwrap_err().kind;
        assert_eq!(
            kind(event(json!({"eventName": "SERVICE_DEPLOYMENT_FAILED"}))),
            Some(RollbackEventKind::DeploymentStateChange)
        );
        let mut no_envelope = event(json!({}));
        no_envelope["time"] = json!("yesterday");
        assert_eq!(
            kind(no_envelope),
            Some(RollbackEventKind::DeploymentStateChange)
        );
        let mut schedule = event(json!({}));
        schedule["source"] = json!("aws.events");
        schedule["detail-type"] = json!("Scheduled Event");
        schedule["time"] = json!(7);
        assert_eq!(kind(schedule), Some(RollbackEventKind::Schedule));
        let mut ecr = event(json!({}));
        ecr["source"] = json!("aws.ecr");
        assert_eq!(kind(ecr), None);
    }

    #[test]
    fn schedules_are_sweeps_and_everything_else_is_ignored() {
        let sweep = json!({"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T12:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
        assert!(matches!(
            parse_trigger(sweep),
            Ok(RollbackTrigger::Sweep { .. })
        ));
        let reason = |v| parse_trigger(v).unwrap_err().reason;
        assert!(matches!(
            reason(json!(null)),
            NotARollbackTrigger::NotEventBridge(_)
        ));
        assert!(matches!(
            reason(event(
                json!({"eventName": "SERVICE_TASK_START_IMPAIRED", "deploymentId": "d"})
            )),
            NotARollbackTrigger::UnknownState(_)
        ));
        assert_eq!(
            reason(event(json!({"eventName": "SERVICE_DEPLOYMENT_FAILED"}))),
            NotARollbackTrigger::Missing("detail.deploymentId")
        );
        let mut no_service =
            event(json!({"eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": "d"}));
        no_service["resources"] = json!(["arn:aws:ecs:us-east-1:123456789012:service/web"]);
        assert!(matches!(
            reason(no_service),
            NotARollbackTrigger::NoService(_)
        ));
        let mut ecr = event(json!({}));
        ecr["source"] = json!("aws.ecr");
        assert!(matches!(reason(ecr), NotARollbackTrigger::WrongKind { .. }));
    }

    /// The pause hook's sample (events/ecs-hook-awaiting-action.json) is a typed trigger; the
    /// other hook events, and one without its service deployment, are ignored with the reason.
    #[test]
    fn a_pause_hook_awaiting_action_is_a_trigger_and_other_hook_events_are_not() {
        let sample: Value =
            serde_json::from_str(include_str!("../events/ecs-hook-awaiting-action.json")).unwrap();
        let Ok(RollbackTrigger::HookAwaiting(hook)) = parse_trigger(sample.clone()) else {
            panic!("not a hook trigger");
        };
        assert_eq!(hook.service.cluster, "demo");
        assert_eq!(hook.service.service, "web");
        assert_eq!(hook.hook_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        assert_eq!(hook.stage.as_deref(), Some("POST_TEST_TRAFFIC_SHIFT"));
        assert!(hook
            .service_deployment_arn
            .ends_with("/r9i43YFjvgF_xlg7m2eJ1r"));
        let mut succeeded = sample.clone();
        succeeded["detail"]["eventName"] = json!("HOOK_SUCCEEDED");
        let ignored = parse_trigger(succeeded).unwrap_err();
        assert_eq!(ignored.kind, Some(RollbackEventKind::HookStateChange));
        assert!(ignored.reason.to_string().contains("HOOK_SUCCEEDED"));
        let mut anonymous = sample;
        anonymous["detail"]
            .as_object_mut()
            .unwrap()
            .remove("serviceDeploymentArn");
        assert_eq!(
            parse_trigger(anonymous).unwrap_err().reason,
            NotARollbackTrigger::Missing("detail.serviceDeploymentArn")
        );
    }
}
