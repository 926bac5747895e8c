//! The dry run of one service: the same decision as a real run, logged with the diff of the
//! revision it would register; nothing written to ECS, the ledger or SNS.

use super::one_service::provenance;
use super::Deployer;
use crate::diff::planned_diff;
use crate::event::Push;
use crate::follow::ServiceKey;
use crate::outcome::{Outcome, OutcomeKind, SkipReason};
use crate::plan::Decision;
use crate::revision::revision_request;
use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};

impl Deployer {
    pub(super) async fn dry_run(
        &self,
        push: &Push,
        key: &ServiceKey,
        service: &Service,
        definition: &TaskDefinition,
        tags: &[Tag],
        decision: Decision,
    ) -> Outcome {
        let would = |reason: String| Outcome {
            skip_reason: Some(SkipReason::DryRun),
            ..Outcome::new(key, OutcomeKind::DryRun, Some(reason)).on(service)
        };
        let change = match decision {
            Decision::Skip(code, reason) => {
                return Outcome::skipped(key, code, format!("dry run: would skip: {reason}"))
                    .on(service)
            }
            Decision::Fail(reason) => return would(format!("dry run: would fail: {reason}")),
            Decision::AlreadyDeployedByThisEvent => {
                return Outcome::skipped(
                    key,
                    SkipReason::AlreadyHandled,
                    "dry run: would skip: an earlier delivery of this push already deployed it",
                )
                .on(service)
            }
            Decision::Deploy(change) => change,
        };
        // The quarantine is read, as a real run would: a dry run must not promise a deploy that
        // would be refused.
        if let Some(refused) = self.quarantine_refuses(push, key, service).await {
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
        let previous = service.task_definition().unwrap_or_default();
        let request = revision_request(
            self.aws.new_revision(),
            definition,
            tags,
            &change.container,
            &change.to_image,
            &provenance(push, previous),
        );
        match request {
            Err(e) => would(format!("dry run: would fail: {e}")),
            Ok(request) => Outcome {
                container: Some(change.container.clone()),
                image: Some(change.to_image.clone()),
                diff: Some(planned_diff(definition, &request)),
                ..would(format!(
                    "dry run: would register a new revision of {} with container {} on {} and update the service to it",
                    definition.family().unwrap_or("?"),
                    change.container,
                    change.to_image
                ))
            },
        }
    }
}
