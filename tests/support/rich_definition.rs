//! A task definition with most of what ECS lets one say: what a deploy must carry over whole,
//! but for the one image.

use super::{TestBed, REGISTRY};
use aws_sdk_ecs::types::*;

impl TestBed {
    /// Registers family `web`'s rich revision: `app` (`{REGISTRY}/web:latest`, ports,
    /// environment, a secret, a dependency, health check, ulimits, logs, two mounts, labels,
    /// command) and an `envoy` sidecar, on Fargate/ARM64 with an EFS volume and two tags; its ARN.
    pub async fn rich_definition(&self) -> String {
        let app = ContainerDefinition::builder()
            .name("app")
            .image(format!("{REGISTRY}/web:latest"))
            .cpu(256)
            .memory(512)
            .memory_reservation(256)
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(8080)
                    .host_port(8080)
                    .protocol(TransportProtocol::Tcp)
                    .name("http")
                    .build(),
            )
            .environment(
                KeyValuePair::builder()
                    .name("DATABASE_URL")
                    .value("postgres://app:s3cr3t@db:5432/app")
                    .build(),
            )
            .environment(
                KeyValuePair::builder()
                    .name("LOG_LEVEL")
                    .value("info")
                    .build(),
            )
            .secrets(
                Secret::builder()
                    .name("API_KEY")
                    .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key")
                    .build()
                    .unwrap(),
            )
            .depends_on(
                ContainerDependency::builder()
                    .container_name("envoy")
                    .condition(ContainerCondition::Healthy)
                    .build()
                    .unwrap(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f http://localhost:8080/health || exit 1")
                    .interval(15)
                    .timeout(5)
                    .retries(3)
                    .start_period(30)
                    .build()
                    .unwrap(),
            )
            .ulimits(
                Ulimit::builder()
                    .name(UlimitName::Nofile)
                    .soft_limit(65536)
                    .hard_limit(65536)
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/ecs/web")
                    .options("awslogs-region", "us-east-1")
                    .options("awslogs-stream-prefix", "app")
                    .build()
                    .unwrap(),
            )
            .mount_points(
                MountPoint::builder()
                    .source_volume("data")
                    .container_path("/var/data")
                    .read_only(false)
                    .build(),
            )
            .mount_points(
                MountPoint::builder()
                    .source_volume("scratch")
                    .container_path("/tmp/scratch")
                    .build(),
            )
            .docker_labels("team", "web")
            .command("serve")
            .entry_point("/app/bin")
            .working_directory("/app")
            .stop_timeout(30)
            .build();
        let envoy = ContainerDefinition::builder()
            .name("envoy")
            .image("public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod")
            .essential(true)
            .memory(128)
            .environment(
                KeyValuePair::builder()
                    .name("APPMESH_RESOURCE_ARN")
                    .value("mesh/web")
                    .build(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -s http://localhost:9901/server_info")
                    .build()
                    .unwrap(),
            )
            .user("1337")
            .build();
        self.ecs
            .register_task_definition()
            .family("web")
            .task_role_arn("arn:aws:iam::123456789012:role/web-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/web-execution")
            .network_mode(NetworkMode::Awsvpc)
            .container_definitions(app)
            .container_definitions(envoy)
            .volumes(
                Volume::builder()
                    .name("data")
                    .efs_volume_configuration(
                        EfsVolumeConfiguration::builder()
                            .file_system_id("fs-0123456789abcdef0")
                            .root_directory("/web")
                            .transit_encryption(EfsTransitEncryption::Enabled)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .volumes(Volume::builder().name("scratch").build())
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("1024")
            .memory("2048")
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            .ephemeral_storage(EphemeralStorage::builder().size_in_gib(40).build())
            .pid_mode(PidMode::Task)
            .tags(Tag::builder().key("team").value("web").build())
            .tags(Tag::builder().key("cost-center").value("1234").build())
            .send()
            .await
            .expect("register the rich definition")
            .task_definition
            .unwrap()
            .task_definition_arn
            .unwrap()
    }
}
