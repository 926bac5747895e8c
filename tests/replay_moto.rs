//! `pushdeploy replay` (the real binary) against moto's SQS, ECS and DynamoDB: both kinds of
//! dead letter are replayed through the deploy handler and deleted, what cannot be replayed
//! stays, and replaying a push that is already deployed changes nothing.

mod support;

use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{json, Value};
use support::{digest, push_event, TestBed, REGISTRY};

const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction";

/// What Lambda sends to the on-failure destination after its last retry.
fn on_failure_record(event: &Value) -> String {
    json!({
        "version": "1.0",
        "timestamp": "2026-11-26T12:03:05.000Z",
        "requestContext": {
            "requestId": "8f4a6c1e-0000-4000-8000-000000000001",
            "functionArn": format!("{FUNCTION_ARN}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "pushdeploy.Retryable", "errorMessage": "push ev-1 of web:latest: 1 must be retried (prod/web)"}
    })
    .to_string()
}

fn replay(bed: &TestBed, queue_url: &str, list: bool) -> Vec<Value> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"));
    command.args(["replay", "--queue-url", queue_url]);
    if list {
        command.arg("--list");
    }
    let out = command
        .envs(bed.function_env())
        .output()
        .expect("run pushdeploy replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON line per message"))
        .collect()
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
    let queue_url = sqs
        .create_queue()
        .queue_name("deploy-dead-letters")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let web_push = push_event(
        "ev-1",
        "web",
        "latest",
        &digest('1'),
        "2026-11-26T12:00:00Z",
    );
    let api_push = push_event(
        "ev-2",
        "api",
        "latest",
        &digest('2'),
        "2026-11-26T12:00:01Z",
    );
    let text = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
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
        let mut send = sqs.send_message().queue_url(&queue_url).message_body(body);
        for (name, value) in attributes {
            send = send.message_attributes(name, value);
        }
        send.send().await.unwrap();
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
