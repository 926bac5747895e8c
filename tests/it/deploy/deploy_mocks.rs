//! What moto cannot show, with `aws-smithy-mocks` standing in for ECS and the tagging API:
//! throttling and 5xx answers (moto never fails on its own), a RegisterTaskDefinition that
//! succeeds followed by an UpdateService that fails, the deployment list UpdateService returns
//! (moto never starts a new deployment), and paged discovery with a token. Errors are given as
//! wire-format HTTP answers, so the SDK's own parsing and retry classification run on them.
//! The ledger stays real: DynamoDB on moto, whose conditional writes are faithful.

use crate::support::mocks::*;
use crate::support::{digest, push_event, TestBed};
use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
use aws_sdk_ecs::types::TaskDefinition;
use aws_smithy_mocks::{mock, Rule};
use pushdeploy::deploy::{Deployer, OutcomeKind};
use pushdeploy::invocation::Invocation;
use pushdeploy::ledger::{DeploymentRecord, Status};

fn push() -> serde_json::Value {
    push_event(
        "ev-1",
        "web",
        "latest",
        &digest('b'),
        "2026-11-26T12:00:00Z",
    )
}

/// A deployer for a push to `web`: discovery finds it, ECS describes its service and
/// definition, RegisterTaskDefinition answers V2 (the rule is returned, to count its calls), and
/// UpdateService answers as `update` says.
async fn web_deployer(bed: &TestBed, update: &Rule) -> (Deployer, Rule) {
    let (discover, services, definition, register) = (
        discovery(&["web"]),
        described_services(),
        described_definition(),
        registered(V2),
    );
    let deployer = deployer(
        bed,
        &[&discover],
        &[&services, &definition, &register, update],
    )
    .await;
    (deployer, register)
}

/// The ledger's newest record for `web`.
async fn web_record(deployer: &Deployer) -> DeploymentRecord {
    deployer
        .ledger()
        .latest(&service_arn("web"), 1)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_succeeds_update_fails_and_the_retry_finishes_without_a_second_revision() {
    let bed = TestBed::start().await;
    // UpdateService answers 500 to all three SDK attempts of the first invocation, then succeeds.
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, Some(wire_error("ServerException")))
        .times(3)
        .output(|| updated_output(V2))
        .build();
    let (deployer, register) = web_deployer(&bed, &update).await;

    let first = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .expect_err("a 5xx must make Lambda retry");
    let outcome = &first.report.outcomes[0];
    assert_eq!(
        (outcome.outcome, outcome.retryable),
        (OutcomeKind::Failed, true),
        "{outcome:?}"
    );
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("ecs:UpdateService failed (retryable)"),
        "{outcome:?}"
    );
    assert_eq!((register.num_calls(), update.num_calls()), (1, 3));
    let record = web_record(&deployer).await;
    assert_eq!(
        (record.status, record.new_task_definition.as_deref()),
        (Status::Deploying, Some(V2)),
        "the registered revision is remembered"
    );

    // Lambda's retry of the same event: the service still runs V1 (UpdateService never took).
    let second = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .expect("the retry succeeds");
    let outcome = &second.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    assert_eq!(outcome.task_definition.as_deref(), Some(V2));
    assert_eq!(
        register.num_calls(),
        1,
        "the retry reuses the revision instead of registering another"
    );
    assert_eq!(update.num_calls(), 4);
    assert!(!second.aws_calls.contains_key("ECS.RegisterTaskDefinition"));

    // The deployment id comes from UpdateService's answer (moto would not give one).
    assert_eq!(
        outcome.deployment_id.as_deref(),
        Some("ecs-svc/1111111111111111111")
    );
    let record = deployer
        .ledger()
        .latest(&service_arn("web"), 10)
        .await
        .unwrap();
    assert_eq!(record.len(), 1, "one record per (service, deployment)");
    assert_eq!(
        record[0].reason, None,
        "the success clears the earlier failure"
    );
    assert_eq!(
        (record[0].status, record[0].deployment_id.as_deref()),
        (Status::Deployed, Some("ecs-svc/1111111111111111111"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_absorbed_by_sdk_retries_and_then_handed_to_lambda() {
    let bed = TestBed::start().await;
    // Throttled twice, then answered: the SDK's retries absorb it and the push deploys.
    let discover = mock!(aws_sdk_resourcegroupstagging::Client::get_resources)
        .sequence()
        .http_status(400, Some(wire_error("ThrottlingException")))
        .times(2)
        .output(|| tagged(&["web"]))
        .build();
    let (services, definition, register) =
        (described_services(), described_definition(), registered(V2));
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_compute_output(|input| updated_output(input.task_definition().unwrap()));
    let deployer_a = deployer(
        &bed,
        &[&discover],
        &[&services, &definition, &register, &update],
    )
    .await;
    let report = deployer_a
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].outcome, OutcomeKind::Deployed);
    assert_eq!(discover.num_calls(), 3);
    assert_eq!(
        report.aws_calls["Resource Groups Tagging API.GetResources"], 1,
        "the counter counts operations, not attempts"
    );

    // Throttled past the SDK's three attempts: nothing is touched and Lambda is asked to retry.
    let throttled = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(400, Some(wire_error("ThrottlingException")))
        .repeatedly()
        .build();
    let untouched_register = registered(V2);
    let deployer_b = deployer(
        &bed,
        &[&discovery(&["web"])],
        &[&throttled, &untouched_register],
    )
    .await;
    let failure = deployer_b
        .handle(
            bed.pushed(push_event(
                "ev-2",
                "web",
                "latest",
                &digest('c'),
                "2026-11-26T12:01:00Z",
            ))
            .await,
            &Invocation::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(throttled.num_calls(), 3);
    assert_eq!(untouched_register.num_calls(), 0);
    assert!(failure.report.outcomes[0].retryable);
    assert!(
        failure.summary.contains("must be retried"),
        "{}",
        failure.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_update_is_final_recorded_and_not_retried() {
    let bed = TestBed::start().await;
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(400, Some(wire_error("InvalidParameterException")))
        .repeatedly()
        .build();
    let (deployer, register) = web_deployer(&bed, &update).await;

    let report = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .expect("a 4xx is final: no Lambda retry");
    let outcome = &report.outcomes[0];
    assert_eq!(
        (outcome.outcome, outcome.retryable),
        (OutcomeKind::Failed, false)
    );
    assert!(
        outcome
            .reason
            .as_deref()
            .unwrap()
            .contains("InvalidParameterException"),
        "{outcome:?}"
    );
    assert_eq!(
        update.num_calls(),
        1,
        "a 4xx is not retried by the SDK either"
    );
    let record = web_record(&deployer).await;
    assert_eq!(record.status, Status::Failed);

    // EventBridge delivers the same push again: the ledger remembers it failed.
    let again = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .unwrap();
    assert!(
        again.outcomes[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("already ended as failed"),
        "{:?}",
        again.outcomes[0]
    );
    assert_eq!((register.num_calls(), update.num_calls()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_page_tokens_and_a_shared_definition_is_described_once() {
    let bed = TestBed::start().await;
    // moto's tagging API pages too, but only past 50 resources; the token path is shown here.
    let pages = mock!(aws_sdk_resourcegroupstagging::Client::get_resources)
        .sequence()
        .output(|| {
            let mut first = tagged(&["a"]);
            first.pagination_token = Some("page-2".into());
            first
        })
        .output(|| tagged(&["b"]))
        .build();
    let (services, definition) = (described_services(), described_definition());
    let register =
        mock!(aws_sdk_ecs::Client::register_task_definition).then_compute_output(|input| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(format!(
                            "{V2}-{}",
                            input.container_definitions().len()
                        ))
                        .build(),
                )
                .build()
        });
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_compute_output(|input| updated_output(input.task_definition().unwrap()));
    let deployer = deployer(
        &bed,
        &[&pages],
        &[&services, &definition, &register, &update],
    )
    .await;

    let report = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .unwrap();

    let deployed: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome))
        .collect();
    assert_eq!(
        deployed,
        [("a", OutcomeKind::Deployed), ("b", OutcomeKind::Deployed)]
    );
    assert_eq!(
        report.aws_calls["Resource Groups Tagging API.GetResources"],
        2
    );
    assert_eq!(
        report.aws_calls["ECS.DescribeServices"], 1,
        "one cluster, one batch"
    );
    assert_eq!(
        report.aws_calls["ECS.DescribeTaskDefinition"], 1,
        "both services run V1"
    );
}

/// The Resource Groups Tagging API lists resources that were tagged before and may lag behind a
/// deletion: a service it returns that ECS reports MISSING is gone, a skip with its reason, not
/// a failure on every push. (moto's tagging API reads moto's ECS, so it never lags: mocks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_service_ecs_reports_missing_is_a_skip_not_a_failure() {
    let bed = TestBed::start().await;
    let discover = discovery(&["web"]);
    let missing = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder()
            .failures(
                aws_sdk_ecs::types::Failure::builder()
                    .arn(service_arn("web"))
                    .reason("MISSING")
                    .build(),
            )
            .build()
    });
    let deployer = deployer(&bed, &[&discover], &[&missing]).await;
    let report = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .expect("a service that is gone is no reason for Lambda to retry");
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Skipped, "{outcome:?}");
    assert_eq!(
        outcome.skip_reason,
        Some(pushdeploy::outcome::SkipReason::NotActive)
    );
    assert!(
        outcome.reason.as_deref().unwrap().contains("MISSING"),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_is_one_sentence_in_the_reason_that_says_what_to_grant() {
    const ROLE: &str = "arn:aws:sts::123456789012:assumed-role/pushdeploy-deploy/pushdeploy-deploy";
    let bed = TestBed::start().await;
    // IAM's refusal, as ECS words it, when the role lacks ecs:UpdateService on the service.
    let denial = format!(
        r#"{{"__type":"AccessDeniedException","message":"User: {ROLE} is not authorized to perform: ecs:UpdateService on resource: {} because no identity-based policy allows the ecs:UpdateService action"}}"#,
        service_arn("web")
    );
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(400, Some(denial))
        .repeatedly()
        .build();
    let (deployer, _) = web_deployer(&bed, &update).await;

    let report = deployer
        .handle(bed.pushed(push()).await, &Invocation::default())
        .await
        .expect("a denial is final: no Lambda retry");
    let outcome = &report.outcomes[0];
    assert_eq!(
        (outcome.outcome, outcome.retryable),
        (OutcomeKind::Failed, false),
        "{outcome:?}"
    );
    let reason = outcome.reason.as_deref().unwrap();
    assert_eq!(
        reason,
        format!(
            "access denied to ecs:UpdateService on {}: grant ecs:UpdateService to {ROLE} in its IAM policy",
            service_arn("web")
        )
    );
    assert!(!reason.contains("DispatchFailure(") && reason.chars().count() < 250);
    let record = web_record(&deployer).await;
    assert_eq!(
        record.reason.as_deref(),
        Some(reason),
        "the ledger says it too"
    );
}
