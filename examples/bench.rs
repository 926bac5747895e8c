//! `make bench`: the release `deploy` binary, run as Lambda runs it (the Runtime API stand-in)
//! against a local moto, measured. Prints a report; asserts nothing about speed (numbers go in
//! notes, not in tests that could flake).
//!
//! Usage: cargo run --example bench -- <path to release deploy binary>
//!        cargo run --example bench -- --reconcile <deploy binary>... (`make bench-reconcile`:
//!        one reconcile of a repository of 5,000 images per binary, see bench/reconcile.rs)
//!        cargo run --example bench -- --model <deploy binary> (only the workloads against the
//!        AWS model, see bench/modelled.rs)
//!        cargo run --example bench -- --gate <gate binary> (only the gate, see bench/gate.rs)

#[path = "../tests/support/mod.rs"]
mod support;

// Beside the bench rather than an example of its own: each example target links the SDK again.
#[path = "bench/reconcile.rs"]
mod reconcile;

#[path = "bench/modelled.rs"]
mod modelled;

#[path = "bench/gate.rs"]
mod gate;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::runtime_api::{FunctionProcess, RuntimeApi};
use support::{digest, push_event, TestBed, REGISTRY};

const STARTS: usize = 15;
const WARM_DEPLOYS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((v.len() as f64) * 0.95).ceil() as usize;
    v[rank.saturating_sub(1).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident set of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time a running process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th of them, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Starts the binary and waits for its first poll of the Runtime API; (process, api, time).
async fn start(binary: &Path, env: &[(String, String)]) -> (FunctionProcess, RuntimeApi, Duration) {
    let api = RuntimeApi::start().await;
    let t0 = Instant::now();
    let function = FunctionProcess::spawn(binary, &api, env);
    let deadline = t0 + Duration::from_secs(20);
    let polled = loop {
        if let Some(at) = api.first_poll() {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no poll within 20 s: {:?}",
            function.log_lines()
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    (function, api, polled - t0)
}

async fn one_service_world(bed: &TestBed, cluster: &str) {
    bed.cluster(cluster).await;
    let td = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    bed.service(cluster, "web", &td, &[("pushdeploy:repository", "web")])
        .await;
}

fn calls(response: &serde_json::Value) -> (u64, u64) {
    let all = response["aws_calls"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let total: u64 = all.values().filter_map(|v| v.as_u64()).sum();
    let ledger: u64 = all
        .iter()
        .filter(|(k, _)| k.starts_with("DynamoDB."))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    (total, ledger)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--reconcile") {
        let binaries: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
        return reconcile::run(&binaries).await;
    }
    if args.first().map(String::as_str) == Some("--gate") {
        let binary = PathBuf::from(args.get(1).expect("--gate <gate binary>"));
        return gate::run(&binary).await;
    }
    if args.first().map(String::as_str) == Some("--model") {
        let binary = PathBuf::from(args.get(1).expect("--model <deploy binary>"));
        return modelled::run(&binary).await;
    }
    let binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/deploy".into()),
    );
    assert!(
        binary.exists(),
        "{} is missing: run `make build`",
        binary.display()
    );
    println!(
        "pushdeploy bench: {} against a local moto (loopback, one request at a time)\n",
        binary.display()
    );

    // Cold start: exec to first poll, with and without the connection warm-up.
    let bed = TestBed::start().await;
    one_service_world(&bed, "prod").await;
    let mut cold = Vec::new();
    let mut cold_no_warm = Vec::new();
    for _ in 0..STARTS {
        let (f, _api, t) = start(&binary, &bed.function_env()).await;
        cold.push(ms(t));
        f.stop().await;
        let mut env = bed.function_env();
        env.push(("PUSHDEPLOY_WARM_UP".into(), "false".into()));
        let (f, _api, t) = start(&binary, &env).await;
        cold_no_warm.push(ms(t));
        f.stop().await;
    }
    println!("cold start, exec -> first poll of the Runtime API ({STARTS} starts each):");
    println!(
        "  with connection warm-up (default):   median {:7.2} ms",
        median(cold.clone())
    );
    println!(
        "  without (PUSHDEPLOY_WARM_UP=false):  median {:7.2} ms",
        median(cold_no_warm.clone())
    );
    println!(
        "  so the warm-up costs {:.2} ms here (it starts 3 requests in a task of its own and does\n   not wait for them)\n",
        median(cold.clone()) - median(cold_no_warm.clone())
    );

    // Cold first deploy: exec to the first response, on a fresh process. Each push's image is
    // put into ECR first, outside the measure, as the deploy confirms every push with ECR.
    bed.ecr_has("web", "latest", &digest('0')).await;
    let t0 = Instant::now();
    let (function, api, _) = start(&binary, &bed.function_env()).await;
    let response = api
        .invoke(
            push_event(
                "cold-1",
                "web",
                "latest",
                &digest('0'),
                "2026-11-26T12:00:00Z",
            ),
            Duration::from_secs(60),
        )
        .await
        .response();
    let cold_first = t0.elapsed();
    assert_eq!(response["outcomes"][0]["outcome"], "deployed", "{response}");

    // Warm single-service deploys on the same process.
    let mut warm = Vec::new();
    let mut call_counts = Vec::new();
    for i in 0..WARM_DEPLOYS {
        let d = char::from_digit((i % 15 + 1) as u32, 16).unwrap();
        let pushed = format!("sha256:{d}{i:063x}");
        bed.ecr_has("web", "latest", &pushed).await;
        // Pushes of one tag are ordered by when the tag moved: the event's time, now (ECR
        // confirms it), as pushes of one tag a few ms apart cannot be told apart by a second.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = push_event(&format!("warm-{i:03}"), "web", "latest", &pushed, &now);
        let t = Instant::now();
        let response = api.invoke(event, Duration::from_secs(60)).await.response();
        warm.push(ms(t.elapsed()));
        assert_eq!(response["outcomes"][0]["outcome"], "deployed", "{response}");
        call_counts.push(calls(&response));
    }
    let rss = function.pid().and_then(peak_rss_kib);
    function.stop().await;
    let (total, ledger) = call_counts[0];
    let single = median(warm.clone());
    println!(
        "cold first deploy, exec -> first response: {:.2} ms",
        ms(cold_first)
    );
    println!("warm single-service deploy ({WARM_DEPLOYS} pushes, one process):");
    println!("  median {:.2} ms, p95 {:.2} ms", single, p95(warm.clone()));
    println!(
        "  AWS calls per deploy: {total} = {} (discovery, ECR's confirmation, describe x2, register, update) + {ledger} ledger",
        total - ledger
    );
    if let Some(kib) = rss {
        println!(
            "peak RSS of the process over {} deploys: {:.1} MiB\n",
            WARM_DEPLOYS + 1,
            kib as f64 / 1024.0
        );
    }

    // Fan-out: 50 services in 5 clusters following one repository, at the default service
    // concurrency and at a high one.
    for concurrency in ["8", "32"] {
        fan_out(&binary, concurrency, single).await;
    }

    // Sizes.
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!(
        "\nbinary: {} bytes ({:.2} MiB) stripped",
        size,
        size as f64 / 1048576.0
    );
    let zipped = std::env::temp_dir().join("pushdeploy-bench-bootstrap.zip");
    let _ = std::fs::remove_file(&zipped);
    let dir = std::env::temp_dir().join("pushdeploy-bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::copy(&binary, dir.join("bootstrap"));
    let zip = std::process::Command::new("zip")
        .args(["-q", "-9", "-j"])
        .arg(&zipped)
        .arg(dir.join("bootstrap"))
        .status();
    match (zip, std::fs::metadata(&zipped)) {
        (Ok(s), Ok(m)) if s.success() => println!(
            "bootstrap zipped (zip -9): {} bytes ({:.2} MiB)",
            m.len(),
            m.len() as f64 / 1048576.0
        ),
        _ => println!("bootstrap zipped: `zip` is not available here"),
    }

    modelled::run(&binary).await;
    // The gate beside the deploy binary `make build` put there.
    if let Some(lambda) = binary.parent().and_then(Path::parent) {
        gate::run(&lambda.join("gate").join("bootstrap")).await;
    }
}

/// One push nobody follows (of `other:latest`, which ECR must have), so that the function's
/// next push runs on a warm process.
async fn warm_up(api: &RuntimeApi, event_id: &str) {
    api.invoke(
        push_event(
            event_id,
            "other",
            "latest",
            &digest('9'),
            "2026-11-26T11:00:00Z",
        ),
        Duration::from_secs(60),
    )
    .await
    .response();
}

/// One push to 50 services in 5 clusters; prints its time against the single-service median.
async fn fan_out(binary: &Path, concurrency: &str, single: f64) {
    let bed = TestBed::start().await;
    for c in 0..5 {
        bed.cluster(&format!("c{c}")).await;
        for s in 0..10 {
            let td = bed
                .task_definition(
                    &format!("f{c}-{s}"),
                    &[("app", &format!("{REGISTRY}/web:latest"))],
                )
                .await;
            bed.service(
                &format!("c{c}"),
                &format!("s{s}"),
                &td,
                &[("pushdeploy:repository", "web")],
            )
            .await;
        }
    }
    let mut env = bed.function_env();
    env.push(("PUSHDEPLOY_CONCURRENCY".into(), concurrency.into()));
    let (function, api, _) = start(binary, &env).await;
    bed.ecr_has("other", "latest", &digest('9')).await;
    bed.ecr_has("web", "latest", &digest('f')).await;
    warm_up(&api, "w").await;
    let t = Instant::now();
    let response = api
        .invoke(
            push_event("fan", "web", "latest", &digest('f'), "2026-11-26T12:00:00Z"),
            Duration::from_secs(120),
        )
        .await
        .response();
    let fan = ms(t.elapsed());
    let deployed = response["outcomes"]
        .as_array()
        .map(|o| o.iter().filter(|o| o["outcome"] == "deployed").count())
        .unwrap_or(0);
    let (total, ledger) = calls(&response);
    let fan_rss = function.pid().and_then(peak_rss_kib);
    function.stop().await;
    println!("fan-out: one push, 50 services in 5 clusters (50 distinct task definitions), PUSHDEPLOY_CONCURRENCY={concurrency}:");
    println!(
        "  {deployed} deployed in {fan:.2} ms = {:.2}x the single-service median",
        fan / single
    );
    println!(
        "  AWS calls: {total} ({} ECS/Tagging, {ledger} ledger)",
        total - ledger
    );
    if let Some(kib) = fan_rss {
        println!("  peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
}
