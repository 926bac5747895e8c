//! A stand-in for the Lambda Runtime API on loopback: it hands events to a function process
//! exactly as Lambda does (`GET .../invocation/next`) and captures what the function answers
//! (`.../response`, `.../error`, `/runtime/init/error`).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    Error { error_type: String, body: Value },
}

impl Answer {
    pub fn response(self) -> Value {
        match self {
            Answer::Response(v) => v,
            Answer::Error { error_type, body } => {
                panic!("the function failed: {error_type}: {body}")
            }
        }
    }
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<String>>,
    ids: AtomicU64,
    /// When the function first asked for an invocation: the end of its init.
    first_poll: Mutex<Option<std::time::Instant>>,
}

pub struct RuntimeApi {
    pub address: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let (address, server) = super::loopback::serve(move |req| route(shared.clone(), req)).await;
        RuntimeApi {
            address,
            state,
            server,
        }
    }

    /// Hands `event` to the function and waits (up to `within`) for its answer.
    pub async fn invoke(&self, event: Value, within: Duration) -> Answer {
        self.invoke_as(self.new_request_id(), event, within).await
    }

    /// A fresh request id, unique across stand-ins as Lambda's are: the ledger tells deliveries
    /// apart by them.
    pub fn new_request_id(&self) -> String {
        format!(
            "req-{}-{}",
            self.address.port(),
            self.state.ids.fetch_add(1, Ordering::SeqCst) + 1
        )
    }

    /// An invocation under request id `id`: Lambda's own retry of an invocation keeps its id.
    pub async fn invoke_as(&self, id: String, event: Value, within: Duration) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.state.waiting.lock().unwrap().insert(id.clone(), tx);
        self.state
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), event));
        self.state.arrived.notify_one();
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(answer)) => answer,
            _ => panic!(
                "no answer to {id} within {within:?}{}",
                self.state
                    .init_error
                    .lock()
                    .unwrap()
                    .as_deref()
                    .map(|e| format!(" (init error: {e})"))
                    .unwrap_or_default()
            ),
        }
    }
}

impl RuntimeApi {
    /// What the function posted to `/runtime/init/error`, if it did.
    pub fn init_error(&self) -> Option<String> {
        self.state.init_error.lock().unwrap().clone()
    }

    /// When the function first polled for an invocation, once it has.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        *self.state.first_poll.lock().unwrap()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, value);
    }
    response.body(Full::new(body.into())).unwrap()
}

async fn route(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let error_type = req
        .headers()
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = || {
        serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };

    if path == format!("{PREFIX}/invocation/next") {
        state
            .first_poll
            .lock()
            .unwrap()
            .get_or_insert_with(std::time::Instant::now);
        loop {
            let arrived = state.arrived.notified();
            let next = state.queue.lock().unwrap().pop_front();
            if let Some((id, event)) = next {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 60_000;
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", id),
                    ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:pushdeploy-deploy"
                            .to_string(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".to_string(),
                    ),
                    ("Content-Type", "application/json".to_string()),
                ];
                return Ok(reply(200, &headers, serde_json::to_vec(&event).unwrap()));
            }
            arrived.await;
        }
    }
    if path == format!("{PREFIX}/init/error") {
        *state.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
        return Ok(reply(202, &[], ""));
    }
    if let Some(rest) = path.strip_prefix(&format!("{PREFIX}/invocation/")) {
        if let Some((id, kind)) = rest.split_once('/') {
            let answer = match kind {
                "response" => Some(Answer::Response(json())),
                "error" => Some(Answer::Error {
                    error_type: error_type.clone(),
                    body: json(),
                }),
                _ => None,
            };
            if let Some(answer) = answer {
                if let Some(waiter) = state.waiting.lock().unwrap().remove(id) {
                    let _ = waiter.send(answer);
                }
                return Ok(reply(202, &[], ""));
            }
        }
    }
    Ok(reply(404, &[], "unknown runtime API path"))
}

/// A function process (the real binary) serving one runtime API stand-in. Its log lines
/// (stdout and stderr) are kept for the test to read; the process is killed when dropped.
pub struct FunctionProcess {
    child: tokio::process::Child,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl FunctionProcess {
    /// Starts `binary` with a clean environment: only Lambda's variables and `env`.
    pub fn spawn(
        binary: &std::path::Path,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> FunctionProcess {
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "pushdeploy-deploy")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        FunctionProcess { child, logs }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl FunctionProcess {
    /// Waits (up to `within`) for the process to end by itself; its exit status.
    pub async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the process did not exit in time")
            .expect("wait for the process")
    }
}
