//! A faithful new task-definition revision: every writable field of the current revision carried
//! over, the tags kept, only one container's image changed, provenance tags added.

use crate::tags::{
    TAG_DIGEST, TAG_EVENT_ID, TAG_PINS, TAG_PIN_REASON, TAG_PREVIOUS, TAG_PUSHED_AT, TAG_PUSHED_TAG,
};
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{Tag, TaskDefinition};

const PROVENANCE: [&str; 7] = [
    TAG_PUSHED_TAG,
    TAG_DIGEST,
    TAG_PUSHED_AT,
    TAG_EVENT_ID,
    TAG_PREVIOUS,
    TAG_PINS,
    TAG_PIN_REASON,
];

/// ECS accepts at most 50 user tags on a task definition.
const MAX_TAGS: usize = 50;

/// Fields of a described task definition that ECS computes and RegisterTaskDefinition does not
/// take. Every other field is carried over; the tests fail when the SDK grows a field that is
/// in neither group. Only the tests read it: the copy itself carries fields by name.
#[cfg(test)]
pub(crate) const READ_ONLY_FIELDS: [&str; 9] = [
    "task_definition_arn",
    "revision",
    "status",
    "requires_attributes",
    "compatibilities",
    "registered_at",
    "deregistered_at",
    "delete_requested_at",
    "registered_by",
];

/// Why the current task definition cannot be copied: no retry helps until it changes, so a
/// deploy fails without retrying and a rollback finds no safe target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    /// The described task definition names no family to register the copy in; holds its ARN.
    #[error("task definition {0} has no family")]
    NoFamily(String),
    /// A container to re-image is not among the task definition's containers; holds the name
    /// asked for.
    #[error("task definition has no container named {0:?}")]
    NoSuchContainer(String),
    /// The tags it keeps plus the provenance tags exceed ECS's 50; holds the total.
    #[error("the new revision would carry {0} tags, over ECS's limit of {MAX_TAGS}; remove some tags from the task definition")]
    TooManyTags(usize),
}

/// Where a revision comes from, written onto it as tags so that anyone reading the task
/// definition can trace it back to the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The tag the image arrived under (`pushdeploy:pushed-tag`).
    pub pushed_tag: String,
    /// The image's digest, which the container is pinned to (`pushdeploy:digest`).
    pub digest: String,
    /// When the push happened, in pushdeploy's timestamp text (`pushdeploy:pushed-at`).
    pub pushed_at: String,
    /// The push's event id, as the ledger and the log carry it (`pushdeploy:event-id`).
    pub event_id: String,
    /// The revision the service ran before this one (`pushdeploy:previous-task-definition`).
    pub previous_task_definition: String,
}

impl Provenance {
    fn tags(&self) -> [Tag; 5] {
        [
            (TAG_PUSHED_TAG, &self.pushed_tag),
            (TAG_DIGEST, &self.digest),
            (TAG_PUSHED_AT, &self.pushed_at),
            (TAG_EVENT_ID, &self.event_id),
            (TAG_PREVIOUS, &self.previous_task_definition),
        ]
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
    }
}

/// Where a rollback's pinned copy of a revision comes from, written onto it as tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinProvenance {
    /// The revision copied.
    pub(crate) pins: String,
    /// The digest the followed container is pinned to.
    pub(crate) digest: String,
    /// The push whose failed deployment the rollback reverts.
    pub(crate) event_id: String,
    /// The failed revision the rollback replaces.
    pub(crate) previous_task_definition: String,
    /// Why: in ECS's tag alphabet (letters, digits, spaces and `+ - = . _ : / @`).
    pub(crate) because: String,
}

impl PinProvenance {
    fn tags(&self) -> [Tag; 5] {
        [
            (TAG_PINS, &self.pins),
            (TAG_DIGEST, &self.digest),
            (TAG_EVENT_ID, &self.event_id),
            (TAG_PREVIOUS, &self.previous_task_definition),
            (TAG_PIN_REASON, &self.because),
        ]
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
    }
}

/// The value of tag `key` among `tags`, if set.
pub(crate) fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Fills `request` with a copy of `current` whose container `container` runs `image`.
pub fn revision_request(
    request: RegisterTaskDefinitionFluentBuilder,
    current: &TaskDefinition,
    current_tags: &[Tag],
    container: &str,
    image: &str,
    provenance: &Provenance,
) -> Result<RegisterTaskDefinitionFluentBuilder, RevisionError> {
    let images = [(container.to_string(), image.to_string())];
    copy_request(request, current, current_tags, &images, provenance.tags())
}

/// Fills `request` with a copy of `target` whose containers run the pinned `images`
/// (container, image), for a rollback that must run exactly what `target` ran.
pub(crate) fn pinned_copy_request(
    request: RegisterTaskDefinitionFluentBuilder,
    target: &TaskDefinition,
    target_tags: &[Tag],
    images: &[(String, String)],
    provenance: &PinProvenance,
) -> Result<RegisterTaskDefinitionFluentBuilder, RevisionError> {
    copy_request(request, target, target_tags, images, provenance.tags())
}

fn copy_request(
    request: RegisterTaskDefinitionFluentBuilder,
    current: &TaskDefinition,
    current_tags: &[Tag],
    images: &[(String, String)],
    provenance: [Tag; 5],
) -> Result<RegisterTaskDefinitionFluentBuilder, RevisionError> {
    let arn = current.task_definition_arn.clone().unwrap_or_default();
    let family = current.family.clone().ok_or(RevisionError::NoFamily(arn))?;
    let mut containers = current.container_definitions.clone().unwrap_or_default();
    for (container, image) in images {
        let target = containers
            .iter_mut()
            .find(|c| c.name.as_deref() == Some(container.as_str()))
            .ok_or_else(|| RevisionError::NoSuchContainer(container.to_string()))?;
        target.image = Some(image.to_string());
    }

    // `aws:` keys are reserved (RegisterTaskDefinition rejects them); old provenance is replaced.
    let mut tags: Vec<Tag> = current_tags
        .iter()
        .filter(|t| {
            t.key()
                .is_some_and(|k| !k.starts_with("aws:") && !PROVENANCE.contains(&k))
        })
        .cloned()
        .collect();
    tags.extend(provenance);
    if tags.len() > MAX_TAGS {
        return Err(RevisionError::TooManyTags(tags.len()));
    }

    #[allow(deprecated)] // Elastic Inference is retired, but old definitions may still carry it.
    let request = request
        .family(family)
        .set_task_role_arn(current.task_role_arn.clone())
        .set_execution_role_arn(current.execution_role_arn.clone())
        .set_network_mode(current.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(current.volumes.clone())
        .set_placement_constraints(current.placement_constraints.clone())
        .set_requires_compatibilities(current.requires_compatibilities.clone())
        .set_cpu(current.cpu.clone())
        .set_memory(current.memory.clone())
        .set_tags(Some(tags))
        .set_pid_mode(current.pid_mode.clone())
        .set_ipc_mode(current.ipc_mode.clone())
        .set_proxy_configuration(current.proxy_configuration.clone())
        .set_inference_accelerators(current.inference_accelerators.clone())
        .set_ephemeral_storage(current.ephemeral_storage.clone())
        .set_runtime_platform(current.runtime_platform.clone())
        .set_enable_fault_injection(current.enable_fault_injection);
    Ok(request)
}

#[cfg(test)]
#[path = "revision_tests.rs"]
mod tests;
