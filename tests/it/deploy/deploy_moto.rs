//! The deploy path against a real HTTP AWS stand-in (moto, with the deployment-aware ECS world
//! of `tests/support/ecs_world.py` in front of its ECS). moto is faithful here for ECS task
//! definitions and services, Resource Groups Tagging and DynamoDB conditions.

use crate::support::{digest, push_event, TestBed, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;
use pushdeploy::ledger::Status;

fn app_image(tag: &str) -> String {
    format!("{REGISTRY}/web:{tag}")
}

/// Pushes `web:latest` with digest `d` to ECR and delivers its event; expects an answer, not
/// a Lambda error.
async fn push(bed: &TestBed, deployer: &Deployer, event_id: &str, d: char, time: &str) -> Report {
    bed.ecr_has("web", "latest", &digest(d)).await;
    deliver(deployer, event_id, d, time).await
}

/// Delivers the event of a push of `web:latest` with digest `d` (made earlier, or never).
async fn deliver(deployer: &Deployer, event_id: &str, d: char, time: &str) -> Report {
    let event = push_event(event_id, "web", "latest", &digest(d), time);
    deployer
        .handle(event, &Invocation::default())
        .await
        .unwrap()
}

const ENVOY: &str = "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_deploys_the_tagged_service_pinned_by_digest_in_seven_calls_then_six() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let old = bed
        .task_definition("web", &[("app", &app_image("latest")), ("envoy", ENVOY)])
        .await;
    let service_arn = bed
        .service("prod", "web", &old, &[("pushdeploy:repository", "web")])
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&bed, &deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

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
    // The push time ECR confirmed: this test's event claims an earlier one than ECR's.
    assert_eq!(
        tag("pushdeploy:pushed-at"),
        Some(bed.ecr_pushed_at("web", &digest('b')).await)
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

    // The AWS calls of a single-service deploy, ledger excluded: discovery and ECR's word on
    // the push (at once), one describe of the service, one of its task definition, one
    // registration, one UpdateService; and, since the service names its image by tag, one read
    // of the digests ECS resolved for the revision it runs (a rollback to that revision must
    // land on them, never on the tag).
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
            ("ECR.DescribeImages", 1),
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
    let next = push(&bed, &deployer, "ev-2", 'c', "2026-11-26T12:01:00Z").await;
    assert_eq!(next.outcomes[0].outcome, OutcomeKind::Deployed, "{next:?}");
    assert_eq!(
        non_ledger(&next),
        [
            ("ECR.DescribeImages", 1),
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

    let report = push(&bed, &deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

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
    bed.web_service().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    // b is pushed first, then c; b's event arrives last.
    bed.ecr_has("web", "latest", &digest('b')).await;
    let newer = push(&bed, &deployer, "ev-new", 'c', "2026-11-26T12:05:00Z").await;
    assert_eq!(newer.outcomes[0].outcome, OutcomeKind::Deployed);
    let running = bed.running("prod", "web").await;

    let older = deliver(&deployer, "ev-old", 'b', "2026-11-26T12:00:00Z").await;
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

    let report = push(&bed, &deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

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
/// EXTERNAL services are deployed by whoever owns their task sets (CODE_DEPLOY ones through
/// CodeDeploy: codedeploy_moto.rs).
async fn services_on_the_external_controller_are_skipped() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &app_image("latest"))])
        .await;
    bed.ecs
        .create_service()
        .cluster("prod")
        .service_name("task-sets")
        .task_definition(&td)
        .deployment_controller(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::External)
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

    let report = push(&bed, &deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Skipped);
    assert!(
        outcome.reason.as_deref().unwrap().contains("EXTERNAL"),
        "{outcome:?}"
    );
    assert_eq!(bed.running("prod", "task-sets").await, td);
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
    let old = bed.web_service().await;
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

    // d is replicated first, then b; d's event arrives last.
    bed.ecr_has("web", "latest", &digest('d')).await;
    let report = deliver(
        bed.pushed(replication_event(
            "rep-1",
            'b',
            "2026-11-26T12:00:00Z",
            "123456789012",
        ))
        .await,
    )
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

    let report = push(&bed, &deployer, "ev-1", 'b', "2026-11-26T12:00:00Z").await;

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

/// Now, as an EventBridge `time`: what a genuine event of a push made now carries.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Issue 14, item 1: the forged push of the issue (an image that exists, a tag the policy
/// accepts, `time` in the year 2999), and its neighbours, are confirmed with ECR before they
/// move anything. Before, the forged event deployed `a` as v999.0.0 and left an order key in
/// the year 2999 behind, so that the real push of 1.1.0 was skipped as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_push_moves_nothing_and_blocks_nothing() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    bed.ecr_has("web", "1.0.0", &digest('a')).await;
    let td = bed
        .task_definition("api", &[("app", &app_image("1.0.0"))])
        .await;
    let tags = [
        ("pushdeploy:repository", "web"),
        ("pushdeploy:tag", "semver:major"),
    ];
    bed.service("prod", "api", &td, &tags).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let invocation = Invocation::default();
    let deliver = |id: &str, tag: &str, d: char, time: &str| {
        deployer.handle(push_event(id, "web", tag, &digest(d), time), &invocation)
    };

    let from_2999 = deliver("forged-1", "v999.0.0", 'a', "2999-01-01T00:00:00Z")
        .await
        .unwrap();
    assert!(from_2999.outcomes.is_empty(), "{from_2999:?}");
    assert!(
        from_2999
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("ahead of AWS's clock")),
        "{from_2999:?}"
    );
    let tag_it_lacks = deliver("forged-2", "v999.0.0", 'a', &now()).await.unwrap();
    let outcome = &tag_it_lacks.outcomes[0];
    assert_eq!(outcome.skip_reason.map(|r| r.as_str()), Some("stale"));
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("no longer names"),
        "{outcome:?}"
    );
    let not_in_ecr = deliver("forged-3", "9.9.9", 'f', &now()).await.unwrap();
    assert!(
        not_in_ecr
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("ECR has no image")),
        "{not_in_ecr:?}"
    );
    assert_eq!(bed.running("prod", "api").await, td, "nothing moved");
    assert_eq!(bed.revisions("api").await.len(), 1);

    // The real push of 1.1.0 deploys: nothing was left behind to block it.
    bed.ecr_has("web", "1.1.0", &digest('b')).await;
    let real = deliver("real-1", "1.1.0", 'b', &now()).await.unwrap();
    assert_eq!(real.outcomes[0].outcome, OutcomeKind::Deployed, "{real:?}");
    assert_eq!(
        bed.image(&bed.running("prod", "api").await, "app").await,
        format!("{REGISTRY}/web@{}", digest('b'))
    );
}

/// A tag moved back to an image pushed earlier (a rollback by retag) deploys that image:
/// ECR confirms the tag names it now, and a service that follows one tag orders its pushes by
/// when the tag moved, not by when the image was first pushed (ECR keeps that time on a
/// retag). (A service that follows many tags orders by ECR's push time: `confirm`'s unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_back_to_an_earlier_image_deploys_it() {
    let bed = TestBed::start().await;
    bed.web_service().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    // Event ids sort in push order, as EventBridge times of one second would not.
    for (id, d) in [("push-1", 'b'), ("push-2", 'c'), ("push-3-retag", 'b')] {
        bed.ecr_has("web", "latest", &digest(d)).await;
        let event = push_event(id, "web", "latest", &digest(d), &now());
        let report = deployer
            .handle(event, &Invocation::default())
            .await
            .unwrap();
        assert_eq!(
            report.outcomes[0].outcome,
            OutcomeKind::Deployed,
            "{id}: {report:?}"
        );
        assert_eq!(
            bed.image(&bed.running("prod", "web").await, "app").await,
            format!("{REGISTRY}/web@{}", digest(d)),
            "{id}"
        );
    }
}
