//! Task definitions carry environment values, secret ARNs, registry credentials and docker
//! labels. None of them may reach a log line, an outcome or an error message. The real
//! binaries run against moto (which stores and returns all of these fields) and every line
//! they print, and every answer, is searched for the values; so are, with Lambda's JSON log
//! format, the SNS messages, a dry run's diff, the reconcile, the CLI's `history`, `status` and
//! `replay` output, and the ledger's items.

use crate::support;

use crate::support::runtime_api::{FunctionProcess, RuntimeApi};
use crate::support::{sample_event, TestBed, REGISTRY};
use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, RepositoryCredentials, Secret};
use std::path::Path;
use std::time::Duration;

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

    // RUST_LOG=trace is what an operator sets when debugging: pushdeploy logs at that level,
    // but the SDK (which at TRACE prints whole responses, secrets included) stays at INFO.
    // (EMF metric lines carry an `outcome` too; they are not log lines of a decision.)
    let decisions_in = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("\"outcome\"") && !l.contains("\"_aws\""))
            .count()
    };
    let all_lines = || {
        let mut lines = deploy.log_lines();
        lines.extend(rollback.log_lines());
        lines
    };
    // The processes' stderr is read by tasks of their own, which can trail the answers under
    // load: wait (up to 10 s) for the fourth decision line before counting.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while decisions_in(&all_lines()) < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = all_lines();
    let decisions = decisions_in(&lines);
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

/// A loopback proxy in front of moto that refuses ECS's RegisterTaskDefinition for one family
/// with a ClientException whose message quotes the whole request, as a validation error may
/// quote what it refuses; every other request goes through to moto unchanged.
struct EchoingRefusal {
    url: String,
    refused: std::sync::Arc<std::sync::atomic::AtomicU32>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for EchoingRefusal {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl EchoingRefusal {
    async fn start(upstream: std::net::SocketAddr, family: &'static str) -> EchoingRefusal {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = refused.clone();
        let handle = move |req: hyper::Request<hyper::body::Incoming>| {
            let count = count.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await?.to_bytes();
                let target = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if target.ends_with(".RegisterTaskDefinition") && request["family"] == family {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let message = format!(
                        "Invalid request provided: Create TaskDefinition: {}",
                        String::from_utf8_lossy(&body)
                    );
                    return Ok::<_, hyper::Error>(
                        hyper::Response::builder()
                            .status(400)
                            .header("content-type", "application/x-amz-json-1.1")
                            .header("x-amzn-requestid", "echoing-refusal")
                            .body(Full::new(Bytes::from(
                                serde_json::json!({"__type": "ClientException", "message": message})
                                    .to_string(),
                            )))
                            .unwrap(),
                    );
                }
                let (parts, body) =
                    crate::support::fault_proxy::forward_to_moto(upstream, &parts, body).await?;
                Ok(hyper::Response::from_parts(parts, Full::new(body)))
            }
        };
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                        .await;
                });
            }
        });
        EchoingRefusal {
            url,
            refused,
            server,
        }
    }
}

/// Every message in the queue, taken off it. SNS delivers to a subscribed queue within Publish
/// (moto too), so what the functions published is there once their invocations have answered.
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            return bodies;
        }
        for m in out.messages() {
            bodies.push(m.body().unwrap_or_default().to_string());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// `pushdeploy <args>` with `env`: (what it printed on stdout, on stderr).
fn cli(env: &[(String, String)], args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"))
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("run pushdeploy");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of `said` that hold `secret`.
fn holding(said: &str, secret: &str) -> String {
    said.lines()
        .filter(|l| l.contains(secret))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything else pushdeploy writes or sends, with Lambda's JSON log format: SNS messages, a
/// dry run's diff, the reconcile's outcomes and lines, `history`, `status` and `replay` output,
/// and the ledger's items; a failure of pushdeploy's own (two containers run the repository)
/// among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_sns_dry_runs_reconciles_the_cli_or_the_ledger() {
    everything_else(false).await;
}

/// The same, with ECS refusing one service's RegisterTaskDefinition in a message that quotes
/// the whole request (environment values, secret ARNs and all), as a validation error may.
/// The refusal becomes that service's `reason` (outcome, decision log line, ledger, SNS, CLI):
/// `AwsError::from_sdk_withholding` replaces the request's values in it and in the debug line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_anything_through_an_ecs_refusal_that_quotes_the_request() {
    everything_else(true).await;
}

async fn everything_else(refuse: bool) {
    let bed = TestBed::start().await;
    bed.push_image("pushdeploy-demo", "latest", 0).await;
    bed.cluster("demo").await;
    let (topic, notifications) = bed.notify_topic().await;
    let app = format!("{REGISTRY}/pushdeploy-demo:latest");
    let repository = [("pushdeploy:repository", "pushdeploy-demo")];
    // web deploys; preview is in dry run (its diff is printed); twin fails (both its containers
    // run the repository); refused is refused by ECS when `refuse`, else it deploys.
    for (name, extra) in [
        ("web", None),
        ("preview", Some(("pushdeploy:dry-run", "true"))),
        ("twin", None),
        ("refused", None),
    ] {
        let second = if name == "twin" {
            container("b", &app)
        } else {
            container("sidecar", "public.ecr.aws/nginx/nginx:1")
        };
        let arn = bed
            .ecs
            .register_task_definition()
            .family(name)
            .container_definitions(container("app", &app))
            .container_definitions(second)
            .send()
            .await
            .unwrap()
            .task_definition
            .unwrap()
            .task_definition_arn
            .unwrap();
        let tags: Vec<(&str, &str)> = repository.iter().copied().chain(extra).collect();
        bed.service("demo", name, &arn, &tags).await;
    }

    let proxy = EchoingRefusal::start(
        bed.moto.address,
        if refuse { "refused" } else { "no-such-family" },
    )
    .await;
    let mut env = bed.function_env();
    env.retain(|(k, _)| k != "RUST_LOG" && k != "AWS_ENDPOINT_URL");
    env.extend(
        [
            ("AWS_ENDPOINT_URL", proxy.url.as_str()),
            // What Lambda sets from the template's LoggingConfig, at its most verbose.
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("PUSHDEPLOY_NOTIFY_TOPIC_ARN", topic.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let deploy_api = RuntimeApi::start().await;
    let deploy = FunctionProcess::spawn(Path::new(env!("CARGO_BIN_EXE_deploy")), &deploy_api, &env);
    let within = Duration::from_secs(60);
    let push = bed.pushed(sample_event("ecr-push.json")).await;
    let mut answers = vec![deploy_api.invoke(push.clone(), within).await.response()];
    // A newer image behind `latest` whose push event never came: the reconcile deploys it.
    bed.push_image("pushdeploy-demo", "latest", 1).await;
    let reconcile = serde_json::json!({
        "version": "0", "id": "reconcile-1", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-26T13:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"],
        "detail": {}
    });
    answers.push(deploy_api.invoke(reconcile, within).await.response());

    // The paths really ran: each service's outcome of the push says what happened to it.
    let outcome_of = |answer: &serde_json::Value, service: &str| {
        answer["outcomes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["service"] == service)
            .map(|o| o["outcome"].as_str().unwrap_or("-").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let push_said: Vec<String> = ["web", "preview", "twin", "refused"]
        .iter()
        .map(|s| outcome_of(&answers[0], s))
        .collect();
    let refused = if refuse { "failed" } else { "deployed" };
    assert_eq!(
        push_said,
        ["deployed", "dry_run", "failed", refused],
        "{}",
        answers[0]
    );
    assert!(
        answers[0].to_string().contains("\"diff\""),
        "the dry run's diff: {}",
        answers[0]
    );
    assert_eq!(
        proxy.refused.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        refuse,
        "ECS refused a RegisterTaskDefinition, quoting it"
    );
    assert!(
        answers[1]["outcomes"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "the reconcile decided something: {}",
        answers[1]
    );

    // The CLI, with the operator's view of the same stack (and ECS's refusal still in place).
    let mut cli_env = bed.function_env();
    cli_env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    cli_env.push(("AWS_ENDPOINT_URL".into(), proxy.url.clone()));
    let mut said = String::new();
    for args in [
        &["history", "--service", "web", "--json"][..],
        &["history", "--service", "refused", "--json"],
        &["history", "--service", "refused"],
        &["status", "--json"],
    ] {
        let (out, err) = cli(&cli_env, args);
        assert!(
            !out.trim().is_empty(),
            "pushdeploy {args:?} printed nothing: {err}"
        );
        said.push_str(&out);
        said.push_str(&err);
    }
    // A dead letter of the push, listed and replayed (whatever replay decides of it, it says).
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let dead_letters = sqs
        .create_queue()
        .queue_name("deploy-dead-letters")
        .tags("pushdeploy:function", "deploy")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let record = serde_json::json!({
        "version": "1.0", "timestamp": "2026-11-26T12:03:05.000Z",
        "requestContext": {
            "requestId": "8f4a6c1e-0000-4000-8000-000000000001",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction:$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3
        },
        "requestPayload": push,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "pushdeploy.Retryable", "errorMessage": "must be retried"}
    });
    sqs.send_message()
        .queue_url(&dead_letters)
        .message_body(record.to_string())
        .send()
        .await
        .unwrap();
    for args in [
        &["replay", "--queue-url", dead_letters.as_str(), "--list"][..],
        &["replay", "--queue-url", dead_letters.as_str()],
    ] {
        let (out, err) = cli(&cli_env, args);
        assert!(
            !(out.trim().is_empty() && err.trim().is_empty()),
            "pushdeploy {args:?} said nothing"
        );
        said.push_str(&out);
        said.push_str(&err);
    }

    let lines = deploy.log_lines();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "AWS_LAMBDA_LOG_FORMAT=JSON: every line is JSON: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"failed\"") && l.contains("\"twin\"")),
        "the failure is logged: {lines:?}"
    );
    said.push_str(&lines.join("\n"));
    for answer in &answers {
        said.push_str(&answer.to_string());
    }
    let sent = drain(&sqs, &notifications).await;
    assert!(!sent.is_empty(), "SNS told of the deployments");
    said.push_str(&sent.join("\n"));
    let items = bed
        .dynamodb
        .scan()
        .table_name(support::TABLE)
        .send()
        .await
        .unwrap();
    assert!(!items.items().is_empty());
    said.push_str(&format!("{:?}", items.items()));

    let leaks: Vec<String> = SECRETS
        .iter()
        .filter(|secret| said.contains(*secret))
        .map(|secret| format!("{secret} leaked:\n{}", holding(&said, secret)))
        .collect();
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
    deploy.stop().await;
}
