//! Task definitions carry environment values, secret ARNs, registry credentials and docker
//! labels. None of them may reach a log line, an outcome or an error message. The real
//! binaries run against moto (which stores and returns all of these fields) and every line
//! they print, and every answer, is searched for the values.

mod support;

use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, RepositoryCredentials, Secret};
use std::path::Path;
use std::time::Duration;
use support::runtime_api::{FunctionProcess, RuntimeApi};
use support::{sample_event, TestBed, REGISTRY};

const SECRETS: [&str; 5] = [
    "env-value-hunter2",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-login-XyZ",
    "label-value-topsecret",
    "second-env-value-s3cr3t",
];

fn container(name: &str, image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(128)
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_PASSWORD")
                .value(SECRETS[0])
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("API_TOKEN")
                .value(SECRETS[4])
                .build(),
        )
        .secrets(
            Secret::builder()
                .name("DB")
                .value_from(SECRETS[1])
                .build()
                .unwrap(),
        )
        .repository_credentials(
            RepositoryCredentials::builder()
                .credentials_parameter(SECRETS[2])
                .build()
                .unwrap(),
        )
        .docker_labels("token", SECRETS[3])
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_task_definition_reaches_logs_outcomes_or_errors() {
    let bed = TestBed::start().await;
    // A real image behind `latest`, so that ECS resolves the tag when a deployment starts and
    // the rollback can pin the digest web ran (it copies the revision, secrets and all).
    bed.push_image("pushdeploy-demo", "latest", 0).await;
    bed.cluster("demo").await;
    let app = format!("{REGISTRY}/pushdeploy-demo:latest");
    let td = |family: &'static str, containers: Vec<ContainerDefinition>| {
        let ecs = bed.ecs.clone();
        async move {
            ecs.register_task_definition()
                .family(family)
                .set_container_definitions(Some(containers))
                .send()
                .await
                .unwrap()
                .task_definition
                .unwrap()
                .task_definition_arn
                .unwrap()
        }
    };
    // One service deploys; one fails (two containers run the repository): both paths speak.
    let good = td(
        "web",
        vec![
            container("app", &app),
            container("sidecar", "public.ecr.aws/nginx/nginx:1"),
        ],
    )
    .await;
    let ambiguous = td("twin", vec![container("a", &app), container("b", &app)]).await;
    // The circuit breaker on, its rollback off: ECS reports web's failure, pushdeploy rolls back.
    bed.service_with(
        "demo",
        "web",
        &good,
        &[("pushdeploy:repository", "pushdeploy-demo")],
        support::circuit_breaker(false),
    )
    .await;
    bed.service(
        "demo",
        "twin",
        &ambiguous,
        &[("pushdeploy:repository", "pushdeploy-demo")],
    )
    .await;

    let (deploy_api, rollback_api) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let mut env = bed.function_env();
    env.retain(|(k, _)| k != "RUST_LOG");
    env.push(("RUST_LOG".into(), "trace".into()));
    let deploy = FunctionProcess::spawn(Path::new(env!("CARGO_BIN_EXE_deploy")), &deploy_api, &env);
    let rollback = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_rollback")),
        &rollback_api,
        &env,
    );
    let within = Duration::from_secs(60);
    let mut answers = vec![deploy_api
        .invoke(bed.pushed(sample_event("ecr-push.json")).await, within)
        .await
        .response()];
    // web's new tasks fail: ECS reports its deployment IN_PROGRESS, then FAILED.
    let world = bed.world();
    world.fail_tasks("demo", "web", 3).await;
    for event in world.take_events().await {
        answers.push(rollback_api.invoke(event, within).await.response());
    }

    // The paths really ran: a deploy, a failure, a rollback (onto a pinned copy of web's
    // first revision: RegisterTaskDefinition with every secret in it).
    assert_eq!(
        answers[0]["outcomes"].as_array().unwrap().len(),
        2,
        "{}",
        answers[0]
    );
    assert!(
        answers[0].to_string().contains("\"failed\"")
            && answers[0].to_string().contains("\"deployed\"")
    );
    let ecs_said: Vec<&str> = answers[1..]
        .iter()
        .map(|a| a["outcomes"][0]["outcome"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(ecs_said, ["recorded", "rolled_back"], "{answers:#?}");
    assert_eq!(answers[2]["aws_calls"]["ECS.RegisterTaskDefinition"], 1);

    let mut lines = deploy.log_lines();
    lines.extend(rollback.log_lines());
    // RUST_LOG=trace is what an operator sets when debugging: pushdeploy logs at that level,
    // but the SDK (which at TRACE prints whole responses, secrets included) stays at INFO.
    // (EMF metric lines carry an `outcome` too; they are not log lines of a decision.)
    let decisions = lines
        .iter()
        .filter(|l| l.contains("\"outcome\"") && !l.contains("\"_aws\""))
        .count();
    assert_eq!(
        decisions, 4,
        "one line per decision: deployed, failed, in progress (recorded), rolled back: {lines:?}"
    );
    let mut said = lines.join("\n");
    for answer in &answers {
        said.push_str(&answer.to_string());
    }
    for secret in SECRETS {
        assert!(
            !said.contains(secret),
            "{secret} leaked:\n{}",
            said.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    deploy.stop().await;
    rollback.stop().await;
}
