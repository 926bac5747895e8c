//! The partial-failure table: every AWS call of the deploy and rollback paths, broken on the
//! wire (tests/support/fault_proxy.rs) in the ways AWS breaks, then Lambda's retry of the same
//! event. Each row asserts what the first invocation answered, and that after the retry the
//! service has exactly one new revision, ECS received exactly one UpdateService that took
//! effect, and the ledger says what happened. moto holds ECS and the ledger across the fault,
//! including the writes whose answers were lost. `cargo test --test it retry_table -- --nocapture`
//! prints the table that docs/guarantees.md quotes.

use crate::support;

use crate::support::fault_proxy::{call, Call, Fault, FaultProxy, Plan};
use crate::support::{digest, push_event, TestBed, REGISTRY, TABLE};
use aws_sdk_dynamodb::types::AttributeValue;
use pushdeploy::deploy::{Deployer, OutcomeKind, Report, RetryableFailure};
use pushdeploy::event::parse_push;
use pushdeploy::invocation::Invocation;
use pushdeploy::ledger::{Kind, Status, HEAD_SK, QUARANTINE_PREFIX};
use pushdeploy::rollback::RollbackHandler;

const UPDATE_SERVICE: Call = call("ecs", "UpdateService");
/// The deploy path's two ledger transactions: #1 takes the service, #2 settles it.
const TAKE_OR_SETTLE: Call = call("dynamodb", "TransactWriteItems");

/// One fault: `call`'s `nth` request (1-based) and the `times - 1` after it fail as `fault`.
struct Row {
    step: &'static str,
    call: Call,
    nth: u32,
    times: u32,
    fault: Fault,
    /// What the first invocation must answer: `true` for an error Lambda retries.
    first_fails: bool,
}

/// Faults that outlast the SDK's 3 attempts, and faults the SDK (or pushdeploy) absorbs.
const PERSISTENT: u32 = 3;
const ONCE: u32 = 1;

const fn row(
    step: &'static str,
    call: Call,
    nth: u32,
    times: u32,
    fault: Fault,
    first_fails: bool,
) -> Row {
    Row {
        step,
        call,
        nth,
        times,
        fault,
        first_fails,
    }
}

fn answer(result: &Result<Report, RetryableFailure>) -> String {
    match result {
        Ok(report) => format!(
            "ok: {}",
            report
                .outcomes
                .iter()
                .map(|o| o.outcome.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(_) => "error (Lambda retries)".into(),
    }
}

fn report(result: Result<Report, RetryableFailure>) -> Report {
    match result {
        Ok(report) => report,
        Err(failure) => failure.report,
    }
}

async fn head(bed: &TestBed, service_arn: &str) -> (String, String) {
    let item = bed
        .dynamodb
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(service_arn.into()))
        .key("sk", AttributeValue::S(HEAD_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default();
    let text = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .cloned()
            .unwrap_or_default()
    };
    (text("state"), number("lease_until"))
}

/// Breaks `row`'s call, runs the first invocation (request id `request_id`), heals, and runs the
/// next delivery: Lambda's retry of a failed invocation keeps the request id; a duplicate
/// delivery of an answered one comes with a new id. Returns the first answer, and the report of
/// the second.
async fn break_then_retry<Handle, Handled>(
    proxy: &FaultProxy,
    row: &Row,
    request_id: &str,
    handle: Handle,
) -> (String, Report)
where
    Handle: Fn(Invocation) -> Handled,
    Handled: std::future::Future<Output = Result<Report, RetryableFailure>>,
{
    let first = Invocation {
        request_id: Some(request_id.to_string()),
        ..Invocation::default()
    };
    proxy.reset_counts();
    proxy.break_calls(Plan {
        call: row.call,
        skip: row.nth - 1,
        times: row.times,
        fault: row.fault,
    });
    let first_answer = handle(first.clone()).await;
    assert!(proxy.injected() > 0, "{}: the fault never fired", row.step);
    proxy.heal();
    assert_eq!(
        first_answer.is_err(),
        row.first_fails,
        "{} ({:?}): {first_answer:?}",
        row.step,
        row.fault
    );
    let retry = if first_answer.is_err() {
        first
    } else {
        Invocation {
            request_id: Some(format!("{request_id}-again")),
            ..Invocation::default()
        }
    };
    (answer(&first_answer), report(handle(retry).await))
}

/// Row `repository`'s first revision: family `repository`, its `app` on `latest`.
async fn row_revision(bed: &TestBed, repository: &str) -> String {
    bed.task_definition(
        repository,
        &[("app", &format!("{REGISTRY}/{repository}:latest"))],
    )
    .await
}

/// Row `i`'s push of `repository:latest` at digest `d`, as ECR confirmed it.
async fn row_push(bed: &TestBed, i: usize, repository: &str, d: char) -> serde_json::Value {
    bed.pushed(push_event(
        &format!("ev-{i}"),
        repository,
        "latest",
        &digest(d),
        "2026-11-26T12:00:00Z",
    ))
    .await
}

fn print_table(title: &str, lines: &[String]) {
    println!("\n{title}\n| call (request) | fault | first invocation | Lambda's retry | final state |\n|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deploy_call_failing_then_retried_ends_with_one_revision_and_one_deployment() {
    #[rustfmt::skip]
    let rows = [
        row("discovery", call("tagging", "GetResources"), 1, PERSISTENT, Fault::Unavailable, true),
        row("describe service", call("ecs", "DescribeServices"), 1, PERSISTENT, Fault::Throttled, true),
        row("describe definition", call("ecs", "DescribeTaskDefinition"), 1, PERSISTENT, Fault::Hang, true),
        row("read running digests", call("ecs", "DescribeServiceRevisions"), 1, PERSISTENT, Fault::Unavailable, true),
        row("take (quarantine, claim, intent)", TAKE_OR_SETTLE, 1, PERSISTENT, Fault::Unavailable, true),
        row("take (quarantine, claim, intent)", TAKE_OR_SETTLE, 1, ONCE, Fault::AnswerLost, false),
        row("take (quarantine, claim, intent)", TAKE_OR_SETTLE, 1, PERSISTENT, Fault::AnswerLost, true),
        row("register", call("ecs", "RegisterTaskDefinition"), 1, ONCE, Fault::Throttled, false),
        row("register", call("ecs", "RegisterTaskDefinition"), 1, ONCE, Fault::AnswerLost, false),
        row("register", call("ecs", "RegisterTaskDefinition"), 1, PERSISTENT, Fault::AnswerLost, false),
        row("register", call("ecs", "RegisterTaskDefinition"), 1, PERSISTENT, Fault::Unavailable, true),
        row("record revision", call("dynamodb", "PutItem"), 1, PERSISTENT, Fault::Unavailable, true),
        row("update service", UPDATE_SERVICE, 1, ONCE, Fault::AnswerLost, false),
        row("update service", UPDATE_SERVICE, 1, PERSISTENT, Fault::Unavailable, true),
        row("update service", UPDATE_SERVICE, 1, PERSISTENT, Fault::Hang, true),
        row("settle (record deployed, release claim)", TAKE_OR_SETTLE, 2, PERSISTENT, Fault::Unavailable, true),
        row("settle (record deployed, release claim)", TAKE_OR_SETTLE, 2, ONCE, Fault::AnswerLost, false),
        row("settle (record deployed, release claim)", TAKE_OR_SETTLE, 2, PERSISTENT, Fault::AnswerLost, true),
    ];
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let proxy = FaultProxy::start(bed.moto.address).await;
    let deployer = Deployer::new(&bed.sdk_via(&proxy.url).await, bed.config());
    let mut table = Vec::new();

    for (i, row) in rows.iter().enumerate() {
        // Each row has its own repository, family and service in one moto.
        let (repository, name) = (format!("app{i}"), format!("svc{i}"));
        let first = row_revision(&bed, &repository).await;
        let service_arn = bed
            .service(
                "prod",
                &name,
                &first,
                &[("pushdeploy:repository", &repository)],
            )
            .await;
        let event = row_push(&bed, i, &repository, 'c').await;
        let (first_text, second) =
            break_then_retry(&proxy, row, &format!("req-{i}"), |invocation| {
                let event = event.clone();
                let deployer = &deployer;
                async move { deployer.handle(event, &invocation).await }
            })
            .await;
        let outcome = &second.outcomes[0];
        assert!(
            matches!(
                outcome.outcome,
                OutcomeKind::Deployed | OutcomeKind::Skipped
            ),
            "row {i}: {outcome:?}"
        );
        assert!(!outcome.retryable, "row {i}: {outcome:?}");

        let revisions = bed.revisions(&repository).await;
        assert_eq!(revisions.len(), 2, "row {i}: exactly one new revision");
        let running = bed.running("prod", &name).await;
        assert_eq!(running, revisions[1], "row {i}");
        assert_eq!(
            bed.image(&running, "app").await,
            format!("{REGISTRY}/{repository}@{}", digest('c'))
        );
        let updates = proxy.forwarded(UPDATE_SERVICE);
        assert_eq!(updates, 1, "row {i}: UpdateService calls that reached ECS");
        // The ledger orders the push by the time ECR confirmed, not the event's: read it back by
        // event id.
        let event_id = parse_push(event).unwrap().event_id;
        let record = deployer
            .ledger()
            .latest(&service_arn, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.event_id == event_id)
            .expect("the deployment is recorded");
        assert_eq!(
            (record.status, record.new_task_definition.as_deref()),
            (Status::Deployed, Some(running.as_str())),
            "row {i}"
        );
        let (state, lease) = head(&bed, &service_arn).await;
        assert_eq!(
            (state.as_str(), lease.as_str()),
            ("deployed", "0"),
            "row {i}"
        );

        table.push(format!(
            "| {} `{}.{}` (#{}) | {}{} | {} | {}: {} | {} revision{} ({}), {} UpdateService, ledger `{}` |",
            row.step,
            row.call.service,
            row.call.operation,
            row.nth,
            row.fault.describe(),
            if row.times == ONCE { ", once" } else { ", every attempt" },
            first_text,
            outcome.outcome.as_str(),
            outcome.reason.as_deref().unwrap_or("deployed"),
            revisions.len() - 1,
            if revisions.len() == 2 { "" } else { "s" },
            running.rsplit('/').next().unwrap_or_default(),
            updates,
            record.status.as_str(),
        ));
    }
    print_table("Deploy path (one service)", &table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rollback_call_failing_then_retried_rolls_back_once_and_quarantines() {
    #[rustfmt::skip]
    let rows = [
        row("describe service", call("ecs", "DescribeServices"), 1, PERSISTENT, Fault::Unavailable, true),
        row("read history", call("dynamodb", "Query"), 1, PERSISTENT, Fault::Throttled, true),
        row("claim", call("dynamodb", "UpdateItem"), 1, PERSISTENT, Fault::Unavailable, true),
        row("claim", call("dynamodb", "UpdateItem"), 1, ONCE, Fault::AnswerLost, false),
        row("describe target", call("ecs", "DescribeTaskDefinition"), 1, PERSISTENT, Fault::Unavailable, true),
        row("register pinned copy", call("ecs", "RegisterTaskDefinition"), 1, ONCE, Fault::AnswerLost, false),
        row("register pinned copy", call("ecs", "RegisterTaskDefinition"), 1, PERSISTENT, Fault::AnswerLost, false),
        row("register pinned copy", call("ecs", "RegisterTaskDefinition"), 1, PERSISTENT, Fault::Unavailable, true),
        row("record ECS id", call("dynamodb", "PutItem"), 1, PERSISTENT, Fault::Unavailable, true),
        row("record intent", call("dynamodb", "PutItem"), 2, PERSISTENT, Fault::Unavailable, true),
        row("update service", UPDATE_SERVICE, 1, ONCE, Fault::AnswerLost, false),
        row("update service", UPDATE_SERVICE, 1, PERSISTENT, Fault::AnswerLost, false),
        row("update service", UPDATE_SERVICE, 1, PERSISTENT, Fault::Hang, true),
        row("record rollback", call("dynamodb", "PutItem"), 3, PERSISTENT, Fault::Unavailable, true),
        row("quarantine", call("dynamodb", "PutItem"), 4, PERSISTENT, Fault::Unavailable, true),
        row("record failure", call("dynamodb", "PutItem"), 5, PERSISTENT, Fault::Unavailable, true),
        row("release claim", call("dynamodb", "UpdateItem"), 2, PERSISTENT, Fault::Unavailable, true),
    ];
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let proxy = FaultProxy::start(bed.moto.address).await;
    let via_proxy = bed.sdk_via(&proxy.url).await;
    let deployer = Deployer::new(&via_proxy, bed.config());
    let rollback = RollbackHandler::new(&via_proxy, bed.config());
    let mut table = Vec::new();

    for (i, row) in rows.iter().enumerate() {
        let (repository, name) = (format!("app{i}"), format!("svc{i}"));
        // `latest` names a real image, which ECS resolves when the service starts.
        let good_digest = bed.push_image(&repository, "latest", 0).await;
        let good = row_revision(&bed, &repository).await;
        let service_arn = bed
            .service_with(
                "prod",
                &name,
                &good,
                &[("pushdeploy:repository", &repository)],
                support::circuit_breaker(false),
            )
            .await;
        let push = row_push(&bed, i, &repository, 'd').await;
        let deployed = deployer
            .handle(push.clone(), &Invocation::default())
            .await
            .unwrap();
        let bad = deployed.outcomes[0].task_definition.clone().unwrap();
        assert_eq!(bed.running("prod", &name).await, bad);

        // The new tasks fail to start; ECS's circuit breaker reports the deployment FAILED.
        bed.world().fail_tasks("prod", &name, 3).await;
        let event = bed
            .world()
            .take_event("SERVICE_DEPLOYMENT_FAILED")
            .await
            .expect("ECS reports the deployment FAILED");
        let (first_text, second) =
            break_then_retry(&proxy, row, &format!("rb-{i}"), |invocation| {
                let event = event.clone();
                let rollback = &rollback;
                async move { rollback.handle(event, &invocation).await }
            })
            .await;
        let outcome = &second.outcomes[0];
        assert!(!outcome.retryable, "row {i}: {outcome:?}");

        // Back on what `good` ran: a copy of it pinned to the digest `latest` named then (the tag
        // now names the failed image), registered once.
        let back = bed.running("prod", &name).await;
        let (_, tags) = bed.describe(&back).await;
        let pins = tags.iter().find(|t| t.key() == Some("pushdeploy:pins"));
        assert_eq!(
            pins.and_then(|t| t.value()),
            Some(good.as_str()),
            "row {i}: rolled back"
        );
        assert_eq!(
            bed.image(&back, "app").await,
            format!("{REGISTRY}/{repository}@{good_digest}"),
            "row {i}"
        );
        assert_eq!(bed.revisions(&repository).await.len(), 3, "row {i}");
        let updates = proxy.forwarded(UPDATE_SERVICE);
        assert_eq!(updates, 1, "row {i}: UpdateService calls that reached ECS");
        let event_id = parse_push(push).unwrap().event_id;
        let ledger = deployer.ledger();
        let history = ledger.latest(&service_arn, 10).await.unwrap();
        let failed = history
            .iter()
            .find(|r| r.event_id == event_id && r.kind == Kind::Deploy)
            .cloned()
            .unwrap();
        let order_key = failed.order_key.clone();
        assert_eq!(failed.status, Status::Failed, "row {i}: {failed:?}");
        let reverted = ledger
            .record(&service_arn, &format!("{order_key}#rollback"))
            .await
            .unwrap()
            .expect("the rollback is recorded");
        assert_eq!(
            (
                reverted.kind,
                reverted.status,
                reverted.new_task_definition.as_deref()
            ),
            (Kind::Rollback, Status::Deployed, Some(back.as_str())),
            "row {i}"
        );
        let quarantined = bed
            .dynamodb
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(service_arn.clone()))
            .key(
                "sk",
                AttributeValue::S(format!("{QUARANTINE_PREFIX}{}", digest('d'))),
            )
            .send()
            .await
            .unwrap()
            .item
            .is_some();
        assert!(quarantined, "row {i}: the digest is quarantined");
        let (state, lease) = head(&bed, &service_arn).await;
        assert_eq!((state.as_str(), lease.as_str()), ("failed", "0"), "row {i}");

        table.push(format!(
            "| {} `{}.{}` (#{}) | {}{} | {} | {} | back on {} (pinned copy), {} UpdateService, deployment `{}`, rollback `{}`, digest quarantined |",
            row.step,
            row.call.service,
            row.call.operation,
            row.nth,
            row.fault.describe(),
            if row.times == ONCE { ", once" } else { ", every attempt" },
            first_text,
            outcome.outcome.as_str(),
            back.rsplit('/').next().unwrap_or_default(),
            updates,
            failed.status.as_str(),
            reverted.status.as_str(),
        ));
    }
    print_table("Rollback path (one failed deployment)", &table);
}
