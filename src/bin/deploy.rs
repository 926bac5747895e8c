//! The deploy Lambda function: wiring only. The work is in `pushdeploy::deploy`.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pushdeploy::deploy::Deployer;
use pushdeploy::invocation::Invocation;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pushdeploy::logging::init();
    let config = pushdeploy::init::settings().await?;
    let sdk = pushdeploy::aws::load_sdk_config().await;
    let deployer = Deployer::new(&sdk, config);
    deployer.warm_up();
    let deployer = &deployer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from(&event.context);
        deployer
            .handle(event.payload, &invocation)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
