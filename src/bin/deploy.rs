//! The deploy Lambda function: wiring only. The work is in `pushdeploy::deploy`.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pushdeploy::deploy::{Deployer, Invocation};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pushdeploy::logging::init();
    let config = pushdeploy::init::settings().await?;
    let sdk = pushdeploy::aws::load_sdk_config().await;
    let deployer = Deployer::new(&sdk, config);
    deployer.warm_up().await;
    let deployer = &deployer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation {
            deadline_ms: event.context.deadline,
            function_arn: Some(event.context.invoked_function_arn),
            request_id: Some(event.context.request_id),
        };
        deployer
            .handle(event.payload, &invocation)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
