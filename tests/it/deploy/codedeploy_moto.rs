//! CODE_DEPLOY services against moto with the test world in front, which refuses UpdateService's
//! task-definition change on them (as ECS does, unlike moto) and moves CodeDeploy deployments.

use crate::support::{digest, push_event, TestBed, ACCOUNT, REGISTRY};
use pushdeploy::deploy::{Deployer, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;

/// prod/web under CODE_DEPLOY behind a load balancer (container `app`, port 80), following
/// `web`, with `tags` more; its first revision.
async fn code_deploy_service(bed: &TestBed, tags: &[(&str, &str)]) -> String {
    bed.cluster("prod").await;
    let first = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    let mut all = vec![("pushdeploy:repository", "web")];
    all.extend_from_slice(tags);
    bed.code_deploy_service("prod", "web", &first, &all, ("app", 80))
        .await;
    first
}

/// CodeDeploy application `application` with group `group`, deploying `services` (cluster,
/// service).
async fn deployment_group(
    bed: &TestBed,
    application: &str,
    group: &str,
    services: &[(&str, &str)],
) {
    let codedeploy = aws_sdk_codedeploy::Client::new(&bed.sdk);
    let _ = codedeploy
        .create_application()
        .application_name(application)
        .compute_platform(aws_sdk_codedeploy::types::ComputePlatform::Ecs)
        .send()
        .await;
    let mut request = codedeploy
        .create_deployment_group()
        .application_name(application)
        .deployment_group_name(group)
        .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/codedeploy-ecs"))
        .deployment_config_name("CodeDeployDefault.ECSAllAtOnce");
    for (cluster, service) in services {
        request = request.ecs_services(
            aws_sdk_codedeploy::types::EcsService::builder()
                .cluster_name(*cluster)
                .service_name(*service)
                .build(),
        );
    }
    request.send().await.expect("create the deployment group");
}

async fn push(bed: &TestBed, deployer: &Deployer, d: char) -> Report {
    bed.ecr_has("web", "latest", &digest(d)).await;
    let event = push_event("ev-1", "web", "latest", &digest(d), "2026-12-06T03:00:00Z");
    deployer
        .handle(event, &Invocation::default())
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_that_lists_the_service_deploys_the_revision_to_its_load_balancers_container() {
    let bed = TestBed::start().await;
    let first = code_deploy_service(&bed, &[]).await;
    deployment_group(&bed, "other", "other-dg", &[("prod", "api")]).await;
    deployment_group(&bed, "web", "web-dg", &[("prod", "web")]).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let report = push(&bed, &deployer, 'b').await;

    let outcome = &report.outcomes[0];
    assert_eq!(outcome.outcome, OutcomeKind::Deployed, "{outcome:?}");
    let id = outcome
        .deployment_id
        .clone()
        .expect("the CodeDeploy deployment");
    let codedeploy = aws_sdk_codedeploy::Client::new(&bed.sdk);
    let info = codedeploy
        .get_deployment()
        .deployment_id(&id)
        .send()
        .await
        .expect("CodeDeploy knows it")
        .deployment_info
        .expect("its description");
    assert_eq!(
        (info.application_name(), info.deployment_group_name()),
        (Some("web"), Some("web-dg"))
    );
    let content = info
        .revision()
        .and_then(|r| r.app_spec_content())
        .and_then(|a| a.content())
        .expect("AppSpec content");
    let spec: serde_json::Value = serde_json::from_str(content).expect("JSON AppSpec");
    let props = &spec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(
        props["TaskDefinition"].as_str(),
        outcome.task_definition.as_deref()
    );
    assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "app");
    assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 80);
    // CodeDeploy (all at once, no wait) moved the service: ECS itself refuses the change.
    let described = bed
        .ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .expect("describe the service");
    assert_eq!(
        described.services()[0].task_definition(),
        outcome.task_definition.as_deref()
    );
    assert_ne!(outcome.task_definition.as_deref(), Some(first.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_group_that_lists_the_service_the_push_fails_with_how_to_name_one() {
    let bed = TestBed::start().await;
    code_deploy_service(&bed, &[]).await;
    deployment_group(&bed, "other", "other-dg", &[("prod", "api")]).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let outcome = push(&bed, &deployer, 'b').await.outcomes.remove(0);

    assert_eq!(outcome.outcome, OutcomeKind::Failed, "{outcome:?}");
    assert!(!outcome.retryable, "{outcome:?}");
    let reason = outcome.reason.unwrap_or_default();
    assert!(
        reason.contains("no CodeDeploy deployment group lists service web")
            && reason.contains("pushdeploy:codedeploy-group"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_that_name_a_group_which_does_not_list_the_service_are_not_believed() {
    let bed = TestBed::start().await;
    code_deploy_service(
        &bed,
        &[
            ("pushdeploy:codedeploy-application", "other"),
            ("pushdeploy:codedeploy-group", "other-dg"),
        ],
    )
    .await;
    deployment_group(&bed, "other", "other-dg", &[("prod", "api")]).await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let outcome = push(&bed, &deployer, 'b').await.outcomes.remove(0);

    assert_eq!(outcome.outcome, OutcomeKind::Failed, "{outcome:?}");
    let reason = outcome.reason.unwrap_or_default();
    assert!(
        reason.contains("other/other-dg") && reason.contains("does not list"),
        "{reason}"
    );
}
