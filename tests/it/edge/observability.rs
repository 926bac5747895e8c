//! What an operator reads, from the real binaries run as Lambda runs them (Runtime API stand-in,
//! moto): every stdout line is JSON; the EMF lines follow the Embedded Metric Format
//! specification; and every field the Logs Insights queries of docs/operations.md use appears in
//! the lines.

use crate::support;

use crate::support::runtime_api::{FunctionProcess, RuntimeApi};
use crate::support::{digest, push_event, sample_event, TestBed};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const INVOKE_WITHIN: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "Acme/Deploys";

/// CloudWatch's units (MetricDatum `Unit`), which EMF's `Unit` takes.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The rules of the EMF specification ("Specification: Embedded metric format", CloudWatch user
/// guide) for one document; `Err` names the first rule broken.
fn check_emf(doc: &Value) -> Result<(), String> {
    let root = doc.as_object().ok_or("the root is not an object")?;
    let aws = root["_aws"].as_object().ok_or("_aws is not an object")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a non-negative integer")?;
    // Milliseconds since the epoch: after 2020, before 2100.
    if !(1_577_836_800_000..4_102_444_800_000).contains(&timestamp) {
        return Err(format!(
            "_aws.Timestamp {timestamp} is not epoch milliseconds"
        ));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics is empty".into());
    }
    for directive in directives {
        let namespace = directive["Namespace"]
            .as_str()
            .ok_or("Namespace is not a string")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(format!("Namespace {namespace:?} is not 1-255 characters"));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let keys = set.as_array().ok_or("a DimensionSet is not an array")?;
            if keys.len() > 30 {
                return Err("a DimensionSet has more than 30 dimensions".into());
            }
            for key in keys {
                let key = key.as_str().ok_or("a dimension key is not a string")?;
                let value = root
                    .get(key)
                    .ok_or(format!("dimension {key} has no member in the root"))?;
                let value = value
                    .as_str()
                    .ok_or(format!("dimension {key}'s value is not a string"))?;
                if value.is_empty() || value.len() > 1024 {
                    return Err(format!("dimension {key}'s value is not 1-1024 characters"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or("Metrics is not an array")?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err("Metrics does not hold 1 to 100 definitions".into());
        }
        for metric in metrics {
            let name = metric["Name"]
                .as_str()
                .ok_or("a MetricDefinition has no Name")?;
            if name.is_empty() || name.len() > 1024 {
                return Err(format!("metric name {name:?} is not 1-1024 characters"));
            }
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("{unit:?} is not a CloudWatch unit"));
                }
            }
            if let Some(resolution) = metric.get("StorageResolution") {
                if resolution != &json!(1) && resolution != &json!(60) {
                    return Err("StorageResolution is not 1 or 60".into());
                }
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                _ => {
                    return Err(format!(
                        "metric {name} has no number (or array of up to 100) in the root"
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The identifiers a Logs Insights query reads: what is left once strings, commands, functions
/// and keywords are taken out. `@` fields and the `platform.report` record's (`type`,
/// `record.*`) are Lambda's own, not pushdeploy's.
fn query_fields(query: &str) -> BTreeSet<String> {
    const WORDS: [&str; 22] = [
        "fields",
        "filter",
        "stats",
        "sort",
        "by",
        "desc",
        "asc",
        "limit",
        "and",
        "or",
        "not",
        "in",
        "like",
        "as",
        "count",
        "avg",
        "pct",
        "max",
        "min",
        "ispresent",
        "display",
        "bin",
    ];
    let mut without_strings = String::new();
    let mut in_string = false;
    for c in query.chars() {
        if c == '"' {
            in_string = !in_string;
            without_strings.push(' ');
        } else if !in_string {
            without_strings.push(c);
        }
    }
    let mut fields = BTreeSet::new();
    let mut alias = false;
    for token in without_strings.split(|c: char| !(c.is_ascii_alphanumeric() || "_@.".contains(c)))
    {
        if token.is_empty() || token.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if alias {
            alias = false; // the name after `as` is the query's own
            continue;
        }
        if token == "as" {
            alias = true;
            continue;
        }
        if WORDS.contains(&token)
            || token.starts_with('@')
            || token == "type"
            || token.starts_with("record.")
        {
            continue;
        }
        fields.insert(token.to_string());
    }
    fields
}

/// The fenced Logs Insights queries of the logs section of docs/operations.md.
fn documented_queries() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let start = doc
        .find("**CloudWatch Logs Insights queries**")
        .expect("the queries section");
    let section = &doc[start..];
    let end = section
        .find("**Metrics, without an API call.**")
        .unwrap_or(section.len());
    section[..end]
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|q| q.trim().to_string())
        .collect()
}

#[test]
fn the_query_reader_finds_fields_not_words() {
    let fields = query_fields("fields @timestamp, outcome | filter digest = \"sha256:x\" and ispresent(service)\n| stats count(*) as n by ispresent(record.metrics.initDurationMs) as cold");
    assert_eq!(
        fields.into_iter().collect::<Vec<_>>(),
        ["digest", "outcome", "service"]
    );
    assert!(check_emf(&json!({"_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["Service"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]}, "M": 1})).unwrap_err().contains("Service"));
}

async fn invoke(api: &RuntimeApi, event: Value) -> Value {
    api.invoke(event, INVOKE_WITHIN).await.response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_json_emf_is_valid_and_every_queried_field_is_logged() {
    let bed = TestBed::start().await;
    bed.demo_world().await;
    let world = bed.world();
    // The demo service has no circuit breaker, so ECS would never report a FAILED deployment:
    // turn it on (rollback off, so that the rollback is pushdeploy's to make).
    bed.ecs
        .update_service()
        .cluster("demo")
        .service("web")
        .deployment_configuration(support::circuit_breaker(false))
        .send()
        .await
        .expect("turn the circuit breaker on");
    let mut env = bed.function_env();
    env.push(("PUSHDEPLOY_METRICS_NAMESPACE".into(), NAMESPACE.into()));
    let (deploy_api, rollback_api) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let deploy = FunctionProcess::spawn(Path::new(env!("CARGO_BIN_EXE_deploy")), &deploy_api, &env);
    let rollback = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_rollback")),
        &rollback_api,
        &env,
    );
    // Every event ECS emitted since the last call, delivered in order: (event, answer) each.
    let deliver = || async {
        let mut answers = Vec::new();
        for event in world.take_events().await {
            let answer = invoke(&rollback_api, event.clone()).await;
            answers.push((event, answer));
        }
        answers
    };
    let ecs = |delivered: Vec<(Value, Value)>| {
        delivered.into_iter().map(|(event, answer)| {
            let name = event["detail"]["eventName"].as_str().unwrap_or("?");
            (
                name.trim_start_matches("SERVICE_DEPLOYMENT_").to_string(),
                answer,
            )
        })
    };

    // deployed; the same digest again (skipped); its tasks fail and ECS reports it FAILED
    // (rolled back); a new digest whose tasks run 120 s after its push (COMPLETED); a push no
    // service follows; an event that is not a push. ECS's IN_PROGRESS events (one per
    // deployment, the rollback's included) are recorded too.
    let first = bed.pushed(sample_event("ecr-push.json")).await;
    let pushed = first["detail"]["image-digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut answers: Vec<(String, Value)> = vec![
        ("push".into(), invoke(&deploy_api, first).await),
        (
            "same push".into(),
            invoke(
                &deploy_api,
                bed.pushed(push_event(
                    "again",
                    "pushdeploy-demo",
                    "latest",
                    &pushed,
                    "2026-11-26T12:01:00Z",
                ))
                .await,
            )
            .await,
        ),
    ];
    world.fail_tasks("demo", "web", 3).await;
    answers.extend(ecs(deliver().await));
    let second_at = world.now().await;
    let second = bed
        .pushed(push_event(
            "second",
            "pushdeploy-demo",
            "latest",
            &digest('2'),
            &second_at,
        ))
        .await;
    answers.push(("second push".into(), invoke(&deploy_api, second).await));
    world.advance(120).await;
    world.start_tasks("demo", "web", 1).await;
    let delivered = deliver().await;
    let completed_at = delivered
        .iter()
        .find(|(e, _)| e["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED")
        .and_then(|(e, _)| e["detail"]["updatedAt"].as_str())
        .expect("ECS reports the second push's deployment COMPLETED")
        .to_string();
    answers.extend(ecs(delivered));
    answers.push((
        "unfollowed push".into(),
        invoke(
            &deploy_api,
            bed.pushed(push_event(
                "nobody",
                "unfollowed",
                "latest",
                &digest('3'),
                "2026-11-26T12:20:00Z",
            ))
            .await,
        )
        .await,
    ));
    answers.push((
        "delete".into(),
        invoke(&deploy_api, sample_event("ecr-delete.json")).await,
    ));
    let outcomes: Vec<(&str, &str)> = answers
        .iter()
        .map(|(what, a)| {
            let outcome = a["outcomes"][0]["outcome"].as_str().unwrap_or("-");
            (what.as_str(), outcome)
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("push", "deployed"),
            ("same push", "skipped"),
            ("IN_PROGRESS", "recorded"),
            ("FAILED", "rolled_back"),
            ("second push", "deployed"),
            // The rollback's deployment, replaced by the second push's before it completed.
            ("IN_PROGRESS", "recorded"),
            ("IN_PROGRESS", "recorded"),
            ("COMPLETED", "recorded"),
            ("unfollowed push", "-"),
            ("delete", "-"),
        ],
        "{answers:#?}"
    );
    assert_eq!(answers[7].1["outcomes"][0]["milestone"], "completed");
    // Push to COMPLETED, to the second, as ECS's event times it on the world's clock.
    let seconds = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp();
    let push_to_completed = seconds(&completed_at) - seconds(&second_at);
    assert!(
        (120..=122).contains(&push_to_completed),
        "{second_at} -> {completed_at}"
    );

    let mut raw = deploy.log_lines();
    raw.extend(rollback.log_lines());
    deploy.stop().await;
    rollback.stop().await;
    let lines: Vec<Value> = raw
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    // EMF: every metric document is valid, and each kind docs/operations.md lists was emitted.
    let emf: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    for doc in &emf {
        check_emf(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            (doc["Cluster"].as_str(), doc["Service"].as_str()),
            (Some("demo"), Some("web"))
        );
    }
    let metric_names: BTreeSet<&str> = emf
        .iter()
        .flat_map(|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
        })
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert_eq!(
        metric_names.into_iter().collect::<Vec<_>>(),
        [
            "DeploymentsFailed",
            "DeploymentsStarted",
            "DeploymentsSucceeded",
            "PushToCompletedSeconds",
            "RolledBack",
            "Skipped"
        ]
    );
    let skipped = emf.iter().find(|d| d.get("Skipped").is_some()).unwrap();
    assert_eq!(skipped["Reason"], "already_running");
    let completed = emf
        .iter()
        .find(|d| d.get("PushToCompletedSeconds").is_some())
        .unwrap();
    // The metric counts from when the tag moved as ECR confirms it: the later of the event's
    // time and the image's imagePushedAt (src/confirm.rs), which ECR keeps to the second on the
    // wall clock: the two may differ by a second.
    let confirmed = bed.ecr_pushed_at("pushdeploy-demo", &digest('2')).await;
    let moved = seconds(&second_at).max(seconds(&confirmed));
    assert_eq!(
        completed["PushToCompletedSeconds"].as_f64(),
        Some((seconds(&completed_at) - moved) as f64),
        "pushed {second_at} (event), {confirmed} (ECR); completed {completed_at}; {push_to_completed} s by the event"
    );

    // Logs: every field a documented query reads is a key of some pushdeploy line.
    let logged: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l.get("_aws").is_none())
        .flat_map(|l| l.as_object().unwrap().keys().map(String::as_str))
        .collect();
    let queries = documented_queries();
    assert!(queries.len() >= 5, "{queries:#?}");
    let mut queried = BTreeSet::new();
    for query in &queries {
        queried.extend(query_fields(query));
    }
    let missing: Vec<&String> = queried
        .iter()
        .filter(|f| !logged.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but never logged: {missing:?}; logged: {logged:?}"
    );
    for field in [
        "request_id",
        "event_id",
        "duration_ms",
        "previous_task_definition",
        "deployment_id",
        "skip_reason",
        "milestone",
    ] {
        assert!(logged.contains(field), "{field} is never logged");
    }
    // Each decision line carries the request id of its invocation.
    for line in lines
        .iter()
        .filter(|l| l.get("outcome").is_some() && l.get("_aws").is_none())
    {
        assert!(
            line["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("req-")),
            "{line}"
        );
    }
}
