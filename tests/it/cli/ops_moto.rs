//! The ops experience against moto: the `pushdeploy` CLI (the real binary: pause, resume,
//! history, status), the dry run (nothing in ECS, the ledger or SNS changes), and SNS
//! notifications read back through an SQS subscription. moto's SNS delivers to SQS in-process,
//! with the subject and message attributes in the envelope, as SNS does. ECS's deployment
//! state changes are the ones the deployment-aware world (`tests/support/ecs_world.py`) emits.

use crate::support;

use crate::support::ecs_world::World;
use crate::support::{digest, push_event, TestBed, REGISTRY, TABLE};
use pushdeploy::deploy::{Deployer, OutcomeKind, Report};
use pushdeploy::invocation::Invocation;
use pushdeploy::rollback::RollbackHandler;
use serde_json::Value;

const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

/// Service prod/web following repository `web`, on `web:latest` (a real image in moto's ECR,
/// so that ECS resolves the tag to a digest) beside a sidecar, with the circuit breaker on and
/// its rollback off: ECS reports a failed deployment and leaves the rollback to pushdeploy.
/// (the bed, the first revision, the digest `latest` named when the service was created)
async fn world() -> (TestBed, String, String) {
    let bed = TestBed::start().await;
    let first_digest = bed.push_image("web", "latest", 0).await;
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
    let breaker = support::circuit_breaker(false);
    bed.service_with(
        "prod",
        "web",
        &first,
        &[("pushdeploy:repository", "web")],
        breaker,
    )
    .await;
    (bed, first, first_digest)
}

/// A push of `web:latest` with digest `d`, made now by the world's clock.
async fn push(bed: &TestBed, deployer: &Deployer, world: &World, id: &str, d: char) -> Report {
    let time = world.now().await;
    push_at(bed, deployer, id, d, &time).await
}

/// Pushes `web:latest` with digest `d` to ECR and delivers its event, stamped `time`.
async fn push_at(bed: &TestBed, deployer: &Deployer, id: &str, d: char, time: &str) -> Report {
    bed.ecr_has("web", "latest", &digest(d)).await;
    deployer
        .handle(
            push_event(id, "web", "latest", &digest(d), time),
            &Invocation::default(),
        )
        .await
        .unwrap()
}

/// Three tasks of the service's deployment fail: the circuit breaker (threshold 3) marks it
/// FAILED and ECS sends SERVICE_DEPLOYMENT_FAILED.
async fn fail_deployment(world: &World, cluster: &str, service: &str) {
    world.fail_tasks(cluster, service, 3).await;
}

/// The events ECS emitted since the last delivery, each handed to the rollback function in
/// order; (event, report) per event.
async fn deliver(rollback: &RollbackHandler, world: &World) -> Vec<(Value, Report)> {
    let mut answers = Vec::new();
    for event in world.take_events().await {
        let report = rollback
            .handle(event.clone(), &Invocation::default())
            .await
            .unwrap();
        answers.push((event, report));
    }
    answers
}

/// The report for the event named `name` (`SERVICE_DEPLOYMENT_FAILED`, ...): exactly one.
fn answer_to<'a>(answers: &'a [(Value, Report)], name: &str) -> &'a Report {
    let found: Vec<&Report> = answers
        .iter()
        .filter(|(event, _)| event["detail"]["eventName"] == name)
        .map(|(_, report)| report)
        .collect();
    assert_eq!(found.len(), 1, "one {name} expected: {answers:#?}");
    found[0]
}

/// The pinned copy a rollback landed on: it pins `original` (its `pushdeploy:pins` tag), and its
/// app container runs `digest`, the one ECS resolved `latest` to before the failed push.
async fn assert_pinned_copy(bed: &TestBed, pinned: &str, original: &str, digest: &str) {
    assert_ne!(
        pinned, original,
        "a copy, not the revision that names a tag"
    );
    let (_, tags) = bed.describe(pinned).await;
    let pins = tags
        .iter()
        .find(|t| t.key() == Some("pushdeploy:pins"))
        .and_then(|t| t.value());
    assert_eq!(pins, Some(original), "{tags:?}");
    assert_eq!(
        bed.image(pinned, "app").await,
        format!("{REGISTRY}/web@{digest}")
    );
    assert_eq!(bed.image(pinned, "log-router").await, "fluent-bit:stable");
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

/// The report counts no call that writes: no revision, no service update, no ledger item, no
/// message.
fn assert_wrote_nothing(report: &Report) {
    for write in [
        "ECS.RegisterTaskDefinition",
        "ECS.UpdateService",
        "DynamoDB.PutItem",
        "DynamoDB.UpdateItem",
        "SNS.Publish",
    ] {
        assert_eq!(report.aws_calls.get(write), None, "{write}: {report:?}");
    }
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
    let (bed, first, first_digest) = world().await;
    let world = bed.world();
    let deployer = Deployer::new(&bed.sdk, bed.config());

    let (code, out, err) = cli(&bed, &["pause", "--cluster", "prod", "--service", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("paused {SERVICE_ARN}")), "{out}");
    let report = push(&bed, &deployer, &world, "push-1", '1').await;
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
    let report = push(&bed, &deployer, &world, "push-2", '2').await;
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

    // Its tasks fail; ECS reports it FAILED; the rollback puts the first revision back (as a
    // copy pinned to the digest it ran: it names the app by tag, and `latest` is not to be
    // resolved anew). Then a third push deploys.
    let rollback = RollbackHandler::new(&bed.sdk, bed.config());
    fail_deployment(&world, "prod", "web").await;
    let answers = deliver(&rollback, &world).await;
    let report = answer_to(&answers, "SERVICE_DEPLOYMENT_FAILED");
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::RolledBack,
        "{report:?}"
    );
    let pinned = bed.running("prod", "web").await;
    assert_pinned_copy(&bed, &pinned, &first, &first_digest).await;
    let report = push(&bed, &deployer, &world, "push-3", '3').await;
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
    // The rollback's row names the pinned copy and the digest it pins (the copy is web:3, so
    // the third push's revision is web:4).
    assert_eq!(
        rows,
        [
            ("deploy", "deployed", d3.as_str(), third.as_str()),
            (
                "rollback",
                "deployed",
                first_digest.as_str(),
                pinned.as_str()
            ),
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
        lines[1].contains("web:3 -> web:4") && lines[1].contains(&d3[..19]),
        "{table}"
    );
    assert!(
        lines[2].contains("rollback") && lines[2].contains("web:2 -> web:3"),
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
    let (bed, first, first_digest) = world().await;
    let world = bed.world();
    let (topic, queue_url) = bed.notify_topic().await;
    let mut config = bed.config();
    config.notify_topic_arn = Some(topic.clone());
    let deployer = Deployer::new(&bed.sdk, config.clone());
    let rollback = RollbackHandler::new(&bed.sdk, config.clone());

    let report = push(&bed, &deployer, &world, "push-1", '1').await;
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
    push(&bed, &deployer, &world, "push-1b", '1').await;
    // It fails and is rolled back: one message, subject naming service and outcome. (ECS's
    // IN_PROGRESS event before the FAILED one is recorded and says nothing either.)
    fail_deployment(&world, "prod", "web").await;
    let answers = deliver(&rollback, &world).await;
    let report = answer_to(&answers, "SERVICE_DEPLOYMENT_FAILED");
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
    // Back on the first revision, as a copy pinned to the digest it ran.
    let pinned = bed.running("prod", "web").await;
    assert_pinned_copy(&bed, &pinned, &first, &first_digest).await;

    // A new push completes: started, then completed with push-to-completed time. The world's
    // clock moves on 150 s before the tasks run; ECS's event says when, to the second.
    let pushed_at = world.now().await;
    push_at(&bed, &deployer, "push-2", '2', &pushed_at).await;
    world.advance(150).await;
    world.start_tasks("prod", "web", 2).await;
    let answers = deliver(&rollback, &world).await;
    let (event, report) = answers
        .iter()
        .find(|(event, _)| event["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED")
        .expect("ECS reports the deployment COMPLETED");
    let completed = &report.outcomes[0];
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let expected = ms(event["detail"]["updatedAt"].as_str().unwrap()) - ms(&pushed_at);
    assert!(
        (150_000..=152_000).contains(&expected),
        "{expected} ms: {event}"
    );
    // The deploy function counts from when the tag moved as ECR confirms it: the later of the
    // event's time and the image's imagePushedAt (src/confirm.rs), which ECR keeps to the second
    // on the wall clock; the two may differ by a second.
    let confirmed = bed.ecr_pushed_at("web", &digest('2')).await;
    let moved = ms(&pushed_at).max(ms(&confirmed));
    let from_confirmed = ms(event["detail"]["updatedAt"].as_str().unwrap()) - moved;
    assert_eq!(
        completed.push_to_completed_ms,
        Some(from_confirmed as u64),
        "pushed {pushed_at} (event), {confirmed} (ECR): {report:?}"
    );
    // The rollback's own deployment was replaced by the push's: its IN_PROGRESS says nothing.
    let got = bed.notifications(&queue_url, 2).await;
    let subjects: Vec<&str> = got.iter().map(|n| n["Subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        [
            "pushdeploy: prod/web deployment started",
            "pushdeploy: prod/web deployment completed"
        ]
    );
    assert!(
        got[1]["Message"]
            .as_str()
            .unwrap()
            .contains(&format!("Push to completed: {} s", expected / 1000)),
        "{}",
        got[1]["Message"]
    );

    // A topic that does not exist: the deployment goes ahead, the failure is only logged.
    let mut broken = config.clone();
    broken.notify_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:no-such-topic".into());
    let deployer = Deployer::new(&bed.sdk, broken);
    let report = push(&bed, &deployer, &world, "push-3", '3').await;
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

    // The topic the stack creates is encrypted with the AWS managed key (template.yaml,
    // NotifyTopicForStack: KmsMasterKeyId alias/aws/sns): a notification still reaches the
    // subscriber.
    let sns = aws_sdk_sns::Client::new(&bed.sdk);
    let encrypted = sns
        .create_topic()
        .name("pushdeploy-encrypted")
        .attributes("KmsMasterKeyId", "alias/aws/sns")
        .send()
        .await
        .expect("create the encrypted topic")
        .topic_arn
        .unwrap();
    let attributes = sns
        .get_topic_attributes()
        .topic_arn(&encrypted)
        .send()
        .await
        .expect("topic attributes");
    let key = attributes
        .attributes()
        .and_then(|a| a.get("KmsMasterKeyId"));
    assert_eq!(key.map(String::as_str), Some("alias/aws/sns"));
    sns.subscribe()
        .topic_arn(&encrypted)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:notifications")
        .send()
        .await
        .expect("subscribe the queue");
    let mut sealed = config.clone();
    sealed.notify_topic_arn = Some(encrypted);
    let deployer = Deployer::new(&bed.sdk, sealed);
    let report = push(&bed, &deployer, &world, "push-4", '4').await;
    assert_eq!(
        report.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{report:?}"
    );
    let got = bed.notifications(&queue_url, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["Subject"], "pushdeploy: prod/web deployment started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_decides_and_shows_the_diff_but_changes_nothing() {
    let (bed, first, _) = world().await;
    let world = bed.world();
    let (topic, queue_url) = bed.notify_topic().await;
    let mut config = bed.config();
    config.dry_run = true;
    config.notify_topic_arn = Some(topic);
    let deployer = Deployer::new(&bed.sdk, config.clone());

    let report = push(&bed, &deployer, &world, "push-1", '1').await;
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
    assert_wrote_nothing(&report);
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
    let report = push(&bed, &deployer, &world, "push-2", '2').await;
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
    // The failure is the one ECS reports for web's deployment of push-2.
    let rollback = RollbackHandler::new(&bed.sdk, config);
    let deployed = bed.running("prod", "web").await;
    let items = ledger_items(&bed).await;
    let revisions = bed.revisions("web").await;
    fail_deployment(&world, "prod", "web").await;
    let answers = deliver(&rollback, &world).await;
    for (event, report) in &answers {
        assert_eq!(
            report.outcomes[0].outcome,
            OutcomeKind::DryRun,
            "{event}: {report:?}"
        );
    }
    let report = answer_to(&answers, "SERVICE_DEPLOYMENT_FAILED");
    let o = &report.outcomes[0];
    assert!(
        o.reason
            .as_deref()
            .unwrap()
            .starts_with(&format!("dry run: would roll the service back to {first}")),
        "{o:?}"
    );
    assert_eq!(bed.running("prod", "web").await, deployed);
    assert_eq!(ledger_items(&bed).await, items);
    // Not even the pinned copy a real rollback would register.
    assert_eq!(bed.revisions("web").await, revisions);
    assert_wrote_nothing(report);
}

/// The environment of a CLI run that finds nothing on the machine: no profile, no credentials
/// file (both point at empty files), no instance metadata, and an endpoint on a closed loopback
/// port, so that nothing leaves the machine whatever the CLI gets to.
fn bare_env(test: &str) -> Vec<(String, String)> {
    let dir = std::env::temp_dir().join(format!("pushdeploy-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = |name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, "").unwrap();
        path.display().to_string()
    };
    [
        ("HOME", dir.display().to_string()),
        ("AWS_CONFIG_FILE", empty("config")),
        ("AWS_SHARED_CREDENTIALS_FILE", empty("credentials")),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", closed_port_url()),
        ("PUSHDEPLOY_TABLE", TABLE.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A loopback URL nothing listens on (the port was free a moment ago).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Runs the `pushdeploy` CLI with exactly `env`; (exit code, stderr).
fn cli_env(env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"))
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("run pushdeploy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `env` with `key` set to `value` (replaced if there).
fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
    env
}

/// The CLI failed (exit 2) saying one line, `pushdeploy: <sentence>`, with no Debug dump of the
/// SDK's error chain in it.
fn assert_one_sentence(code: i32, stderr: &str) -> &str {
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for dump in ["DispatchFailure(", "ConnectorError {", "Some(", " { "] {
        assert!(!stderr.contains(dump), "a Debug dump: {stderr}");
    }
    assert!(stderr.chars().count() < 250, "{stderr}");
    stderr.trim_end()
}

#[test]
fn without_credentials_the_cli_says_what_to_set() {
    let env = with(bare_env("no-credentials"), "AWS_REGION", "us-east-1");
    let (code, stderr) = cli_env(&env, &["status"]);
    assert_eq!(
        assert_one_sentence(code, &stderr),
        "pushdeploy: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides them"
    );
}

#[test]
fn without_a_region_the_cli_says_so_before_any_call() {
    let env = with(bare_env("no-region"), "AWS_ACCESS_KEY_ID", "testing");
    let env = with(env, "AWS_SECRET_ACCESS_KEY", "testing");
    for args in [
        &["status"][..],
        &["pause", "--cluster", "prod", "--service", "web"],
    ] {
        let (code, stderr) = cli_env(&env, args);
        assert_eq!(
            assert_one_sentence(code, &stderr),
            "pushdeploy: no AWS region: set AWS_REGION",
            "{args:?}"
        );
    }
}

#[test]
fn an_endpoint_that_cannot_be_reached_is_named() {
    let url = closed_port_url();
    let env = with(bare_env("unreachable"), "AWS_REGION", "us-east-1");
    let env = with(env, "AWS_ACCESS_KEY_ID", "testing");
    let env = with(env, "AWS_SECRET_ACCESS_KEY", "testing");
    let env = with(env, "AWS_ENDPOINT_URL", &url);
    let (code, stderr) = cli_env(&env, &["status"]);
    let said = assert_one_sentence(code, &stderr);
    assert!(
        said.starts_with(&format!(
            "pushdeploy: cannot reach {url} for dynamodb:Query ("
        )) && said.ends_with("): check AWS_ENDPOINT_URL and the network"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ledger_table_is_named_with_its_region_and_the_setting() {
    let bed = TestBed::start().await;
    let env = with(bed.function_env(), "PUSHDEPLOY_TABLE", "no-such-table");
    for args in [&["status"][..], &["history", "--service", "web"]] {
        let (code, stderr) = cli_env(&env, args);
        assert_eq!(
            assert_one_sentence(code, &stderr),
            "pushdeploy: the ledger table no-such-table does not exist in us-east-1: set PUSHDEPLOY_TABLE to the stack's LedgerTableName output (and AWS_REGION to the stack's region)",
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_names_the_action_the_resource_and_who_to_grant_it_to() {
    use support::fault_proxy::{call, Fault, FaultProxy, Plan, DENIED_PRINCIPAL};
    let bed = TestBed::start().await;
    let proxy = FaultProxy::start(bed.moto.address).await;
    proxy.break_calls(Plan {
        call: call("dynamodb", "Query"),
        skip: 0,
        times: u32::MAX,
        fault: Fault::Denied,
    });
    let env = with(bed.function_env(), "AWS_ENDPOINT_URL", &proxy.url);
    // The proxy answers on this runtime while the CLI runs.
    let (code, stderr) = tokio::task::spawn_blocking(move || cli_env(&env, &["status"]))
        .await
        .unwrap();
    assert_eq!(proxy.injected(), 1, "refused once, not retried: {stderr}");
    assert_eq!(
        assert_one_sentence(code, &stderr),
        format!("pushdeploy: access denied to dynamodb:Query on arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/index/in-flight: grant dynamodb:Query to {DENIED_PRINCIPAL} in its IAM policy")
    );
}

/// A digest quarantined for a service is skipped; `pushdeploy unquarantine` lifts it (the
/// ledger keeps who, when and the reason it had), and the next push of it deploys. Lifting it
/// again says it is not quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquarantine_lets_a_quarantined_digest_deploy_again_and_says_who_lifted_it() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (bed, _, _) = world().await;
    let world = bed.world();
    let deployer = Deployer::new(&bed.sdk, bed.config());
    let bad = digest('b');
    let s = |v: &str| AttributeValue::S(v.to_string());
    bed.dynamodb
        .put_item()
        .table_name(TABLE)
        .item("pk", s(SERVICE_ARN))
        .item("sk", s(&format!("QUARANTINE#{bad}")))
        .item("digest", s(&bad))
        .item("deployment", s("DEPLOY#x"))
        .item(
            "reason",
            s("the gate answered FAILED: no checks configured"),
        )
        .item("at", s("2026-12-05T12:00:00Z"))
        .send()
        .await
        .unwrap();
    let skipped = push(&bed, &deployer, &world, "q-1", 'b').await;
    assert_eq!(
        skipped.outcomes[0].outcome,
        OutcomeKind::Skipped,
        "{skipped:?}"
    );
    assert!(
        skipped.outcomes[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("quarantined")),
        "{skipped:?}"
    );

    let (code, out, err) = cli(
        &bed,
        &[
            "unquarantine",
            "--cluster",
            "prod",
            "--service",
            "web",
            "--digest",
            &bad,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no checks configured"), "{out}");
    let items = bed
        .dynamodb
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(SERVICE_ARN))
        .send()
        .await
        .unwrap();
    let sks: Vec<String> = items
        .items()
        .iter()
        .filter_map(|i| i.get("sk")?.as_s().ok().cloned())
        .collect();
    assert!(!sks.contains(&format!("QUARANTINE#{bad}")), "{sks:?}");
    let lifted = items
        .items()
        .iter()
        .find(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("QUARANTINE_LIFTED#"))
        })
        .expect("the lifting is recorded");
    assert!(
        lifted["by"].as_s().unwrap().starts_with("arn:aws:"),
        "{lifted:?}"
    );

    let deployed = push(&bed, &deployer, &world, "q-2", 'b').await;
    assert_eq!(
        deployed.outcomes[0].outcome,
        OutcomeKind::Deployed,
        "{deployed:?}"
    );
    let (code, _, err) = cli(
        &bed,
        &[
            "unquarantine",
            "--cluster",
            "prod",
            "--service",
            "web",
            "--digest",
            &bad,
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("is not quarantined"), "{err}");
}
