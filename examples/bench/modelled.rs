//! `make bench`, second part: the release deploy binary against AWS's speed as
//! `tests/support/aws_model.rs` models it (per-call latency, ECS's token buckets), each workload
//! measured against its bound: the least time any client could take under the same model.

use crate::support::aws_model::{
    bound, bound_of_burst, critical_path, AwsModel, AwsModelProxy, Logged, Workload,
};
use crate::support::fast_aws::FastAws;
use crate::support::runtime_api::Answer;
use crate::support::{digest, function_env_at, push_event, TestBed, REGISTRY};
use crate::{cpu_time, ms, peak_rss_kib, start, warm_up};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// One push's outcome under the model.
struct Measured {
    wall: Duration,
    deployed: usize,
    /// Not done: left for Lambda's retry, or failed.
    failed: usize,
    /// The function's error answer, when it gave one.
    error: Option<String>,
    log: Vec<Logged>,
    /// The function process's peak resident set, in KiB, when the system reports it.
    peak_rss_kib: Option<u64>,
    /// The CPU time the function used for the push (10 ms resolution): how much of its billed
    /// duration was work rather than waiting for AWS.
    cpu: Option<Duration>,
}

/// Services `s<i>` in `clusters` clusters following `web`, on `definitions` task definitions
/// shared round-robin (services that share one share its new revision).
async fn world(bed: &TestBed, workload: Workload) {
    let mut families = Vec::new();
    for f in 0..workload.definitions {
        let td = bed
            .task_definition(
                &format!("f{f}"),
                &[("app", &format!("{REGISTRY}/web:latest"))],
            )
            .await;
        families.push(td);
    }
    for c in 0..workload.clusters {
        bed.cluster(&format!("c{c}")).await;
    }
    for i in 0..workload.services {
        let cluster = format!("c{}", i % workload.clusters);
        let td = &families[i % workload.definitions];
        bed.service(
            &cluster,
            &format!("s{i}"),
            td,
            &[("pushdeploy:repository", "web")],
        )
        .await;
    }
}

/// The function's environment, with its calls going through the model's `proxy`.
fn through(proxy: &AwsModelProxy) -> Vec<(String, String)> {
    function_env_at(&proxy.url)
}

/// What answers behind the model's proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// Two motos (ECS and the rest in one, the ledger in the other): the semantics of the test
    /// suite, but one call at a time in about 4 ms of Python.
    Moto,
    /// `tests/support/fast_aws.rs`: the deploy path's calls from memory, in microseconds.
    Fast,
}

/// What keeps a backend running until the measure is done: held, never read (dropping it stops
/// the backend).
#[allow(dead_code)]
enum Running {
    Moto(Box<(TestBed, TestBed)>),
    Fast(FastAws),
}

/// `workload`'s world in `backend`, behind the model's proxy: services `s<i>` in `clusters`
/// clusters following `web`, on `definitions` task definitions shared round-robin; ECR holding
/// `web:latest` and `other:latest` (the warm-up's push).
async fn backend_for(backend: Backend, workload: Workload) -> (AwsModelProxy, Running) {
    match backend {
        Backend::Moto => {
            let (bed, ledger) = (TestBed::start().await, TestBed::start().await);
            world(&bed, workload).await;
            bed.ecr_has("other", "latest", &digest('9')).await;
            bed.ecr_has("web", "latest", &digest('f')).await;
            let proxy = proxy_for(&bed, &ledger).await;
            (proxy, Running::Moto(Box::new((bed, ledger))))
        }
        Backend::Fast => {
            let fast = FastAws::start().await;
            let families: Vec<String> = (0..workload.definitions)
                .map(|f| {
                    let image = format!("{REGISTRY}/web:latest");
                    fast.task_definition(&format!("f{f}"), &[("app", &image)])
                })
                .collect();
            for i in 0..workload.services {
                let cluster = format!("c{}", i % workload.clusters);
                let td = &families[i % workload.definitions];
                fast.service(
                    &cluster,
                    &format!("s{i}"),
                    td,
                    &[("pushdeploy:repository", "web")],
                );
            }
            fast.image("other", "latest", &digest('9'));
            fast.image("web", "latest", &digest('f'));
            let proxy = AwsModelProxy::start(fast.address, AwsModel::stated()).await;
            (proxy, Running::Fast(fast))
        }
    }
}

/// The model's proxy in front of `bed`'s moto, with the ledger's calls going to `ledger`'s: two
/// motos answer in parallel, so DynamoDB's calls do not queue behind ECS's in one Python
/// process (moto is the bench's backend, not the thing measured).
async fn proxy_for(bed: &TestBed, ledger: &TestBed) -> AwsModelProxy {
    let routes = BTreeMap::from([("dynamodb", ledger.moto.address)]);
    AwsModelProxy::routed(bed.moto.address, routes, AwsModel::stated()).await
}

/// One push to `workload`'s services in `backend`; `concurrency` sets `PUSHDEPLOY_CONCURRENCY`
/// when given.
async fn push_through_model(
    binary: &Path,
    workload: Workload,
    concurrency: Option<usize>,
    backend: Backend,
) -> Measured {
    let (proxy, _running) = backend_for(backend, workload).await;
    let mut env = through(&proxy);
    if let Some(concurrency) = concurrency {
        env.push(("PUSHDEPLOY_CONCURRENCY".into(), concurrency.to_string()));
    }
    let (function, api, _) = start(binary, &env).await;
    warm_up(&api, "w").await;
    let cpu_before = function.pid().and_then(cpu_time);
    proxy.reset();
    let t = Instant::now();
    let answer = api
        .invoke(
            push_event("m", "web", "latest", &digest('f'), "2026-11-26T12:00:00Z"),
            Duration::from_secs(120),
        )
        .await;
    let wall = t.elapsed();
    let peak_rss_kib = function.pid().and_then(peak_rss_kib);
    let cpu = function
        .pid()
        .and_then(cpu_time)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    function.stop().await;
    let (deployed, failed, error) = match answer {
        Answer::Response(response) => {
            let outcomes = response["outcomes"].as_array().cloned().unwrap_or_default();
            let count = |kind: &str| outcomes.iter().filter(|o| o["outcome"] == kind).count();
            (count("deployed"), count("failed"), None)
        }
        // A Retryable answer names the services left for Lambda's retry; the rest are done.
        Answer::Error { body, .. } => {
            let message = body["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let left = message
                .split(": ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(workload.services);
            (workload.services - left, left, Some(message))
        }
    };
    Measured {
        wall,
        deployed,
        failed,
        error,
        log: proxy.log(),
        peak_rss_kib,
        cpu,
    }
}

fn print(name: &str, workload: Workload, bound: Duration, measured: &Measured) {
    let mut by_call: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in &measured.log {
        let entry = by_call
            .entry(format!("{}.{}", call.call.service, call.call.operation))
            .or_default();
        entry.0 += 1;
        entry.1 += usize::from(call.throttled);
    }
    let ledger: usize = by_call
        .iter()
        .filter(|(k, _)| k.starts_with("dynamodb."))
        .map(|(_, (n, _))| n)
        .sum();
    let throttled: usize = by_call.values().map(|(_, t)| t).sum();
    println!(
        "{name}: {} services in {} clusters, {} distinct task definitions",
        workload.services, workload.clusters, workload.definitions
    );
    println!(
        "  {:.0} ms = {:.2}x the bound of {:.0} ms; {} deployed, {} not",
        ms(measured.wall),
        measured.wall.as_secs_f64() / bound.as_secs_f64(),
        ms(bound),
        measured.deployed,
        measured.failed
    );
    let rss = measured
        .peak_rss_kib
        .map_or("not reported".to_string(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
    let cpu = measured.cpu.map_or("not reported".to_string(), |cpu| {
        format!("{:.0} ms", ms(cpu))
    });
    println!(
        "  calls: {} ({} ledger, {throttled} throttled); critical path {} round trips; peak RSS {rss}; CPU {cpu}",
        measured.log.len(),
        ledger,
        critical_path(&measured.log),
    );
    // moto answers one call at a time, a few milliseconds each: when it falls behind, the wall
    // time above is partly its queue, which the model does not charge to AWS. The fast backend
    // falls behind only when this machine's 2 cores are busy with the function itself.
    let late: Vec<Duration> = measured.log.iter().map(|c| c.late).collect();
    println!(
        "  backend slower than the drawn latency: {} of {} calls, by {:.0} ms at most",
        late.iter()
            .filter(|l| **l > Duration::from_millis(2))
            .count(),
        late.len(),
        ms(late.iter().copied().max().unwrap_or_default()),
    );
    if let Some(error) = &measured.error {
        let shown: String = error.chars().take(160).collect();
        println!("  the function answered an error (Lambda retries it): {shown}...");
    }
    let calls: Vec<String> = by_call
        .iter()
        .map(|(k, (n, t))| {
            if *t > 0 {
                format!("{k} {n} ({t} throttled)")
            } else {
                format!("{k} {n}")
            }
        })
        .collect();
    println!("  {}", calls.join(", "));
}

pub async fn run(binary: &Path) {
    let model = AwsModel::stated();
    println!(
        "\nagainst the AWS model (tests/support/aws_model.rs): latency median / p99 per call:"
    );
    for (service, latency) in &model.latency {
        print!(
            " {service} {:.0}/{:.0} ms;",
            latency.median_ms, latency.p99_ms
        );
    }
    println!(" ECS's token buckets per API group\n");
    let workloads = [
        (
            "one push, one service",
            Workload {
                services: 1,
                clusters: 1,
                definitions: 1,
            },
        ),
        (
            "one push, 10 services",
            Workload {
                services: 10,
                clusters: 2,
                definitions: 4,
            },
        ),
        (
            "one push, 50 services",
            Workload {
                services: 50,
                clusters: 5,
                definitions: 10,
            },
        ),
        (
            "one push, 200 services",
            Workload {
                services: 200,
                clusters: 10,
                definitions: 20,
            },
        ),
    ];
    for backend in [Backend::Fast, Backend::Moto] {
        println!(
            "{}",
            match backend {
                Backend::Fast =>
                    "behind the model, the fast backend (tests/support/fast_aws.rs):\n",
                Backend::Moto =>
                    "\nbehind the model, moto (one call at a time, the test suite's semantics):\n",
            }
        );
        for (name, workload) in workloads {
            let measured = push_through_model(binary, workload, None, backend).await;
            print(name, workload, bound(&model, workload), &measured);
        }
        let (name, workload) = workloads[2];
        // The default before issue 16 (8), and half the default (64), which is also the most the
        // setting allows.
        for concurrency in [8, 32] {
            let measured = push_through_model(binary, workload, Some(concurrency), backend).await;
            let name = format!("{name}, PUSHDEPLOY_CONCURRENCY={concurrency}");
            print(&name, workload, bound(&model, workload), &measured);
        }
        let burst = Workload {
            services: BURST,
            clusters: 1,
            definitions: BURST,
        };
        // The template's reserved concurrency first (what a user gets), then all 20 at once.
        for slots in [reserved_concurrency(), BURST] {
            let measured = burst_of_pushes(binary, backend, slots).await;
            let name = format!(
                "a burst: 20 pushes to 20 services, each its own invocation, {slots} at a time"
            );
            print(
                &name,
                burst,
                bound_of_burst(&model, BURST, slots),
                &measured,
            );
        }
    }
}

const BURST: usize = 20;

/// The deploy function's reserved concurrency as template.yaml sets it by default
/// (`MaxConcurrentDeploys`): at most this many of its invocations run at once.
fn reserved_concurrency() -> usize {
    let template = std::fs::read_to_string("template.yaml").expect("template.yaml, from the root");
    let after = template
        .split_once("\n  MaxConcurrentDeploys:")
        .expect("a MaxConcurrentDeploys parameter")
        .1;
    after
        .lines()
        .find_map(|line| line.trim().strip_prefix("Default:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("MaxConcurrentDeploys has a numeric default")
}

/// The burst's world in `backend`: repositories `r<i>`, each followed by service `s<i>` of `c0`
/// on a task definition of its own, each with `latest` in ECR.
async fn burst_backend(backend: Backend) -> (AwsModelProxy, Running) {
    match backend {
        Backend::Moto => {
            let bed = TestBed::start().await;
            bed.cluster("c0").await;
            for i in 0..BURST {
                let repository = format!("r{i}");
                let image = format!("{REGISTRY}/{repository}:latest");
                let td = bed
                    .task_definition(&format!("f{i}"), &[("app", &image)])
                    .await;
                let tags = [("pushdeploy:repository", repository.as_str())];
                bed.service("c0", &format!("s{i}"), &td, &tags).await;
                bed.ecr_has(&repository, "latest", &digest('f')).await;
            }
            bed.ecr_has("other", "latest", &digest('9')).await;
            let ledger = TestBed::start().await;
            let proxy = proxy_for(&bed, &ledger).await;
            (proxy, Running::Moto(Box::new((bed, ledger))))
        }
        Backend::Fast => {
            let fast = FastAws::start().await;
            for i in 0..BURST {
                let repository = format!("r{i}");
                let image = format!("{REGISTRY}/{repository}:latest");
                let td = fast.task_definition(&format!("f{i}"), &[("app", &image)]);
                let tags = [("pushdeploy:repository", repository.as_str())];
                fast.service("c0", &format!("s{i}"), &td, &tags);
                fast.image(&repository, "latest", &digest('f'));
            }
            fast.image("other", "latest", &digest('9'));
            let proxy = AwsModelProxy::start(fast.address, AwsModel::stated()).await;
            (proxy, Running::Fast(fast))
        }
    }
}

/// 20 repositories, each followed by one service; 20 function processes, each warm; then one
/// push to each repository, all sent together, each to its own process (Lambda runs
/// concurrent invocations in separate execution environments).
async fn burst_of_pushes(binary: &Path, backend: Backend, slots: usize) -> Measured {
    let (proxy, _running) = burst_backend(backend).await;
    let env = through(&proxy);
    let mut functions = Vec::new();
    for i in 0..slots {
        let (function, api, _) = start(binary, &env).await;
        warm_up(&api, &format!("w{i}")).await;
        functions.push((function, api));
    }
    proxy.reset();
    // Each execution environment takes the next push as soon as it is free, as Lambda hands a
    // throttled event to the first free slot (here without the queue's own retry delay).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    let answers: Vec<Answer> = futures::future::join_all(functions.iter().map(|(_, api)| {
        let next = &next;
        async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= BURST {
                    return answers;
                }
                let repository = format!("r{i}");
                let push = push_event(
                    &format!("b{i}"),
                    &repository,
                    "latest",
                    &digest('f'),
                    "2026-11-26T12:00:00Z",
                );
                answers.push(api.invoke(push, Duration::from_secs(120)).await);
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let wall = t.elapsed();
    let peak_rss_kib = functions
        .iter()
        .filter_map(|(function, _)| function.pid().and_then(peak_rss_kib))
        .max();
    for (function, _) in functions {
        function.stop().await;
    }
    let mut measured = Measured {
        wall,
        deployed: 0,
        failed: 0,
        error: None,
        log: proxy.log(),
        peak_rss_kib,
        cpu: None,
    };
    for answer in answers {
        match answer {
            Answer::Response(response) if response["outcomes"][0]["outcome"] == "deployed" => {
                measured.deployed += 1
            }
            Answer::Response(_) => measured.failed += 1,
            Answer::Error { body, .. } => {
                measured.failed += 1;
                measured.error = body["errorMessage"].as_str().map(str::to_string);
            }
        }
    }
    measured
}
