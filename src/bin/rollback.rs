//! The rollback Lambda function: wiring only. The work is in `pushdeploy::rollback`.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pushdeploy::invocation::Invocation;
use pushdeploy::rollback::RollbackHandler;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pushdeploy::logging::init();
    let config = pushdeploy::init::settings().await?;
    let sdk = pushdeploy::aws::load_sdk_config().await;
    let handler = RollbackHandler::new(&sdk, config);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from(&event.context);
        handler
            .handle(event.payload, &invocation)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
