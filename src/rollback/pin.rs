//! A rollback lands on exactly the images its target revision ran. A target that names the
//! followed container by tag is copied into a new revision pinned to the digests ECS recorded
//! for it (see [`crate::resolved`]); when that digest is not known, nothing is rolled back.

use super::decide::digests_ran;
use super::RollbackHandler;
use crate::aws::{write_at_most_once, AwsError};
use crate::diff::{named, unlike_planned};
use crate::ledger::DeploymentRecord;
use crate::resolved::{pin_plan, PinPlan};
use crate::revision::{pinned_copy_request, tag_value, PinProvenance};
use crate::tags::{TAG_EVENT_ID, TAG_PINS};
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::TaskDefinition;

/// Why a rollback has no revision to land on.
#[derive(Debug)]
pub(super) enum NoSafeTarget {
    /// Rolling back would resolve a tag anew: a person must decide.
    Unknown(String),
    /// ECS could not be asked or could not register the copy.
    Aws(AwsError),
}

impl RollbackHandler {
    /// The revision a rollback to `target` deploys: `target` itself when it names the followed
    /// container by digest, else its pinned copy, registered once however often this runs, with
    /// the digest it pins the followed container to.
    pub(super) async fn pinned_target(
        &self,
        failed: &DeploymentRecord,
        history: &[DeploymentRecord],
        target: &str,
    ) -> Result<(String, Option<String>), NoSafeTarget> {
        let (definition, tags) = self
            .aws
            .describe_task_definition(target)
            .await
            .map_err(NoSafeTarget::Aws)?;
        let ran = digests_ran(target, failed, history);
        let (images, followed_digest) =
            match pin_plan(&definition, &failed.container, ran, &failed.digest) {
                PinPlan::AsIs => return Ok((target.to_string(), None)),
                PinPlan::Unknown(why) => return Err(NoSafeTarget::Unknown(why)),
                PinPlan::Pin {
                    images,
                    followed_digest,
                } => (images, followed_digest),
            };
        let provenance = PinProvenance {
            pins: target.to_string(),
            digest: followed_digest,
            event_id: failed.event_id.clone(),
            previous_task_definition: failed.new_task_definition.clone().unwrap_or_default(),
            because: format!(
                "rollback after {} failed: the revision names container {} by tag",
                failed.digest, failed.container
            ),
        };
        let request = pinned_copy_request(
            self.aws.new_revision(),
            &definition,
            &tags,
            &images,
            &provenance,
        )
        .map_err(|e| NoSafeTarget::Unknown(format!("cannot copy {target}: {e}")))?;
        let landed = || self.pinned_earlier(&definition, &request, &provenance);
        let digest = Some(provenance.digest.clone());
        if let Some(arn) = landed().await {
            return Ok((arn, digest));
        }
        let register = || self.aws.register_task_definition(request.clone());
        let arn = write_at_most_once(register, landed)
            .await
            .map_err(NoSafeTarget::Aws)?;
        Ok((arn, digest))
    }

    /// The family's newest revision, if an earlier attempt of this rollback registered it and
    /// never heard back. Adopted only when it equals the copy `planned` would register, field by
    /// field and tag by tag ([`unlike_planned`]): its `pushdeploy:pins` and event-id tags alone
    /// are anyone's to write who may register a revision, and a rollback must land on exactly
    /// the images its target ran. Otherwise the caller registers its own copy.
    async fn pinned_earlier(
        &self,
        target: &TaskDefinition,
        planned: &RegisterTaskDefinitionFluentBuilder,
        provenance: &PinProvenance,
    ) -> Option<String> {
        let (latest, tags) = self
            .aws
            .describe_task_definition(target.family()?)
            .await
            .ok()?;
        let arn = latest.task_definition_arn()?;
        let differences = unlike_planned(&latest, &tags, planned);
        if differences.is_empty() {
            return Some(arn.to_string());
        }
        let claims_to_be_ours = tag_value(&tags, TAG_PINS) == Some(provenance.pins.as_str())
            && tag_value(&tags, TAG_EVENT_ID) == Some(provenance.event_id.as_str());
        if claims_to_be_ours {
            let fields = named(&differences);
            tracing::warn!(
                event_id = provenance.event_id.as_str(),
                revision = arn,
                differs_in = fields.as_str(),
                "not adopting a revision tagged as this rollback's pinned copy: it is not the copy pushdeploy would register; registering its own"
            );
        }
        None
    }
}
