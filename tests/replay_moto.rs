//! `pushdeploy replay` (the real binary) against moto's SQS, ECS, ECR and DynamoDB: both kinds
//! of dead letter are replayed through the handler of the function whose queue they sit in
//! (the queue's `pushdeploy:function` tag) and deleted, what cannot be replayed or was meant for
//! the other function stays, a queue that does not say its function is refused, and replaying a
//! push that is already deployed changes nothing.

mod support;

use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{json, Value};
use support::{digest, push_event, TestBed, REGISTRY};

const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction";
const ROLLBACK_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-RollbackFunction-Q9w8E7r6";

/// What Lambda sends to the on-failure destination after its last retry.
fn on_failure_record(event: &Value) -> String {
    on_failure_record_of(FUNCTION_ARN, event)
}

/// The on-failure record of the function `function_arn`.
fn on_failure_record_of(function_arn: &str, event: &Value) -> String {
    json!({
        "version": "1.0",
        "timestamp": "2026-11-26T12:03:05.000Z",
        "requestContext": {
            "requestId": "8f4a6c1e-0000-4000-8000-000000000001",
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "pushdeploy.Retryable", "errorMessage": "push ev-1 of web:latest: 1 must be retried (prod/web)"}
    })
    .to_string()
}

/// `pushdeploy replay --queue-url <queue_url> <args>`, run to its end.
fn run_replay(bed: &TestBed, queue_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"))
        .args(["replay", "--queue-url", queue_url])
        .args(args)
        .envs(bed.function_env())
        .output()
        .expect("run pushdeploy replay")
}

/// The JSON lines of a replay that succeeded.
fn lines_of(out: &std::process::Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON line per message"))
        .collect()
}

fn replay(bed: &TestBed, queue_url: &str, list: bool) -> Vec<Value> {
    lines_of(&run_replay(
        bed,
        queue_url,
        if list { &["--list"] } else { &[] },
    ))
}

/// A queue tagged, as template.yaml tags the stack's, with the function it is for (or not).
async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, function: Option<&str>) -> String {
    sqs.create_queue()
        .queue_name(name)
        .set_tags(function.map(|f| [("pushdeploy:function".to_string(), f.to_string())].into()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

fn text(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .unwrap()
}

/// The message attributes of EventBridge's dead letter for a target `function_arn` of `rule`.
fn undeliverable(rule: &str, function_arn: &str) -> Vec<(&'static str, MessageAttributeValue)> {
    vec![
        (
            "RULE_ARN",
            text(&format!(
                "arn:aws:events:us-east-1:123456789012:rule/{rule}"
            )),
        ),
        ("TARGET_ARN", text(function_arn)),
        ("ERROR_CODE", text("Lambda.TooManyRequestsException")),
        ("ERROR_MESSAGE", text("Rate exceeded")),
    ]
}

async fn send(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    body: String,
    attributes: Vec<(&str, MessageAttributeValue)>,
) {
    let mut send = sqs.send_message().queue_url(queue_url).message_body(body);
    for (name, value) in attributes {
        send = send.message_attributes(name, value);
    }
    send.send().await.unwrap();
}

/// EventBridge's standard Scheduled Event, as both schedules send it.
fn scheduled(id: &str, rule: &str, time: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": time, "region": "us-east-1",
           "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")], "detail": {}})
}

fn result_of<'a>(lines: &'a [Value], event_id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event_id"] == event_id)
        .unwrap_or_else(|| panic!("no line for {event_id}: {lines:?}"))
}

async fn messages_in(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (i64, i64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let count = |name: &str| {
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    (
        count("ApproximateNumberOfMessages"),
        count("ApproximateNumberOfMessagesNotVisible"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_through_the_same_path_and_deleted() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let mut first = std::collections::HashMap::new();
    for name in ["web", "api"] {
        let td = bed
            .task_definition(name, &[("app", &format!("{REGISTRY}/{name}:latest"))])
            .await;
        bed.service("prod", name, &td, &[("pushdeploy:repository", name)])
            .await;
        first.insert(name, td);
    }
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let queue_url = queue(&sqs, "deploy-dead-letters", Some("deploy")).await;
    let web_push = bed
        .pushed(push_event(
            "ev-1",
            "web",
            "latest",
            &digest('1'),
            "2026-11-26T12:00:00Z",
        ))
        .await;
    let api_push = bed
        .pushed(push_event(
            "ev-2",
            "api",
            "latest",
            &digest('2'),
            "2026-11-26T12:00:01Z",
        ))
        .await;
    for (body, attributes) in [
        (on_failure_record(&web_push), vec![]),
        (
            api_push.to_string(),
            vec![
                ("ERROR_CODE", text("Lambda.TooManyRequestsException")),
                ("ERROR_MESSAGE", text("Rate exceeded")),
                ("TARGET_ARN", text(FUNCTION_ARN)),
            ],
        ),
        ("not a dead letter at all".to_string(), vec![]),
    ] {
        send(&sqs, &queue_url, body, attributes).await;
    }

    // Listing touches nothing and leaves every message visible.
    let listed = replay(&bed, &queue_url, true);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(result_of(&listed, "ev-1")["result"], "listed");
    assert!(result_of(&listed, "ev-1")["why_dead"]
        .as_str()
        .unwrap()
        .starts_with("Lambda gave up (RetriesExhausted after 3 attempts): pushdeploy.Retryable"));
    assert!(result_of(&listed, "ev-2")["why_dead"]
        .as_str()
        .unwrap()
        .starts_with("EventBridge could not deliver it: Lambda.TooManyRequestsException"));
    assert_eq!(bed.running("prod", "web").await, first["web"]);
    assert_eq!(messages_in(&sqs, &queue_url).await.0, 3);

    let replayed = replay(&bed, &queue_url, false);
    assert_eq!(replayed.len(), 3, "{replayed:?}");
    for (event_id, service) in [("ev-1", "web"), ("ev-2", "api")] {
        let line = result_of(&replayed, event_id);
        assert_eq!(line["result"], "replayed", "{line}");
        assert_eq!(line["function"], "deploy");
        assert_eq!(
            line["report"]["outcomes"][0]["outcome"], "deployed",
            "{line}"
        );
        let running = bed.running("prod", service).await;
        assert_ne!(running, first[service]);
        let d = if service == "web" { '1' } else { '2' };
        assert_eq!(
            bed.image(&running, "app").await,
            format!("{REGISTRY}/{service}@{}", digest(d))
        );
    }
    let kept = replayed
        .iter()
        .find(|l| l["result"] == "kept")
        .expect("the message that is no event");
    assert!(kept["reason"]
        .as_str()
        .unwrap()
        .starts_with("the message is not JSON"));
    // Only that one is left (received, so not visible for now).
    assert_eq!(messages_in(&sqs, &queue_url).await, (0, 1));

    // The same dead letter again: the ledger knows the push, nothing moves.
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(on_failure_record(&web_push))
        .send()
        .await
        .unwrap();
    let again = replay(&bed, &queue_url, false);
    let line = result_of(&again, "ev-1");
    assert_eq!(line["result"], "replayed");
    assert_eq!(
        line["report"]["outcomes"][0]["outcome"], "skipped",
        "{line}"
    );
    assert_eq!(bed.revisions("web").await.len(), 2, "no second revision");
}

/// Each dead letter goes back to the function whose queue it sits in: in the deploy queue a
/// push and a replicated image are deployed and a Scheduled Event runs the reconcile (it deploys an image whose push
/// event never came); in the rollback queue an ECS deployment event is recorded and a Scheduled
/// Event runs the sweep. An event the queue's function does not take, or a dead letter that
/// names the other function, stays in the queue with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dead_letter_goes_back_to_the_function_it_was_meant_for() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let mut first = std::collections::HashMap::new();
    for name in ["web", "api", "worker"] {
        let td = bed
            .task_definition(name, &[("app", &format!("{REGISTRY}/{name}:latest"))])
            .await;
        bed.service("prod", name, &td, &[("pushdeploy:repository", name)])
            .await;
        first.insert(name, td);
    }
    // api's new image is in ECR, but its push event never came: the reconcile's to find.
    let missed = bed.push_image("api", "latest", 7).await;
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let deploy_queue = queue(&sqs, "pushdeploy-DeployDeadLetterQueue", Some("deploy")).await;
    let rollback_queue = queue(&sqs, "pushdeploy-RollbackDeadLetterQueue", Some("rollback")).await;
    let stray_ecs_event = json!({
        "version": "0", "id": "ecs-stray", "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": "2026-11-26T12:04:05Z",
        "region": "us-east-1", "resources": ["arn:aws:ecs:us-east-1:123456789012:service/prod/web"],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                   "deploymentId": "ecs-svc/1234567890123456789", "updatedAt": "2026-11-26T12:04:04Z"}
    });
    let web_push = bed
        .pushed(push_event(
            "ev-web",
            "web",
            "latest",
            &digest('1'),
            "2026-11-26T12:00:00Z",
        ))
        .await;
    let meant_for_rollback = push_event(
        "ev-elsewhere",
        "web",
        "latest",
        &digest('3'),
        "2026-11-26T12:00:02Z",
    );
    // ECR replicated worker's image from us-west-2 into this region.
    let mut worker_replica = bed
        .pushed(push_event(
            "ev-worker",
            "worker",
            "latest",
            &digest('5'),
            "2026-11-26T12:00:04Z",
        ))
        .await;
    worker_replica["detail-type"] = json!("ECR Replication Action");
    worker_replica["detail"]["action-type"] = json!("REPLICATE");
    worker_replica["detail"]["source-account"] = json!("123456789012");
    worker_replica["detail"]["source-region"] = json!("us-west-2");
    for (body, attributes) in [
        // Lambda's on-failure record of a push.
        (on_failure_record(&web_push), vec![]),
        // EventBridge could not deliver a replication.
        (
            worker_replica.to_string(),
            undeliverable("pushdeploy-DeployFunctionEcrPush-1", FUNCTION_ARN),
        ),
        // EventBridge could not deliver the reconcile schedule's event.
        (
            scheduled(
                "reconcile-1",
                "pushdeploy-DeployFunctionMissedPushReconcile-1",
                "2026-11-26T13:00:00Z",
            )
            .to_string(),
            undeliverable(
                "pushdeploy-DeployFunctionMissedPushReconcile-1",
                FUNCTION_ARN,
            ),
        ),
        // Not the deploy function's event.
        (
            stray_ecs_event.to_string(),
            undeliverable("pushdeploy-DeployFunctionEcrPush-1", FUNCTION_ARN),
        ),
        // The record names the rollback function, whatever queue it came to.
        (
            on_failure_record_of(ROLLBACK_ARN, &meant_for_rollback),
            vec![],
        ),
    ] {
        send(&sqs, &deploy_queue, body, attributes).await;
    }

    // Listing already says where each goes, and as what.
    let listed = replay(&bed, &deploy_queue, true);
    assert_eq!(listed.len(), 5, "{listed:?}");
    for (event_id, result, function, handling) in [
        ("reconcile-1", "listed", "deploy", "reconcile"),
        ("ev-web", "listed", "deploy", "push"),
        ("ev-worker", "listed", "deploy", "replication"),
        ("ecs-stray", "kept", "", ""),
        ("ev-elsewhere", "kept", "", ""),
    ] {
        let line = result_of(&listed, event_id);
        assert_eq!(line["result"], result, "{line}");
        assert_eq!(
            line["function"].as_str().unwrap_or_default(),
            function,
            "{line}"
        );
        assert_eq!(line["as"].as_str().unwrap_or_default(), handling, "{line}");
    }
    assert_eq!(messages_in(&sqs, &deploy_queue).await, (5, 0));

    let replayed = replay(&bed, &deploy_queue, false);
    assert_eq!(replayed.len(), 5, "{replayed:?}");
    for (event_id, service, d) in [("ev-web", "web", '1'), ("ev-worker", "worker", '5')] {
        let line = result_of(&replayed, event_id);
        assert_eq!(
            (&line["result"], &line["function"]),
            (&json!("replayed"), &json!("deploy")),
            "{line}"
        );
        assert_eq!(
            line["report"]["outcomes"][0]["outcome"], "deployed",
            "{line}"
        );
        let running = bed.running("prod", service).await;
        assert_eq!(
            bed.image(&running, "app").await,
            format!("{REGISTRY}/{service}@{}", digest(d))
        );
    }
    // The reconcile, not a sweep: it says so, and it deployed the image whose push was missed.
    let reconcile = result_of(&replayed, "reconcile-1");
    assert_eq!(
        (
            &reconcile["result"],
            &reconcile["function"],
            &reconcile["as"]
        ),
        (&json!("replayed"), &json!("deploy"), &json!("reconcile")),
        "{reconcile}"
    );
    assert!(
        reconcile["report"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("reconcile at 2026-11-26T13:00:00")),
        "{reconcile}"
    );
    let api = reconcile["report"]["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["service"] == "api"))
        .unwrap_or_else(|| panic!("the reconcile deploys api: {reconcile}"));
    assert_eq!(api["outcome"], "deployed", "{reconcile}");
    let api = bed.running("prod", "api").await;
    assert_ne!(api, first["api"]);
    assert_eq!(
        bed.image(&api, "app").await,
        format!("{REGISTRY}/api@{missed}")
    );
    // Kept, with their reasons, and never sent to the rollback function.
    let stray = result_of(&replayed, "ecs-stray");
    assert_eq!(stray["result"], "kept", "{stray}");
    assert_eq!(stray["function"], Value::Null, "{stray}");
    assert_eq!(
        stray["reason"],
        "an ECS deployment event in the queue of the deploy function, which does not take it: replay never sends a dead letter to a function it was not meant for",
    );
    let elsewhere = result_of(&replayed, "ev-elsewhere");
    assert_eq!(elsewhere["result"], "kept", "{elsewhere}");
    assert!(
        elsewhere["reason"].as_str().is_some_and(|r| r.starts_with(&format!(
            "the dead letter names {ROLLBACK_ARN}:$LATEST, the rollback function, but sits in the queue of the deploy function"
        ))),
        "{elsewhere}"
    );
    assert_eq!(
        bed.image(&bed.running("prod", "web").await, "app").await,
        format!("{REGISTRY}/web@{}", digest('1')),
        "the push meant elsewhere did not deploy"
    );
    assert_eq!(messages_in(&sqs, &deploy_queue).await, (0, 2), "two kept");

    // The rollback queue: the deployment event ECS sent last (for a deployment started above),
    // the sweep schedule's event (late enough that both deployments started above are past the
    // deploy timeout), and a push.
    let in_progress = bed
        .world()
        .take_event("SERVICE_DEPLOYMENT_IN_PROGRESS")
        .await
        .expect("ECS reported a deployment started above");
    let ecs_event_id = in_progress["id"].as_str().unwrap().to_string();
    for (body, attributes) in [
        (on_failure_record_of(ROLLBACK_ARN, &in_progress), vec![]),
        (
            scheduled(
                "sweep-1",
                "pushdeploy-RollbackFunctionStuckDeploymentSweep-1",
                "2099-01-01T00:00:00Z",
            )
            .to_string(),
            undeliverable(
                "pushdeploy-RollbackFunctionStuckDeploymentSweep-1",
                ROLLBACK_ARN,
            ),
        ),
        (
            push_event(
                "ev-in-rollback-queue",
                "web",
                "latest",
                &digest('4'),
                "2026-11-26T12:00:03Z",
            )
            .to_string(),
            undeliverable(
                "pushdeploy-RollbackFunctionEcsDeploymentStateChange-1",
                ROLLBACK_ARN,
            ),
        ),
    ] {
        send(&sqs, &rollback_queue, body, attributes).await;
    }
    let replayed = replay(&bed, &rollback_queue, false);
    assert_eq!(replayed.len(), 3, "{replayed:?}");
    let change = result_of(&replayed, &ecs_event_id);
    assert_eq!(
        (&change["result"], &change["function"], &change["as"]),
        (
            &json!("replayed"),
            &json!("rollback"),
            &json!("deployment_change")
        ),
        "{change}"
    );
    // The rollback function acted on the deployment the event is about.
    assert_eq!(change["report"]["event_id"], ecs_event_id, "{change}");
    let service = in_progress["resources"][0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next();
    assert_eq!(
        change["report"]["outcomes"][0]["service"].as_str(),
        service,
        "{change}"
    );
    let sweep = result_of(&replayed, "sweep-1");
    assert_eq!(
        (&sweep["result"], &sweep["function"], &sweep["as"]),
        (&json!("replayed"), &json!("rollback"), &json!("sweep")),
        "{sweep}"
    );
    // The sweep, not a reconcile: it finds both deployments past the deploy timeout.
    let swept = sweep["report"]["outcomes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for service in ["api", "web"] {
        let outcome = swept
            .iter()
            .find(|o| o["service"] == service)
            .unwrap_or_else(|| panic!("the sweep looks at {service}'s deployment: {sweep}"));
        assert!(
            outcome["reason"]
                .as_str()
                .is_some_and(|r| r.contains("past PUSHDEPLOY_DEPLOY_TIMEOUT")),
            "{outcome}"
        );
    }
    assert_eq!(
        sweep["report"]["reason"],
        Value::Null,
        "no reconcile: {sweep}"
    );
    let push = result_of(&replayed, "ev-in-rollback-queue");
    assert_eq!(push["result"], "kept", "{push}");
    assert_eq!(
        push["reason"],
        "an ECR push in the queue of the rollback function, which does not take it: replay never sends a dead letter to a function it was not meant for",
    );
    assert_eq!(
        messages_in(&sqs, &rollback_queue).await,
        (0, 1),
        "the push kept"
    );
}

/// A queue that does not say which function its dead letters were meant for is read only
/// when the operator names the function; a name that contradicts the queue's tag is refused.
/// A refusal reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_say_its_function_is_refused_unless_named() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    bed.service("prod", "web", &td, &[("pushdeploy:repository", "web")])
        .await;
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let untagged = queue(&sqs, "older-stack-dead-letters", None).await;
    let tagged = queue(&sqs, "rollback-dead-letters", Some("rollback")).await;
    let push = bed
        .pushed(push_event(
            "ev-1",
            "web",
            "latest",
            &digest('1'),
            "2026-11-26T12:00:00Z",
        ))
        .await;
    for queue_url in [&untagged, &tagged] {
        send(&sqs, queue_url, on_failure_record(&push), vec![]).await;
    }

    let refused = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let untagged_refused = refused(run_replay(&bed, &untagged, &[]));
    assert!(
        untagged_refused.contains(&format!("{untagged} has no pushdeploy:function tag"))
            && untagged_refused.contains("--function deploy"),
        "{untagged_refused}"
    );
    let disagree = refused(run_replay(&bed, &tagged, &["--function", "deploy"]));
    assert!(
        disagree.contains("is tagged pushdeploy:function=rollback, but --function says deploy"),
        "{disagree}"
    );
    // Nothing was read: both messages are still visible.
    assert_eq!(messages_in(&sqs, &untagged).await, (1, 0));
    assert_eq!(messages_in(&sqs, &tagged).await, (1, 0));
    assert_eq!(bed.running("prod", "web").await, td);

    let named = lines_of(&run_replay(&bed, &untagged, &["--function", "deploy"]));
    let line = result_of(&named, "ev-1");
    assert_eq!(
        (&line["result"], &line["function"]),
        (&json!("replayed"), &json!("deploy")),
        "{line}"
    );
    assert_eq!(messages_in(&sqs, &untagged).await, (0, 0));
    assert_ne!(bed.running("prod", "web").await, td);
}
