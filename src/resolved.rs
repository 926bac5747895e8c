//! The images a revision actually ran, as ECS recorded them, and what a rollback must pin.
//!
//! ECS resolves each container's image tag to a digest per deployment and keeps it in the
//! service revision: "To ensure that all tasks in a service use the same container image,
//! Amazon ECS resolves container image names and any image tags specified in the task
//! definition to container image digests" (API reference, `ContainerImage`, the members of
//! `ServiceRevision.containerImages`); "Amazon ECS will now resolve a container image tag to its
//! container image digest for every version (deployment) of an Amazon ECS Service" (AWS
//! Containers blog, "Announcing software version consistency for Amazon ECS services"). So a new
//! deployment of a revision that names an image by tag resolves the tag *again*: rolling back to
//! `web:latest` after `latest` moved to the failed digest would run the failed image. A rollback
//! never lands on a tag: it lands on the digest the target revision ran.

use crate::event::Digest;
use crate::image::ImageRef;
use aws_sdk_ecs::types::{ServiceRevision, TaskDefinition};
use std::collections::BTreeMap;

/// Container name -> the digest ECS resolved its image to, for one revision as it ran. A
/// container ECS recorded no digest for (an image ECS could not resolve) is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedImages(pub BTreeMap<String, String>);

impl ResolvedImages {
    /// What ECS recorded in a service revision.
    pub(crate) fn of_revision(revision: &ServiceRevision) -> ResolvedImages {
        ResolvedImages(
            revision
                .container_images()
                .iter()
                .filter_map(|image| {
                    let digest = image.image_digest().filter(|d| Digest::parse(d).is_ok())?;
                    Some((image.container_name()?.to_string(), digest.to_string()))
                })
                .collect(),
        )
    }

    pub(crate) fn digest_of(&self, container: &str) -> Option<&str> {
        self.0.get(container).map(String::as_str)
    }
}

/// Of the service revisions ECS lists for a service, the one whose tasks run `task_definition`
/// now: the one with the most running tasks (`running`: revision ARN -> running task count,
/// from the service's `currentServiceRevisions`), the newest among equals. A newer revision of
/// the same task definition that never got a task running (a failed forced deployment that
/// resolved a tag to another digest) is not what runs.
pub(crate) fn revision_running<'a>(
    revisions: &'a [ServiceRevision],
    task_definition: &str,
    running: &BTreeMap<String, i32>,
) -> Option<&'a ServiceRevision> {
    revisions
        .iter()
        .filter(|r| r.task_definition() == Some(task_definition))
        .max_by_key(|r| {
            let tasks = r
                .service_revision_arn()
                .and_then(|arn| running.get(arn))
                .copied()
                .unwrap_or(0);
            (tasks, r.created_at().map(|t| (t.secs(), t.subsec_nanos())))
        })
}

/// The image of `container` in `definition`, if that container exists.
pub(crate) fn image_of<'a>(definition: &'a TaskDefinition, container: &str) -> Option<&'a str> {
    definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
        .and_then(|c| c.image())
}

/// True when the image reference names one exact image (`...@sha256:...`), which ECS never
/// resolves anew.
pub(crate) fn is_pinned(image: &str) -> bool {
    ImageRef::parse(image).is_some_and(|r| r.digest.is_some())
}

/// How a rollback lands on exactly the images its target revision ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinPlan {
    /// The target names the followed container by digest: roll back to it as it is.
    AsIs,
    /// Register a copy of the target whose containers run these images (container, image);
    /// the followed container is among them. Containers ECS recorded no digest for keep their
    /// reference.
    Pin {
        images: Vec<(String, String)>,
        followed_digest: String,
    },
    /// The followed container is named by tag and the digest it ran is not known: rolling back
    /// would resolve the tag anew, possibly onto the failed image. A person decides.
    Unknown(String),
}

/// What to register so that a rollback to `target` runs exactly what it ran before. `ran` is
/// what ECS recorded for that revision, if anyone read it; never the digest that failed.
pub(crate) fn pin_plan(
    target: &TaskDefinition,
    followed: &str,
    ran: Option<&ResolvedImages>,
    failed_digest: &str,
) -> PinPlan {
    let arn = target
        .task_definition_arn()
        .unwrap_or("the target revision");
    let Some(image) = image_of(target, followed) else {
        return PinPlan::Unknown(format!(
            "{arn} has no container named {followed:?}: there is nothing safe to roll back to"
        ));
    };
    if is_pinned(image) {
        return PinPlan::AsIs;
    }
    let Some(followed_digest) = ran.and_then(|r| r.digest_of(followed)) else {
        return PinPlan::Unknown(format!(
            "{arn} names container {followed:?} by tag ({image}) and ECS's record of the digest it ran is not known: a rollback would resolve the tag anew, possibly onto the failed image"
        ));
    };
    if followed_digest == failed_digest {
        return PinPlan::Unknown(format!(
            "{arn} last ran {followed_digest}, the digest that just failed: there is nothing safe to roll back to"
        ));
    }
    let ran = ran.cloned().unwrap_or_default();
    let images = target
        .container_definitions()
        .iter()
        .filter_map(|c| {
            let name = c.name()?;
            let image = ImageRef::parse(c.image()?)?;
            if image.digest.is_some() {
                return None;
            }
            let digest = Digest::parse(ran.digest_of(name)?).ok()?;
            Some((name.to_string(), image.pinned_to(&digest)))
        })
        .collect::<Vec<_>>();
    if !images.iter().any(|(name, _)| name == followed) {
        return PinPlan::Unknown(format!(
            "{arn} names container {followed:?} as {image}, which cannot be pinned to {followed_digest}"
        ));
    }
    PinPlan::Pin {
        images,
        followed_digest: followed_digest.to_string(),
    }
}

#[cfg(test)]
#[path = "resolved_tests.rs"]
mod tests;
