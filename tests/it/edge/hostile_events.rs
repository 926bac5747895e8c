//! Hostile and odd input: every shape below gets an answer whose reason says what was wrong,
//! none panics, none reaches an ECS mutation or a ledger write, and the function keeps serving.
//! Against moto, with a service that follows `web:latest` ready to be (wrongly) deployed.

use crate::support::runtime_api::{FunctionProcess, RuntimeApi};
use crate::support::{digest, TestBed, TABLE};
use pushdeploy::deploy::Deployer;
use pushdeploy::invocation::Invocation;
use serde_json::{json, Value};
use std::time::Duration;

fn valid() -> Value {
    json!({
        "version": "0", "id": "0b4b7a5c-5a3b-4f0e-9c2c-1f6a2f9d1e11", "detail-type": "ECR Image Action",
        "source": "aws.ecr", "account": "123456789012", "time": "2026-11-26T12:00:00Z", "region": "us-east-1",
        "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "web", "image-digest": digest('b'),
                   "action-type": "PUSH", "image-tag": "latest"}
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut event = valid();
    let (last, parents) = path.split_last().unwrap();
    let mut at = &mut event;
    for p in parents {
        at = &mut at[*p];
    }
    at[*last] = value;
    event
}

fn without(path: &[&str]) -> Value {
    let mut event = valid();
    let (last, parents) = path.split_last().unwrap();
    let mut at = &mut event;
    for p in parents {
        at = &mut at[*p];
    }
    at.as_object_mut().unwrap().remove(*last);
    event
}

/// (what, event, a phrase the reason must contain)
fn corpus() -> Vec<(&'static str, Value, &'static str)> {
    let huge = "x".repeat(256 * 1024);
    vec![
        (
            "source of another service",
            with(&["source"], json!("aws.ecs")),
            "not an ECR push or replication",
        ),
        (
            "spoofed lookalike source",
            with(&["source"], json!("aws.ecr ")),
            "not an ECR push or replication",
        ),
        (
            "another detail-type",
            with(&["detail-type"], json!("ECR Image Scan")),
            "not an ECR push or replication",
        ),
        (
            "no source",
            without(&["source"]),
            "not an EventBridge event",
        ),
        (
            "no detail-type",
            without(&["detail-type"]),
            "not an EventBridge event",
        ),
        (
            "no detail",
            without(&["detail"]),
            "not an EventBridge event",
        ),
        (
            "null detail",
            with(&["detail"], json!(null)),
            "detail is not an ECR image action detail",
        ),
        (
            "detail as a JSON string",
            with(&["detail"], json!(valid()["detail"].to_string())),
            "detail is not an ECR image action detail",
        ),
        (
            "no action-type",
            without(&["detail", "action-type"]),
            "has no action-type",
        ),
        (
            "null action-type",
            with(&["detail", "action-type"], json!(null)),
            "has no action-type",
        ),
        (
            "DELETE",
            with(&["detail", "action-type"], json!("DELETE")),
            "only PUSH deploys",
        ),
        (
            "lowercase push",
            with(&["detail", "action-type"], json!("push")),
            "only PUSH deploys",
        ),
        (
            "failed push",
            with(&["detail", "result"], json!("FAILURE")),
            "only SUCCESS deploys",
        ),
        ("no result", without(&["detail", "result"]), "has no result"),
        ("no tag", without(&["detail", "image-tag"]), "no image-tag"),
        (
            "empty tag",
            with(&["detail", "image-tag"], json!("")),
            "no image-tag",
        ),
        (
            "null tag",
            with(&["detail", "image-tag"], json!(null)),
            "no image-tag",
        ),
        (
            "numeric tag",
            with(&["detail", "image-tag"], json!(7)),
            "detail is not an ECR image action detail",
        ),
        (
            "tag with a space",
            with(&["detail", "image-tag"], json!("lat est")),
            "not a valid image tag",
        ),
        (
            "tag with shell",
            with(&["detail", "image-tag"], json!("v1;rm -rf /")),
            "not a valid image tag",
        ),
        (
            "tag with unicode",
            with(&["detail", "image-tag"], json!("latést")),
            "not a valid image tag",
        ),
        (
            "tag with NUL",
            with(&["detail", "image-tag"], json!("latest\u{0}")),
            "not a valid image tag",
        ),
        (
            "tag of 129 chars",
            with(&["detail", "image-tag"], json!("a".repeat(129))),
            "not a valid image tag",
        ),
        (
            "no digest",
            without(&["detail", "image-digest"]),
            "has no image-digest",
        ),
        (
            "md5 digest",
            with(
                &["detail", "image-digest"],
                json!("md5:d41d8cd98f00b204e9800998ecf8427e"),
            ),
            "not sha256:",
        ),
        (
            "short digest",
            with(&["detail", "image-digest"], json!("sha256:abc")),
            "not sha256:",
        ),
        (
            "uppercase digest",
            with(&["detail", "image-digest"], json!(digest('B'))),
            "not sha256:",
        ),
        (
            "sha512 digest",
            with(
                &["detail", "image-digest"],
                json!(format!("sha512:{}", "a".repeat(128))),
            ),
            "not sha256:",
        ),
        (
            "digest with a suffix",
            with(
                &["detail", "image-digest"],
                json!(format!("{}@evil", digest('b'))),
            ),
            "not sha256:",
        ),
        (
            "repository in capitals",
            with(&["detail", "repository-name"], json!("Web")),
            "not a valid ECR repository name",
        ),
        (
            "repository climbing paths",
            with(&["detail", "repository-name"], json!("../web")),
            "not a valid ECR repository name",
        ),
        (
            "repository with a double slash",
            with(&["detail", "repository-name"], json!("team//web")),
            "not a valid ECR repository name",
        ),
        (
            "repository with slashes nobody follows",
            with(&["detail", "repository-name"], json!("team/web")),
            "no service follows team/web:latest",
        ),
        (
            "another account",
            with(&["account"], json!("210987654321")),
            "does not trust",
        ),
        (
            "another region",
            with(&["region"], json!("eu-west-1")),
            "region eu-west-1",
        ),
        (
            "account that is not an account",
            with(&["account"], json!("12345678901x")),
            "account",
        ),
        ("no id", without(&["id"]), "has no id"),
        (
            "id with the ledger's separator",
            with(&["id"], json!("a#b")),
            "id",
        ),
        ("no time", without(&["time"]), "has no time"),
        (
            "time that is not a time",
            with(&["time"], json!("yesterday")),
            "not an EventBridge event",
        ),
        (
            "extra unknown fields on a push nobody follows",
            {
                let mut e = with(&["detail", "repository-name"], json!("api"));
                e["detail"]["surprise"] = json!({"nested": [1, 2, 3]});
                e["unexpected"] = json!(true);
                e
            },
            "no service follows api:latest",
        ),
        (
            "256 KB payload",
            with(&["detail", "action-type"], json!(huge)),
            "only PUSH deploys",
        ),
        ("empty object", json!({}), "not an EventBridge event"),
        ("array", json!([valid()]), "not an EventBridge event"),
        ("null", json!(null), "not an EventBridge event"),
        ("a string", json!("PUSH"), "not an EventBridge event"),
        ("a number", json!(42), "not an EventBridge event"),
    ]
}

async fn nothing_changed(bed: &TestBed, td: &str) {
    assert_eq!(bed.running("prod", "web").await, td, "ECS was changed");
    assert_eq!(
        bed.revisions("web").await.len(),
        1,
        "a revision was registered"
    );
    let items = bed.dynamodb.scan().table_name(TABLE).send().await.unwrap();
    assert_eq!(
        items.count(),
        0,
        "the ledger was written: {:?}",
        items.items()
    );
}

async fn bed_with_a_follower() -> (TestBed, String) {
    let bed = TestBed::start().await;
    let td = bed.web_service().await;
    (bed, td)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_shape_gets_a_reason_and_changes_nothing() {
    let (bed, td) = bed_with_a_follower().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let home = Invocation {
        deadline_ms: 0,
        function_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:deploy".into()),
        request_id: None,
    };
    let corpus = corpus();
    assert!(corpus.len() >= 30, "{} shapes", corpus.len());
    for (what, event, phrase) in &corpus {
        let report = deployer
            .handle(event.clone(), &home)
            .await
            .unwrap_or_else(|e| panic!("{what}: asked Lambda to retry: {e}"));
        assert!(report.outcomes.is_empty(), "{what}: {report:?}");
        let reason = report
            .reason
            .as_deref()
            .unwrap_or_else(|| panic!("{what}: no reason"));
        assert!(
            reason.contains(phrase),
            "{what}: reason {reason:?} does not say {phrase:?}"
        );
        // Only the two reads a believable push starts at once: discovery, and ECR's word on
        // the image (which a push nobody follows never waits for).
        let calls: Vec<&String> = report
            .aws_calls
            .keys()
            .filter(|k| !k.ends_with("GetResources") && k.as_str() != "ECR.DescribeImages")
            .collect();
        assert!(calls.is_empty(), "{what}: called {calls:?}");
    }
    nothing_changed(&bed, &td).await;
    println!(
        "{} hostile shapes: each answered with its reason, nothing changed",
        corpus.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_every_hostile_shape_and_keeps_serving() {
    let (bed, td) = bed_with_a_follower().await;
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_deploy")),
        &api,
        &bed.function_env(),
    );
    for (what, event, phrase) in corpus() {
        let response = api.invoke(event, Duration::from_secs(60)).await.response();
        assert!(
            response["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(phrase),
            "{what}: {response}"
        );
    }
    nothing_changed(&bed, &td).await;
    // Still serving: a good push (its image in ECR, as ECR's confirmation requires) deploys.
    bed.ecr_has("web", "latest", &digest('b')).await;
    let response = api
        .invoke(valid(), Duration::from_secs(60))
        .await
        .response();
    assert_eq!(response["outcomes"][0]["outcome"], "deployed", "{response}");
    function.stop().await;
}
