//! `make invoke FUNCTION=deploy|rollback EVENT=events/<file>.json [DRY_RUN=1]`: one event through
//! the real function binary, exactly as Lambda runs it (the Runtime API stand-in), against a
//! fresh local AWS (moto) holding the demo world that the sample events name. No Docker.
//!
//! A rollback event needs a deployment to be about, so for FUNCTION=rollback a push of the demo
//! repository is deployed first, and the deployment-aware ECS world then does what the sample
//! describes (tasks start, or fail until the circuit breaker reports FAILED; for
//! `ecs-deployment-failed-rollback.json`, the rollback's tasks fail too): the function gets the
//! event the world emits, of the sample's kind, with the deployment id ECS really gave, not the
//! sample's fixed one. `cargo test` runs this with its defaults (deploy, `events/ecr-push.json`),
//! so the local path cannot rot.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use support::runtime_api::{Answer, FunctionProcess, RuntimeApi};
use support::TestBed;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

async fn run(binary: &str, env: &[(String, String)], event: Value) -> Answer {
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(Path::new(binary), &api, env);
    let answer = api.invoke(event, Duration::from_secs(60)).await;
    for line in function.log_lines() {
        println!("  {line}");
    }
    function.stop().await;
    answer
}

/// The event of the sample's kind that ECS (the world) sends for a real deployment of the demo
/// push; `None` (having said why) when the demo push could not be deployed.
async fn world_event(
    bed: &TestBed,
    env: &[(String, String)],
    sample: &Value,
    path: &str,
) -> Option<Value> {
    bed.demo_circuit_breaker().await;
    println!("\nfirst, the deploy function deploys a push of pushdeploy-demo:latest, so that there is a deployment to follow:");
    let push = bed.demo_push(1).await;
    if let Answer::Error { error_type, body } = run(env!("CARGO_BIN_EXE_deploy"), env, push).await {
        eprintln!("the demo push failed: {error_type}: {body}");
        return None;
    }
    let world = bed.world();
    let wanted = sample["detail"]["eventName"].as_str().unwrap_or_default();
    match wanted {
        "SERVICE_DEPLOYMENT_COMPLETED" => {
            world.start_tasks("demo", "web", 1).await;
        }
        "SERVICE_DEPLOYMENT_FAILED" => {
            world.fail_tasks("demo", "web", 3).await;
        }
        _ => {}
    }
    if path.contains("failed-rollback") {
        println!("\nthen the deployment fails and the rollback function rolls it back:");
        let failed = take(&world, wanted).await?;
        run(env!("CARGO_BIN_EXE_rollback"), env, failed).await;
        world.fail_tasks("demo", "web", 3).await;
    }
    let event = take(&world, wanted).await;
    if let Some(event) = &event {
        println!(
            "\nECS sent {wanted} for deployment {} (the sample's id is {}):",
            event["detail"]["deploymentId"].as_str().unwrap_or_default(),
            sample["detail"]["deploymentId"]
                .as_str()
                .unwrap_or_default()
        );
    }
    event
}

/// The newest event named `name` that the world emitted since the last look.
async fn take(world: &support::ecs_world::World, name: &str) -> Option<Value> {
    let event = world.take_event(name).await;
    if event.is_none() {
        eprintln!("ECS sent no {name} event for the demo deployment");
    }
    event
}

#[tokio::main]
async fn main() -> ExitCode {
    let function = setting("FUNCTION", "deploy");
    let event_path = setting("EVENT", "events/ecr-push.json");
    let dry_run = !setting("DRY_RUN", "").is_empty();
    let binary = match function.as_str() {
        "deploy" => env!("CARGO_BIN_EXE_deploy"),
        "rollback" => env!("CARGO_BIN_EXE_rollback"),
        other => {
            eprintln!("FUNCTION={other:?}: it is deploy or rollback");
            return ExitCode::from(2);
        }
    };
    let event: Value = match std::fs::read(&event_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(event) => event,
        Err(e) => {
            eprintln!("EVENT={event_path}: {e}");
            return ExitCode::from(2);
        }
    };

    let bed = TestBed::start().await;
    let world = bed.demo_world().await;
    println!(
        "local AWS (moto) on {}: service demo/web runs {}, follows pushdeploy-demo:latest",
        bed.moto.url(),
        world.revision
    );
    let mut env = bed.function_env();
    let event = if function == "rollback" {
        match world_event(&bed, &env, &event, &event_path).await {
            Some(event) => event,
            None => return ExitCode::FAILURE,
        }
    } else {
        // The push the event reports, made first: the function confirms it with ECR.
        bed.pushed(event).await
    };
    if dry_run {
        env.push(("PUSHDEPLOY_DRY_RUN".into(), "true".into()));
    }
    println!(
        "\n{function}{} with {event_path}; the function's log:",
        if dry_run { " (dry run)" } else { "" }
    );
    let answer = run(binary, &env, event).await;
    match answer {
        Answer::Response(response) => {
            println!(
                "\nresponse:\n{}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Answer::Error { error_type, body } => {
            println!("\nerror ({error_type}), Lambda would retry:\n{body}");
            ExitCode::FAILURE
        }
    }
}
