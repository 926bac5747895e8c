//! The test bed shared by the integration tests and `make demo`: a moto server of its own,
//! an SDK pointed at it through the standard endpoint configuration, the ledger table as
//! template.yaml defines it, and small helpers to set up ECS.
#![allow(dead_code)]

pub mod aws_model;
pub mod ecs_world;
pub mod fast_aws;
pub mod fault_proxy;
pub mod loopback;
pub mod mocks;
pub mod moto;
pub mod rich_definition;
pub mod runtime_api;
pub mod world;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinitionField};
use serde_json::{json, Value};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
pub const TABLE: &str = "pushdeploy-ledger";

pub fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A push of `web:latest` with digest `d` made at 2026-11-26T12:00:`second`Z, as the deploy
/// function's edge would have parsed it (for tests that call the ledger directly).
pub fn typed_push(event_id: &str, second: u32, d: char) -> pushdeploy::event::Push {
    use chrono::TimeZone;
    pushdeploy::event::Push {
        event_id: event_id.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        repository: "web".into(),
        tag: "latest".into(),
        digest: pushdeploy::event::Digest::parse(&digest(d)).unwrap(),
        pushed_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 12, 0, second)
            .unwrap(),
        manifest_media_type: None,
        artifact_media_type: None,
        replicated_from: None,
    }
}

pub struct TestBed {
    pub moto: moto::Moto,
    pub sdk: aws_config::SdkConfig,
    pub ecs: aws_sdk_ecs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl TestBed {
    pub async fn start() -> TestBed {
        let moto = moto::Moto::start();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.url())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let bed = TestBed {
            ecs: aws_sdk_ecs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sdk,
            moto,
        };
        bed.create_ledger_table().await;
        bed
    }

    /// The bed's SDK configuration, but talking to `endpoint` (a fault proxy in front of this
    /// bed's moto), with the functions' retry policy (standard, 3 attempts) minus most of the
    /// waiting, and a short attempt timeout so that a hung call fails quickly.
    pub async fn sdk_via(&self, endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .retry_config(mocks::quick_retries())
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_millis(400))
                    .build(),
            )
            .load()
            .await
    }

    /// The deployment-aware ECS world inside this bed's moto (`ecs_world.py`).
    pub fn world(&self) -> ecs_world::World {
        ecs_world::World::at(self.moto.address)
    }

    /// Pushes a fresh image (a manifest made from `seed`) to `repository` under `tag`, as
    /// `docker push` would: the tag moves to it. Its digest, as ECR computed it.
    pub async fn push_image(&self, repository: &str, tag: &str, seed: u32) -> String {
        let ecr = aws_sdk_ecr::Client::new(&self.sdk);
        let _ = ecr
            .create_repository()
            .repository_name(repository)
            .send()
            .await;
        // moto's digest of a manifest is computed from its layers: one layer per seed.
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:{seed:064x}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":100,"digest":"sha256:{seed:064x}"}}]}}"#
        );
        ecr.put_image()
            .repository_name(repository)
            .image_tag(tag)
            .image_manifest(manifest)
            .send()
            .await
            .expect("put image")
            .image
            .and_then(|i| i.image_id)
            .and_then(|i| i.image_digest)
            .expect("ECR returns the digest")
    }

    /// Puts the image a push event names into ECR, as the push itself left it: `digest` in
    /// `repository` (created if need be) under `tag`, which moves to it. The deploy function
    /// confirms every push with ECR (DescribeImages) before it moves anything, so a test that
    /// delivers a push first makes the push. The manifest is unique per digest (ECR keeps one
    /// image per manifest) and the digest is the event's, as PutImage's `imageDigest` allows.
    pub async fn ecr_has(&self, repository: &str, tag: &str, digest: &str) {
        let ecr = aws_sdk_ecr::Client::new(&self.sdk);
        let _ = ecr
            .create_repository()
            .repository_name(repository)
            .send()
            .await;
        let layer = digest.trim_start_matches("sha256:");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:{layer}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":100,"digest":"sha256:{layer}"}}]}}"#
        );
        let put = ecr
            .put_image()
            .repository_name(repository)
            .image_tag(tag)
            .image_digest(digest)
            .image_manifest(manifest)
            .send()
            .await;
        if let Err(e) = put {
            // The same image pushed again under the same tag: already as the push left it.
            let e = e.into_service_error();
            assert!(e.is_image_already_exists_exception(), "put image: {e:?}");
        }
    }

    /// ECR's `imagePushedAt` of `digest` in `repository`, as an EventBridge time.
    pub async fn ecr_pushed_at(&self, repository: &str, digest: &str) -> String {
        let ecr = aws_sdk_ecr::Client::new(&self.sdk);
        let out = ecr
            .describe_images()
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await
            .expect("describe the image");
        let at = out.image_details()[0].image_pushed_at().expect("pushed at");
        chrono::DateTime::from_timestamp(at.secs(), 0)
            .expect("a time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Makes the push `event` names (see [`TestBed::ecr_has`]) and hands the event back.
    pub async fn pushed(&self, event: Value) -> Value {
        let detail = &event["detail"];
        let field = |name: &str| detail[name].as_str().unwrap_or_default().to_string();
        if !field("image-tag").is_empty() && !field("image-digest").is_empty() {
            self.ecr_has(
                &field("repository-name"),
                &field("image-tag"),
                &field("image-digest"),
            )
            .await;
        }
        event
    }

    /// The bed's SDK configuration, talking to `endpoint` (a fault proxy holding calls at a
    /// gate) with the functions' own retry and timeout settings, so that a held call waits.
    pub async fn sdk_through(&self, endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// The function's configuration for this bed.
    pub fn config(&self) -> pushdeploy::config::Config {
        pushdeploy::config::Config::for_table(TABLE)
    }

    /// The environment a function process needs to reach this bed, the standard way.
    pub fn function_env(&self) -> Vec<(String, String)> {
        function_env_at(&self.moto.url())
    }

    /// The ledger table exactly as template.yaml declares it.
    async fn create_ledger_table(&self) {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let index = |name: &str, hash: &str, range: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(hash, KeyType::Hash))
                .key_schema(key(range, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap()
        };
        self.dynamodb
            .create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .attribute_definitions(attribute("service_digest"))
            .attribute_definitions(attribute("inflight"))
            .attribute_definitions(attribute("updated_at"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(index(
                pushdeploy::ledger::BY_DIGEST_INDEX,
                "service_digest",
                "sk",
            ))
            .global_secondary_indexes(index(
                pushdeploy::ledger::IN_FLIGHT_INDEX,
                "inflight",
                "updated_at",
            ))
            .send()
            .await
            .expect("create ledger table");
    }

    pub async fn cluster(&self, name: &str) {
        self.ecs
            .create_cluster()
            .cluster_name(name)
            .send()
            .await
            .expect("create cluster");
    }

    /// Registers a task definition with these (name, image) containers; returns its ARN.
    pub async fn task_definition(&self, family: &str, containers: &[(&str, &str)]) -> String {
        let mut request = self
            .ecs
            .register_task_definition()
            .family(family)
            .tags(Tag::builder().key("team").value("web").build());
        for (name, image) in containers {
            request = request.container_definitions(
                ContainerDefinition::builder()
                    .name(*name)
                    .image(*image)
                    .memory(128)
                    .essential(true)
                    .build(),
            );
        }
        request
            .send()
            .await
            .expect("register task definition")
            .task_definition
            .unwrap()
            .task_definition_arn
            .unwrap()
    }

    /// Creates a service on `task_definition` with these tags (desired count 1); returns its
    /// ARN.
    pub async fn service(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
    ) -> String {
        self.create_service(cluster, name, task_definition, tags, 1, None)
            .await
    }

    /// Creates a service on `task_definition` with these tags and deployment configuration
    /// (circuit breaker, strategy, bake time), desired count 2; returns its ARN.
    pub async fn service_with(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
        configuration: aws_sdk_ecs::types::DeploymentConfiguration,
    ) -> String {
        self.create_service(cluster, name, task_definition, tags, 2, Some(configuration))
            .await
    }

    /// A service of desired count 2 under the CODE_DEPLOY deployment controller, behind a
    /// load balancer's target group at `(container, port)`.
    pub async fn code_deploy_service(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
        (container, port): (&str, i32),
    ) -> String {
        let request = self
            .service_request(cluster, name, task_definition, tags, 2)
            .deployment_controller(
                aws_sdk_ecs::types::DeploymentController::builder()
                    .r#type(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)
                    .build()
                    .expect("a controller type"),
            )
            .load_balancers(
                aws_sdk_ecs::types::LoadBalancer::builder()
                    .target_group_arn(format!(
                        "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}-blue/1"
                    ))
                    .container_name(container)
                    .container_port(port)
                    .build(),
            );
        service_arn_of(request.send().await.expect("create a CODE_DEPLOY service"))
    }

    fn service_request(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
        desired: i32,
    ) -> aws_sdk_ecs::operation::create_service::builders::CreateServiceFluentBuilder {
        let mut request = self
            .ecs
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(desired);
        for (k, v) in tags {
            request = request.tags(Tag::builder().key(*k).value(*v).build());
        }
        request
    }

    async fn create_service(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
        desired: i32,
        configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
    ) -> String {
        let request = self
            .service_request(cluster, name, task_definition, tags, desired)
            .set_deployment_configuration(configuration);
        service_arn_of(request.send().await.expect("create service"))
    }

    /// The task definition the service runs now.
    pub async fn running(&self, cluster: &str, service: &str) -> String {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .expect("describe service");
        out.services()[0].task_definition().unwrap().to_string()
    }

    /// The image of `container` in task definition `arn`.
    pub async fn image(&self, arn: &str, container: &str) -> String {
        let td = self.describe(arn).await.0;
        td.container_definitions()
            .iter()
            .find(|c| c.name() == Some(container))
            .and_then(|c| c.image())
            .unwrap()
            .to_string()
    }

    pub async fn describe(&self, arn: &str) -> (aws_sdk_ecs::types::TaskDefinition, Vec<Tag>) {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .expect("describe task definition");
        (out.task_definition.unwrap(), out.tags.unwrap_or_default())
    }

    /// Every revision of `family`, in registration order (moto ignores `sort`, so sort here).
    pub async fn revisions(&self, family: &str) -> Vec<String> {
        let out = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .expect("list task definitions");
        let mut arns = out.task_definition_arns().to_vec();
        arns.sort_by_key(|a| a.rsplit(':').next().and_then(|r| r.parse::<u32>().ok()));
        arns
    }
}

/// A deployment configuration with ECS's circuit breaker on, and ECS's own rollback on or off
/// (off: pushdeploy rolls back).
pub fn circuit_breaker(rollback: bool) -> aws_sdk_ecs::types::DeploymentConfiguration {
    aws_sdk_ecs::types::DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(rollback)
                .build(),
        )
        .build()
}

/// An ECR push event as EventBridge delivers it.
pub fn push_event(id: &str, repository: &str, tag: &str, digest: &str, time: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": time, "region": REGION, "resources": [],
        "detail": {
            "result": "SUCCESS", "repository-name": repository, "image-digest": digest,
            "action-type": "PUSH", "image-tag": tag,
            "manifest-media-type": "application/vnd.docker.distribution.manifest.v2+json"
        }
    })
}

/// A sample event of `events/`.
pub fn sample_event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The environment a function process needs to reach AWS (or a stand-in) at `endpoint`, the
/// standard way (`AWS_ENDPOINT_URL`), with the test ledger's name and test credentials.
pub fn function_env_at(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("PUSHDEPLOY_TABLE", TABLE.into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn service_arn_of(created: aws_sdk_ecs::operation::create_service::CreateServiceOutput) -> String {
    created
        .service
        .and_then(|s| s.service_arn)
        .expect("ECS names the service it created")
}
