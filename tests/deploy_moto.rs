//! The deploy path against a real HTTP AWS stand-in (moto, with the deployment-aware ECS world
//! of `tests/support/ecs_world.py` in front of its ECS). moto is faithful here for ECS task
//! definitions and services, Resource Groups Tagging and DynamoDB conditions.

mod support;

use pushdeploy::deploy::{Deployer, Invocation, OutcomeKind, Report};
use pushdeploy::ledger::Status;
use support::{digest, push_event, TestBed, REGISTRY};

fn app_image(tag: &str) -> String {
    format!("{REGISTRY}/web:{tag}")
}

/// Delivers a push of `web:latest` with digest `d` and expects an answer, not a Lambda error.
async fn push(deployer: &Deployer, event_id: &str, d: char, time: &str) -> Report {
    let event = push_event(event_id, "web", "latest", &digest(d), time);
    deployer
        .handle(event, &Invocation::default())
        .await
        .unwrap()
}

const ENVOY: &str = "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_deploys_the_tagged_service_pinned_by_digest_in_six_calls_then_five() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let old = bed
        .task_definition("web", &[("app", &app_image("latest")), ("envoy", ENVOY)])
        .await;
    let service_arn = bed
        .service("prod", "web", &old, &[("pushdeploy:repository", "web")])
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    let outcome = &report.outcomes[0];
    assert_eq!(
        (
            outcome.outcome,
            outcome.cluster.as_str(),
            outcome.service.as_str()
        ),
        (OutcomeKind::Deployed, "prod", "web"),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.previous_task_definition.as_deref(),
        Some(old.as_str())
    );
    let new = outcome.task_definition.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!(bed.running("prod", "web").await, new);
    assert_eq!(
        bed.image(&new, "app").await,
        format!("{REGISTRY}/web@{}", digest('b'))
    );
    assert_eq!(
        bed.image(&new, "envoy").await,
        ENVOY,
        "the sidecar must not move"
    );

    // Provenance on the new revision.
    let tags = bed.describe(&new).await.1;
    let tag = |k: &str| {
        tags.iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("pushdeploy:digest"), Some(digest('b')));
    assert_eq!(tag("pushdeploy:pushed-tag").as_deref(), Some("latest"));
    assert_eq!(
        tag("pushdeploy:pushed-at").as_deref(),
        Some("2026-11-26T12:00:00Z")
    );
    assert_eq!(tag("pushdeploy:event-id").as_deref(), Some("ev-1"));
    assert_eq!(
        tag("pushdeploy:previous-task-definition"),
        Some(old.clone())
    );
    assert_eq!(
        tag("team").as_deref(),
        Some("web"),
        "the definition's own tags are kept"
    );

    // The AWS calls of a single-service deploy, ledger excluded: discovery, one describe of
    // the service, one of its task definition, one registration, one UpdateService; and, since
    // the service names its image by tag, one read of the digests ECS resolved for the revision
    // it runs (a rollback to that revision must land on them, never on the tag).
    let non_ledger = |report: &Report| -> Vec<(String, u32)> {
        report
            .aws_calls
            .iter()
            .filter(|(k, _)| !k.starts_with("DynamoDB"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(
        non_ledger(&report),
        [
            ("ECS.DescribeServiceRevisions", 1),
            ("ECS.DescribeServices", 1),
            ("ECS.DescribeTaskDefinition", 1),
            ("ECS.RegisterTaskDefinition", 1),
            ("ECS.UpdateService", 1),
            ("Resource Groups Tagging API.GetResources", 1)
        ]
        .map(|(k, v)| (k.to_string(), v)),
        "all calls: {:?}",
        report.aws_calls
    );
    println!(
        "AWS calls for one single-service deploy: {:?}",
        report.aws_calls
    );

    // The ledger says what happened, including the digests the service ran before.
    let history = deployer.ledger().latest(&service_arn, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    let record = &history[0];
    assert_eq!(
        (
            record.status,
            record.digest.as_str(),
            record.event_id.as_str()
        ),
        (Status::Deployed, digest('b').as_str(), "ev-1")
    );
    assert_eq!(record.previous_task_definition, old);
    assert_eq!(record.new_task_definition.as_deref(), Some(new.as_str()));
    assert_eq!(record.container, "app");
    // Read, and empty: `web:latest` is in no ECR repository here, so ECS resolved no digest
    // for it (nor for the public envoy image). A rollback to `old` would then call a person.
    assert_eq!(
        record.previous_images,
        Some(pushdeploy::resolved::ResolvedImages::default())
    );
    let by_digest = deployer
        .ledger()
        .deployments_of_digest(&service_arn, &digest('b'))
        .await
        .unwrap();
    assert_eq!(by_digest, history);
    assert!(deployer
        .ledger()
        .deployments_of_digest(&service_arn, &digest('c'))
        .await
        .unwrap()
        .is_empty());

    // Once pushdeploy has pinned the image, the next push needs no such read: five calls.
    let next = push(&deployer, "ev-2", 'c', "2026-11-26T12:01:00Z").await;
    assert_eq!(next.outcomes[0].outcome, OutcomeKind::Deployed, "{next:?}");
    assert_eq!(
        non_ledger(&next),
        [
            ("ECS.DescribeServices", 1),
            ("ECS.DescribeTaskDefinition", 1),
            ("ECS.RegisterTaskDefinition", 1),
            ("ECS.UpdateService", 1),
            ("Resource Groups Tagging API.GetResources", 1)
        ]
        .map(|(k, v)| (k.to_string(), v)),
        "all calls: {:?}",
        next.aws_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_services_tagged_for_the_repository_and_tag_move() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.service("prod", "follows", &td, &[("pushdeploy:repository", "web")])
        .await;
    // Runs an image of the pushed repository, but never opted in: must stay put.
    bed.service("prod", "untagged", &td, &[]).await;
    bed.service(
        "prod",
        "other-repo",
        &td,
        &[("pushdeploy:repository", "api")],
    )
    .await;
    bed.service(
        "prod",
        "other-tag",
        &td,
        &[
            ("pushdeploy:repository", "web"),
            ("pushdeploy:tag", "stable"),
        ],
    )
    .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    let touched: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome))
        .collect();
    assert_eq!(touched, [("follows", OutcomeKind::Deployed)]);
    for untouched in ["untagged", "other-repo", "other-tag"] {
        assert_eq!(
            bed.running("prod", untouched).await,
            td,
            "{untouched} must not move"
        );
    }
    assert_eq!(
        bed.revisions("web").await.len(),
        2,
        "one new revision, for the one follower"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_push_after_a_newer_one_is_skipped_as_stale() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.service("prod", "web", &td, &[("pushdeploy:repository", "web")])
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let newer = push(&deployer, "ev-new", 'c', "2026-11-26T12:05:00Z").await;
    assert_eq!(newer.outcomes[0].outcome, OutcomeKind::Deployed);
    let running = bed.running("prod", "web").await;

    let older = push(&deployer, "ev-old", 'b', "2026-11-26T12:00:00Z").await;
    let outcome = &older.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Skipped, "{outcome:?}");
    assert!(
        outcome.reason.as_deref().unwrap().starts_with("stale push"),
        "{outcome:?}"
    );
    assert_eq!(bed.running("prod", "web").await, running);
    assert_eq!(
        bed.revisions("web").await.len(),
        2,
        "no revision for the stale push"
    );
    assert!(!older.aws_calls.contains_key("ECS.RegisterTaskDefinition"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_deploy_services_without_tags_and_report_missing_ones() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.service("prod", "web", &td, &[]).await;
    let mut config = bed.config();
    config.rules = serde_json::from_str(r#"[{"repository":"web","tag":"latest","cluster":"prod","service":"web"},{"repository":"web","tag":"latest","cluster":"prod","service":"gone"}]"#).unwrap();
    let deployer = Deployer::new(&bed.sdk, config);

    let report = push(&deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    let gone = report
        .outcomes
        .iter()
        .find(|o| o.service == "gone")
        .unwrap();
    assert_eq!(gone.outcome, OutcomeKind::Failed);
    assert!(
        gone.reason
            .as_deref()
            .unwrap()
            .contains("PUSHDEPLOY_RULES[1]"),
        "{gone:?}"
    );
    assert_eq!(
        report
            .outcomes
            .iter()
            .find(|o| o.service == "web")
            .unwrap()
            .outcome,
        OutcomeKind::Deployed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_on_other_deployment_controllers_are_skipped() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.ecs
        .create_service()
        .cluster("prod")
        .service_name("blue-green")
        .task_definition(&td)
        .deployment_controller(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("pushdeploy:repository")
                .value("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Skipped);
    assert!(
        outcome.reason.as_deref().unwrap().contains("CODE_DEPLOY"),
        "{outcome:?}"
    );
    assert_eq!(bed.running("prod", "blue-green").await, td);
}

/// The `ECR Replication Action` the destination account and region receive (ECR user guide,
/// "Amazon ECR events and EventBridge": `action-type` REPLICATE, with `source-account` and
/// `source-region`), for `web:latest` at digest `d`.
fn replication_event(id: &str, d: char, time: &str, source_account: &str) -> serde_json::Value {
    let mut event = push_event(id, "web", "latest", &digest(d), time);
    event["detail-type"] = "ECR Replication Action".into();
    event["detail"]["action-type"] = "REPLICATE".into();
    event["detail"]["source-account"] = source_account.into();
    event["detail"]["source-region"] = "us-west-2".into();
    event
}

/// Issue 13, item 1: a replicated image takes the push's path (claim, ordering, pinning), and
/// is trusted by where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_image_deploys_like_a_push_from_a_trusted_source_only() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let old = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.service("prod", "web", &old, &[("pushdeploy:repository", "web")])
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    // The function's own account and region, as Lambda tells it.
    let invocation = Invocation {
        function_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:deploy".into()),
        ..Invocation::default()
    };
    let deliver = |event| deployer.handle(event, &invocation);

    let untrusted = deliver(replication_event(
        "rep-0",
        'c',
        "2026-11-26T12:00:00Z",
        "210987654321",
    ))
    .await
    .unwrap();
    assert!(untrusted.outcomes.is_empty(), "{untrusted:?}");
    assert!(
        untrusted
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("replicated from account 210987654321")),
        "{untrusted:?}"
    );
    assert_eq!(bed.running("prod", "web").await, old);

    let report = deliver(replication_event(
        "rep-1",
        'b',
        "2026-11-26T12:00:00Z",
        "123456789012",
    ))
    .await
    .unwrap();
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::Deployed);
    let new = bed.running("prod", "web").await;
    assert_eq!(
        bed.image(&new, "app").await,
        format!("{REGISTRY}/web@{}", digest('b'))
    );

    // The same ordering guard as a push: an older replica after a newer one is stale.
    let late = deliver(replication_event(
        "rep-2",
        'd',
        "2026-11-26T11:59:00Z",
        "123456789012",
    ))
    .await
    .unwrap();
    assert_eq!(late.outcomes[0].outcome, OutcomeKind::Skipped, "{late:?}");
    assert_eq!(bed.running("prod", "web").await, new);
}

/// Issue 13, item 2: a service that pulls through ECR's dual-stack endpoint runs the same
/// repository; the push deploys it, pinned by digest on the host it uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_the_dual_stack_endpoint_deploys_pinned_on_that_host() {
    const DUAL_STACK: &str = "123456789012.dkr-ecr.us-east-1.on.aws";
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let old = bed
        .task_definition("web", &[("app", &format!("{DUAL_STACK}/web:latest"))])
        .await;
    bed.service("prod", "web", &old, &[("pushdeploy:repository", "web")])
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let new = bed.running("prod", "web").await;
    assert_eq!(
        bed.image(&new, "app").await,
        format!("{DUAL_STACK}/web@{}", digest('b'))
    );
}
