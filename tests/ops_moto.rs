//! The ops experience against moto: the `pushdeploy` CLI (the real binary: pause, resume,
//! history, status), the dry run (nothing in ECS, the ledger or SNS changes), and SNS
//! notifications read back through an SQS subscription. moto's SNS delivers to SQS in-process,
//! with the subject and message attributes in the envelope, as SNS does.

mod support;

use pushdeploy::deploy::{Deployer, Invocation, OutcomeKind, Report};
use pushdeploy::rollback::RollbackHandler;
use serde_json::{json, Value};
use support::{digest, push_event, TestBed, REGISTRY, TABLE};

const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

async fn world() -> (TestBed, String) {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let first = bed
        .task_definition(
            "web",
            &[
                ("app", &format!("{REGISTRY}/web:latest")),
                ("log-router", "fluent-bit:stable"),
            ],
        )
        .await;
    bed.service("prod", "web", &first, &[("pushdeploy:repository", "web")])
        .await;
    (bed, first)
}

async fn push(deployer: &Deployer, id: &str, d: char, time: &str) -> Report {
    deployer
        .handle(
            push_event(id, "web", "latest", &digest(d), time),
            &Invocation::default(),
        )
        .await
        .unwrap()
}

fn failed_event(time: &str) -> Value {
    json!({
        "version": "0", "id": "ecs-failed-1", "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": time, "region": "us-east-1",
        "resources": [SERVICE_ARN],
        "detail": {"eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED",
                   "deploymentId": "ecs-svc/1", "updatedAt": time,
                   "reason": "ECS deployment circuit breaker: task failed to start."}
    })
}

fn completed_event(time: &str) -> Value {
    json!({
        "version": "0", "id": "ecs-completed-1", "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": time, "region": "us-east-1",
        "resources": [SERVICE_ARN],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                   "deploymentId": "ecs-svc/2", "updatedAt": time, "reason": ""}
    })
}

/// Runs the `pushdeploy` CLI against the bed; (exit code, stdout, stderr).
fn cli(bed: &TestBed, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"))
        .args(args)
        .env_clear()
        .envs(bed.function_env())
        .output()
        .expect("run pushdeploy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ledger_items(bed: &TestBed) -> usize {
    bed.dynamodb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_skips_the_service_resume_deploys_and_history_tells_it_all() {
    let (bed, first) = world().await;
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let (code, out, err) = cli(&bed, &["pause", "--cluster", "prod", "--service", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("paused {SERVICE_ARN}")), "{out}");
    let report = push(&deployer, "push-1", '1', "2026-11-26T12:00:00Z").await;
    let o = &report.outcomes[0];
    assert_eq!(o.outcome, OutcomeKind::Skipped, "{report:?}");
    assert!(o.reason.as_deref().unwrap().starts_with("paused"), "{o:?}");
    assert_eq!(o.skip_reason.map(|r| r.as_str()), Some("paused"));
    assert_eq!(
        bed.running("prod", "web").await,
        first,
        "a paused service is untouched"
    );
    assert_eq!(bed.revisions("web").await.len(), 1);

    let (code, out, err) = cli(&bed, &["resume", "--cluster", "prod", "--service", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("resumed"), "{out}");
    let report = push(&deployer, "push-2", '2', "2026-11-26T12:01:00Z").await;
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let second = report.outcomes[0].task_definition.clone().unwrap();

    // In flight until ECS says COMPLETED or FAILED.
    let (code, out, err) = cli(&bed, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let in_flight: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(in_flight.len(), 1, "{out}");
    assert_eq!(in_flight[0]["service"], "web");
    assert_eq!(in_flight[0]["digest"], digest('2'));
    assert_eq!(in_flight[0]["outcome"], "deployed");

    // It fails; the rollback puts the first revision back. Then a third push deploys.
    let rollback = RollbackHandler::new(&bed.sdk, bed.config());
    let report = rollback
        .handle(failed_event("2026-11-26T12:05:00Z"), &Invocation::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::RolledBack,
        "{report:?}"
    );
    let report = push(&deployer, "push-3", '3', "2026-11-26T12:10:00Z").await;
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let third = report.outcomes[0].task_definition.clone().unwrap();
    let (code, out, _) = cli(&bed, &["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&digest('3')[..19]) && !out.contains(&digest('2')[..19]),
        "{out}"
    );

    let (code, out, err) = cli(&bed, &["history", "--service", "web", "--json"]);
    assert_eq!(code, 0, "{err}");
    let history: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<(&str, &str, &str, &str)> = history
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap(),
                h["outcome"].as_str().unwrap(),
                h["digest"].as_str().unwrap(),
                h["task_definition"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let (d2, d3) = (digest('2'), digest('3'));
    assert_eq!(
        rows,
        [
            ("deploy", "deployed", d3.as_str(), third.as_str()),
            ("rollback", "deployed", "", first.as_str()),
            ("deploy", "failed", d2.as_str(), second.as_str()),
        ],
        "newest first; the paused push left no record: {out}"
    );
    assert!(history
        .iter()
        .all(|h| h["when"].as_str().is_some_and(|w| !w.is_empty())));
    assert_eq!(history[0]["tag"], "latest");

    // The table people read: a header and one line per record, same order.
    let (code, table, _) = cli(&bed, &["history", "--service", "web", "--cluster", "prod"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("WHEN") && lines[0].contains("DIGEST"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].contains("web:1 -> web:3") && lines[1].contains(&d3[..19]),
        "{table}"
    );
    assert!(
        lines[2].contains("rollback") && lines[2].contains("web:2 -> web:1"),
        "{table}"
    );

    // Wrong names are said plainly, with a non-zero exit.
    let (code, _, err) = cli(&bed, &["history", "--service", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no service named \"nope\""), "{err}");
    let (code, _, err) = cli(&bed, &["pause", "--cluster", "prod", "--service", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("ECS has no service \"nope\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_milestone_is_one_sns_message_and_a_broken_topic_fails_nothing() {
    let (bed, first) = world().await;
    let (topic, queue_url) = bed.notify_topic().await;
    let mut config = bed.config();
    config.notify_topic_arn = Some(topic.clone());
    let deployer = Deployer::new(&bed.sdk, config.clone());
    let rollback = RollbackHandler::new(&bed.sdk, config.clone());

    let report = push(&deployer, "push-1", '1', "2026-11-26T12:00:00Z").await;
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    assert_eq!(report.aws_calls.get("SNS.Publish"), Some(&1), "{report:?}");
    let started = bed.notifications(&queue_url, 1).await;
    assert_eq!(started.len(), 1, "{started:#?}");
    let n = &started[0];
    assert_eq!(n["Subject"], "pushdeploy: prod/web deployment started");
    let message = n["Message"].as_str().unwrap();
    assert!(
        message.starts_with("prod/web: deployment started."),
        "{message}"
    );
    assert!(
        message.contains(&format!("Image: web:latest ({})", digest('1'))),
        "{message}"
    );
    assert!(message.contains("Revision: web:1 -> web:2"), "{message}");
    assert_eq!(n["MessageAttributes"]["outcome"]["Value"], "started");
    assert_eq!(n["MessageAttributes"]["service"]["Value"], "web");
    assert_eq!(n["MessageAttributes"]["cluster"]["Value"], "prod");
    assert_eq!(n["MessageAttributes"]["repository"]["Value"], "web");

    // A skipped push (same digest again, new event) says nothing.
    push(&deployer, "push-1b", '1', "2026-11-26T12:00:30Z").await;
    // It fails and is rolled back: one message, subject naming service and outcome.
    let report = rollback
        .handle(failed_event("2026-11-26T12:05:00Z"), &Invocation::default())
        .await
        .unwrap();
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::RolledBack,
        "{report:?}"
    );
    let rolled = bed.notifications(&queue_url, 1).await;
    assert_eq!(rolled.len(), 1, "{rolled:#?}");
    assert_eq!(
        rolled[0]["Subject"],
        "pushdeploy: prod/web deployment failed and was rolled back"
    );
    assert_eq!(
        rolled[0]["MessageAttributes"]["outcome"]["Value"],
        "rolled_back"
    );
    assert!(rolled[0]["Message"]
        .as_str()
        .unwrap()
        .contains("circuit breaker"));
    assert_eq!(bed.running("prod", "web").await, first);

    // A new push completes: started, then completed with push-to-completed time.
    push(&deployer, "push-2", '2', "2026-11-26T12:10:00Z").await;
    let report = rollback
        .handle(
            completed_event("2026-11-26T12:12:30Z"),
            &Invocation::default(),
        )
        .await
        .unwrap();
    let completed = &report.outcomes[0];
    assert_eq!(completed.push_to_completed_ms, Some(150_000), "{report:?}");
    let got = bed.notifications(&queue_url, 2).await;
    let subjects: Vec<&str> = got.iter().map(|n| n["Subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        [
            "pushdeploy: prod/web deployment started",
            "pushdeploy: prod/web deployment completed"
        ]
    );
    assert!(got[1]["Message"]
        .as_str()
        .unwrap()
        .contains("Push to completed: 150 s"));

    // A topic that does not exist: the deployment goes ahead, the failure is only logged.
    let mut broken = config.clone();
    broken.notify_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:no-such-topic".into());
    let deployer = Deployer::new(&bed.sdk, broken);
    let report = push(&deployer, "push-3", '3', "2026-11-26T12:20:00Z").await;
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    assert!(!report.outcomes[0].retryable);
    assert_eq!(
        report.aws_calls.get("SNS.Publish"),
        Some(&1),
        "it was tried"
    );
    assert!(bed.notifications(&queue_url, 0).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_decides_and_shows_the_diff_but_changes_nothing() {
    let (bed, first) = world().await;
    let (topic, queue_url) = bed.notify_topic().await;
    let mut config = bed.config();
    config.dry_run = true;
    config.notify_topic_arn = Some(topic);
    let deployer = Deployer::new(&bed.sdk, config.clone());

    let report = push(&deployer, "push-1", '1', "2026-11-26T12:00:00Z").await;
    let o = &report.outcomes[0];
    assert_eq!(o.outcome, OutcomeKind::DryRun, "{report:?}");
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .starts_with("dry run: would register"),
        "{o:?}"
    );
    let diff = o.diff.as_ref().unwrap();
    let pinned = format!("{REGISTRY}/web@{}", digest('1'));
    assert_eq!(
        diff[..5],
        [
            format!("--- {first} (running)"),
            "+++ web:<next revision> (planned)".to_string(),
            "  container app:".to_string(),
            format!("-   image: {REGISTRY}/web:latest"),
            format!("+   image: {pinned}"),
        ],
        "{diff:#?}"
    );
    assert!(
        !diff.iter().any(|l| l.starts_with('!')),
        "only the image changes: {diff:#?}"
    );
    // Nothing changed: no revision, same service, no ledger item, no ECS write, no message.
    assert_eq!(bed.revisions("web").await, std::slice::from_ref(&first));
    assert_eq!(bed.running("prod", "web").await, first);
    assert_eq!(ledger_items(&bed).await, 0);
    for write in [
        "ECS.RegisterTaskDefinition",
        "ECS.UpdateService",
        "DynamoDB.PutItem",
        "DynamoDB.UpdateItem",
        "SNS.Publish",
    ] {
        assert_eq!(report.aws_calls.get(write), None, "{write}: {report:?}");
    }
    assert!(bed.notifications(&queue_url, 0).await.is_empty());

    // The per-service tag does the same with the global switch off.
    let tagged = bed
        .service(
            "prod",
            "api",
            &first,
            &[
                ("pushdeploy:repository", "web"),
                ("pushdeploy:dry-run", "true"),
            ],
        )
        .await;
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let report = push(&deployer, "push-2", '2', "2026-11-26T12:01:00Z").await;
    let by_service: Vec<(&str, OutcomeKind)> = report
        .outcomes
        .iter()
        .map(|o| (o.service.as_str(), o.outcome))
        .collect();
    assert_eq!(
        by_service,
        [("api", OutcomeKind::DryRun), ("web", OutcomeKind::Deployed)]
    );
    assert!(tagged.ends_with("/prod/api"));
    assert_eq!(bed.running("prod", "api").await, first);

    // The rollback function's dry run says what it would do about a failure, and does nothing.
    let rollback = RollbackHandler::new(&bed.sdk, config);
    let deployed = bed.running("prod", "web").await;
    let items = ledger_items(&bed).await;
    let report = rollback
        .handle(failed_event("2026-11-26T12:05:00Z"), &Invocation::default())
        .await
        .unwrap();
    let o = &report.outcomes[0];
    assert_eq!(o.outcome, OutcomeKind::DryRun, "{report:?}");
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .starts_with(&format!("dry run: would roll the service back to {first}")),
        "{o:?}"
    );
    assert_eq!(bed.running("prod", "web").await, deployed);
    assert_eq!(ledger_items(&bed).await, items);
}
