//! `make demo`: one push-to-deploy, end to end, on a local AWS emulator (moto).
//!
//! It starts moto and builds the demo world (an ECR repository with an image, a cluster, a
//! two-container task definition: the app and a log-router sidecar, a service tagged to follow
//! the repository, and an SNS topic with a queue subscribed). Then it runs the real binaries
//! through a Lambda Runtime API stand-in: the `deploy` binary in dry run with
//! `events/ecr-push.json` (the diff, nothing changed), the same push for real, ECS reporting that
//! deployment FAILED (`events/ecs-deployment-failed.json`) to the `rollback` binary, which puts
//! the service back. It prints the log lines, the metric (EMF) lines and the notifications read
//! back at each step. It exits non-zero if anything did not happen as it should, so `cargo test`
//! keeps it honest.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::runtime_api::{FunctionProcess, RuntimeApi};
use support::world::DEMO_REPOSITORY;
use support::{sample_event, TestBed, REGISTRY};

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
    let world = bed.demo_world().await;
    let old = world.revision.clone();
    let (topic, queue_url) = bed.notify_topic().await;
    println!(
        "ECR repository {DEMO_REPOSITORY}: first image {} tagged latest",
        world.first_digest
    );
    println!("ECS service demo/web runs {old}, tagged pushdeploy:repository={DEMO_REPOSITORY}");
    println!("SNS topic {topic}, with an SQS queue subscribed to read the notifications back\n");
    let mut env = bed.function_env();
    env.push(("PUSHDEPLOY_NOTIFY_TOPIC_ARN".into(), topic));

    let event = sample_event("ecr-push.json");
    println!(
        "docker push ... -> EventBridge delivers events/ecr-push.json: {}:{} = {}\n",
        event["detail"]["repository-name"]
            .as_str()
            .unwrap_or_default(),
        event["detail"]["image-tag"].as_str().unwrap_or_default(),
        event["detail"]["image-digest"].as_str().unwrap_or_default()
    );

    // First as a dry run: what would happen, with nothing changed.
    let mut dry = env.clone();
    dry.push(("PUSHDEPLOY_DRY_RUN".into(), "true".into()));
    println!("-- 1. dry run (PUSHDEPLOY_DRY_RUN=true)\n");
    let response = invoke(
        &bed,
        env!("CARGO_BIN_EXE_deploy"),
        "deploy",
        &dry,
        event.clone(),
    )
    .await;
    let outcome = &response["outcomes"][0];
    assert_eq!(outcome["outcome"], "dry_run", "{response}");
    println!("the dry run's diff of the revision it would register:");
    for line in outcome["diff"].as_array().into_iter().flatten() {
        println!("    {}", line.as_str().unwrap_or_default());
    }
    assert_eq!(
        bed.running("demo", "web").await,
        old,
        "a dry run changes nothing"
    );
    assert_eq!(bed.revisions(DEMO_REPOSITORY).await.len(), 1);
    show_notifications(&bed, &queue_url, 0).await;

    println!("-- 2. the same push, for real\n");
    let response = invoke(
        &bed,
        env!("CARGO_BIN_EXE_deploy"),
        "deploy",
        &env,
        event.clone(),
    )
    .await;
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
            "{REGISTRY}/{DEMO_REPOSITORY}@{}",
            event["detail"]["image-digest"].as_str().unwrap()
        )
    );
    assert_eq!(after.sidecar, before.sidecar);
    let started = show_notifications(&bed, &queue_url, 1).await;
    assert_eq!(
        started[0]["MessageAttributes"]["outcome"]["Value"],
        "started"
    );

    // The new revision fails to start: ECS's circuit breaker reports the deployment FAILED.
    let failure = sample_event("ecs-deployment-failed.json");
    println!(
        "-- 3. ECS reports the deployment FAILED (events/ecs-deployment-failed.json): {}\n",
        failure["detail"]["reason"].as_str().unwrap_or_default()
    );
    let response = invoke(
        &bed,
        env!("CARGO_BIN_EXE_rollback"),
        "rollback",
        &env,
        failure,
    )
    .await;
    assert_eq!(
        response["outcomes"][0]["outcome"], "rolled_back",
        "the demo failure was not rolled back: {response}"
    );
    let back = bed.running("demo", "web").await;
    assert_eq!(
        back, old,
        "the service is back on the revision that ran before"
    );
    let rolled = show_notifications(&bed, &queue_url, 1).await;
    assert_eq!(
        rolled[0]["MessageAttributes"]["outcome"]["Value"],
        "rolled_back"
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
/// lines, its metric lines and its answer.
async fn invoke(
    bed: &TestBed,
    binary: &str,
    name: &str,
    env: &[(String, String)],
    event: Value,
) -> Value {
    let _ = bed;
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(std::path::Path::new(binary), &api, env);
    let response = api.invoke(event, Duration::from_secs(60)).await.response();
    let lines = function.log_lines();
    function.stop().await;
    let (metrics, logs): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.contains("\"_aws\""));
    println!("{name} function's log (CloudWatch would show these lines):");
    for line in logs {
        println!("  {line}");
    }
    if !metrics.is_empty() {
        println!("\n{name} function's metric lines (Embedded Metric Format):");
        for line in metrics {
            println!("  {line}");
        }
    }
    println!(
        "\n{name} function's response:\n{}\n",
        serde_json::to_string_pretty(&response).unwrap_or_default()
    );
    response
}

/// Prints (and returns) the notifications that reached the subscribed queue.
async fn show_notifications(bed: &TestBed, queue_url: &str, expected: usize) -> Vec<Value> {
    let got = bed.notifications(queue_url, expected).await;
    assert_eq!(got.len(), expected, "notifications: {got:#?}");
    if got.is_empty() {
        println!("SNS notifications read back: none\n");
    }
    for n in &got {
        let attributes: Vec<String> = n["MessageAttributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v["Value"].as_str().unwrap_or_default()))
            .collect();
        println!("SNS notification read back from the subscribed queue:");
        println!("  Subject: {}", n["Subject"].as_str().unwrap_or_default());
        println!("  Attributes: {}", attributes.join(", "));
        for line in n["Message"].as_str().unwrap_or_default().lines() {
            println!("  | {line}");
        }
        println!();
    }
    got
}
