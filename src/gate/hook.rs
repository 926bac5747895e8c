//! The gate function's edge: what ECS sends a lifecycle hook, parsed once into one typed
//! trigger, and the answer ECS reads back.
//!
//! "Lambda hooks for Amazon ECS service deployments" (Developer Guide) gives the payload:
//! `executionId`, `lifecycleStage`, `resourceArn` (the service deployment), `executionDetails`
//! {`serviceArn`, `targetServiceRevisionArn`, `testTrafficWeights`, `productionTrafficWeights`}
//! and `hookDetails`. An older version of "Lifecycle hooks for Amazon ECS service deployments"
//! shows the same four details at the top level: both are read.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The key under which the gate keeps its own progress in `hookDetails`. ECS "merges this data
/// and passes it back on the next invocation" of the same hook in the same deployment
/// ("Passing state with hookDetails"); one key of its own keeps the merge from mixing it with
/// the hook's static details.
pub(crate) const PROGRESS_KEY: &str = "pushdeploy";

/// One invocation of the gate by an ECS lifecycle hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookInvocation {
    pub(crate) execution_id: String,
    /// `POST_TEST_TRAFFIC_SHIFT`, `PRODUCTION_TRAFFIC_SHIFT`, ...
    pub(crate) stage: String,
    /// The service deployment this hook runs in (`resourceArn`).
    pub(crate) service_deployment_arn: String,
    pub(crate) service_arn: String,
    /// The green revision, even while ECS rolls back ("targetServiceRevisionArn remains the
    /// green revision ARN").
    pub(crate) target_revision_arn: String,
    pub(crate) test_weights: BTreeMap<String, f64>,
    pub(crate) production_weights: BTreeMap<String, f64>,
    /// What the gate handed ECS last time in this hook, if anything.
    pub(crate) progress: Option<Value>,
}

/// Why a payload is not a hook invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ECS lifecycle hook invocation: {0}")]
pub struct NotAHook(pub String);

impl HookInvocation {
    /// The payload as ECS sends it (the `executionDetails` envelope, or the older flat form).
    pub fn parse(payload: &Value) -> Result<HookInvocation, NotAHook> {
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| NotAHook(format!("no {key}")))
        };
        let details = payload.get("executionDetails").unwrap_or(payload);
        let progress = payload
            .get("hookDetails")
            .and_then(|d| d.get(PROGRESS_KEY))
            .cloned();
        Ok(HookInvocation {
            execution_id: text(payload, "executionId")?,
            stage: text(payload, "lifecycleStage")?,
            service_deployment_arn: text(payload, "resourceArn")?,
            service_arn: text(details, "serviceArn")?,
            target_revision_arn: text(details, "targetServiceRevisionArn")?,
            test_weights: weights(details.get("testTrafficWeights"))?,
            production_weights: weights(details.get("productionTrafficWeights"))?,
            progress,
        })
    }

    /// The cluster and service names, from the service ARN
    /// (`arn:aws:ecs:<region>:<account>:service/<cluster>/<service>`).
    pub(crate) fn cluster_and_service(&self) -> Option<(&str, &str)> {
        let path = self.service_arn.split_once(":service/")?.1;
        let (cluster, service) = path.split_once('/')?;
        (!cluster.is_empty() && !service.is_empty()).then_some((cluster, service))
    }

    /// Whether ECS is rolling back: "When a rollback occurs, Amazon ECS re-invokes hooks
    /// registered at the PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT stages" with the
    /// weights reversed: the green revision at 0 and another above it. A gate never stands in
    /// the way of a rollback.
    pub(crate) fn is_rollback(&self) -> bool {
        [&self.test_weights, &self.production_weights]
            .into_iter()
            .any(|weights| {
                let green = weights.get(&self.target_revision_arn).copied();
                green == Some(0.0) && weights.values().any(|w| *w > 0.0)
            })
    }
}

/// A weights map ("A map of service revision ARNs to their corresponding traffic weight
/// percentages"); absent or null is empty.
fn weights(value: Option<&Value>) -> Result<BTreeMap<String, f64>, NotAHook> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(arn, w)| {
                w.as_f64()
                    .map(|w| (arn.clone(), w))
                    .ok_or_else(|| NotAHook(format!("traffic weight of {arn} is not a number")))
            })
            .collect(),
        Some(_) => Err(NotAHook("traffic weights are not a map".into())),
    }
}

/// What the hook answers ECS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    /// "The deployment continues to the next lifecycle stage."
    Succeeded,
    /// "Amazon ECS rolls back the deployment to the last successful service revision."
    Failed,
    /// "Amazon ECS invokes the function again after a delay."
    InProgress,
}

/// The answer: `hookStatus`, `callBackDelay` in seconds (the key AWS's sample corrected,
/// aws-samples PR #5: "callBackDelaySeconds was an incorrect key") and `hookDetails`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookAnswer {
    /// SUCCEEDED, FAILED or IN_PROGRESS.
    #[serde(rename = "hookStatus")]
    pub status: HookStatus,
    /// With IN_PROGRESS: how long ECS waits before it calls again.
    #[serde(rename = "callBackDelay", skip_serializing_if = "Option::is_none")]
    pub callback_delay_seconds: Option<u64>,
    /// The gate's progress and reason, which ECS hands back on the next call of this hook.
    #[serde(rename = "hookDetails", skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GREEN: &str = "arn:aws:ecs:us-east-1:1:service-revision/prod/web/9313";
    const BLUE: &str = "arn:aws:ecs:us-east-1:1:service-revision/prod/web/1920";

    fn envelope(production: Value) -> Value {
        json!({
            "executionId": "e-1",
            "lifecycleStage": "PRODUCTION_TRAFFIC_SHIFT",
            "resourceArn": "arn:aws:ecs:us-east-1:1:service-deployment/prod/web/EZe5",
            "executionDetails": {
                "serviceArn": "arn:aws:ecs:us-east-1:1:service/prod/web",
                "targetServiceRevisionArn": GREEN,
                "testTrafficWeights": {},
                "productionTrafficWeights": production
            },
            "hookDetails": {"static": "x", "pushdeploy": {"streaks": [2]}}
        })
    }

    #[test]
    fn the_envelope_and_the_flat_form_read_alike() {
        let hook = HookInvocation::parse(&envelope(json!({GREEN: 100, BLUE: 0}))).unwrap();
        assert_eq!(hook.cluster_and_service(), Some(("prod", "web")));
        assert_eq!(hook.progress, Some(json!({"streaks": [2]})));
        assert!(!hook.is_rollback());
        let mut flat = envelope(json!({GREEN: 100, BLUE: 0}));
        let details = flat["executionDetails"].take();
        for (k, v) in details.as_object().unwrap() {
            flat[k] = v.clone();
        }
        flat.as_object_mut().unwrap().remove("executionDetails");
        assert_eq!(HookInvocation::parse(&flat).unwrap(), hook);
    }

    #[test]
    fn reversed_weights_are_a_rollback() {
        let hook = HookInvocation::parse(&envelope(json!({GREEN: 0, BLUE: 100}))).unwrap();
        assert!(hook.is_rollback());
        let before_any_shift = HookInvocation::parse(&envelope(json!({}))).unwrap();
        assert!(!before_any_shift.is_rollback());
    }

    #[test]
    fn what_is_not_a_hook_says_what_is_missing() {
        let err = HookInvocation::parse(&json!({"detail-type": "Scheduled Event"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not an ECS lifecycle hook invocation: no executionId"
        );
        let bad = envelope(json!({GREEN: "all"}));
        assert!(HookInvocation::parse(&bad).is_err());
    }

    #[test]
    fn the_answer_uses_ecs_keys() {
        let answer = HookAnswer {
            status: HookStatus::InProgress,
            callback_delay_seconds: Some(10),
            details: Map::from_iter([("pushdeploy".to_string(), json!({"streaks": [1]}))]),
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 10, "hookDetails": {"pushdeploy": {"streaks": [1]}}})
        );
        let done = HookAnswer {
            status: HookStatus::Succeeded,
            callback_delay_seconds: None,
            details: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"hookStatus": "SUCCEEDED"})
        );
    }
}
