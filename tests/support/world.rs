//! The demo's world (shared by `make demo` and `make invoke`, so the sample events in `events/`
//! find what they name) and a notification topic whose messages a test can read back.

use super::{TestBed, REGISTRY};
use serde_json::Value;

pub const DEMO_REPOSITORY: &str = "pushdeploy-demo";
pub const DEMO_SIDECAR: &str = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable";

/// What the demo world starts with.
pub struct DemoWorld {
    /// The revision service demo/web runs.
    pub revision: String,
    /// The digest moto gave the first image.
    pub first_digest: String,
}

impl TestBed {
    /// ECR repository `pushdeploy-demo` with one image; cluster `demo`; service `web` running a
    /// two-container task definition (the app, and a log-router sidecar), tagged to follow the
    /// repository. The sample events of `events/` are about exactly these.
    pub async fn demo_world(&self) -> DemoWorld {
        let ecr = aws_sdk_ecr::Client::new(&self.sdk);
        ecr.create_repository()
            .repository_name(DEMO_REPOSITORY)
            .send()
            .await
            .expect("create ECR repository");
        let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"layers":[]}"#;
        let first = ecr
            .put_image()
            .repository_name(DEMO_REPOSITORY)
            .image_tag("latest")
            .image_manifest(manifest)
            .send()
            .await
            .expect("put the first image");
        let first_digest = first
            .image()
            .and_then(|i| i.image_id())
            .and_then(|i| i.image_digest())
            .unwrap_or("?")
            .to_string();
        self.cluster("demo").await;
        let app_image = format!("{REGISTRY}/{DEMO_REPOSITORY}:latest");
        let revision = self
            .task_definition(
                DEMO_REPOSITORY,
                &[("app", &app_image), ("log-router", DEMO_SIDECAR)],
            )
            .await;
        self.service(
            "demo",
            "web",
            &revision,
            &[("pushdeploy:repository", DEMO_REPOSITORY)],
        )
        .await;
        DemoWorld {
            revision,
            first_digest,
        }
    }

    /// Turns on the demo service's deployment circuit breaker, with ECS's own rollback off, so
    /// that failing tasks make ECS report the deployment FAILED and pushdeploy rolls it back.
    pub async fn demo_circuit_breaker(&self) {
        self.ecs
            .update_service()
            .cluster("demo")
            .service("web")
            .deployment_configuration(super::circuit_breaker(false))
            .send()
            .await
            .expect("turn on the circuit breaker");
    }

    /// `docker push pushdeploy-demo:latest` of a new image: ECR's push event for it, built from
    /// `events/ecr-push.json` with the digest ECR gave the image and the world's time.
    pub async fn demo_push(&self, seed: u32) -> Value {
        let digest = self.push_image(DEMO_REPOSITORY, "latest", seed).await;
        let mut event = super::sample_event("ecr-push.json");
        event["detail"]["image-digest"] = Value::String(digest);
        event["time"] = Value::String(self.world().now().await);
        event
    }

    /// Service `cluster`/`name` running one container, `app`, on `image`, in a task definition
    /// family named after the service, with `tags`; the revision's ARN.
    pub async fn app_service(
        &self,
        cluster: &str,
        name: &str,
        image: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let revision = self.task_definition(name, &[("app", image)]).await;
        self.service(cluster, name, &revision, tags).await;
        revision
    }

    /// Cluster `prod` with service `web` running `{REGISTRY}/web:latest` (family `web`, one
    /// container `app`), tagged to follow repository `web`: what most deploy tests push to. The
    /// revision's ARN.
    pub async fn web_service(&self) -> String {
        self.cluster("prod").await;
        self.app_service(
            "prod",
            "web",
            &format!("{REGISTRY}/web:latest"),
            &[("pushdeploy:repository", "web")],
        )
        .await
    }

    /// An SNS topic with an SQS queue subscribed to it; (topic ARN, queue URL).
    pub async fn notify_topic(&self) -> (String, String) {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let topic = sns
            .create_topic()
            .name("pushdeploy-notifications")
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name("notifications")
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint("arn:aws:sqs:us-east-1:123456789012:notifications")
            .send()
            .await
            .expect("subscribe the queue");
        (topic, queue_url)
    }

    /// The SNS envelopes (`Subject`, `Message`, `MessageAttributes`) in the queue, taken off it.
    /// Polls until `expected` arrived or a 10 s deadline passes.
    pub async fn notifications(&self, queue_url: &str, expected: usize) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            for m in out.messages() {
                got.push(serde_json::from_str(m.body().unwrap_or("null")).unwrap());
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
            if got.len() >= expected || std::time::Instant::now() > deadline {
                return got;
            }
        }
    }
}
