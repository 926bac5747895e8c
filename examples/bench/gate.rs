//! `make bench`, the gate: the release `gate` binary through the Runtime API stand-in against
//! moto, with a local HTTP server as the green revision. Its cold start (exec to first poll),
//! the time of one hook invocation with 0, 1, 5 and 20 smoke checks (so what each check adds)
//! and with 1 and 20 alarm checks (one DescribeAlarms, answered by the test world in CBOR), its
//! peak RSS and its size. Numbers for notes, asserted on nothing but correctness.

use super::support::loopback;
use super::support::runtime_api::RuntimeApi;
use super::support::{TestBed, REGISTRY};
use super::{median, ms, p95, peak_rss_kib, start, STARTS};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Invocations per workload, on one warm process.
const ROUNDS: usize = 40;

pub async fn run(binary: &Path) {
    if !binary.exists() {
        println!("\ngate: {} is missing (make build)", binary.display());
        return;
    }
    println!("\npushdeploy bench: the gate, {}\n", binary.display());
    let (green, _server) = green_server().await;
    let bed = TestBed::start().await;
    bed.cluster("prod").await;
    let td = bed
        .task_definition("web", &[("app", &format!("{REGISTRY}/web:latest"))])
        .await;
    let mut services = Vec::new();
    for checks in [1usize, 5, 20] {
        let smoke = vec!["/healthz 200 1s x1"; checks].join(" + ");
        let name = format!("web-{checks}");
        let arn = bed
            .service(
                "prod",
                &name,
                &td,
                &[
                    ("pushdeploy:repository", "web"),
                    ("pushdeploy:smoke", &smoke),
                    ("pushdeploy:smoke-url", &green),
                ],
            )
            .await;
        services.push((checks, arn));
    }
    let world = bed.world();
    let mut alarmed = Vec::new();
    for count in [1usize, 20] {
        let names: Vec<String> = (0..count)
            .map(|i| format!("web-{count}-alarm-{i}"))
            .collect();
        for name in &names {
            world.set_alarm(name, "OK", "bench").await;
        }
        let arn = bed
            .service(
                "prod",
                &format!("alarmed-{count}"),
                &td,
                &[
                    ("pushdeploy:repository", "web"),
                    ("pushdeploy:alarms", &names.join(" ")),
                ],
            )
            .await;
        alarmed.push((count, arn));
    }

    // The deploy binary beside it, started alternately, for a ratio measured in one run.
    let deploy = binary
        .parent()
        .and_then(Path::parent)
        .map(|lambda| lambda.join("deploy").join("bootstrap"))
        .filter(|p| p.exists());
    let (mut cold, mut cold_deploy) = (Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let (f, _api, t) = start(binary, &bed.function_env()).await;
        cold.push(ms(t));
        f.stop().await;
        if let Some(deploy) = &deploy {
            let (f, _api, t) = start(deploy, &bed.function_env()).await;
            cold_deploy.push(ms(t));
            f.stop().await;
        }
    }
    let cold = median(cold);
    println!("cold start, exec -> first poll ({STARTS} starts): median {cold:.2} ms");
    if !cold_deploy.is_empty() {
        let deploy = median(cold_deploy);
        println!(
            "  the deploy binary, started alternately: median {deploy:.2} ms (the gate: {:.2}x)",
            cold / deploy
        );
    }

    let (function, api, _) = start(binary, &bed.function_env()).await;
    let (_, first_arn) = &services[0];
    // Warm the process and its connections.
    invoke(&api, first_arn, "POST_TEST_TRAFFIC_SHIFT").await;
    let baseline = rounds(&api, first_arn, "POST_SCALE_UP").await;
    println!("one hook invocation, warm ({ROUNDS} each):");
    println!(
        "  no check at the stage (reads the service's tags only): median {:.2} ms, p95 {:.2} ms",
        median(baseline.clone()),
        p95(baseline.clone())
    );
    let mut by_count = Vec::new();
    for (checks, arn) in &services {
        let times = rounds(&api, arn, "POST_TEST_TRAFFIC_SHIFT").await;
        println!(
            "  {checks:>2} smoke check(s), tried concurrently: median {:.2} ms, p95 {:.2} ms",
            median(times.clone()),
            p95(times.clone())
        );
        by_count.push((*checks, median(times)));
    }
    let one = by_count[0].1;
    let twenty = by_count[2].1;
    println!(
        "  so one check adds {:.2} ms to a round, and each further one {:.3} ms",
        one - median(baseline.clone()),
        (twenty - one) / 19.0
    );
    let mut by_alarms = Vec::new();
    for (count, arn) in &alarmed {
        let times = rounds(&api, arn, "POST_PRODUCTION_TRAFFIC_SHIFT").await;
        println!(
            "  {count:>2} alarm check(s), one DescribeAlarms: median {:.2} ms, p95 {:.2} ms",
            median(times.clone()),
            p95(times.clone())
        );
        by_alarms.push(median(times));
    }
    println!(
        "  so alarms add {:.2} ms to a round (one alarm), and each further one {:.3} ms",
        by_alarms[0] - median(baseline),
        (by_alarms[1] - by_alarms[0]) / 19.0
    );
    if let Some(kib) = function.pid().and_then(peak_rss_kib) {
        println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    function.stop().await;
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    println!("gate binary: {:.2} MiB stripped", size as f64 / 1048576.0);
    let zipped = std::env::temp_dir().join("pushdeploy-bench-gate.zip");
    let _ = std::fs::remove_file(&zipped);
    let dir = std::env::temp_dir().join("pushdeploy-bench-gate");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::copy(binary, dir.join("bootstrap"));
    let zip = std::process::Command::new("zip")
        .args(["-q", "-9", "-j"])
        .arg(&zipped)
        .arg(dir.join("bootstrap"))
        .status();
    if let (Ok(s), Ok(m)) = (zip, std::fs::metadata(&zipped)) {
        if s.success() {
            println!(
                "gate bootstrap zipped (zip -9): {:.2} MiB",
                m.len() as f64 / 1048576.0
            );
        }
    }
}

async fn rounds(api: &RuntimeApi, service_arn: &str, stage: &str) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let answer = invoke(api, service_arn, stage).await;
        times.push(ms(t.elapsed()));
        assert_eq!(answer["hookStatus"], "SUCCEEDED", "{answer}");
    }
    times
}

async fn invoke(api: &RuntimeApi, service_arn: &str, stage: &str) -> Value {
    let green = "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/2";
    let payload = json!({
        "executionId": "bench",
        "lifecycleStage": stage,
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/bench",
        "executionDetails": {
            "serviceArn": service_arn,
            "targetServiceRevisionArn": green,
            "testTrafficWeights": {},
            "productionTrafficWeights": {}
        }
    });
    api.invoke(payload, Duration::from_secs(60))
        .await
        .response()
}

/// A loopback server answering 200 to everything: the green revision.
async fn green_server() -> (String, tokio::task::JoinHandle<()>) {
    let (address, server) = loopback::serve(|_req| async {
        let body = http_body_util::Full::new(hyper::body::Bytes::from_static(b"ok"));
        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
    })
    .await;
    (format!("http://{address}"), server)
}
