//! The tag names pushdeploy reads and writes, in one place: the service tags people set (the
//! service's opt-in, policy and switches) and the provenance tags pushdeploy writes on the task
//! definitions it registers.

use crate::config::parse_bool;
use aws_sdk_ecs::types::Service;

// Service tags, set by people (docs/configuration.md, "Which services follow a push").
/// The ECR repository name whose pushes the service follows: its opt-in.
pub const TAG_REPOSITORY: &str = "pushdeploy:repository";
/// The tag policy the service follows ([`crate::policy::TagPolicy`]); `latest` when absent.
pub const TAG_TAG: &str = "pushdeploy:tag";
pub(crate) const TAG_CONTAINER: &str = "pushdeploy:container";
/// `true`: deploy nothing to the service until the tag is removed (`pushdeploy pause|resume`).
pub(crate) const TAG_PAUSED: &str = "pushdeploy:paused";
/// `true`: decide and log for the service, change nothing.
pub(crate) const TAG_DRY_RUN: &str = "pushdeploy:dry-run";

/// Whether a service's tag `key` is set to true (`pushdeploy:paused`, `pushdeploy:dry-run`).
pub(crate) fn flag(service: &Service, key: &str) -> bool {
    service
        .tags()
        .iter()
        .any(|t| t.key() == Some(key) && t.value().and_then(parse_bool) == Some(true))
}

// Provenance tags, written by pushdeploy on each revision it registers.
pub(crate) const TAG_PUSHED_TAG: &str = "pushdeploy:pushed-tag";
pub(crate) const TAG_DIGEST: &str = "pushdeploy:digest";
pub(crate) const TAG_PUSHED_AT: &str = "pushdeploy:pushed-at";
pub(crate) const TAG_EVENT_ID: &str = "pushdeploy:event-id";
pub(crate) const TAG_PREVIOUS: &str = "pushdeploy:previous-task-definition";
/// On a rollback's pinned copy: the revision it copies, and why it exists.
pub(crate) const TAG_PINS: &str = "pushdeploy:pins";
pub(crate) const TAG_PIN_REASON: &str = "pushdeploy:pinned-because";
