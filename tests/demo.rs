//! `make demo`: one push-to-deploy, end to end, on a local AWS emulator (moto).
//!
//! It starts moto, creates an ECR repository with an image, a cluster, a two-container task
//! definition (the app and a log-router sidecar) and a service tagged to follow the repository,
//! then runs the real `deploy` binary through a Lambda Runtime API stand-in with
//! `events/ecr-push.json`; then ECS reports that deployment FAILED
//! (`events/ecs-deployment-failed.json`) and the real `rollback` binary puts the service back.
//! It prints what changed at each step. It exits non-zero if the deploy did not
//! happen as it should, so `cargo test` keeps it honest.

mod support;

use std::time::Duration;
use support::runtime_api::{FunctionProcess, RuntimeApi};
use support::{sample_event, TestBed, REGISTRY};

const REPOSITORY: &str = "pushdeploy-demo";
const SIDECAR: &str = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable";

struct Row {
    revision: String,
    app: String,
    sidecar: String,
}

async fn row(bed: &TestBed, arn: &str) -> Row {
    Row {
        revision: arn.rsplit('/').next().unwrap_or(arn).to_string(),
        app: bed.image(arn, "app").await,
        sidecar: bed.image(arn, "log-router").await,
    }
}

#[tokio::main]
async fn main() {
    println!(
        "\n== pushdeploy demo: an ECR push becomes an ECS deployment, on a local AWS (moto)\n"
    );
    let bed = TestBed::start().await;
    println!("local AWS (moto) listening on {}", bed.moto.url());

    let ecr = aws_sdk_ecr::Client::new(&bed.sdk);
    ecr.create_repository()
        .repository_name(REPOSITORY)
        .send()
        .await
        .expect("create ECR repository");
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"layers":[]}"#;
    let first = ecr
        .put_image()
        .repository_name(REPOSITORY)
        .image_tag("latest")
        .image_manifest(manifest)
        .send()
        .await
        .expect("put the first image");
    let first_digest = first
        .image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .unwrap_or("?")
        .to_string();
    println!("ECR repository {REPOSITORY}: first image {first_digest} tagged latest");

    bed.cluster("demo").await;
    let app_image = format!("{REGISTRY}/{REPOSITORY}:latest");
    let old = bed
        .task_definition(REPOSITORY, &[("app", &app_image), ("log-router", SIDECAR)])
        .await;
    bed.service(
        "demo",
        "web",
        &old,
        &[("pushdeploy:repository", REPOSITORY)],
    )
    .await;
    println!("ECS service demo/web runs {old}, tagged pushdeploy:repository={REPOSITORY}\n");

    let event = sample_event("ecr-push.json");
    println!(
        "docker push ... -> EventBridge delivers events/ecr-push.json: {}:{} = {}\n",
        event["detail"]["repository-name"]
            .as_str()
            .unwrap_or_default(),
        event["detail"]["image-tag"].as_str().unwrap_or_default(),
        event["detail"]["image-digest"].as_str().unwrap_or_default()
    );

    let response = invoke(&bed, env!("CARGO_BIN_EXE_deploy"), "deploy", event.clone()).await;

    let outcome = &response["outcomes"][0];
    assert_eq!(
        outcome["outcome"], "deployed",
        "the demo push was not deployed: {response}"
    );
    let new = bed.running("demo", "web").await;
    assert_eq!(outcome["task_definition"].as_str(), Some(new.as_str()));
    let (before, after) = (row(&bed, &old).await, row(&bed, &new).await);
    assert_eq!(
        after.app,
        format!(
            "{REGISTRY}/{REPOSITORY}@{}",
            event["detail"]["image-digest"].as_str().unwrap()
        )
    );
    assert_eq!(after.sidecar, before.sidecar);

    // The new revision fails to start: ECS's circuit breaker reports the deployment FAILED.
    let failure = sample_event("ecs-deployment-failed.json");
    println!(
        "\nECS reports the deployment FAILED (events/ecs-deployment-failed.json): {}\n",
        failure["detail"]["reason"].as_str().unwrap_or_default()
    );
    let response = invoke(&bed, env!("CARGO_BIN_EXE_rollback"), "rollback", failure).await;
    assert_eq!(
        response["outcomes"][0]["outcome"], "rolled_back",
        "the demo failure was not rolled back: {response}"
    );
    let back = bed.running("demo", "web").await;
    assert_eq!(
        back, old,
        "the service is back on the revision that ran before"
    );
    let rolled_back = row(&bed, &back).await;

    println!(
        "service demo/web        {:<20}  image of container app",
        "revision"
    );
    for (label, r) in [
        ("before", &before),
        ("after push", &after),
        ("after rollback", &rolled_back),
    ] {
        println!("  {label:<21} {:<20}  {}", r.revision, r.app);
    }
    println!("  sidecar log-router runs {} throughout", after.sidecar);
    println!(
        "\nThe push moved the app container to the pushed image, pinned by digest (the sidecar did"
    );
    println!(
        "not move); when that deployment failed, the service went back to the revision before,"
    );
    println!("and the failed digest is quarantined for this service.\n");
}

/// Runs one function binary through the Runtime API stand-in with `event`, and prints its log
/// lines and its answer.
async fn invoke(
    bed: &TestBed,
    binary: &str,
    name: &str,
    event: serde_json::Value,
) -> serde_json::Value {
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(std::path::Path::new(binary), &api, &bed.function_env());
    let response = api.invoke(event, Duration::from_secs(60)).await.response();
    let logs = function.log_lines();
    function.stop().await;
    println!("{name} function's log (CloudWatch would show these lines):");
    for line in logs {
        println!("  {line}");
    }
    println!(
        "\n{name} function's response:\n{}\n",
        serde_json::to_string_pretty(&response).unwrap_or_default()
    );
    response
}
