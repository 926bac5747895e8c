//! The loopback HTTP/1 server behind every stand-in of the test world: the Runtime API, and the
//! proxies in front of moto (faults, paging, AWS's speed). Each connection is served on a task
//! of its own, so a request held by one stand-in never blocks another's.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;

/// Serves `handler` on a free loopback port until the returned task is aborted (or dropped with
/// the runtime); the port's address and that task.
pub async fn serve<H, F, E>(handler: H) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handler))
                    .await;
            });
        }
    });
    (address, server)
}

/// The operation a JSON-protocol AWS request names (`X-Amz-Target`, e.g.
/// `DynamoDB_20120810.PutItem`), if it names one.
pub fn amz_target<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
