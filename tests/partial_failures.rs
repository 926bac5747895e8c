//! An invocation that died half-way: it claimed the service and registered the revision, but
//! never recorded it. The ledger and ECS are set up in exactly the state that death leaves
//! (moto holds both faithfully), then Lambda's retry of the same event runs.

mod support;

use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use pushdeploy::deploy::{Deployer, Invocation, OutcomeKind};
use pushdeploy::event::parse_push;
use pushdeploy::ledger::{DeploymentRecord, Kind, Lease, Ledger, Status};
use support::{digest, push_event, TestBed, REGISTRY, TABLE};

/// The push whose first delivery died: every delivery of it is this event.
fn the_push() -> serde_json::Value {
    push_event(
        "ev-1",
        "web",
        "latest",
        &digest('b'),
        "2026-11-26T12:00:00Z",
    )
}

const SERVICE: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

async fn died_after_registering(bed: &TestBed, tag_as_ours: bool) -> String {
    bed.cluster("prod").await;
    let first = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    bed.service("prod", "web", &first, &[("pushdeploy:repository", "web")])
        .await;
    let push = parse_push(the_push()).unwrap();
    // The claim, its lease long over, and the record written before registering.
    let ledger = Ledger::new(bed.dynamodb.clone(), TABLE);
    let ended = Lease {
        holder: "req-dead".into(),
        until_ms: 1,
    };
    ledger
        .claim(SERVICE, &push, &ended, 0, "2026-11-26T12:00:01Z")
        .await
        .unwrap();
    ledger
        .put(&DeploymentRecord {
            kind: Kind::Deploy,
            reverts: None,
            service_arn: SERVICE.into(),
            cluster: "prod".into(),
            service: "web".into(),
            event_id: "ev-1".into(),
            order_key: push.order_key(),
            repository: "web".into(),
            tag: "latest".into(),
            digest: digest('b'),
            pushed_at: push.pushed_at_text(),
            container: "app".into(),
            previous_task_definition: first,
            new_task_definition: None,
            deployment_id: None,
            previous_images: None,
            running_at_last_sweep: None,
            awaits_ecs_rollback: false,
            status: Status::Deploying,
            reason: None,
            created_at: "2026-11-26T12:00:01Z".into(),
            updated_at: "2026-11-26T12:00:01Z".into(),
        })
        .await
        .unwrap();
    // The revision it registered before dying.
    let mut request = bed
        .ecs
        .register_task_definition()
        .family("web")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(format!("{REGISTRY}/web@{}", digest('b')))
                .memory(128)
                .essential(true)
                .build(),
        );
    if tag_as_ours {
        request = request.tags(
            Tag::builder()
                .key("pushdeploy:event-id")
                .value("ev-1")
                .build(),
        );
    }
    let orphan = request
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap()
        .task_definition_arn
        .unwrap();
    orphan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_adopts_the_revision_the_dead_attempt_registered() {
    let bed = TestBed::start().await;
    let registered = died_after_registering(&bed, true).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_eq!(
        outcome.task_definition.as_deref(),
        Some(registered.as_str())
    );
    assert!(
        !report.aws_calls.contains_key("ECS.RegisterTaskDefinition"),
        "{:?}",
        report.aws_calls
    );
    assert_eq!(
        bed.revisions("web").await.len(),
        2,
        "exactly one new revision"
    );
    assert_eq!(bed.running("prod", "web").await, registered);
    let order_key = parse_push(the_push()).unwrap().order_key();
    let record = deployer
        .ledger()
        .record(SERVICE, &order_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.new_task_definition.as_deref()),
        (Status::Deployed, Some(registered.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newest_revision_that_is_not_this_pushs_is_never_adopted() {
    let bed = TestBed::start().await;
    let foreign = died_after_registering(&bed, false).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = deployer
        .handle(the_push(), &Invocation::default())
        .await
        .unwrap();

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_ne!(
        outcome.task_definition.as_deref(),
        Some(foreign.as_str()),
        "a revision without this push's provenance"
    );
    assert_eq!(report.aws_calls.get("ECS.RegisterTaskDefinition"), Some(&1));
}
