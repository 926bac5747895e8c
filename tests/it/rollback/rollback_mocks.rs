//! Rollback behaviour that needs ECS answers moto cannot give: a service's
//! `deploymentConfiguration` (moto drops it, so ECS's own rollback cannot be shown there), the
//! deployment id UpdateService returns (so events match by id, as in AWS), and a 5xx on the
//! rollback's UpdateService. ECS is `aws-smithy-mocks`; the ledger is DynamoDB on moto.
//! After the failure, ECS lists the failed deployment with rollout state FAILED, as it does when
//! it sends FAILED: the rollback function confirms the event with that list before acting.

use crate::support;

use crate::support::mocks::*;
use crate::support::{digest, push_event, TestBed};
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{Deployment, DeploymentConfiguration, DeploymentRolloutState, Service};
use aws_smithy_mocks::{mock, Rule};
use pushdeploy::deploy::{Deployer, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;
use pushdeploy::rollback::RollbackHandler;
use serde_json::{json, Value};

fn failed(deployment_id: &str) -> Value {
    json!({
        "version": "0", "id": "ecs-event-1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-26T12:05:00Z", "region": "us-east-1",
        "resources": [service_arn("web")],
        "detail": {"eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": deployment_id,
                   "updatedAt": "2026-11-26T12:05:00Z", "reason": "ECS deployment circuit breaker: task failed to start."}
    })
}

/// The deployment the push started (the id the UpdateService mock returns).
const PUSHED: &str = "ecs-svc/1111111111111111111";

/// A deployment ECS lists: id, revision, status, rollout state.
type Listed = (
    &'static str,
    &'static str,
    &'static str,
    DeploymentRolloutState,
);

/// Service prod/web after ECS failed the push's deployment: it runs `running`, with `config`,
/// and lists `deployments` (id, revision, status, rollout state), PRIMARY first.
fn described_after_failure(
    config: DeploymentConfiguration,
    running: &'static str,
    deployments: &'static [Listed],
) -> Rule {
    mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(move |input| {
        let services = input.services().iter().map(|name| {
            let listed = deployments.iter().map(|(id, revision, status, state)| {
                Deployment::builder()
                    .id(*id)
                    .task_definition(*revision)
                    .status(*status)
                    .rollout_state(state.clone())
                    .desired_count(2)
                    .failed_tasks(if *state == DeploymentRolloutState::Failed {
                        3
                    } else {
                        0
                    })
                    .build()
            });
            Service::builder()
                .service_arn(service_arn(name))
                .service_name(name)
                .cluster_arn(CLUSTER_ARN)
                .status("ACTIVE")
                .task_definition(running)
                .deployment_configuration(config.clone())
                .set_deployments(Some(listed.collect()))
                .build()
        });
        DescribeServicesOutput::builder()
            .set_services(Some(services.collect()))
            .build()
    })
}

/// V1 as DescribeTaskDefinition returns it, its app pinned by digest: a rollback target that
/// names no image by tag, so the rollback lands on it as it is (no pinned copy to register).
fn pinned_v1() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput::builder()
            .task_definition(
                aws_sdk_ecs::types::TaskDefinition::builder()
                    .task_definition_arn(V1)
                    .family("web")
                    .container_definitions(
                        aws_sdk_ecs::types::ContainerDefinition::builder()
                            .name("app")
                            .image(format!("{}/web@{}", support::REGISTRY, digest('a')))
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn push(id: &str, time: &str) -> Value {
    push_event(id, "web", "latest", &digest('b'), time)
}

/// Push-1 of `web:latest`, deployed as V2 by a deployer whose ECS describes the service as
/// `before` and answers UpdateService with a new PRIMARY deployment; the deployer, the
/// UpdateService rule (to count its calls) and the deploy's report.
async fn pushed_v2(bed: &TestBed, before: Rule) -> (Deployer, Rule, Report) {
    let (discover, definition, register) =
        (discovery(&["web"]), described_definition(), registered(V2));
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .then_compute_output(|input| updated_output(input.task_definition().unwrap()));
    let deployer = Deployer::with_aws(
        aws(
            bed,
            &[&discover],
            &[&before, &definition, &register, &update],
        ),
        bed.config(),
    );
    let report = deployer
        .handle(
            bed.pushed(push("push-1", "2026-11-26T12:00:00Z")).await,
            &Invocation::default(),
        )
        .await
        .unwrap();
    (deployer, update, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ecs_native_rollback_pushdeploy_records_and_quarantines_but_never_updates() {
    let bed = TestBed::start().await;
    // Before the push the service runs V1; after it, V2 (the failed revision).
    let (deployer, update, report) = pushed_v2(
        &bed,
        described_services_with(Some(support::circuit_breaker(true)), V1),
    )
    .await;
    let deployed = &report.outcomes[0];
    assert_eq!(deployed.outcome, OutcomeKind::Deployed);
    assert_eq!(
        deployed.warning, None,
        "a circuit breaker is on: no warning"
    );
    assert_eq!(
        deployed.deployment_id.as_deref(),
        Some("ecs-svc/1111111111111111111")
    );

    // ECS has started its rollback: a new PRIMARY deployment on V1, the failed one ACTIVE.
    let after = described_after_failure(
        support::circuit_breaker(true),
        V1,
        &[
            (
                "ecs-svc/2222222222222222222",
                V1,
                "PRIMARY",
                DeploymentRolloutState::InProgress,
            ),
            (PUSHED, V2, "ACTIVE", DeploymentRolloutState::Failed),
        ],
    );
    let rollback = RollbackHandler::with_aws(aws(&bed, &[], &[&after, &update]), bed.config());
    let report = rollback
        .handle(failed(PUSHED), &Invocation::default())
        .await
        .unwrap();
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Recorded, "{outcome:?}");
    assert!(
        outcome.reason.as_deref().unwrap().contains(
            "ECS rolls the service back by itself (the deployment circuit breaker with rollback)"
        ),
        "{outcome:?}"
    );
    assert_eq!(
        update.num_calls(),
        1,
        "only the deploy's UpdateService; none from the rollback function"
    );
    assert_eq!(report.aws_calls.get("ECS.UpdateService"), None);

    // The digest is quarantined all the same.
    let again = deployer
        .handle(
            bed.pushed(push("push-1-again", "2026-11-26T12:10:00Z"))
                .await,
            &Invocation::default(),
        )
        .await
        .unwrap();
    assert!(
        again.outcomes[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("quarantined"),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_circuit_breaker_is_warned_about_and_a_5xx_rollback_is_retried() {
    let bed = TestBed::start().await;
    let (_, _, report) = pushed_v2(&bed, described_services_with(None, V1)).await;
    assert!(
        report.outcomes[0]
            .warning
            .as_deref()
            .unwrap()
            .contains("no deployment circuit breaker"),
        "{report:?}"
    );

    // A breaker without rollback reports FAILED and leaves the rollback to pushdeploy; its
    // UpdateService answers 500 to all three SDK attempts, then works.
    let after = described_after_failure(
        support::circuit_breaker(false),
        V2,
        &[(PUSHED, V2, "PRIMARY", DeploymentRolloutState::Failed)],
    );
    let rollback_update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(500, Some(wire_error("ServerException")))
        .times(3)
        .output(|| updated_output(V1))
        .build();
    let target = pinned_v1();
    let rollback = RollbackHandler::with_aws(
        aws(&bed, &[], &[&after, &target, &rollback_update]),
        bed.config(),
    );
    let first = rollback
        .handle(failed(PUSHED), &Invocation::default())
        .await
        .expect_err("a 5xx makes Lambda retry");
    assert!(first.report.outcomes[0].retryable, "{:?}", first.report);
    let second = rollback
        .handle(failed(PUSHED), &Invocation::default())
        .await
        .unwrap();
    let outcome = &second.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::RolledBack, "{outcome:?}");
    assert_eq!(outcome.task_definition.as_deref(), Some(V1));
    assert_eq!(rollback_update.num_calls(), 4);
}
