//! A rich task definition goes through a real deploy against moto and comes back identical but
//! for the one image. moto stores and returns every field used here (checked first, so the
//! comparison cannot pass vacuously); it does not validate them as AWS would, which the pure
//! field-coverage tests in src/revision_tests.rs do not need.

use crate::support::{digest, push_event, TestBed, REGISTRY};
use aws_sdk_ecs::types::*;
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rich_task_definition_comes_back_identical_except_the_one_image() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let old_arn = bed.rich_definition().await;
    bed.service("prod", "web", &old_arn, &[("pushdeploy:repository", "web")])
        .await;
    let (old, old_tags) = bed.describe(&old_arn).await;

    // What moto gave back is what was registered: otherwise the comparison below proves nothing.
    let app = old
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some("app"))
        .unwrap();
    assert_eq!(old.volumes().len(), 2);
    assert!(old.volumes()[0].efs_volume_configuration().is_some());
    assert_eq!(app.secrets().len(), 1);
    assert_eq!(app.environment().len(), 2);
    assert_eq!(app.port_mappings().len(), 1);
    assert!(app.health_check().is_some());
    assert!(app.log_configuration().is_some());
    assert_eq!(app.depends_on().len(), 1);
    assert_eq!(app.ulimits().len(), 1);
    assert!(old.runtime_platform().is_some());
    assert_eq!(old.ephemeral_storage().map(|e| e.size_in_gib()), Some(40));
    assert_eq!((old.cpu(), old.memory()), (Some("1024"), Some("2048")));
    assert!(old.task_role_arn().is_some() && old.execution_role_arn().is_some());
    assert_eq!(old.network_mode(), Some(&NetworkMode::Awsvpc));
    assert_eq!(old_tags.len(), 2);

    let deployer = Deployer::new(&bed.sdk, bed.config());
    let report = deployer
        .handle(
            bed.pushed(push_event(
                "ev-1",
                "web",
                "latest",
                &digest('d'),
                "2026-11-26T12:00:00Z",
            ))
            .await,
            &Invocation::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let new_arn = report.outcomes[0].task_definition.clone().unwrap();
    let (new, new_tags) = bed.describe(&new_arn).await;

    // Field by field, through the SDK's own equality: the old definition with ECS's read-only
    // fields taken from the new one and app's image replaced must be the new definition.
    let mut expected = old.clone();
    expected.task_definition_arn = new.task_definition_arn.clone();
    expected.revision = new.revision;
    expected.status = new.status.clone();
    expected.registered_at = new.registered_at;
    expected.registered_by = new.registered_by.clone();
    expected.requires_attributes = new.requires_attributes.clone();
    expected.compatibilities = new.compatibilities.clone();
    let image = &mut expected
        .container_definitions
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c.name() == Some("app"))
        .unwrap()
        .image;
    *image = Some(format!("{REGISTRY}/web@{}", digest('d')));
    assert_eq!(new, expected);
    assert_eq!(new.revision, old.revision + 1);

    // Tags: all old ones kept, the provenance ones added, nothing else.
    for tag in &old_tags {
        assert!(new_tags.contains(tag), "lost tag {tag:?}");
    }
    let mut added: Vec<_> = new_tags
        .iter()
        .filter(|t| !old_tags.contains(t))
        .filter_map(|t| t.key())
        .collect();
    added.sort_unstable();
    assert_eq!(
        added,
        [
            "pushdeploy:digest",
            "pushdeploy:event-id",
            "pushdeploy:previous-task-definition",
            "pushdeploy:pushed-at",
            "pushdeploy:pushed-tag"
        ]
    );
}
