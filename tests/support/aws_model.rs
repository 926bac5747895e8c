//! The bench's model of how fast AWS answers (issue 16): a loopback proxy in front of the test
//! backend that answers every call no sooner than a latency drawn from its service's
//! distribution (the backend works meanwhile), and admits
//! ECS calls through ECS's token buckets, answering `ThrottlingException` as ECS does when a
//! bucket is empty. The SDK is pointed at it with the ordinary endpoint setting, so pushdeploy's
//! own retries and pacing meet the throttling for real.
//!
//! ECS's buckets, per account and region ("Request throttling for the Amazon ECS API", ECS API
//! Reference: "the bucket maximum capacity signifies the burst rate and the bucket refill rate is
//! the sustained rate"; "If you exceed an API throttling quota, you get the ThrottlingException
//! error code"), as its table gives them for the calls pushdeploy makes.
//!
//! The latencies are assumptions, stated in [`AwsModel::stated`]: AWS publishes no latency
//! figures for the ECS, Tagging or ECR control planes. DynamoDB's follows its documented
//! "single-digit millisecond performance" (DynamoDB Developer Guide, "What is Amazon DynamoDB?").
//!
//! Every call is logged with when it started and ended, so that a run's critical path (the
//! longest chain of calls each made after the one before it answered) is counted from what
//! happened, not from what the code intends.

use super::fault_proxy::forward_to_moto;
use super::loopback::{amz_target, serve};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A call's latency: log-normal, given by its median and its 99th percentile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub median_ms: f64,
    pub p99_ms: f64,
}

/// z of the standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

impl Latency {
    pub const fn ms(median_ms: f64, p99_ms: f64) -> Latency {
        Latency { median_ms, p99_ms }
    }

    fn sigma(&self) -> f64 {
        (self.p99_ms / self.median_ms).ln() / Z99
    }

    /// The latency at standard-normal score `z`.
    pub fn at(&self, z: f64) -> Duration {
        Duration::from_secs_f64(self.median_ms * (self.sigma() * z).exp() / 1000.0)
    }

    /// The expected longest of `n` calls made together: its quantile n/(n+1) (Blom's plotting
    /// position is close enough for a bound that is read as a ratio).
    pub fn longest_of(&self, n: usize) -> Duration {
        if n <= 1 {
            return self.at(0.0);
        }
        let p = n as f64 / (n as f64 + 1.0);
        self.at(normal_quantile(p))
    }
}

/// The standard normal's quantile (Acklam's rational approximation, relative error < 1.2e-9;
/// the coefficients as he published them).
#[allow(clippy::excessive_precision)]
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// A token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: f64,
    pub per_second: f64,
}

/// A bucket's state over time.
#[derive(Debug, Clone)]
pub struct Tokens {
    bucket: Bucket,
    tokens: f64,
    at: Duration,
}

impl Tokens {
    pub fn full(bucket: Bucket) -> Tokens {
        Tokens {
            bucket,
            tokens: bucket.burst,
            at: Duration::ZERO,
        }
    }

    /// Takes a token at `now` (time since the bucket was full), or says the call is throttled.
    pub fn take(&mut self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.bucket.per_second).min(self.bucket.burst);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the `n`-th of `n` calls asked for at once (at zero) is admitted, at the earliest.
    pub fn admits_all_by(bucket: Bucket, n: usize) -> Duration {
        let beyond = (n as f64 - bucket.burst).max(0.0);
        Duration::from_secs_f64(beyond.ceil() / bucket.per_second)
    }
}

/// A call as the wire names it: its service and operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub service: String,
    pub operation: String,
}

impl Operation {
    /// From a request's `X-Amz-Target` (the JSON protocols of ECS, DynamoDB, the Tagging API and
    /// ECR) or, for SNS's query protocol, its `Action`.
    pub fn of(target: Option<&str>, body: &[u8]) -> Operation {
        let (service, operation) = match target.and_then(|t| t.split_once('.')) {
            Some((prefix, operation)) => (
                match prefix {
                    "AmazonEC2ContainerServiceV20141113" => "ecs",
                    "DynamoDB_20120810" => "dynamodb",
                    "ResourceGroupsTaggingAPI_20170126" => "tagging",
                    "AmazonEC2ContainerRegistry_V20150921" => "ecr",
                    other => other,
                },
                operation.to_string(),
            ),
            None => {
                let form = String::from_utf8_lossy(body);
                let action = form
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("Action="))
                    .unwrap_or("unknown")
                    .to_string();
                ("sns", action)
            }
        };
        Operation {
            service: service.to_string(),
            operation,
        }
    }

    /// ECS's API group of this call, as the throttling table names it; `None` outside ECS.
    pub fn ecs_group(&self) -> Option<&'static str> {
        if self.service != "ecs" {
            return None;
        }
        Some(match self.operation.as_str() {
            "RegisterTaskDefinition" | "DeregisterTaskDefinition" => "task definition modify",
            "DescribeTaskDefinition" | "ListTaskDefinitions" => "task definition read",
            "CreateService" | "DeleteService" | "UpdateService" => "service modify",
            "DescribeServices" | "ListServices" => "service read",
            "DescribeServiceDeployments" | "ListServiceDeployments" => "service deployment",
            "DescribeServiceRevisions" => "service revision",
            "ListTagsForResource" => "tag read",
            "TagResource" | "UntagResource" => "tag modify",
            _ => "cluster read",
        })
    }
}

/// Latencies per service and ECS's buckets per API group.
#[derive(Debug, Clone)]
pub struct AwsModel {
    pub latency: BTreeMap<&'static str, Latency>,
    pub buckets: BTreeMap<&'static str, Bucket>,
    pub seed: u64,
}

impl AwsModel {
    /// The model the bench states. Latencies (median / p99, ms) are assumptions for a Lambda in
    /// the same region: ECS's control plane 40 / 120 (the 40 ms every call got in the issue's
    /// first measurement), the Tagging API 60 / 200 (it reads across services), ECR 30 / 100,
    /// DynamoDB 6 / 20 (documented single-digit milliseconds), SNS 20 / 60. Buckets: ECS's table.
    pub fn stated() -> AwsModel {
        let latency = BTreeMap::from([
            ("ecs", Latency::ms(40.0, 120.0)),
            ("tagging", Latency::ms(60.0, 200.0)),
            ("ecr", Latency::ms(30.0, 100.0)),
            ("dynamodb", Latency::ms(6.0, 20.0)),
            ("sns", Latency::ms(20.0, 60.0)),
        ]);
        let bucket = |burst, per_second| Bucket { burst, per_second };
        let buckets = BTreeMap::from([
            ("task definition modify", bucket(20.0, 1.0)),
            ("task definition read", bucket(50.0, 20.0)),
            ("service modify", bucket(50.0, 5.0)),
            ("service read", bucket(100.0, 20.0)),
            ("service deployment", bucket(50.0, 20.0)),
            ("service revision", bucket(50.0, 20.0)),
            ("tag read", bucket(50.0, 20.0)),
            ("tag modify", bucket(20.0, 10.0)),
            ("cluster read", bucket(50.0, 20.0)),
        ]);
        AwsModel {
            latency,
            buckets,
            seed: 16,
        }
    }

    /// Every bucket full: a quiet account.
    fn full_buckets(&self) -> BTreeMap<&'static str, Tokens> {
        self.buckets
            .iter()
            .map(|(group, bucket)| (*group, Tokens::full(*bucket)))
            .collect()
    }

    pub fn latency_of(&self, service: &str) -> Latency {
        self.latency
            .get(service)
            .copied()
            .unwrap_or(Latency::ms(40.0, 120.0))
    }
}

/// One call as the proxy saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub call: Operation,
    pub started: Duration,
    pub ended: Duration,
    pub throttled: bool,
    /// How much longer than its drawn latency the call took: the backend's queue and work beyond
    /// what the model allows AWS (plus the proxy's own scheduling, under a millisecond).
    pub late: Duration,
}

/// The most calls in one chain in which each call started after the one before it answered:
/// the round trips a run waited for one after another.
pub fn critical_path(log: &[Logged]) -> usize {
    let mut calls: Vec<&Logged> = log.iter().collect();
    calls.sort_by_key(|c| c.ended);
    let mut depth = vec![0usize; calls.len()];
    for i in 0..calls.len() {
        let before = (0..i)
            .filter(|&j| calls[j].ended <= calls[i].started)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth[i] = before + 1;
    }
    depth.into_iter().max().unwrap_or(0)
}

/// splitmix64: a reproducible stream of normal scores, so that two runs of the bench draw the
/// same latencies in the same order.
struct Draws(u64);

impl Draws {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next_score(&mut self) -> f64 {
        normal_quantile(self.next_unit())
    }
}

struct State {
    model: AwsModel,
    draws: Draws,
    buckets: BTreeMap<&'static str, Tokens>,
    log: Vec<Logged>,
    epoch: Instant,
    /// Counts resets: a call that started before the last one (the function's warm-up, still
    /// running in the background) is left out of the log, which starts at the reset.
    generation: u64,
}

/// The proxy: [`AwsModel`]'s latencies and buckets in front of a backend (moto).
pub struct AwsModelProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsModelProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AwsModelProxy {
    pub async fn start(upstream: SocketAddr, model: AwsModel) -> AwsModelProxy {
        AwsModelProxy::routed(upstream, BTreeMap::new(), model).await
    }

    /// As [`AwsModelProxy::start`], with the calls of the services in `routes` sent to backends
    /// of their own: moto answers one call at a time, so a ledger in a moto of its own keeps
    /// DynamoDB's calls from queueing behind ECS's (and the other way round).
    pub async fn routed(
        upstream: SocketAddr,
        routes: BTreeMap<&'static str, SocketAddr>,
        model: AwsModel,
    ) -> AwsModelProxy {
        let buckets = model.full_buckets();
        let state = Arc::new(Mutex::new(State {
            draws: Draws(model.seed),
            model,
            buckets,
            log: Vec::new(),
            epoch: Instant::now(),
            generation: 0,
        }));
        let shared = state.clone();
        let (address, server) =
            serve(move |req| handle(shared.clone(), upstream, routes.clone(), req)).await;
        AwsModelProxy {
            url: format!("http://{address}"),
            state,
            server,
        }
    }

    /// Forgets the calls logged so far and fills every bucket again: the next workload starts
    /// from a quiet account.
    pub fn reset(&self) {
        let mut state = self.state.lock().unwrap();
        state.log.clear();
        state.epoch = Instant::now();
        state.generation += 1;
        state.buckets = state.model.full_buckets();
    }

    /// The calls since the last reset, in the order they answered.
    pub fn log(&self) -> Vec<Logged> {
        let mut log = self.state.lock().unwrap().log.clone();
        log.sort_by_key(|c| c.ended);
        log
    }
}

fn throttled() -> Response<Full<Bytes>> {
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "aws-model")
        .body(Full::new(Bytes::from(
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )))
        .unwrap()
}

async fn handle(
    state: Arc<Mutex<State>>,
    upstream: SocketAddr,
    routes: BTreeMap<&'static str, SocketAddr>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let target = amz_target(&req);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let call = Operation::of(target.as_deref(), &body);
    let (started, wait, admitted, generation) = {
        let mut state = state.lock().unwrap();
        let started = state.epoch.elapsed();
        let score = state.draws.next_score();
        let wait = state.model.latency_of(&call.service).at(score);
        let admitted = match call.ecs_group() {
            Some(group) => state
                .buckets
                .get_mut(group)
                .is_none_or(|tokens| tokens.take(started)),
            None => true,
        };
        (started, wait, admitted, state.generation)
    };
    // The backend works while the latency runs: AWS's own time is inside the latency it is
    // measured by. Only a backend slower than the drawn latency delays the answer, and the log
    // says by how much (`late`), so that the bench can tell the backend's time from pushdeploy's.
    let answer = async {
        if !admitted {
            return Ok(throttled());
        }
        let backend = routes
            .get(call.service.as_str())
            .copied()
            .unwrap_or(upstream);
        let (parts, body) = forward_to_moto(backend, &parts, body).await?;
        Ok::<_, hyper::Error>(Response::from_parts(parts, Full::new(body)))
    };
    let (answer, ()) = tokio::join!(answer, tokio::time::sleep(wait));
    let mut state = state.lock().unwrap();
    if state.generation == generation {
        let ended = state.epoch.elapsed();
        state.log.push(Logged {
            call,
            started,
            ended,
            throttled: !admitted,
            late: (ended - started).saturating_sub(wait),
        });
    }
    answer
}

/// What one push asks of AWS: how many services follow it, in how many clusters, and how many
/// distinct task definitions they run (each needs one DescribeTaskDefinition and one
/// RegisterTaskDefinition; services that share one share its new revision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub services: usize,
    pub clusters: usize,
    pub definitions: usize,
}

/// The least wall time a client could reach for `workload` under `model`, an estimate: the calls
/// no deployment can do without (the Tagging API's pages, ECR's confirmation beside them,
/// DescribeServices by tens per cluster, then per definition DescribeTaskDefinition and
/// RegisterTaskDefinition, then UpdateService per service), each step as long as the expected
/// longest of its parallel calls, and no step's last call before its bucket admits it. It makes
/// no ledger call: the ledger is pushdeploy's price for acting once, which the ratio shows.
pub fn bound(model: &AwsModel, workload: Workload) -> Duration {
    let ecs = model.latency_of("ecs");
    let bucket = |group: &str| model.buckets[group];
    let pages = workload.services.div_ceil(100).max(1);
    let discovery =
        (model.latency_of("tagging").at(0.0) * pages as u32).max(model.latency_of("ecr").at(0.0));
    let per_cluster = workload.services.div_ceil(workload.clusters.max(1));
    let describes = workload.clusters * per_cluster.div_ceil(10);
    let step = |calls: usize, group: &str| {
        Tokens::admits_all_by(bucket(group), calls) + ecs.longest_of(calls)
    };
    let described = discovery + step(describes, "service read");
    let read = described + step(workload.definitions, "task definition read");
    let registered = read + step(workload.definitions, "task definition modify");
    let updates_admitted =
        read + Tokens::admits_all_by(bucket("service modify"), workload.services);
    registered.max(updates_admitted) + ecs.longest_of(workload.services)
}

/// The least time, in expectation, for `pushes` single-service pushes made together, each in an
/// invocation of its own, at most `slots` at a time (the function's reserved concurrency: Lambda
/// runs no more, and hands a throttled event to a free slot later; the bound charges nothing for
/// that wait): each push's chain (the Tagging API with ECR beside it, then DescribeServices,
/// DescribeTaskDefinition, RegisterTaskDefinition and UpdateService) drawn from the model, each
/// taken by the first free slot, the last to end averaged over many draws, and no step's calls
/// admitted before their bucket would (all are within the bursts below 20 pushes).
pub fn bound_of_burst(model: &AwsModel, pushes: usize, slots: usize) -> Duration {
    const TRIALS: usize = 2000;
    let mut draws = Draws(model.seed ^ 0xb0b);
    let (tagging, ecr, ecs) = (
        model.latency_of("tagging"),
        model.latency_of("ecr"),
        model.latency_of("ecs"),
    );
    let mut total = Duration::ZERO;
    for _ in 0..TRIALS {
        let mut free_at = vec![Duration::ZERO; slots.max(1)];
        for _ in 0..pushes {
            let discovery = tagging
                .at(draws.next_score())
                .max(ecr.at(draws.next_score()));
            let chain = discovery + (0..4).map(|_| ecs.at(draws.next_score())).sum::<Duration>();
            let slot = free_at.iter_mut().min().expect("at least one slot");
            *slot += chain;
        }
        total += free_at.into_iter().max().unwrap_or_default();
    }
    let admitted = ["task definition modify", "service modify"]
        .iter()
        .map(|group| Tokens::admits_all_by(model.buckets[group], pushes))
        .max()
        .unwrap_or_default();
    total / TRIALS as u32 + admitted
}
