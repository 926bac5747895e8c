//! HTTP tries of the smoke checks, on the one HTTP/TLS stack the SDK uses (hyper 1, rustls on
//! aws-lc-rs): no second client in the binary.

use super::checks::SmokeCheck;
use super::verdict::Probe;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// How long past its budget a try may run before it is cut off: long enough to measure how slow
/// it was, short enough that no invocation waits long.
const PAST_BUDGET: Duration = Duration::from_secs(2);

/// How much of an answer's body a try reads (and drops).
const BODY_AT_MOST: usize = 1 << 20;

/// Tries smoke checks against a base URL.
#[derive(Clone)]
pub(crate) struct Prober {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Prober {
    /// HTTP, and HTTPS with the system's trusted roots (none found: HTTPS tries fail, each
    /// saying so).
    pub(crate) fn new() -> Prober {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match builder.with_provider_and_native_roots(provider()) {
            Ok(with_roots) => with_roots.https_or_http().enable_http1().build(),
            Err(e) => {
                tracing::warn!(error = %e, "no trusted root certificates found: HTTPS smoke checks will fail");
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(empty_roots())
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
        };
        Prober {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// One try of each check, all at once, in the checks' order.
    pub(crate) async fn round(&self, base_url: &str, checks: &[SmokeCheck]) -> Vec<Probe> {
        futures::future::join_all(checks.iter().map(|c| self.once(base_url, c))).await
    }

    async fn once(&self, base_url: &str, check: &SmokeCheck) -> Probe {
        let started = Instant::now();
        let url = format!("{base_url}{}", check.path);
        let answer = match url.parse::<hyper::Uri>() {
            Ok(uri) => {
                let sent = self.client.get(uri);
                match tokio::time::timeout(check.budget + PAST_BUDGET, sent).await {
                    Ok(Ok(response)) => {
                        // Read the body so that the latency covers the whole answer, but no
                        // more of it than BODY_AT_MOST: the gate keeps none of it, and a
                        // large answer must not cost the function its memory.
                        let status = response.status().as_u16();
                        let body = Limited::new(response.into_body(), BODY_AT_MOST);
                        match body.collect().await {
                            Ok(_) => Ok(status),
                            Err(e) if e.is::<LengthLimitError>() => Ok(status),
                            Err(e) => Err(format!("body cut off: {e}")),
                        }
                    }
                    Ok(Err(e)) => Err(error_chain(&e)),
                    Err(_) => Err(format!(
                        "no answer within {} ms",
                        (check.budget + PAST_BUDGET).as_millis()
                    )),
                }
            }
            Err(e) => Err(format!("{url:?} is not a URL: {e}")),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match answer {
            Ok(status) => Probe {
                path: check.path.clone(),
                status: Some(status),
                latency_ms,
                error: None,
            },
            Err(error) => Probe {
                path: check.path.clone(),
                status: None,
                latency_ms,
                error: Some(error),
            },
        }
    }
}

/// The SDK's own provider: aws-lc-rs.
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn empty_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider().into())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports rustls's default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// The error and its causes in one line ("client error (Connect): tcp connect error: Connection
/// refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut words = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        words.push(s.to_string());
        source = s.source();
    }
    words.join(": ")
}
