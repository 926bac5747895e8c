//! A function that cannot start says why to Lambda itself: its Runtime API's `/init/error`
//! takes the reason, so the init failure Lambda reports (and the first invocation's error)
//! carries the sentence that names the bad setting, not only an exit status.

use crate::config::Config;
use std::time::Duration;

/// The function's settings; or, when they are wrong, the reason logged once, posted as the init
/// error, and returned so that `main` exits.
pub async fn settings() -> Result<Config, lambda_runtime::Error> {
    match Config::from_env() {
        Ok(config) => Ok(config),
        Err(e) => {
            tracing::error!(reason = %e, "pushdeploy cannot start");
            report_init_error("pushdeploy.ConfigError", &e.to_string()).await;
            Err(e.to_string().into())
        }
    }
}
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Posts `message` to `/runtime/init/error` of `AWS_LAMBDA_RUNTIME_API` (a loopback address,
/// plain HTTP/1.1, one request). Outside Lambda, or if the post fails, nothing more happens:
/// the caller still logs the reason and exits non-zero.
pub(crate) async fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nLambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let post = async {
        let mut stream = tokio::net::TcpStream::connect(&api).await?;
        stream.write_all(request.as_bytes()).await?;
        // Wait for the answer (Lambda then ends the environment), whatever it is.
        let mut answer = [0u8; 64];
        let _ = stream.read(&mut answer).await?;
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), post).await;
}
