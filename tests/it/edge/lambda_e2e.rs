//! The compiled `deploy` binary, run exactly as Lambda runs it: through the Runtime API (a
//! stand-in on loopback) with its AWS endpoint taken from AWS_ENDPOINT_URL, against moto.

use crate::support;

use crate::support::runtime_api::{Answer, FunctionProcess, RuntimeApi};
use crate::support::{digest, push_event, sample_event, TestBed, REGISTRY};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const INVOKE_WITHIN: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_deploy"))
}

/// The `reason` of the function's answer; a panic that shows the answer if it has none.
fn reason_of(response: &serde_json::Value) -> &str {
    response["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {response}"))
}

async fn demo_service(bed: &TestBed) -> String {
    bed.cluster("prod").await;
    let td = bed
        .task_definition(
            "demo",
            &[
                ("app", &format!("{REGISTRY}/pushdeploy-demo:latest")),
                (
                    "log-router",
                    "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                ),
            ],
        )
        .await;
    bed.service(
        "prod",
        "demo",
        &td,
        &[("pushdeploy:repository", "pushdeploy-demo")],
    )
    .await;
    td
}

fn calls(response: &Value, operation: &str) -> u64 {
    response["aws_calls"][operation].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_deploys_the_sample_push_and_logs_one_line_per_outcome() {
    let bed = TestBed::start().await;
    let old = demo_service(&bed).await;
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(binary(), &api, &bed.function_env());

    let response = api
        .invoke(
            bed.pushed(sample_event("ecr-push.json")).await,
            INVOKE_WITHIN,
        )
        .await
        .response();

    let event = sample_event("ecr-push.json");
    assert_eq!(response["event_id"], event["id"]);
    let outcome = &response["outcomes"][0];
    assert_eq!(outcome["outcome"], "deployed", "{response}");
    assert_eq!(
        (outcome["cluster"].as_str(), outcome["service"].as_str()),
        (Some("prod"), Some("demo"))
    );
    assert_eq!(outcome["previous_task_definition"], old.as_str());
    let new = outcome["task_definition"].as_str().unwrap();
    assert_eq!(bed.running("prod", "demo").await, new);
    let pushed = event["detail"]["image-digest"].as_str().unwrap();
    assert_eq!(
        bed.image(new, "app").await,
        format!("{REGISTRY}/pushdeploy-demo@{pushed}")
    );
    assert_eq!(
        bed.image(new, "log-router").await,
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
    );

    // One JSON log line for the decision, with the shared field names.
    let lines: Vec<Value> = function
        .log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["outcome"].is_string() && l["service"].is_string())
        .collect();
    assert_eq!(decisions.len(), 1, "{lines:#?}");
    let fields = decisions[0];
    for (field, value) in [
        ("outcome", "deployed"),
        ("cluster", "prod"),
        ("service", "demo"),
        ("repository", "pushdeploy-demo"),
        ("tag", "latest"),
        ("digest", pushed),
        ("task_definition", new),
    ] {
        assert_eq!(fields[field], value, "log field {field} in {fields}");
    }
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_push_delivered_three_times_deploys_once() {
    let bed = TestBed::start().await;
    demo_service(&bed).await;
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(binary(), &api, &bed.function_env());

    let mut responses = Vec::new();
    for _ in 0..3 {
        responses.push(
            api.invoke(
                bed.pushed(sample_event("ecr-push.json")).await,
                INVOKE_WITHIN,
            )
            .await
            .response(),
        );
    }

    let outcomes: Vec<&str> = responses
        .iter()
        .map(|r| r["outcomes"][0]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["deployed", "skipped", "skipped"],
        "{responses:#?}"
    );
    assert_eq!(
        responses
            .iter()
            .map(|r| calls(r, "ECS.RegisterTaskDefinition"))
            .sum::<u64>(),
        1
    );
    assert_eq!(
        responses
            .iter()
            .map(|r| calls(r, "ECS.UpdateService"))
            .sum::<u64>(),
        1
    );
    assert_eq!(
        bed.revisions("demo").await.len(),
        2,
        "exactly one new revision"
    );
    assert_eq!(
        bed.running("prod", "demo").await,
        responses[0]["outcomes"][0]["task_definition"]
            .as_str()
            .unwrap()
    );
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deliveries_to_two_function_instances_deploy_once() {
    let bed = TestBed::start().await;
    demo_service(&bed).await;
    // Two Lambda execution environments, each with its own process and Runtime API.
    let (api_a, api_b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let function_a = FunctionProcess::spawn(binary(), &api_a, &bed.function_env());
    let function_b = FunctionProcess::spawn(binary(), &api_b, &bed.function_env());

    let (a, b) = tokio::join!(
        api_a.invoke(
            bed.pushed(sample_event("ecr-push.json")).await,
            INVOKE_WITHIN
        ),
        api_b.invoke(
            bed.pushed(sample_event("ecr-push.json")).await,
            INVOKE_WITHIN
        )
    );
    let responses = [a.response(), b.response()];

    let mut outcomes: Vec<&str> = responses
        .iter()
        .map(|r| r["outcomes"][0]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["deployed", "skipped"], "{responses:#?}");
    for r in &responses {
        println!(
            "concurrent delivery: {} ({})",
            r["outcomes"][0]["outcome"], r["outcomes"][0]["reason"]
        );
    }
    assert_eq!(
        responses
            .iter()
            .map(|r| calls(r, "ECS.RegisterTaskDefinition"))
            .sum::<u64>(),
        1,
        "{responses:#?}"
    );
    assert_eq!(
        responses
            .iter()
            .map(|r| calls(r, "ECS.UpdateService"))
            .sum::<u64>(),
        1,
        "{responses:#?}"
    );
    assert_eq!(
        bed.revisions("demo").await.len(),
        2,
        "exactly one new revision"
    );
    function_a.stop().await;
    function_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_events_that_are_not_deployable_pushes_are_answered_without_touching_aws() {
    let bed = TestBed::start().await;
    let td = demo_service(&bed).await;
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(binary(), &api, &bed.function_env());

    for (sample, reason) in [
        ("ecr-push-untagged.json", "no image-tag"),
        ("ecr-push-failed.json", "only SUCCESS deploys"),
        ("ecr-delete.json", "only PUSH deploys"),
    ] {
        let response = api
            .invoke(sample_event(sample), INVOKE_WITHIN)
            .await
            .response();
        assert_eq!(response["event_id"], sample_event(sample)["id"], "{sample}");
        assert_eq!(response["outcomes"], serde_json::json!([]), "{sample}");
        assert!(
            reason_of(&response).contains(reason),
            "{sample}: {response}"
        );
        assert_eq!(response["aws_calls"], serde_json::json!({}), "{sample}");
    }
    // A second tag of the same image: the service follows `latest` only.
    let response = api
        .invoke(
            bed.pushed(sample_event("ecr-push-second-tag.json")).await,
            INVOKE_WITHIN,
        )
        .await
        .response();
    assert_eq!(response["outcomes"], serde_json::json!([]));
    assert!(
        reason_of(&response).starts_with("no service follows pushdeploy-demo:v1.4.2"),
        "{response}"
    );
    // A push from another account, or to another region, than the function's (its ARN says
    // 123456789012 / us-east-1) is not deployed.
    let mut foreign = sample_event("ecr-push.json");
    foreign["account"] = serde_json::json!("210987654321");
    let response = api.invoke(foreign, INVOKE_WITHIN).await.response();
    assert!(
        reason_of(&response).contains("account 210987654321, which this function does not trust"),
        "{response}"
    );
    let mut elsewhere = sample_event("ecr-push.json");
    elsewhere["region"] = serde_json::json!("eu-west-1");
    let response = api.invoke(elsewhere, INVOKE_WITHIN).await.response();
    assert!(
        reason_of(&response).contains("region eu-west-1"),
        "{response}"
    );
    assert_eq!(response["aws_calls"], serde_json::json!({}));
    // Garbage gets an answer too, and the process keeps serving.
    let response = api
        .invoke(serde_json::json!([1, 2, 3]), INVOKE_WITHIN)
        .await
        .response();
    assert!(reason_of(&response).starts_with("the payload is not an EventBridge event"));
    let response = api
        .invoke(
            bed.pushed(push_event(
                "ev-after",
                "pushdeploy-demo",
                "latest",
                &digest('e'),
                "2026-11-26T13:00:00Z",
            ))
            .await,
            INVOKE_WITHIN,
        )
        .await
        .response();
    assert_eq!(response["outcomes"][0]["outcome"], "deployed");
    assert_ne!(bed.running("prod", "demo").await, td);
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_setting_stops_the_function_at_start_with_a_sentence() {
    let api = RuntimeApi::start().await;
    let env: Vec<(String, String)> = vec![("AWS_REGION".into(), "us-east-1".into())];
    let mut function = FunctionProcess::spawn(binary(), &api, &env);
    let status = function.exit_status(Duration::from_secs(30)).await;
    assert!(!status.success());
    let logs = function.log_lines().join("\n");
    assert!(logs.contains("PUSHDEPLOY_TABLE is not set"), "{logs}");
    // Lambda hears it too, once, as the init error with the same sentence.
    let reported: serde_json::Value =
        serde_json::from_str(&api.init_error().expect("an /init/error post")).unwrap();
    assert_eq!(reported["errorType"], "pushdeploy.ConfigError");
    assert!(
        reported["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("PUSHDEPLOY_TABLE is not set"),
        "{reported}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_value_is_an_init_error_naming_the_variable() {
    let api = RuntimeApi::start().await;
    let env: Vec<(String, String)> = vec![
        ("AWS_REGION".into(), "us-east-1".into()),
        ("PUSHDEPLOY_TABLE".into(), "t".into()),
        ("PUSHDEPLOY_CONCURRENCY".into(), "eight".into()),
    ];
    let mut function = FunctionProcess::spawn(binary(), &api, &env);
    assert!(!function
        .exit_status(Duration::from_secs(30))
        .await
        .success());
    let reported = api.init_error().expect("an /init/error post");
    assert!(
        reported.contains(
            "PUSHDEPLOY_CONCURRENCY is \\\"eight\\\": it must be a whole number from 1 to 64"
        ),
        "{reported}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_answer_reaches_the_runtime_api_as_a_retryable_error() {
    // The ledger table does not exist on this moto: DynamoDB answers ResourceNotFoundException,
    // which is final, so the function answers with a failed outcome, not an error...
    let bed = TestBed::start().await;
    demo_service(&bed).await;
    let api = RuntimeApi::start().await;
    let mut env = bed.function_env();
    env.retain(|(k, _)| k != "PUSHDEPLOY_TABLE");
    env.push(("PUSHDEPLOY_TABLE".into(), "no-such-table".into()));
    let function = FunctionProcess::spawn(binary(), &api, &env);
    let response = api
        .invoke(
            bed.pushed(sample_event("ecr-push.json")).await,
            INVOKE_WITHIN,
        )
        .await
        .response();
    assert_eq!(response["outcomes"][0]["outcome"], "failed", "{response}");
    assert!(
        response["outcomes"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ledger"),
        "{response}"
    );
    assert_eq!(calls(&response, "ECS.UpdateService"), 0);
    function.stop().await;

    // ...while an unreachable AWS endpoint is retryable: Lambda gets an error to retry.
    let api = RuntimeApi::start().await;
    let mut env = bed.function_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL" && k != "AWS_MAX_ATTEMPTS");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{closed_port}"),
    ));
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let function = FunctionProcess::spawn(binary(), &api, &env);
    match api
        .invoke(sample_event("ecr-push.json"), INVOKE_WITHIN)
        .await
    {
        Answer::Error { error_type, body } => {
            // lambda_runtime always sends the header "unhandled"; the type is in the body.
            assert_eq!(error_type, "unhandled");
            assert_eq!(body["errorType"], "pushdeploy.Retryable");
            assert!(
                body["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("tag:GetResources"),
                "{body}"
            );
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    function.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_binary_follows_the_sample_deployment_events() {
    let bed = TestBed::start().await;
    let world = bed.world();
    // The samples name service demo/web. Its app runs `latest`, a real image in moto's ECR (so
    // that ECS resolves the tag); the circuit breaker is on, its rollback off: ECS reports a
    // failed deployment and leaves the rollback to pushdeploy.
    bed.push_image("pushdeploy-demo", "latest", 0).await;
    bed.cluster("demo").await;
    let td = bed
        .task_definition(
            "demo",
            &[("app", &format!("{REGISTRY}/pushdeploy-demo:latest"))],
        )
        .await;
    bed.service_with(
        "demo",
        "web",
        &td,
        &[("pushdeploy:repository", "pushdeploy-demo")],
        support::circuit_breaker(false),
    )
    .await;
    let (deploy_api, rollback_api) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let deploy = FunctionProcess::spawn(binary(), &deploy_api, &bed.function_env());
    let rollback = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_rollback")),
        &rollback_api,
        &bed.function_env(),
    );
    let deployed = deploy_api
        .invoke(
            bed.pushed(sample_event("ecr-push.json")).await,
            INVOKE_WITHIN,
        )
        .await
        .response();
    let new = deployed["outcomes"][0]["task_definition"]
        .as_str()
        .unwrap()
        .to_string();

    // The sample events are the documented shapes: the binary parses each and answers for
    // demo/web, acting on none. Their deployment ids are made up, never issued by ECS for
    // pushdeploy's UpdateService, so they are recorded, not taken for the deployment in flight.
    for sample in [
        "ecs-deployment-in-progress.json",
        "ecs-deployment-completed.json",
        "ecs-deployment-failed.json",
        "ecs-deployment-failed-rollback.json",
    ] {
        let response = match rollback_api
            .invoke(sample_event(sample), INVOKE_WITHIN)
            .await
        {
            Answer::Response(response) => response,
            other => panic!("{sample}: an answer, not {other:?}"),
        };
        assert_eq!(response["event_id"], sample_event(sample)["id"], "{sample}");
        let outcome = &response["outcomes"][0];
        assert_eq!(
            (
                outcome["outcome"].as_str(),
                outcome["cluster"].as_str(),
                outcome["service"].as_str()
            ),
            (Some("recorded"), Some("demo"), Some("web")),
            "{sample}: {response}"
        );
        assert!(
            outcome["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("not a deployment pushdeploy started"),
            "{sample}: {response}"
        );
        assert_eq!(
            calls(&response, "ECS.UpdateService"),
            0,
            "{sample}: {response}"
        );
    }
    assert_eq!(bed.running("demo", "web").await, new);

    // The decisions, from the events ECS emits for pushdeploy's deployments, delivered in order.
    let deliver = || async {
        let mut said = Vec::new();
        for event in world.take_events().await {
            let name = event["detail"]["eventName"].as_str().unwrap_or("?");
            let name = name.trim_start_matches("SERVICE_DEPLOYMENT_").to_string();
            let response = rollback_api.invoke(event, INVOKE_WITHIN).await.response();
            said.push((name, response));
        }
        said
    };
    let reasons = |said: &[(String, Value)]| -> Vec<(String, String, String)> {
        said.iter()
            .map(|(name, r)| {
                let o = &r["outcomes"][0];
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (name.clone(), text(&o["outcome"]), text(&o["reason"]))
            })
            .collect()
    };
    // The push's tasks run: IN_PROGRESS, then COMPLETED makes its revision the last known good.
    world.start_tasks("demo", "web", 2).await;
    let said = deliver().await;
    let got = reasons(&said);
    assert_eq!(got.len(), 2, "{said:#?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("IN_PROGRESS", "recorded")
    );
    assert!(got[0].2.contains("in progress"), "{got:?}");
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("COMPLETED", "recorded")
    );
    assert!(got[1].2.contains("last known good"), "{got:?}");
    assert!(said.iter().all(|(_, r)| calls(r, "ECS.UpdateService") == 0));
    assert_eq!(bed.running("demo", "web").await, new);

    // A second push's tasks fail: IN_PROGRESS, then FAILED, and pushdeploy rolls the service
    // back to the last known good revision (pinned by digest already: no copy needed).
    let digest2 = bed.push_image("pushdeploy-demo", "latest", 1).await;
    let pushed = deploy_api
        .invoke(
            push_event(
                "push-2",
                "pushdeploy-demo",
                "latest",
                &digest2,
                &world.now().await,
            ),
            INVOKE_WITHIN,
        )
        .await
        .response();
    assert_eq!(pushed["outcomes"][0]["outcome"], "deployed", "{pushed}");
    world.fail_tasks("demo", "web", 3).await;
    let said = deliver().await;
    let got = reasons(&said);
    assert_eq!(got.len(), 2, "{said:#?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("IN_PROGRESS", "recorded")
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("FAILED", "rolled_back")
    );
    assert!(got[1].2.contains("last known good revision"), "{got:?}");
    // The failed deployment is recorded failed: its digest is quarantined for the service.
    assert!(
        got[1]
            .2
            .contains(&format!("the deployment of {digest2} failed"))
            && got[1].2.contains("now quarantined"),
        "{got:?}"
    );
    assert_eq!(calls(&said[1].1, "ECS.UpdateService"), 1, "{said:#?}");
    assert_eq!(
        calls(&said[1].1, "ECS.RegisterTaskDefinition"),
        0,
        "{said:#?}"
    );
    assert_eq!(bed.running("demo", "web").await, new);

    // Garbage and pushes are not for this function: answered, not acted on.
    let response = rollback_api
        .invoke(sample_event("ecr-push.json"), INVOKE_WITHIN)
        .await
        .response();
    assert!(
        reason_of(&response).contains("neither an ECS deployment or hook state change"),
        "{response}"
    );
    deploy.stop().await;
    rollback.stop().await;
}
