//! A loopback HTTP proxy in front of moto that breaks chosen AWS calls on the wire: the SDK is
//! pointed at it with the ordinary endpoint setting, so every retry, timeout and error mapping
//! of the code under test runs for real. moto holds the state on both sides of a fault, which
//! mocks cannot: after a call whose answer was lost, moto has applied it, exactly as AWS would.
//!
//! A call is named by its service and operation, as the JSON protocols of DynamoDB, ECS and
//! the tagging API carry them in `X-Amz-Target`.

use super::loopback::{amz_target, serve};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answered 500 without reaching AWS: the call did not happen.
    Unavailable,
    /// Answered with a throttling error without reaching AWS.
    Throttled,
    /// Reaches AWS and takes effect; the answer is replaced by a 500, as when a connection
    /// drops after the write.
    AnswerLost,
    /// No answer until the client gives up: its attempt timeout fires.
    Hang,
    /// Held at the proxy, not yet reaching AWS, until the test calls [`FaultProxy::release`];
    /// then it goes through. Lets a test interleave two functions' calls deterministically.
    Held,
    /// Refused as IAM refuses a call no policy grants (moto enforces no IAM): 400
    /// AccessDeniedException in AWS's words, without reaching AWS.
    Denied,
    /// Reaches AWS and takes effect, like [`Fault::AnswerLost`], but the (lost) answer is held
    /// at the proxy until the test calls [`FaultProxy::release`]: lets a test act between a
    /// write landing and its caller hearing that it failed ([`FaultProxy::answers_held`]).
    AnswerHeldThenLost,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Unavailable => "500, not applied",
            Fault::Throttled => "throttled",
            Fault::AnswerLost => "applied, answer lost (500)",
            Fault::Hang => "no answer (timeout)",
            Fault::Held => "held, then let through",
            Fault::Denied => "access denied (400)",
            Fault::AnswerHeldThenLost => "applied, answer held, then lost (500)",
        }
    }
}

/// Which requests fail: of those for `call`, the first `skip` pass, the next `times` fail.
#[derive(Debug, Clone)]
pub struct Plan {
    pub call: Call,
    pub skip: u32,
    pub times: u32,
    pub fault: Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub service: &'static str,
    pub operation: &'static str,
}

pub const fn call(service: &'static str, operation: &'static str) -> Call {
    Call { service, operation }
}

impl Call {
    fn target_prefix(&self) -> &'static str {
        match self.service {
            "dynamodb" => "DynamoDB_20120810.",
            "ecs" => "AmazonEC2ContainerServiceV20141113.",
            "tagging" => "ResourceGroupsTaggingAPI_20170126.",
            "codedeploy" => "CodeDeploy_20141006.",
            other => panic!("the fault proxy does not know service {other}"),
        }
    }

    /// `operation` may name several, separated by `|`.
    fn matches(&self, target: &str) -> bool {
        target
            .strip_prefix(self.target_prefix())
            .is_some_and(|op| self.operation.split('|').any(|o| o == op))
    }
}

#[derive(Default)]
struct State {
    plan: Option<Plan>,
    /// Requests per `X-Amz-Target` that reached moto.
    forwarded: BTreeMap<String, u32>,
    /// Requests for the planned call seen so far.
    seen: u32,
    injected: u32,
    /// Answers held by [`Fault::AnswerHeldThenLost`] so far, and who waits for them.
    answers_held: u32,
    answer_held: Arc<tokio::sync::Notify>,
}

pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Opened by [`FaultProxy::release`]: held requests go through.
    gate: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (gate, opened) = tokio::sync::watch::channel(false);
        let (address, server) =
            serve(move |req| handle(shared.clone(), opened.clone(), upstream, req)).await;
        FaultProxy {
            url: format!("http://{address}"),
            state,
            gate,
            server,
        }
    }

    /// Lets the requests held by a [`Fault::Held`] plan (and any later ones) go through.
    pub fn release(&self) {
        self.state.lock().unwrap().plan = None;
        let _ = self.gate.send(true);
    }

    /// Waits (up to 30 s) until `n` requests are held at the gate.
    pub async fn held(&self, n: u32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.injected() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} requests reached the gate",
                self.injected()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to 30 s) until `n` answers of a [`Fault::AnswerHeldThenLost`] plan are held:
    /// their requests reached AWS and took effect, and their callers still wait.
    pub async fn answers_held(&self, n: u32) {
        let wait = async {
            loop {
                let notify = self.state.lock().unwrap().answer_held.clone();
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.state.lock().unwrap().answers_held >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{n} answers were never held at the proxy"));
    }

    /// From now on, break requests as `plan` says (and count afresh).
    pub fn break_calls(&self, plan: Plan) {
        let mut state = self.state.lock().unwrap();
        state.plan = Some(plan);
        state.seen = 0;
        state.injected = 0;
    }

    /// Let everything through again.
    pub fn heal(&self) {
        self.state.lock().unwrap().plan = None;
    }

    /// How many faults were injected since the plan was set.
    pub fn injected(&self) -> u32 {
        self.state.lock().unwrap().injected
    }

    /// How many requests for `call` reached moto since the last reset.
    pub fn forwarded(&self, call: Call) -> u32 {
        let state = self.state.lock().unwrap();
        state
            .forwarded
            .iter()
            .filter(|(target, _)| call.matches(target))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn reset_counts(&self) {
        self.state.lock().unwrap().forwarded.clear();
    }
}

fn error(status: u16, code: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "fault-proxy")
        .body(Full::new(Bytes::from(format!(
            r#"{{"__type":"{code}","message":"{code} from the fault proxy"}}"#
        ))))
        .unwrap()
}

/// Who the proxy's denials name as the caller.
pub const DENIED_PRINCIPAL: &str = "arn:aws:iam::123456789012:user/pushdeploy-operator";

/// AWS's refusal of `target` (`DynamoDB_20120810.Query`, ...): "User: ... is not authorized to
/// perform: dynamodb:Query on resource: <the table or index the request names> because no
/// identity-based policy allows the dynamodb:Query action".
fn denied(target: &str, request: &[u8]) -> Response<Full<Bytes>> {
    let (prefix, operation) = target.split_once('.').unwrap_or_default();
    let service = match prefix {
        "DynamoDB_20120810" => "dynamodb",
        "AmazonEC2ContainerServiceV20141113" => "ecs",
        "ResourceGroupsTaggingAPI_20170126" => "tag",
        other => other,
    };
    let action = format!("{service}:{operation}");
    let request: serde_json::Value = serde_json::from_slice(request).unwrap_or_default();
    let resource = request["TableName"].as_str().map(|table| {
        let index = request["IndexName"]
            .as_str()
            .map(|index| format!("/index/{index}"))
            .unwrap_or_default();
        format!(" on resource: arn:aws:dynamodb:us-east-1:123456789012:table/{table}{index}")
    });
    let message = format!(
        "User: {DENIED_PRINCIPAL} is not authorized to perform: {action}{} because no identity-based policy allows the {action} action",
        resource.unwrap_or_default()
    );
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "fault-proxy")
        .body(Full::new(Bytes::from(
            serde_json::json!({
                "__type": "com.amazon.coral.service#AccessDeniedException",
                "Message": message,
            })
            .to_string(),
        )))
        .unwrap()
}

/// Sends moto at `upstream` what a client sent a proxy: the method, path and query, and headers
/// of `parts`, with `body`. moto's answer, its body read whole.
pub async fn forward_to_moto(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(hyper::http::response::Parts, Bytes), hyper::Error> {
    let mut forward = Request::builder().method(parts.method.clone()).uri(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .expect("moto is listening");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1 handshake with moto");
    tokio::spawn(connection);
    let answer = sender
        .send_request(forward.body(Full::new(body)).unwrap())
        .await?;
    let (parts, body) = answer.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

async fn handle(
    state: Arc<Mutex<State>>,
    mut opened: tokio::sync::watch::Receiver<bool>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let target = amz_target(&req).unwrap_or_default();
    let fault = {
        let mut state = state.lock().unwrap();
        match state.plan.clone() {
            Some(plan) if plan.call.matches(&target) => {
                state.seen += 1;
                let hit = state.seen > plan.skip && state.seen <= plan.skip + plan.times;
                if hit {
                    state.injected += 1;
                }
                hit.then_some(plan.fault)
            }
            _ => None,
        }
    };
    match fault {
        Some(Fault::Unavailable) => return Ok(error(500, "InternalServerError")),
        Some(Fault::Throttled) => return Ok(error(400, "ThrottlingException")),
        Some(Fault::Hang) => {
            // Far longer than any attempt timeout of the tests; the client hangs up first.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Ok(error(500, "InternalServerError"));
        }
        Some(Fault::Held) => {
            let _ = opened.wait_for(|open| *open).await;
        }
        Some(Fault::Denied) => {
            let request = req.into_body().collect().await?.to_bytes();
            return Ok(denied(&target, &request));
        }
        Some(Fault::AnswerLost) | Some(Fault::AnswerHeldThenLost) | None => {}
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let (parts, body) = forward_to_moto(upstream, &parts, body).await?;
    *state.lock().unwrap().forwarded.entry(target).or_default() += 1;
    if fault == Some(Fault::AnswerLost) {
        return Ok(error(500, "InternalServerError"));
    }
    if fault == Some(Fault::AnswerHeldThenLost) {
        let notify = {
            let mut state = state.lock().unwrap();
            state.answers_held += 1;
            state.answer_held.clone()
        };
        notify.notify_waiters();
        let _ = opened.wait_for(|open| *open).await;
        return Ok(error(500, "InternalServerError"));
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}
