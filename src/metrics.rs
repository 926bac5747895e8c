//! CloudWatch metrics without an API call: Embedded Metric Format (EMF) documents, one JSON line
//! per outcome on stdout, which CloudWatch Logs turns into metrics. Dimensions are `Cluster` and
//! `Service` (and `Reason`, a closed set, for skips): never a tag, digest or id, whose every value
//! would be a new metric.
//!
//! Specification: "Embedded metric format specification" in the CloudWatch user guide.

use crate::outcome::{Milestone, Outcome, OutcomeKind};
use serde_json::{json, Map, Value};
use std::io::Write;

pub(crate) const STARTED: &str = "DeploymentsStarted";
pub(crate) const SUCCEEDED: &str = "DeploymentsSucceeded";
pub(crate) const FAILED: &str = "DeploymentsFailed";
pub(crate) const ROLLED_BACK: &str = "RolledBack";
pub(crate) const NEEDS_HUMAN: &str = "NeedsHuman";
pub(crate) const SKIPPED: &str = "Skipped";
pub(crate) const PUSH_TO_COMPLETED: &str = "PushToCompletedSeconds";

/// The metrics one outcome counts, with their units.
fn measurements(outcome: &Outcome) -> Vec<(&'static str, &'static str, f64)> {
    let count = |name| (name, "Count", 1.0);
    match (outcome.outcome, outcome.milestone()) {
        (OutcomeKind::Skipped | OutcomeKind::DryRun, _) => vec![count(SKIPPED)],
        (_, Some(Milestone::Started)) => vec![count(STARTED)],
        (_, Some(Milestone::Completed)) => {
            let mut m = vec![count(SUCCEEDED)];
            if let Some(ms) = outcome.push_to_completed_ms {
                m.push((PUSH_TO_COMPLETED, "Seconds", ms as f64 / 1000.0));
            }
            m
        }
        (_, Some(Milestone::Failed)) => vec![count(FAILED)],
        (_, Some(Milestone::RolledBack)) => vec![count(FAILED), count(ROLLED_BACK)],
        (_, Some(Milestone::NeedsHuman)) => vec![count(FAILED), count(NEEDS_HUMAN)],
        // A person is told; nothing to count until they answer.
        (_, Some(Milestone::AwaitingApproval)) => vec![],
        // In progress, or a retryable failure (Lambda's own Errors metric counts those).
        (_, None) => vec![],
    }
}

/// The EMF document of one outcome, or `None` when it counts nothing (or names no service).
pub(crate) fn document(namespace: &str, outcome: &Outcome, now_ms: u64) -> Option<Value> {
    let measured = measurements(outcome);
    if measured.is_empty() || outcome.cluster.is_empty() || outcome.service.is_empty() {
        return None;
    }
    let mut dimensions = vec![json!(["Cluster", "Service"])];
    let mut root = Map::new();
    root.insert("Cluster".into(), json!(outcome.cluster));
    root.insert("Service".into(), json!(outcome.service));
    if let Some(reason) = outcome.skip_reason {
        dimensions.push(json!(["Reason"]));
        root.insert("Reason".into(), json!(reason.as_str()));
    }
    let definitions: Vec<Value> = measured
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    for (name, _, value) in &measured {
        root.insert((*name).into(), json!(value));
    }
    // Searchable in the log line, not dimensions.
    root.insert("outcome".into(), json!(outcome.outcome.as_str()));
    if let Some(digest) = &outcome.digest {
        root.insert("digest".into(), json!(digest));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": definitions,
            }],
        }),
    );
    Some(Value::Object(root))
}

/// Writes the document as one line of its own on stdout, where Lambda's log capture finds it.
pub(crate) fn emit(document: &Value) {
    let line = document.to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::ServiceKey;
    use crate::outcome::SkipReason;

    fn key() -> ServiceKey {
        ServiceKey {
            cluster: "prod".into(),
            service: "web".into(),
        }
    }

    #[test]
    fn each_outcome_counts_what_it_is() {
        let names =
            |o: &Outcome| -> Vec<&str> { measurements(o).into_iter().map(|(n, _, _)| n).collect() };
        let deployed = Outcome::new(&key(), OutcomeKind::Deployed, None);
        assert_eq!(names(&deployed), [STARTED]);
        let skipped = Outcome::skipped(&key(), SkipReason::Paused, "paused");
        assert_eq!(names(&skipped), [SKIPPED]);
        let retry = Outcome::failed(&key(), "throttled", true);
        assert!(names(&retry).is_empty());
        assert!(document("ns", &retry, 1).is_none());
        let final_failure = Outcome::failed(&key(), "no such container", false);
        assert_eq!(names(&final_failure), [FAILED]);
        let completed = Outcome {
            milestone: Some(Milestone::Completed),
            push_to_completed_ms: Some(93_500),
            ..Outcome::new(&key(), OutcomeKind::Recorded, None)
        };
        assert_eq!(names(&completed), [SUCCEEDED, PUSH_TO_COMPLETED]);
        let doc = document("ns", &completed, 1_700_000_000_000).unwrap();
        assert_eq!(doc[PUSH_TO_COMPLETED], 93.5);
        let rolled = Outcome::new(&key(), OutcomeKind::RolledBack, None);
        assert_eq!(names(&rolled), [FAILED, ROLLED_BACK]);
    }

    #[test]
    fn skips_carry_the_reason_dimension() {
        let doc = document(
            "pushdeploy",
            &Outcome::skipped(&key(), SkipReason::Quarantined, "quarantined"),
            1,
        )
        .unwrap();
        assert_eq!(doc["Reason"], "quarantined");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Cluster", "Service"], ["Reason"]])
        );
    }
}
