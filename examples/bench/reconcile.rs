//! `make bench-reconcile`: one scheduled reconcile of a repository of 5,000 images, run by the
//! release `deploy` binary as Lambda runs it (the Runtime API stand-in gives it the same 60 s
//! deadline as the template's `Timeout: 60`), against moto. Prints its DescribeImages pages,
//! its AWS calls, its wall time beside that timeout, and its peak RSS; asserts nothing about
//! speed.
//!
//! moto's DescribeImages answers every image in one page, whatever `maxResults`, `nextToken`
//! and `filter` say. So the function reaches ECR through a small proxy that pages moto's list
//! as the API reference documents it ("If this parameter is not used, then DescribeImages
//! returns up to 100 results and a nextToken value, if applicable"; `maxResults` "can be
//! between 1 and 1000"; `filter.tagStatus` TAGGED or UNTAGGED), in moto's order (push order,
//! so the newest image is on the last page: the worst case for a reader that stops early).
//! Every other call goes to moto unchanged. The proxy reads moto's whole list once, before the
//! runs, so the time measured is the function's: its pages over loopback, their parsing, its
//! decisions and deploys. moto's own time for one unpaged answer of all images is printed
//! beside it.

use super::support::fault_proxy::forward_to_moto;
use super::support::runtime_api::{FunctionProcess, RuntimeApi};
use super::support::{TestBed, REGISTRY};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Images in the repository.
const IMAGES: u32 = 5_000;
/// Of those, how many keep no tag (a tag moved on to a newer push).
const UNTAGGED: u32 = 500;
/// The deploy function's timeout (template.yaml, `Timeout: 60`), which is also the deadline
/// the Runtime API stand-in gives each invocation.
const TIMEOUT: Duration = Duration::from_secs(60);
const DESCRIBE_IMAGES: &str = "AmazonEC2ContainerRegistry_V20150921.DescribeImages";

/// moto's whole list of a repository's images, read once, by tag status (`ANY`, `TAGGED`,
/// `UNTAGGED`); the pages served (maxResults, images), and the time spent making them.
#[derive(Default)]
struct Pager {
    images: BTreeMap<(String, String), Arc<Vec<Value>>>,
    pages: Vec<(Option<u64>, usize)>,
    paging: Duration,
}

/// moto's answer to a copy of the request: its status, body and content type.
async fn send(
    upstream: SocketAddr,
    request: &hyper::http::request::Parts,
    body: Bytes,
) -> (u16, Bytes, String) {
    let (answer, body) = forward_to_moto(upstream, request, body)
        .await
        .expect("moto answers");
    let status = answer.status.as_u16();
    let content_type = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.1")
        .to_string();
    (status, body, content_type)
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "bench-pager")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// One DescribeImages page of `repository`, as ECR documents its parameters.
fn page(pager: &Mutex<Pager>, request: &Value, repository: &str) -> Option<Response<Full<Bytes>>> {
    let t = Instant::now();
    let max = request["maxResults"].as_u64();
    if max.is_some_and(|m| !(1..=1000).contains(&m)) {
        return Some(json_response(
            400,
            json!({"__type": "InvalidParameterException", "message": "maxResults must be between 1 and 1000"}),
        ));
    }
    let status = request["filter"]["tagStatus"].as_str().unwrap_or("ANY");
    let kept = {
        let mut pager = pager.lock().unwrap();
        let all = pager
            .images
            .get(&(repository.to_string(), "ANY".to_string()))?
            .clone();
        pager
            .images
            .entry((repository.to_string(), status.to_string()))
            .or_insert_with(|| {
                let tagged = |image: &&Value| {
                    image["imageTags"]
                        .as_array()
                        .is_some_and(|tags| !tags.is_empty())
                };
                Arc::new(match status {
                    "TAGGED" => all.iter().filter(tagged).cloned().collect(),
                    "UNTAGGED" => all.iter().filter(|i| !tagged(i)).cloned().collect(),
                    _ => all.to_vec(),
                })
            })
            .clone()
    };
    let from: usize = request["nextToken"]
        .as_str()
        .and_then(|t| t.strip_prefix("page-at-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let to = (from + max.unwrap_or(100) as usize).min(kept.len());
    let mut body = json!({"imageDetails": kept[from.min(to)..to]});
    if to < kept.len() {
        body["nextToken"] = json!(format!("page-at-{to}"));
    }
    let response = json_response(200, body);
    let mut pager = pager.lock().unwrap();
    pager.pages.push((max, to - from));
    pager.paging += t.elapsed();
    Some(response)
}

async fn handle(
    pager: Arc<Mutex<Pager>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let paged = (target == DESCRIBE_IMAGES).then(|| {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let repository = request["repositoryName"].as_str().map(str::to_string);
        (request, repository)
    });
    if let Some((request, Some(repository))) = &paged {
        if request.get("imageIds").is_none() {
            if let Some(response) = page(&pager, request, repository) {
                return Ok(response);
            }
        }
    }
    let (status, body, content_type) = send(upstream, &parts, body).await;
    // The first whole read of a repository is kept, and answered as its first page.
    if let Some((request, Some(repository))) = paged {
        let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
        if let (200, Some(all), None) = (
            status,
            answer["imageDetails"].as_array(),
            request.get("imageIds"),
        ) {
            pager
                .lock()
                .unwrap()
                .images
                .insert((repository.clone(), "ANY".into()), Arc::new(all.clone()));
            if let Some(response) = page(&pager, &request, &repository) {
                return Ok(response);
            }
        }
    }
    Ok(Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body))
        .unwrap())
}

/// The paging proxy in front of `upstream`; its URL.
async fn start_pager(upstream: SocketAddr, pager: Arc<Mutex<Pager>>) -> String {
    let (address, _server) =
        crate::support::loopback::serve(move |req| handle(pager.clone(), upstream, req)).await;
    format!("http://{address}")
}

fn manifest(n: u32) -> String {
    // moto's digest of a manifest is computed from its layers: one layer per image.
    json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
                      "digest": format!("sha256:{n:064x}")},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100,
                       "digest": format!("sha256:{:064x}", 1_000_000 + n)}]})
    .to_string()
}

/// The world: repository `big` with [`IMAGES`] images pushed one after another: the first
/// [`UNTAGGED`] without a tag (what is left when a tag moves on), the others each tagged with a
/// release version `1.<n / 100>.<n % 100>`, and the newest also `latest`. Prints how long the
/// pushes took.
async fn world(bed: &TestBed) {
    let ecr = aws_sdk_ecr::Client::new(&bed.sdk);
    ecr.create_repository()
        .repository_name("big")
        .send()
        .await
        .expect("create repository");
    let started = Instant::now();
    // One after another: push order is moto's list order, which the pages keep.
    for n in 0..IMAGES {
        ecr.put_image()
            .repository_name("big")
            .image_manifest(manifest(n))
            .set_image_tag((n >= UNTAGGED).then(|| format!("1.{}.{}", n / 100, n % 100)))
            .send()
            .await
            .expect("put image");
    }
    ecr.put_image()
        .repository_name("big")
        .image_manifest(manifest(IMAGES - 1))
        .image_tag("latest")
        .send()
        .await
        .expect("tag latest");
    println!(
        "  world: {IMAGES} images pushed to moto in {:.1} s ({:.2} ms per PutImage)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(IMAGES)
    );
}

/// Two services in `cluster` that follow `big`: `site` (`latest`) and `api` (`semver:minor`,
/// running 1.0.0); their ARNs.
async fn followers(bed: &TestBed, cluster: &str) -> Vec<String> {
    bed.cluster(cluster).await;
    let mut arns = Vec::new();
    for (name, tag, policy) in [
        ("site", "latest", "latest"),
        ("api", "1.0.0", "semver:minor"),
    ] {
        let td = bed
            .task_definition(
                &format!("{cluster}-{name}"),
                &[("app", &format!("{REGISTRY}/big:{tag}"))],
            )
            .await;
        arns.push(
            bed.service(
                cluster,
                name,
                &td,
                &[("pushdeploy:repository", "big"), ("pushdeploy:tag", policy)],
            )
            .await,
        );
    }
    arns
}

fn scheduled(id: &str, time: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": time, "region": "us-east-1",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}})
}

/// Peak resident set of a running process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The world once (pushing 5,000 images to moto takes minutes), then for each binary its own
/// two services in a cluster of its own (`b<i>`), two scheduled reconciles (the first deploys,
/// the second finds everything in step), each measured; then its services stop following the
/// repository, so that the next binary's runs see only its own.
pub async fn run(binaries: &[PathBuf]) {
    println!(
        "pushdeploy reconcile bench: one repository of {IMAGES} images ({UNTAGGED} untagged) in moto, paged as ECR documents it\n"
    );
    for binary in binaries {
        assert!(
            binary.exists(),
            "{} is missing: run `make build`",
            binary.display()
        );
    }
    let bed = TestBed::start().await;
    world(&bed).await;
    let pager = Arc::new(Mutex::new(Pager::default()));
    let url = start_pager(bed.moto.address, pager.clone()).await;
    // moto's whole list, once: directly (timed, for reference), then through the proxy,
    // which keeps it.
    let t = Instant::now();
    let all = aws_sdk_ecr::Client::new(&bed.sdk)
        .describe_images()
        .repository_name("big")
        .send()
        .await
        .expect("describe all");
    println!(
        "  moto: one unpaged DescribeImages of all {} images: {:.0} ms (not part of the runs below)\n",
        all.image_details().len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let through = aws_sdk_ecr::Client::new(&bed.sdk.to_builder().endpoint_url(&url).build());
    through
        .describe_images()
        .repository_name("big")
        .send()
        .await
        .expect("describe through the proxy");
    let mut env = bed.function_env();
    for (k, v) in &mut env {
        if k == "AWS_ENDPOINT_URL" {
            *v = url.clone();
        }
    }
    for (i, binary) in binaries.iter().enumerate() {
        println!("{}:", binary.display());
        let cluster = format!("b{i}");
        let services = followers(&bed, &cluster).await;
        let api = RuntimeApi::start().await;
        let function = FunctionProcess::spawn(binary, &api, &env);
        for (run, time) in [
            ("first run (deploys)", "2026-11-26T13:00:00Z"),
            ("second run (in step)", "2026-11-26T13:15:00Z"),
        ] {
            {
                let mut pager = pager.lock().unwrap();
                pager.pages.clear();
                pager.paging = Duration::ZERO;
            }
            let t = Instant::now();
            let response = api
                .invoke(
                    scheduled(&format!("{cluster}-{time}"), time),
                    TIMEOUT + Duration::from_secs(5),
                )
                .await
                .response();
            let elapsed = t.elapsed();
            let (pages, paging) = {
                let mut pager = pager.lock().unwrap();
                (std::mem::take(&mut pager.pages), pager.paging)
            };
            let calls = response["aws_calls"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let total: u64 = calls.values().filter_map(Value::as_u64).sum();
            let page_sizes: Vec<usize> = pages.iter().map(|(_, n)| *n).collect();
            let max_results = pages.first().and_then(|(m, _)| *m);
            println!(
                "  {run}: {:.0} ms = {:.2}% of the {} s timeout (of which the paging proxy: {:.0} ms)",
                elapsed.as_secs_f64() * 1000.0,
                elapsed.as_secs_f64() * 100.0 / TIMEOUT.as_secs_f64(),
                TIMEOUT.as_secs(),
                paging.as_secs_f64() * 1000.0
            );
            // Runs of equal pages: "4 x 1000 + 500".
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for size in &page_sizes {
                match runs.last_mut() {
                    Some((n, s)) if s == size => *n += 1,
                    _ => runs.push((1, *size)),
                }
            }
            let runs: Vec<String> = runs
                .iter()
                .map(|(n, s)| {
                    if *n == 1 {
                        s.to_string()
                    } else {
                        format!("{n} x {s}")
                    }
                })
                .collect();
            println!(
                "    DescribeImages: {} pages (maxResults {}) = {} images ({})",
                pages.len(),
                max_results.map_or("unset: 100".into(), |m| m.to_string()),
                page_sizes.iter().sum::<usize>(),
                runs.join(" + ")
            );
            println!("    AWS calls: {total} {}", Value::Object(calls));
            let outcomes: Vec<String> = response["outcomes"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|o| format!("{} {} {}", o["service"], o["outcome"], o["tag"]))
                        .collect()
                })
                .unwrap_or_default();
            println!("    outcomes: {outcomes:?}");
            println!("    reason: {}", response["reason"]);
        }
        if let Some(kib) = function.pid().and_then(peak_rss_kib) {
            println!(
                "  peak RSS of the process: {:.1} MiB\n",
                kib as f64 / 1024.0
            );
        }
        function.stop().await;
        for arn in services {
            bed.ecs
                .untag_resource()
                .resource_arn(arn)
                .tag_keys("pushdeploy:repository")
                .send()
                .await
                .expect("untag");
        }
    }
}
