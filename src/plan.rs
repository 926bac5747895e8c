//! The per-service decision, over plain data: skip, fail, or deploy which container to which image.

use crate::event::{order_key, Push};
use crate::image::ImageRef;
use crate::outcome::SkipReason;
use crate::policy::{Refusal, TagPolicy};
use crate::revision::tag_value;
use crate::tags::{TAG_EVENT_ID, TAG_PUSHED_AT, TAG_PUSHED_TAG};
use aws_sdk_ecs::types::{DeploymentControllerType, Service, Tag, TaskDefinition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Deploy(Change),
    /// The service already runs this push's revision: an earlier delivery of the same event
    /// deployed it, and only the ledger may still need to say so.
    AlreadyDeployedByThisEvent,
    Skip(SkipReason, String),
    /// A configuration problem that a retry cannot fix.
    Fail(String),
}

/// One container moves from one image to another; nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) container: String,
    pub(crate) from_image: String,
    pub(crate) to_image: String,
    /// Who moves the service onto the new revision.
    pub(crate) through: Controller,
}

/// The service's deployment controller, as far as pushdeploy can drive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    /// ECS's own: UpdateService, then ECS runs the service's strategy.
    Ecs,
    /// CodeDeploy: ECS refuses a new task definition through UpdateService ("If the network
    /// configuration, platform version, task definition, or load balancer need to be updated,
    /// create a new CodeDeploy deployment", API UpdateService), so a CodeDeploy deployment.
    CodeDeploy,
}

/// What one push means for one service, over plain data: skip or fail it (with the reason),
/// know it as deployed already by this very event, or change exactly one container's image to
/// the pushed digest. Never moves a service that is not ACTIVE or has another deployment
/// controller, nor to what it runs already, to a push older than its revision's, or outside its
/// tag policy.
pub(crate) fn decide(
    push: &Push,
    named_container: Option<&str>,
    policy: &TagPolicy,
    service: &Service,
    task_definition: &TaskDefinition,
    task_definition_tags: &[Tag],
) -> Decision {
    match change(
        push,
        named_container,
        policy,
        service,
        task_definition,
        task_definition_tags,
    ) {
        Ok(change) => Decision::Deploy(change),
        Err(other) => other,
    }
}

/// The change `decide` deploys. `Err` carries every other decision, so that each check below
/// can end the decision with `?`; their order is the order in which reasons are reported.
fn change(
    push: &Push,
    named_container: Option<&str>,
    policy: &TagPolicy,
    service: &Service,
    task_definition: &TaskDefinition,
    task_definition_tags: &[Tag],
) -> Result<Change, Decision> {
    let through = deployable(service)?;
    let (container, current) =
        pick_container(push, named_container, task_definition).map_err(Decision::Fail)?;
    not_running_already(push, &container, &current, task_definition_tags)?;
    not_older_than_running(push, task_definition, task_definition_tags)?;
    allowed_by_policy(
        push,
        policy,
        &container,
        task_definition,
        task_definition_tags,
    )?;
    let from_image = task_definition
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container.as_str()))
        .and_then(|c| c.image())
        .unwrap_or_default()
        .to_string();
    Ok(Change {
        to_image: current.pinned_to(&push.digest),
        container,
        from_image,
        through,
    })
}

/// Only an ACTIVE service moves, through ECS's controller or CodeDeploy's; an EXTERNAL one is
/// deployed by whoever owns its task sets.
fn deployable(service: &Service) -> Result<Controller, Decision> {
    let status = service.status().unwrap_or("UNKNOWN");
    if status != "ACTIVE" {
        return Err(Decision::Skip(
            SkipReason::NotActive,
            format!("the service is {status}, not ACTIVE"),
        ));
    }
    match service.deployment_controller().map(|c| c.r#type()) {
        None | Some(DeploymentControllerType::Ecs) => Ok(Controller::Ecs),
        Some(DeploymentControllerType::CodeDeploy) => Ok(Controller::CodeDeploy),
        Some(controller) => Err(Decision::Skip(SkipReason::OtherController, format!(
            "the service uses the {controller} deployment controller; pushdeploy cannot move its task sets, so deploy it through that controller"
        ))),
    }
}

/// The container runs the pushed digest already: this event deployed it when its revision
/// carries the event's id (an earlier delivery), else there is nothing to do.
fn not_running_already(
    push: &Push,
    container: &str,
    current: &ImageRef,
    task_definition_tags: &[Tag],
) -> Result<(), Decision> {
    if current.digest.as_deref() != Some(push.digest.as_str()) {
        return Ok(());
    }
    Err(
        if tag_value(task_definition_tags, TAG_EVENT_ID) == Some(push.event_id.as_str()) {
            Decision::AlreadyDeployedByThisEvent
        } else {
            Decision::Skip(
                SkipReason::AlreadyRunning,
                format!("container {container} already runs {}", push.digest),
            )
        },
    )
}

/// Pushes can arrive out of order: one made before the running revision's push never replaces it.
fn not_older_than_running(
    push: &Push,
    task_definition: &TaskDefinition,
    task_definition_tags: &[Tag],
) -> Result<(), Decision> {
    let arn = task_definition.task_definition_arn().unwrap_or("(unknown)");
    match running_push_order(task_definition_tags) {
        Some(running) if running > push.order_key() => Err(Decision::Skip(
            SkipReason::Stale,
            format!(
                "stale push: {arn} was deployed from a push made at {}, later than this one ({})",
                tag_value(task_definition_tags, TAG_PUSHED_AT).unwrap_or_default(),
                push.pushed_at_text()
            ),
        )),
        _ => Ok(()),
    }
}

/// The service's tag policy says which tags it follows, and whether this one is a move it allows.
fn allowed_by_policy(
    push: &Push,
    policy: &TagPolicy,
    container: &str,
    task_definition: &TaskDefinition,
    task_definition_tags: &[Tag],
) -> Result<(), Decision> {
    // The version the service runs: the tag pushdeploy deployed it from, else its image's tag.
    let running_tag = running_tag(push, Some(container), task_definition, task_definition_tags);
    match policy.allows_move(running_tag.as_deref(), &push.tag) {
        Ok(()) => Ok(()),
        Err(Refusal::NotNewer(why)) => Err(Decision::Skip(SkipReason::NotNewer, why)),
        Err(Refusal::Outside(why)) => Err(Decision::Skip(SkipReason::OutsidePolicy, why)),
    }
}

/// Why ECS will not report a failed deployment of this service, if it will not: no circuit
/// breaker and no alarms, so a broken deployment retries forever and only pushdeploy's sweep
/// (after `PUSHDEPLOY_DEPLOY_TIMEOUT`) calls it failed.
pub(crate) fn unreported_failure_warning(service: &Service) -> Option<String> {
    let config = service.deployment_configuration();
    let breaker = config
        .and_then(|c| c.deployment_circuit_breaker())
        .is_some_and(|b| b.enable());
    let alarms = config.and_then(|c| c.alarms()).is_some_and(|a| a.enable());
    (!breaker && !alarms).then(|| {
        "the service has no deployment circuit breaker or alarms: ECS will not report a failed deployment, so pushdeploy only treats it as failed after PUSHDEPLOY_DEPLOY_TIMEOUT".to_string()
    })
}

/// How ECS rolls this service back by itself on a failed deployment, if it does.
pub(crate) fn ecs_rollback(service: &Service) -> Option<&'static str> {
    let config = service.deployment_configuration()?;
    if config
        .deployment_circuit_breaker()
        .is_some_and(|b| b.enable() && b.rollback())
    {
        Some("the deployment circuit breaker with rollback")
    } else if config.alarms().is_some_and(|a| a.enable() && a.rollback()) {
        Some("CloudWatch alarm rollback")
    } else {
        None
    }
}

/// The order key of the push that produced the running revision, when pushdeploy made it.
fn running_push_order(tags: &[Tag]) -> Option<String> {
    let pushed_at = chrono::DateTime::parse_from_rfc3339(tag_value(tags, TAG_PUSHED_AT)?).ok()?;
    Some(order_key(
        &pushed_at.to_utc(),
        tag_value(tags, TAG_EVENT_ID).unwrap_or_default(),
    ))
}

/// The tag the service's container of the push's repository runs: the one pushdeploy deployed
/// it from (the revision's provenance), else its image's own tag.
pub(crate) fn running_tag(
    push: &Push,
    named_container: Option<&str>,
    task_definition: &TaskDefinition,
    task_definition_tags: &[Tag],
) -> Option<String> {
    tag_value(task_definition_tags, TAG_PUSHED_TAG)
        .map(str::to_string)
        .or_else(|| {
            pick_container(push, named_container, task_definition)
                .ok()?
                .1
                .tag
        })
}

/// The name of the one container of `task_definition` that runs an image of the push's repository.
pub(crate) fn container_running(task_definition: &TaskDefinition, push: &Push) -> Option<String> {
    pick_container(push, None, task_definition)
        .ok()
        .map(|(name, _)| name)
}

/// The container that runs the pushed repository: the named one, or the only one whose image
/// comes from it. Never a guess between several, never an image from elsewhere.
fn pick_container(
    push: &Push,
    named: Option<&str>,
    task_definition: &TaskDefinition,
) -> Result<(String, ImageRef), String> {
    let arn = task_definition.task_definition_arn().unwrap_or("(unknown)");
    let from_push =
        |image: Option<&str>| image.and_then(ImageRef::parse).filter(|r| r.is_from(push));
    let containers = task_definition.container_definitions();
    if let Some(name) = named {
        let container = containers
            .iter()
            .find(|c| c.name() == Some(name))
            .ok_or_else(|| {
                format!("pushdeploy:container names {name:?}, which is not a container of {arn}")
            })?;
        return from_push(container.image()).map(|r| (name.to_string(), r)).ok_or_else(|| {
            format!(
                "container {name} runs {}, not an image of ECR repository {} in account {} region {}; pushdeploy only moves a container to a newer image of the repository it already runs",
                container.image().unwrap_or("no image"),
                push.repository,
                push.account,
                push.region
            )
        });
    }
    let mut matching = containers
        .iter()
        .filter_map(|c| Some((c.name()?.to_string(), from_push(c.image())?)));
    match (matching.next(), matching.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(format!("no container of {arn} runs an image of ECR repository {} in account {} region {}", push.repository, push.account, push.region)),
        (Some(a), Some(b)) => Err(format!(
            "containers {}, {}{} all run repository {}; set the service tag pushdeploy:container to the one to update",
            a.0,
            b.0,
            matching.map(|(n, _)| format!(", {n}")).collect::<String>(),
            push.repository
        )),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
