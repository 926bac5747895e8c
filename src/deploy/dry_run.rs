//! The dry run of one service: the same decision as a real run, logged with the diff of the
//! revision it would register; nothing written to ECS, the ledger or SNS.

use super::one_service::Target;
use super::Deployer;
use crate::diff::planned_diff;
use crate::outcome::{Outcome, OutcomeKind, SkipReason};
use crate::plan::{Change, Controller, Decision};

impl Deployer {
    pub(super) async fn dry_run(&self, target: &Target<'_>, decision: Decision) -> Outcome {
        let would = |reason: String| would(target, reason);
        let change = match would_deploy(target, decision) {
            Ok(change) => change,
            Err(outcome) => return *outcome,
        };
        // The quarantine is read, as a real run would: a dry run must not promise a deploy that
        // would be refused.
        if let Some(refused) = self
            .quarantine_refuses(target.push, target.key, target.service)
            .await
        {
            let reason = refused.reason.clone().unwrap_or_default();
            return match refused.outcome {
                OutcomeKind::Skipped => Outcome {
                    reason: Some(format!("dry run: would skip: {reason}")),
                    ..refused
                },
                _ => would(format!(
                    "dry run: would fail ({reason}); a real run would retry"
                )),
            };
        }
        match self.planned_revision(target, &change) {
            Err(e) => would(format!("dry run: would fail: {e}")),
            Ok(request) => Outcome {
                container: Some(change.container.clone()),
                image: Some(change.to_image.clone()),
                diff: Some(planned_diff(target.definition, &request)),
                ..would(format!(
                    "dry run: would register a new revision of {} with container {} on {} and {}",
                    target.definition.family().unwrap_or("?"),
                    change.container,
                    change.to_image,
                    match change.through {
                        Controller::Ecs => "update the service to it",
                        Controller::CodeDeploy => "start a CodeDeploy deployment of it",
                    }
                ))
            },
        }
    }
}

/// The change a real run would make, or the dry run's outcome when it would make none.
fn would_deploy(target: &Target<'_>, decision: Decision) -> Result<Change, Box<Outcome>> {
    let (key, service) = (target.key, target.service);
    let outcome = match decision {
        Decision::Deploy(change) => return Ok(change),
        Decision::Skip(code, reason) => {
            Outcome::skipped(key, code, format!("dry run: would skip: {reason}")).on(service)
        }
        Decision::Fail(reason) => would(target, format!("dry run: would fail: {reason}")),
        Decision::AlreadyDeployedByThisEvent => Outcome::skipped(
            key,
            SkipReason::AlreadyHandled,
            "dry run: would skip: an earlier delivery of this push already deployed it",
        )
        .on(service),
    };
    Err(Box::new(outcome))
}

/// What a dry run says it would do (or would fail at).
fn would(target: &Target<'_>, reason: String) -> Outcome {
    Outcome {
        skip_reason: Some(SkipReason::DryRun),
        ..Outcome::new(target.key, OutcomeKind::DryRun, Some(reason)).on(target.service)
    }
}
