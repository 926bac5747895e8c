//! `pushdeploy replay` (the real binary) against moto's SQS, ECS, ECR, DynamoDB, Lambda and IAM:
//! both kinds of dead letter are replayed through the handler of the function whose queue they
//! sit in (the queue's `pushdeploy:function` tag) and deleted, what cannot be replayed or was
//! meant for the other function stays, a queue that does not say its function is refused, and
//! replaying a push that is already deployed changes nothing.
//!
//! Each dead letter runs with the settings of the function it names, read from that function
//! (moto's Lambda holds the stack's two functions, created without Docker: nothing invokes
//! them), and only when AWS confirms it is that function's own: the function's on-failure
//! destination is the queue, and SQS names its role (Lambda's record) or EventBridge (an event
//! it could not deliver) as the sender. Planted messages are kept as untrusted.
//!
//! moto gives every message the same SenderId (`AIDAIT2UOQQY3AUEKVGXU`, its `DEFAULT_SENDER_ID`),
//! whoever sent it. [`Senders`], a loopback proxy in front of moto, gives each message the
//! SenderId SQS documents for its sender instead ("For an IAM role, returns the IAM role ID, for
//! example ABCDE1F2GH3I4JK5LMNOP:i-a123b456"): the role's id (from moto's IAM) and the session for
//! the credentials a test sends with as a function's role, a stand-in id for EventBridge's (AWS
//! documents none), and moto's own for everyone else.

use crate::support::fault_proxy::forward_to_moto;
use crate::support::{digest, push_event, TestBed, REGISTRY, TABLE};
use aws_sdk_sqs::types::MessageAttributeValue;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction";
const ROLLBACK_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-RollbackFunction-Q9w8E7r6";

/// The SenderId this test gives EventBridge's dead letters. AWS does not document the real
/// one, so replay keeps them until the operator names it (`--eventbridge-sender`).
const EVENTBRIDGE_SENDER: &str = "AIDAEVENTBRIDGESTANDIN";
/// What moto says sent every message it was not told otherwise about: someone with
/// sqs:SendMessage, neither function's role nor EventBridge.
const SOMEONE: &str = "AIDAIT2UOQQY3AUEKVGXU";

/// Who sends a message, by the credentials a test sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// A session of the deploy function's role: Lambda writing its on-failure record.
    DeployRole,
    /// A session of the rollback function's role.
    RollbackRole,
    /// EventBridge, with an event it could not deliver.
    EventBridge,
    /// Anyone else allowed sqs:SendMessage.
    Someone,
}

impl Sender {
    fn access_key(self) -> &'static str {
        match self {
            Sender::DeployRole => "AKIADEPLOYFUNCTIONROLE",
            Sender::RollbackRole => "AKIAROLLBACKFUNCTIONROLE",
            Sender::EventBridge => "AKIAEVENTBRIDGE",
            Sender::Someone => "testing",
        }
    }
}

/// A loopback proxy in front of moto that gives each message the SenderId of whoever sent it
/// (see the module's documentation). Everything else passes through untouched.
struct Senders {
    url: String,
    /// Access key -> the SenderId SQS gives that sender's messages.
    ids: Arc<Mutex<HashMap<String, String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Senders {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The SenderId of each message sent through the proxy, by MessageId.
#[derive(Default)]
struct Sent {
    messages: HashMap<String, String>,
}

impl Senders {
    async fn start(upstream: SocketAddr) -> Senders {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Sent::default()));
        let ids = Arc::new(Mutex::new(HashMap::new()));
        let (shared, known) = (state.clone(), ids.clone());
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, known) = (shared.clone(), known.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        relay(state.clone(), known.clone(), upstream, req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Senders { url, ids, server }
    }

    /// Messages sent with `sender`'s credentials carry `id` as their SenderId.
    fn name(&self, sender: Sender, id: &str) {
        self.ids
            .lock()
            .unwrap()
            .insert(sender.access_key().to_string(), id.to_string());
    }
}

async fn relay(
    state: Arc<Mutex<Sent>>,
    known: Arc<Mutex<HashMap<String, String>>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let target = header("x-amz-target");
    // AWS4-HMAC-SHA256 Credential=<access key>/<date>/<region>/<service>/aws4_request, ...
    let access_key = header("authorization")
        .split_once("Credential=")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let (mut parts, mut body) = forward_to_moto(upstream, &parts, body).await?;
    match target.as_str() {
        "AmazonSQS.SendMessage" => {
            let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = known.lock().unwrap().get(&access_key).cloned();
            if let (Some(message_id), Some(id)) = (sent["MessageId"].as_str(), id) {
                state
                    .lock()
                    .unwrap()
                    .messages
                    .insert(message_id.to_string(), id);
            }
        }
        "AmazonSQS.ReceiveMessage" => {
            let mut received: Value = serde_json::from_slice(&body).unwrap_or_default();
            let state = state.lock().unwrap();
            for message in received["Messages"].as_array_mut().into_iter().flatten() {
                let id = message["MessageId"]
                    .as_str()
                    .and_then(|m| state.messages.get(m));
                if let (Some(id), Some(attributes)) = (id, message["Attributes"].as_object_mut()) {
                    if attributes.contains_key("SenderId") {
                        attributes.insert("SenderId".into(), json!(id));
                    }
                }
            }
            body = Bytes::from(received.to_string());
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
        }
        _ => {}
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The stack as template.yaml makes it, in moto: the two functions (their settings in their
/// environment, their roles, each one's on-failure destination its own queue) and the
/// senders of dead letters.
struct Stack {
    senders: Senders,
    sdk: aws_config::SdkConfig,
}

impl Stack {
    /// The deploy function (`deploy_settings` besides PUSHDEPLOY_TABLE), sending its failed
    /// events to `deploy_queue`, and the rollback function, to `rollback_queue`.
    async fn new(
        bed: &TestBed,
        deploy_settings: &[(&str, &str)],
        deploy_queue: &str,
        rollback_queue: &str,
    ) -> Stack {
        let senders = Senders::start(bed.moto.address).await;
        let iam = aws_sdk_iam::Client::new(&bed.sdk);
        let lambda = aws_sdk_lambda::Client::new(&bed.sdk);
        let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
        for (arn, settings, queue, sender) in [
            (
                FUNCTION_ARN,
                deploy_settings,
                deploy_queue,
                Sender::DeployRole,
            ),
            (ROLLBACK_ARN, &[][..], rollback_queue, Sender::RollbackRole),
        ] {
            let name = arn.rsplit(':').next().unwrap();
            let role_id =
                function(&iam, &lambda, name, settings, &queue_arn(&sqs, queue).await).await;
            // Lambda writes the record with a session of the function's role.
            senders.name(sender, &format!("{role_id}:{name}"));
        }
        senders.name(Sender::EventBridge, EVENTBRIDGE_SENDER);
        let sdk = bed.sdk.to_builder().endpoint_url(&senders.url).build();
        Stack { senders, sdk }
    }

    /// The stack with its two dead-letter queues, each tagged with its function, as the
    /// template makes them: (stack, deploy queue URL, rollback queue URL).
    async fn with_queues(
        bed: &TestBed,
        deploy_settings: &[(&str, &str)],
    ) -> (Stack, String, String) {
        let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
        let deploy_queue = queue(&sqs, "pushdeploy-DeployDeadLetterQueue", Some("deploy")).await;
        let rollback_queue =
            queue(&sqs, "pushdeploy-RollbackDeadLetterQueue", Some("rollback")).await;
        let stack = Stack::new(bed, deploy_settings, &deploy_queue, &rollback_queue).await;
        (stack, deploy_queue, rollback_queue)
    }

    /// An SQS client that sends as `sender`.
    fn sqs_as(&self, sender: Sender) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&self.sdk)
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    sender.access_key(),
                    "secret",
                    None,
                    None,
                    "replay_moto",
                ))
                .build(),
        )
    }

    async fn send(
        &self,
        sender: Sender,
        queue_url: &str,
        body: String,
        attributes: Vec<(&str, MessageAttributeValue)>,
    ) {
        send(&self.sqs_as(sender), queue_url, body, attributes).await;
    }

    /// A genuine dead letter: Lambda's on-failure record of `event`, sent to `queue_url` by a
    /// session of the deploy function's role.
    async fn dead_letter(&self, queue_url: &str, event: &Value) {
        self.send(
            Sender::DeployRole,
            queue_url,
            on_failure_record(event),
            vec![],
        )
        .await;
    }

    /// `pushdeploy replay --queue-url <queue_url> <args>` through this stack's senders, with
    /// the shell of someone who set only PUSHDEPLOY_TABLE.
    fn run_replay(&self, bed: &TestBed, queue_url: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushdeploy"))
            .args(["replay", "--queue-url", queue_url])
            .args(args)
            .envs(bed.function_env())
            .env("AWS_ENDPOINT_URL", &self.senders.url)
            .output()
            .expect("run pushdeploy replay")
    }

    fn replay(&self, bed: &TestBed, queue_url: &str, args: &[&str]) -> Vec<Value> {
        lines_of(&self.run_replay(bed, queue_url, args))
    }

    /// A replay `seconds` later on the world's clock, which the handlers read from AWS's
    /// answers (their Date header): the rollback function measures its sweep from that clock,
    /// not from the event's `time`.
    async fn replay_later(
        &self,
        bed: &TestBed,
        queue_url: &str,
        args: &[&str],
        seconds: u64,
    ) -> Vec<Value> {
        bed.world().advance(seconds).await;
        self.replay(bed, queue_url, args)
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap()
}

/// A function as SAM makes it: its own role, its settings in its environment (the table
/// always), its failed events to `on_failure`. Returns its role's id.
async fn function(
    iam: &aws_sdk_iam::Client,
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    settings: &[(&str, &str)],
    on_failure: &str,
) -> String {
    let role = iam
        .create_role()
        .role_name(format!("{name}Role-X"))
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("create role")
        .role
        .unwrap();
    let mut environment =
        aws_sdk_lambda::types::Environment::builder().variables("PUSHDEPLOY_TABLE", TABLE);
    for (name, value) in settings {
        environment = environment.variables(*name, *value);
    }
    // An empty zip archive: moto stores the code; nothing invokes the function.
    let mut empty_zip = b"PK\x05\x06".to_vec();
    empty_zip.resize(22, 0);
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.arn())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(empty_zip))
                .build(),
        )
        .environment(environment.build())
        .send()
        .await
        .expect("create function");
    lambda
        .put_function_event_invoke_config()
        .function_name(name)
        .maximum_retry_attempts(2)
        .destination_config(
            aws_sdk_lambda::types::DestinationConfig::builder()
                .on_failure(
                    aws_sdk_lambda::types::OnFailure::builder()
                        .destination(on_failure)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("put event invoke config");
    role.role_id().to_string()
}

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

/// The JSON lines of a replay that succeeded.
fn lines_of(out: &std::process::Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON line per message"))
        .collect()
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

/// The arguments that let replay take EventBridge's dead letters of this test.
const EVENTBRIDGE: [&str; 2] = ["--eventbridge-sender", EVENTBRIDGE_SENDER];

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
    let other_queue = queue(&sqs, "rollback-dead-letters", Some("rollback")).await;
    let stack = Stack::new(&bed, &[], &queue_url, &other_queue).await;
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
    for (sender, body, attributes) in [
        (Sender::DeployRole, on_failure_record(&web_push), vec![]),
        (
            Sender::EventBridge,
            api_push.to_string(),
            vec![
                ("ERROR_CODE", text("Lambda.TooManyRequestsException")),
                ("ERROR_MESSAGE", text("Rate exceeded")),
                ("TARGET_ARN", text(FUNCTION_ARN)),
            ],
        ),
        (
            Sender::Someone,
            "not a dead letter at all".to_string(),
            vec![],
        ),
    ] {
        stack.send(sender, &queue_url, body, attributes).await;
    }

    // Listing touches nothing and leaves every message visible. It says who sent each, and
    // keeps EventBridge's until the operator names its sender.
    let listed = stack.replay(&bed, &queue_url, &["--list"]);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let record = result_of(&listed, "ev-1");
    assert_eq!(record["result"], "listed");
    assert_eq!(record["function_arn"], FUNCTION_ARN, "{record}");
    assert!(
        record["sender"]
            .as_str()
            .is_some_and(|s| s.starts_with("AROA") && s.ends_with(":pushdeploy-DeployFunction")),
        "a session of the deploy function's role: {record}"
    );
    assert!(record["why_dead"]
        .as_str()
        .unwrap()
        .starts_with("Lambda gave up (RetriesExhausted after 3 attempts): pushdeploy.Retryable"));
    let undelivered = result_of(&listed, "ev-2");
    assert!(undelivered["why_dead"]
        .as_str()
        .unwrap()
        .starts_with("EventBridge could not deliver it: Lambda.TooManyRequestsException"));
    assert_eq!(
        (&undelivered["result"], &undelivered["sender"]),
        (&json!("kept"), &json!(EVENTBRIDGE_SENDER)),
        "{undelivered}"
    );
    assert!(
        undelivered["reason"].as_str().is_some_and(|r| r.starts_with(&format!(
            "untrusted until you say otherwise: an event EventBridge could not deliver, sent by {EVENTBRIDGE_SENDER}"
        )) && r.contains(&format!("`--eventbridge-sender {EVENTBRIDGE_SENDER}` replays it"))),
        "{undelivered}"
    );
    let listed = stack.replay(
        &bed,
        &queue_url,
        &["--list", EVENTBRIDGE[0], EVENTBRIDGE[1]],
    );
    assert_eq!(result_of(&listed, "ev-2")["result"], "listed", "{listed:?}");
    assert_eq!(bed.running("prod", "web").await, first["web"]);
    assert_eq!(messages_in(&sqs, &queue_url).await.0, 3);

    let replayed = stack.replay(&bed, &queue_url, &EVENTBRIDGE);
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
    stack.dead_letter(&queue_url, &web_push).await;
    let again = stack.replay(&bed, &queue_url, &[]);
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
    let (stack, deploy_queue, rollback_queue) = Stack::with_queues(&bed, &[]).await;
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
    for (sender, body, attributes) in [
        // Lambda's on-failure record of a push.
        (Sender::DeployRole, on_failure_record(&web_push), vec![]),
        // EventBridge could not deliver a replication.
        (
            Sender::EventBridge,
            worker_replica.to_string(),
            undeliverable("pushdeploy-DeployFunctionEcrPush-1", FUNCTION_ARN),
        ),
        // EventBridge could not deliver the reconcile schedule's event.
        (
            Sender::EventBridge,
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
            Sender::EventBridge,
            stray_ecs_event.to_string(),
            undeliverable("pushdeploy-DeployFunctionEcrPush-1", FUNCTION_ARN),
        ),
        // The record names the rollback function, whatever queue it came to.
        (
            Sender::RollbackRole,
            on_failure_record_of(ROLLBACK_ARN, &meant_for_rollback),
            vec![],
        ),
    ] {
        stack.send(sender, &deploy_queue, body, attributes).await;
    }

    // Listing already says where each goes, and as what.
    let listed = stack.replay(
        &bed,
        &deploy_queue,
        &["--list", EVENTBRIDGE[0], EVENTBRIDGE[1]],
    );
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

    let replayed = stack.replay(&bed, &deploy_queue, &EVENTBRIDGE);
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
    // the sweep schedule's event (40 minutes from now, when both deployments started above are
    // past the deploy timeout of 30; replay runs the handlers on a clock 40 minutes ahead), and
    // a push.
    const LATER: u64 = 40 * 60;
    let sweep_time = (chrono::Utc::now() + chrono::Duration::seconds(LATER as i64))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let in_progress = bed
        .world()
        .take_event("SERVICE_DEPLOYMENT_IN_PROGRESS")
        .await
        .expect("ECS reported a deployment started above");
    let ecs_event_id = in_progress["id"].as_str().unwrap().to_string();
    for (sender, body, attributes) in [
        (
            Sender::RollbackRole,
            on_failure_record_of(ROLLBACK_ARN, &in_progress),
            vec![],
        ),
        (
            Sender::EventBridge,
            scheduled(
                "sweep-1",
                "pushdeploy-RollbackFunctionStuckDeploymentSweep-1",
                &sweep_time,
            )
            .to_string(),
            undeliverable(
                "pushdeploy-RollbackFunctionStuckDeploymentSweep-1",
                ROLLBACK_ARN,
            ),
        ),
        (
            Sender::EventBridge,
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
        stack.send(sender, &rollback_queue, body, attributes).await;
    }
    let replayed = stack
        .replay_later(&bed, &rollback_queue, &EVENTBRIDGE, LATER)
        .await;
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
    let td = bed.web_service().await;
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let untagged = queue(&sqs, "older-stack-dead-letters", None).await;
    let tagged = queue(&sqs, "rollback-dead-letters", Some("rollback")).await;
    // The deploy function of a stack from before the tag sends its failed events to the
    // untagged queue.
    let stack = Stack::new(&bed, &[], &untagged, &tagged).await;
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
        stack.dead_letter(queue_url, &push).await;
    }

    let refused = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let untagged_refused = refused(stack.run_replay(&bed, &untagged, &[]));
    assert!(
        untagged_refused.contains(&format!("{untagged} has no pushdeploy:function tag"))
            && untagged_refused.contains("--function deploy"),
        "{untagged_refused}"
    );
    let disagree = refused(stack.run_replay(&bed, &tagged, &["--function", "deploy"]));
    assert!(
        disagree.contains("is tagged pushdeploy:function=rollback, but --function says deploy"),
        "{disagree}"
    );
    // Nothing was read: both messages are still visible.
    assert_eq!(messages_in(&sqs, &untagged).await, (1, 0));
    assert_eq!(messages_in(&sqs, &tagged).await, (1, 0));
    assert_eq!(bed.running("prod", "web").await, td);

    let named = stack.replay(&bed, &untagged, &["--function", "deploy"]);
    let line = result_of(&named, "ev-1");
    assert_eq!(
        (&line["result"], &line["function"]),
        (&json!("replayed"), &json!("deploy")),
        "{line}"
    );
    assert_eq!(messages_in(&sqs, &untagged).await, (0, 0));
    assert_ne!(bed.running("prod", "web").await, td);
}

/// Services `web` in `prod` and in `dev`, both following the repository `web`; returns the
/// revision each runs, and the digest of a new image pushed to `web:latest`.
async fn web_in_prod_and_dev(bed: &TestBed) -> (HashMap<&'static str, String>, String) {
    let mut first = HashMap::new();
    for cluster in ["prod", "dev"] {
        bed.cluster(cluster).await;
        let td = bed
            .task_definition(
                &format!("web-{cluster}"),
                &[("app", &format!("{REGISTRY}/web:latest"))],
            )
            .await;
        bed.service(cluster, "web", &td, &[("pushdeploy:repository", "web")])
            .await;
        first.insert(cluster, td);
    }
    let pushed = bed.push_image("web", "latest", 11).await;
    (first, pushed)
}

/// The outcome of `cluster`'s service in a replayed line's report.
fn outcome_in<'a>(line: &'a Value, cluster: &str) -> &'a Value {
    line["report"]["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["cluster"] == cluster))
        .unwrap_or_else(|| panic!("no outcome for {cluster}: {line}"))
}

/// A genuine dead letter of a stack whose `Clusters` is `prod`, replayed from a shell that sets
/// only PUSHDEPLOY_TABLE. Before: replay ran with the shell's settings (no `Clusters`) and
/// deployed to `dev` too. Now: it runs with the deploy function's own settings, read from
/// Lambda: `dev` is skipped as `cluster_not_allowed`, as the function itself would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_the_stacks_clusters_whatever_the_shell_says() {
    let bed = TestBed::start().await;
    let (first, pushed) = web_in_prod_and_dev(&bed).await;
    let (stack, deploy_queue, _) =
        Stack::with_queues(&bed, &[("PUSHDEPLOY_CLUSTERS", "prod")]).await;
    let push = push_event("ev-prod", "web", "latest", &pushed, "2026-11-26T12:00:00Z");
    stack.dead_letter(&deploy_queue, &push).await;

    let out = stack.run_replay(&bed, &deploy_queue, &[]);
    let line = result_of(&lines_of(&out), "ev-prod").clone();
    assert_eq!(line["result"], "replayed", "{line}");
    assert_eq!(outcome_in(&line, "prod")["outcome"], "deployed", "{line}");
    let dev = outcome_in(&line, "dev");
    assert_eq!(
        (&dev["outcome"], &dev["skip_reason"]),
        (&json!("skipped"), &json!("cluster_not_allowed")),
        "the stack's Clusters, not the shell's: {line}"
    );
    assert_eq!(
        bed.running("dev", "web").await,
        first["dev"],
        "dev untouched"
    );
    assert_ne!(bed.running("prod", "web").await, first["prod"]);
    // Replay says whose settings it ran with.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{FUNCTION_ARN}: its settings: table {TABLE}, clusters prod,"
        )),
        "{stderr}"
    );
}

/// A genuine dead letter of a stack deployed with `DryRun=true`. Before: replay deployed it
/// (the shell has no PUSHDEPLOY_DRY_RUN). Now: a dry run, as the function itself does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_of_a_dry_run_stack_deploys_nothing() {
    let bed = TestBed::start().await;
    let (first, pushed) = web_in_prod_and_dev(&bed).await;
    let (stack, deploy_queue, _) =
        Stack::with_queues(&bed, &[("PUSHDEPLOY_DRY_RUN", "true")]).await;
    let push = push_event("ev-dry", "web", "latest", &pushed, "2026-11-26T12:00:00Z");
    stack.dead_letter(&deploy_queue, &push).await;

    let replayed = stack.replay(&bed, &deploy_queue, &[]);
    let line = result_of(&replayed, "ev-dry");
    assert_eq!(line["result"], "replayed", "{line}");
    for cluster in ["prod", "dev"] {
        assert_eq!(
            outcome_in(line, cluster)["outcome"],
            "dry_run",
            "the stack's DryRun: {line}"
        );
        assert_eq!(bed.running(cluster, "web").await, first[cluster]);
    }
    assert_eq!(
        bed.revisions("web-prod").await.len(),
        1,
        "nothing registered"
    );
}

/// Messages anyone allowed sqs:SendMessage could plant in the deploy function's queue, each
/// asking for an image to be deployed to a service of its own. Before: replay deployed every
/// one. Now: each is kept as untrusted, with its reason, and nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_messages_are_kept_as_untrusted() {
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    // One service per planted message, each following a repository of its own that holds a
    // new image: what each message asks to deploy.
    const PLANTED: [&str; 5] = [
        "forged-record",
        "names-no-function",
        "forged-undelivered",
        "names-another-function",
        "names-no-such-function",
    ];
    let mut first = HashMap::new();
    let mut pushed = HashMap::new();
    for (seed, name) in (21..).zip(PLANTED) {
        let td = bed
            .task_definition(name, &[("app", &format!("{REGISTRY}/{name}:latest"))])
            .await;
        bed.service("prod", name, &td, &[("pushdeploy:repository", name)])
            .await;
        first.insert(name, td);
        pushed.insert(name, bed.push_image(name, "latest", seed).await);
    }
    let sqs = aws_sdk_sqs::Client::new(&bed.sdk);
    let (stack, deploy_queue, _) = Stack::with_queues(&bed, &[]).await;
    let elsewhere = queue(&sqs, "somebody-elses-queue", None).await;
    // A function of the planter's own, whose role they can send as, named like the stack's
    // (so its name alone does not give it away), sending its failed events elsewhere.
    let planters = "pushdeploy-DeployFunction-Planted";
    let planters_role = function(
        &aws_sdk_iam::Client::new(&bed.sdk),
        &aws_sdk_lambda::Client::new(&bed.sdk),
        planters,
        &[],
        &queue_arn(&sqs, &elsewhere).await,
    )
    .await;
    const PLANTERS_KEY: &str = "AKIAPLANTERSFUNCTIONROLE";
    stack
        .senders
        .ids
        .lock()
        .unwrap()
        .insert(PLANTERS_KEY.into(), format!("{planters_role}:{planters}"));
    let planters_arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{planters}");
    let push = |id: &str| push_event(id, id, "latest", &pushed[id], "2026-11-26T12:00:00Z");
    let someone = stack.sqs_as(Sender::Someone);
    let as_planter = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                PLANTERS_KEY,
                "secret",
                None,
                None,
                "replay_moto",
            ))
            .build(),
    );
    // (event id, sender, body, attributes, the reason replay keeps it)
    let planted: Vec<(&str, &aws_sdk_sqs::Client, String, Vec<_>, String)> = vec![
        (
            "forged-record",
            &someone,
            on_failure_record(&push("forged-record")),
            vec![],
            format!("untrusted: Lambda's on-failure record of {FUNCTION_ARN}, but sent by {SOMEONE}, not by a session of that function's role"),
        ),
        (
            "names-no-function",
            &someone,
            push("names-no-function").to_string(),
            vec![],
            "untrusted: the dead letter names no function".to_string(),
        ),
        (
            "forged-undelivered",
            &someone,
            push("forged-undelivered").to_string(),
            undeliverable("pushdeploy-DeployFunctionEcrPush-1", FUNCTION_ARN),
            format!("untrusted until you say otherwise: an event EventBridge could not deliver, sent by {SOMEONE}"),
        ),
        (
            "names-another-function",
            &as_planter,
            on_failure_record_of(&planters_arn, &push("names-another-function")),
            vec![],
            format!("untrusted: {planters_arn} sends its failed events to arn:aws:sqs:us-east-1:123456789012:somebody-elses-queue, not to this queue"),
        ),
        (
            "names-no-such-function",
            &someone,
            on_failure_record_of(
                "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction-Gone",
                &push("names-no-such-function"),
            ),
            vec![],
            "untrusted: replay cannot read the settings of arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-DeployFunction-Gone, which the dead letter names: ".to_string(),
        ),
    ];
    for (_, sender, body, attributes, _) in &planted {
        send(sender, &deploy_queue, body.clone(), attributes.clone()).await;
    }

    let replayed = stack.replay(&bed, &deploy_queue, &[]);
    assert_eq!(replayed.len(), planted.len(), "{replayed:?}");
    for (event_id, _, _, _, reason) in &planted {
        let line = result_of(&replayed, event_id);
        assert_eq!(
            (&line["result"], &line["report"]),
            (&json!("kept"), &Value::Null),
            "{line}"
        );
        assert!(
            line["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(reason)),
            "{event_id}: {line}"
        );
    }
    for name in PLANTED {
        assert_eq!(
            bed.running("prod", name).await,
            first[name],
            "{name}: nothing deployed"
        );
    }
    assert_eq!(
        messages_in(&sqs, &deploy_queue).await,
        (0, planted.len() as i64),
        "all kept"
    );
}
