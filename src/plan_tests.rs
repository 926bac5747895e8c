use super::*;
use crate::event::Digest;
use crate::tags::TAG_PUSHED_AT;
use aws_sdk_ecs::types::{ContainerDefinition, DeploymentController};
use chrono::TimeZone;

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn push() -> Push {
    Push {
        event_id: "e-2".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        repository: "web".into(),
        tag: "latest".into(),
        digest: Digest::parse(&digest('b')).unwrap(),
        pushed_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
            .unwrap(),
        manifest_media_type: None,
        artifact_media_type: None,
        replicated_from: None,
    }
}

fn service(status: &str, controller: Option<DeploymentControllerType>) -> Service {
    Service::builder()
        .status(status)
        .task_definition(TD)
        .set_deployment_controller(
            controller.map(|c| DeploymentController::builder().r#type(c).build().unwrap()),
        )
        .build()
}

fn task_definition(containers: &[(&str, &str)]) -> TaskDefinition {
    TaskDefinition::builder()
        .task_definition_arn(TD)
        .set_container_definitions(Some(
            containers
                .iter()
                .map(|(n, i)| ContainerDefinition::builder().name(*n).image(*i).build())
                .collect(),
        ))
        .build()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

fn decide_for(containers: &[(&str, &str)], named: Option<&str>, td_tags: &[Tag]) -> Decision {
    decide(
        &push(),
        named,
        &TagPolicy::Exact("latest".into()),
        &service("ACTIVE", Some(DeploymentControllerType::Ecs)),
        &task_definition(containers),
        td_tags,
    )
}

#[test]
fn deploys_the_one_container_of_the_repository_pinned_by_digest() {
    let decision = decide_for(
        &[
            ("app", &format!("{REGISTRY}/web:latest")),
            ("envoy", "public.ecr.aws/appmesh/envoy:v1"),
            ("log", "web:latest"),
        ],
        None,
        &[],
    );
    assert_eq!(
        decision,
        Decision::Deploy(Change {
            container: "app".into(),
            from_image: format!("{REGISTRY}/web:latest"),
            to_image: format!("{REGISTRY}/web@{}", digest('b')),
            through: Controller::Ecs,
        })
    );
}

#[test]
fn images_by_tag_digest_or_both_are_recognised() {
    for image in [
        format!("{REGISTRY}/web:v1"),
        format!("{REGISTRY}/web@{}", digest('a')),
        format!("{REGISTRY}/web:v1@{}", digest('a')),
    ] {
        assert!(
            matches!(
                decide_for(&[("app", &image)], None, &[]),
                Decision::Deploy(_)
            ),
            "{image}"
        );
    }
}

#[test]
fn a_named_container_must_exist_and_run_the_repository() {
    let two = [
        ("a", format!("{REGISTRY}/web:1")),
        ("b", format!("{REGISTRY}/web:1")),
    ];
    let two: Vec<(&str, &str)> = two.iter().map(|(n, i)| (*n, i.as_str())).collect();
    match decide_for(&two, None, &[]) {
        Decision::Fail(reason) => assert!(
            reason.contains("containers a, b") && reason.contains("pushdeploy:container"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(decide_for(&two, Some("b"), &[]), Decision::Deploy(Change { ref container, .. }) if container == "b")
    );
    assert!(
        matches!(decide_for(&two, Some("c"), &[]), Decision::Fail(ref r) if r.contains("not a container"))
    );
    assert!(
        matches!(decide_for(&[("a", "nginx:1")], Some("a"), &[]), Decision::Fail(ref r) if r.contains("runs nginx:1"))
    );
    assert!(
        matches!(decide_for(&[("a", "web:latest")], None, &[]), Decision::Fail(ref r) if r.contains("no container"))
    );
}

#[test]
fn already_running_digest_is_skipped_or_recognised_as_ours() {
    let running = format!("{REGISTRY}/web@{}", digest('b'));
    assert!(
        matches!(decide_for(&[("app", &running)], None, &[]), Decision::Skip(_, ref r) if r.contains("already runs"))
    );
    assert_eq!(
        decide_for(&[("app", &running)], None, &tags(&[(TAG_EVENT_ID, "e-2")])),
        Decision::AlreadyDeployedByThisEvent
    );
}

#[test]
fn an_older_push_than_the_running_one_is_stale() {
    let image = format!("{REGISTRY}/web@{}", digest('a'));
    let newer = tags(&[
        (TAG_PUSHED_AT, "2026-11-26T12:00:01Z"),
        (TAG_EVENT_ID, "e-1"),
    ]);
    assert!(
        matches!(decide_for(&[("app", &image)], None, &newer), Decision::Skip(_, ref r) if r.starts_with("stale push"))
    );
    // Same second: the event id breaks the tie the same way everywhere.
    let same_second_lower_id = tags(&[
        (TAG_PUSHED_AT, "2026-11-26T12:00:00Z"),
        (TAG_EVENT_ID, "e-1"),
    ]);
    assert!(matches!(
        decide_for(&[("app", &image)], None, &same_second_lower_id),
        Decision::Deploy(_)
    ));
    let older = tags(&[
        (TAG_PUSHED_AT, "2026-11-26T11:59:59Z"),
        (TAG_EVENT_ID, "e-9"),
    ]);
    assert!(matches!(
        decide_for(&[("app", &image)], None, &older),
        Decision::Deploy(_)
    ));
}

#[test]
fn inactive_services_and_external_controllers_are_skipped() {
    let td = task_definition(&[("app", "x")]);
    for (status, controller, expected) in [
        ("DRAINING", Some(DeploymentControllerType::Ecs), "DRAINING"),
        (
            "ACTIVE",
            Some(DeploymentControllerType::External),
            "EXTERNAL",
        ),
    ] {
        match decide(
            &push(),
            None,
            &TagPolicy::Exact("latest".into()),
            &service(status, controller),
            &td,
            &[],
        ) {
            Decision::Skip(_, reason) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn each_controller_is_deployed_through_its_own_way() {
    let td = task_definition(&[("app", &format!("{REGISTRY}/web:latest"))]);
    for (controller, through) in [
        (None, Controller::Ecs),
        (Some(DeploymentControllerType::Ecs), Controller::Ecs),
        (
            Some(DeploymentControllerType::CodeDeploy),
            Controller::CodeDeploy,
        ),
    ] {
        match decide(
            &push(),
            None,
            &TagPolicy::Exact("latest".into()),
            &service("ACTIVE", controller.clone()),
            &td,
            &[],
        ) {
            Decision::Deploy(change) => assert_eq!(change.through, through, "{controller:?}"),
            other => panic!("{controller:?}: {other:?}"),
        }
    }
}
