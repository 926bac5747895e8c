//! The gate Lambda function (the lifecycle-hook target): wiring only. The work is in
//! `pushdeploy::gate`.

use lambda_runtime::{service_fn, LambdaEvent};
use pushdeploy::gate::GateHandler;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pushdeploy::logging::init();
    let config = pushdeploy::init::settings().await?;
    let sdk = pushdeploy::aws::load_sdk_config().await;
    let handler = GateHandler::new(&sdk, config);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(handler.handle(event.payload).await)
    }))
    .await
}
