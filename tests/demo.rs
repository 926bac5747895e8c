//! `make demo`: one push-to-deploy, end to end, on a local AWS emulator (moto with the
//! deployment-aware ECS world of `tests/support/ecs_world.py`).
//!
//! It starts moto and builds the demo world (an ECR repository with an image tagged `latest`, a
//! cluster, a two-container task definition that names the app by that tag beside a log-router
//! sidecar, a service tagged to follow the repository with ECS's circuit breaker on, and an SNS
//! topic with a queue subscribed). Then `docker push` of a new `latest` (ECR moves the tag), and
//! the real binaries through a Lambda Runtime API stand-in: the `deploy` binary in dry run with
//! ECR's push event (the diff, nothing changed), the same push for real, then the new tasks fail
//! to start and ECS reports the deployment FAILED: the events the world emits go to the
//! `rollback` binary, which puts the service back on exactly the digest it ran before, pinned
//! (not on `latest`, which now names the failed image). It prints the log lines, the metric (EMF)
//! lines and the notifications read back at each step. It exits non-zero if anything did not
//! happen as it should, so `cargo test` keeps it honest.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::runtime_api::{FunctionProcess, RuntimeApi};
use support::world::DEMO_REPOSITORY;
use support::{TestBed, REGISTRY};

struct Row {
    revision: String,
    app: String,
    sidecar: String,
    /// The digest ECS resolved for the app when it deployed the revision.
    ran: String,
}

async fn row(bed: &TestBed, arn: &str) -> Row {
    Row {
        revision: arn.rsplit('/').next().unwrap_or(arn).to_string(),
        app: bed.image(arn, "app").await,
        sidecar: bed.image(arn, "log-router").await,
        ran: ran(bed, arn).await,
    }
}

/// The app digest of the newest deployment of `revision` that ECS shows.
async fn ran(bed: &TestBed, revision: &str) -> String {
    let view = bed.world().service("demo", "web").await;
    let deployment = view["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["taskDefinition"] == revision);
    let Some(revision_arn) = deployment.and_then(|d| d["serviceRevisionArn"].as_str()) else {
        return "?".into();
    };
    view["serviceRevisions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["serviceRevisionArn"] == revision_arn)
        .and_then(|r| r["containerImages"].as_array())
        .into_iter()
        .flatten()
        .find(|c| c["containerName"] == "app")
        .and_then(|c| c["imageDigest"].as_str())
        .unwrap_or("?")
        .to_string()
}

#[tokio::main]
async fn main() {
    println!(
        "\n== pushdeploy demo: an ECR push becomes an ECS deployment, on a local AWS (moto)\n"
    );
    let bed = TestBed::start().await;
    println!("local AWS (moto) listening on {}", bed.moto.url());
    let world = bed.demo_world().await;
    bed.demo_circuit_breaker().await;
    let old = world.revision.clone();
    let (topic, queue_url) = bed.notify_topic().await;
    println!(
        "ECR repository {DEMO_REPOSITORY}: first image {} tagged latest",
        world.first_digest
    );
    println!("ECS service demo/web runs {old} (app: {DEMO_REPOSITORY}:latest), tagged pushdeploy:repository={DEMO_REPOSITORY}, circuit breaker on");
    println!("SNS topic {topic}, with an SQS queue subscribed to read the notifications back\n");
    let mut env = bed.function_env();
    env.push(("PUSHDEPLOY_NOTIFY_TOPIC_ARN".into(), topic));

    // `docker push pushdeploy-demo:latest`: ECR moves the tag to the new image and sends its
    // event (the shape of events/ecr-push.json, with the digest ECR gave the image).
    let event = bed.demo_push(1).await;
    let pushed = event["detail"]["image-digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "docker push ... -> ECR moves latest, EventBridge delivers the push event: {}:{} = {}\n",
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
    assert_eq!(after.app, format!("{REGISTRY}/{DEMO_REPOSITORY}@{pushed}"));
    assert_eq!(after.sidecar, before.sidecar);
    let started = show_notifications(&bed, &queue_url, 1).await;
    assert_eq!(
        started[0]["MessageAttributes"]["outcome"]["Value"],
        "started"
    );

    // The new revision's tasks fail to start: ECS's circuit breaker reports the deployment
    // FAILED. Its events, as ECS sends them, go to the rollback function.
    bed.world().fail_tasks("demo", "web", 3).await;
    let events = bed.world().take_events().await;
    println!(
        "-- 3. the new tasks fail to start; ECS sends {} events\n",
        events.len()
    );
    let mut last = Value::Null;
    for event in events {
        println!(
            "ECS: {} {} {}\n",
            event["detail"]["eventName"].as_str().unwrap_or_default(),
            event["detail"]["deploymentId"].as_str().unwrap_or_default(),
            event["detail"]["reason"].as_str().unwrap_or_default()
        );
        last = invoke(
            &bed,
            env!("CARGO_BIN_EXE_rollback"),
            "rollback",
            &env,
            event,
        )
        .await;
    }
    assert_eq!(
        last["outcomes"][0]["outcome"], "rolled_back",
        "the demo failure was not rolled back: {last}"
    );
    let back = bed.running("demo", "web").await;
    let (_, tags) = bed.describe(&back).await;
    let pins = tags
        .iter()
        .find(|t| t.key() == Some("pushdeploy:pins"))
        .and_then(|t| t.value());
    assert_eq!(
        pins,
        Some(old.as_str()),
        "the service runs a copy of the revision that ran before"
    );
    let rolled = show_notifications(&bed, &queue_url, 1).await;
    assert_eq!(
        rolled[0]["MessageAttributes"]["outcome"]["Value"],
        "rolled_back"
    );
    let rolled_back = row(&bed, &back).await;
    assert_eq!(
        rolled_back.app,
        format!("{REGISTRY}/{DEMO_REPOSITORY}@{}", before.ran),
        "back on exactly the digest that ran before, pinned"
    );
    assert_eq!(rolled_back.ran, before.ran);
    assert_ne!(rolled_back.ran, pushed);

    let rows = [
        ("before", &before),
        ("after push", &after),
        ("after rollback", &rolled_back),
    ];
    let w = rows.iter().map(|(_, r)| r.app.len()).max().unwrap_or(0);
    println!(
        "service demo/web        {:<20}  {:<w$}  digest ECS ran",
        "revision", "image of container app"
    );
    for (label, r) in rows {
        println!("  {label:<21} {:<20}  {:<w$}  {}", r.revision, r.app, r.ran);
    }
    println!("  sidecar log-router runs {} throughout", after.sidecar);
    println!(
        "\nThe push moved the app container to the pushed image, pinned by digest (the sidecar did"
    );
    println!(
        "not move); when that deployment failed, the service went back to exactly the digest it ran"
    );
    println!(
        "before, pinned in a copy of the old revision ({}): `latest` now names the failed image,",
        rolled_back.revision
    );
    println!(
        "so going back to {DEMO_REPOSITORY}:latest would have run it again. The failed digest is"
    );
    println!("quarantined for this service.\n");
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
