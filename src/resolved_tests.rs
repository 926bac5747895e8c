use super::*;
use aws_sdk_ecs::types::{ContainerDefinition, ContainerImage};
use aws_smithy_types::DateTime;

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const SIDECAR: &str = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn definition(app_image: &str) -> TaskDefinition {
    TaskDefinition::builder()
        .task_definition_arn("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3")
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(app_image)
                .build(),
        )
        .container_definitions(
            ContainerDefinition::builder()
                .name("log-router")
                .image(SIDECAR)
                .build(),
        )
        .build()
}

fn ran(pairs: &[(&str, String)]) -> ResolvedImages {
    ResolvedImages(
        pairs
            .iter()
            .map(|(c, d)| (c.to_string(), d.clone()))
            .collect(),
    )
}

#[test]
fn a_revision_pinned_by_digest_is_rolled_back_to_as_it_is() {
    let target = definition(&format!("{REGISTRY}/web@{}", digest('a')));
    assert_eq!(pin_plan(&target, "app", None, &digest('f')), PinPlan::AsIs);
}

#[test]
fn a_tag_is_pinned_to_the_digest_the_revision_ran_and_so_is_every_container_ecs_recorded() {
    let target = definition(&format!("{REGISTRY}/web:latest"));
    let ran = ran(&[("app", digest('a')), ("log-router", digest('b'))]);
    assert_eq!(
        pin_plan(&target, "app", Some(&ran), &digest('f')),
        PinPlan::Pin {
            images: vec![
                ("app".into(), format!("{REGISTRY}/web@{}", digest('a'))),
                (
                    "log-router".into(),
                    format!(
                        "public.ecr.aws/aws-observability/aws-for-fluent-bit@{}",
                        digest('b')
                    )
                ),
            ],
            followed_digest: digest('a'),
        }
    );
}

#[test]
fn a_sidecar_whose_digest_ecs_did_not_record_keeps_its_reference() {
    let target = definition(&format!("{REGISTRY}/web:latest"));
    let ran = ran(&[("app", digest('a'))]);
    let PinPlan::Pin { images, .. } = pin_plan(&target, "app", Some(&ran), &digest('f')) else {
        panic!("expected a pin");
    };
    assert_eq!(
        images,
        vec![("app".into(), format!("{REGISTRY}/web@{}", digest('a')))]
    );
}

#[test]
fn a_tag_whose_digest_is_unknown_is_never_rolled_back_onto() {
    let target = definition(&format!("{REGISTRY}/web:latest"));
    for ran in [None, Some(ran(&[("log-router", digest('b'))]))] {
        let PinPlan::Unknown(why) = pin_plan(&target, "app", ran.as_ref(), &digest('f')) else {
            panic!("expected Unknown for {ran:?}");
        };
        assert!(why.contains("by tag"), "{why}");
        assert!(why.contains("web:3"), "{why}");
    }
}

#[test]
fn a_revision_that_last_ran_the_failed_digest_is_no_rollback_target() {
    let target = definition(&format!("{REGISTRY}/web:latest"));
    let ran = ran(&[("app", digest('f'))]);
    let PinPlan::Unknown(why) = pin_plan(&target, "app", Some(&ran), &digest('f')) else {
        panic!("expected Unknown");
    };
    assert!(why.contains("just failed"), "{why}");
}

#[test]
fn a_target_without_the_followed_container_is_unknown() {
    let target = definition(&format!("{REGISTRY}/web:latest"));
    let ran = ran(&[("app", digest('a'))]);
    assert!(matches!(
        pin_plan(&target, "api", Some(&ran), &digest('f')),
        PinPlan::Unknown(_)
    ));
}

#[test]
fn only_well_formed_digests_are_taken_from_a_service_revision() {
    let revision = ServiceRevision::builder()
        .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3")
        .container_images(
            ContainerImage::builder()
                .container_name("app")
                .image(format!("{REGISTRY}/web:latest"))
                .image_digest(digest('a'))
                .build(),
        )
        .container_images(
            ContainerImage::builder()
                .container_name("log-router")
                .image(SIDECAR)
                .build(),
        )
        .container_images(
            ContainerImage::builder()
                .container_name("odd")
                .image("odd:1")
                .image_digest("sha256:not-hex")
                .build(),
        )
        .build();
    assert_eq!(
        ResolvedImages::of_revision(&revision),
        ran(&[("app", digest('a'))])
    );
}

#[test]
fn the_running_revision_is_the_one_whose_tasks_run_then_the_newest() {
    let revision = |arn: &str, td: &str, at: i64| {
        ServiceRevision::builder()
            .service_revision_arn(arn)
            .task_definition(td)
            .created_at(DateTime::from_secs(at))
            .build()
    };
    let revisions = [
        revision("r1", "web:3", 100),
        revision("r2", "web:4", 200),
        revision("r3", "web:3", 300),
    ];
    let none = BTreeMap::new();
    assert_eq!(
        revision_running(&revisions, "web:3", &none).and_then(|r| r.service_revision_arn()),
        Some("r3")
    );
    assert!(revision_running(&revisions, "web:5", &none).is_none());
    // r3 is a newer deployment of web:3 whose tasks never ran (it resolved a tag anew and
    // failed); r1's tasks are what runs.
    let running = BTreeMap::from([("r1".to_string(), 2), ("r3".to_string(), 0)]);
    assert_eq!(
        revision_running(&revisions, "web:3", &running).and_then(|r| r.service_revision_arn()),
        Some("r1")
    );
}
