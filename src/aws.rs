//! Every AWS call of the deploy path: one place that maps SDK errors to sentences and decides
//! which are worth a retry. Retries of single requests are the SDK's (standard mode, settable
//! with AWS_MAX_ATTEMPTS / AWS_RETRY_MODE), except for the two ECS writes that must not be
//! re-sent blindly (`write_at_most_once`); Lambda retries the invocation on top.

use crate::clock::AwsClock;
use crate::follow::TaggedService;
use crate::pace::{ApiGroup, Pacer, PastDeadline};
use aws_config::SdkConfig;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{
    CreatedAt, DeploymentLifecycleHookAction, Service, ServiceDeployment, ServiceDeploymentBrief,
    ServiceField, ServiceRevision, StopServiceDeploymentStopType, Tag, TaskDefinition,
    TaskDefinitionField,
};
use aws_sdk_resourcegroupstagging::types::TagFilter;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod codedeploy;
mod error;
pub use error::{Barrier, Problem};

/// An AWS call that failed, said so that an operator can act on it: as the [`Problem`]'s
/// sentence when it is one a setting or a grant fixes, else as the operation, the code and
/// AWS's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .problem {
    Some(problem) => problem.to_string(),
    None => format!("{operation} failed{}: {message}", if *.retryable { " (retryable)" } else { "" }),
})]
pub struct AwsError {
    pub(crate) operation: &'static str,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
    pub(crate) retryable: bool,
    /// The request may have reached AWS and taken effect although no answer came back (a 5xx,
    /// a timeout, a dropped connection), as opposed to being refused (4xx, throttling).
    pub(crate) maybe_applied: bool,
    /// What to set or grant, when that is what it takes.
    pub(crate) problem: Option<Box<Problem>>,
}

/// Codes a later attempt gets past. TransactionConflictException is DynamoDB's answer to a plain
/// write on an item a transaction is writing at that moment (the deploy function takes and
/// settles a service in transactions, which the rollback function's writes can meet): "OK to
/// retry? Yes" ("Error handling with DynamoDB", DynamoDB Developer Guide).
/// DeploymentLimitExceededException is CodeDeploy's refusal of a deployment while the group's
/// previous one has not ended ("The Deployment Group '<name>' already has an active Deployment
/// '<id>'"): Lambda's retry, minutes later, finds the group free.
const RETRYABLE_CODES: [&str; 11] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottledException",
    "ServerException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "DeploymentLimitExceededException",
];

/// The code of a call the pacer did not send because the invocation's time was running out.
const PAST_DEADLINE: &str = "PastDeadline";

impl AwsError {
    /// A call not sent because its token would come too late for this invocation
    /// ([`crate::pace::by_deadline`]): Lambda's retry, a new invocation with time of its own,
    /// sends it; a retry within this one would only be refused again.
    pub(crate) fn past_deadline(operation: &'static str, refused: PastDeadline) -> AwsError {
        AwsError {
            operation,
            code: Some(PAST_DEADLINE.into()),
            message: format!(
                "not sent: ECS's request rate would have held it {:.1} s, past the time this invocation has left; left for Lambda's retry",
                refused.wait.as_secs_f64()
            ),
            retryable: true,
            maybe_applied: false,
            problem: None,
        }
    }

    /// Whether retrying within this invocation is pointless ([`AwsError::past_deadline`]).
    fn for_the_next_invocation(&self) -> bool {
        self.code.as_deref() == Some(PAST_DEADLINE)
    }

    pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        AwsError::from_sdk_withholding(operation, err, &[])
    }

    /// As [`AwsError::from_sdk`], with each of `withheld` (values the request carried that no
    /// reason or log line may show) replaced wherever AWS's answer quotes it: an error message
    /// may quote the request, and a reason travels to logs, the ledger, SNS and the CLI.
    pub(crate) fn from_sdk_withholding<E>(
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
        withheld: &[String],
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut error = AwsError::from_sdk_as_said(operation, &err, withheld);
        error.message = withhold(&error.message, withheld);
        error
    }

    fn from_sdk_as_said<E>(
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
        withheld: &[String],
    ) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        tracing::debug!(
            operation,
            error = %withhold(
                &aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
                withheld
            ),
            "AWS call failed"
        );
        let problem = error::classify(operation, err).map(Box::new);
        match err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().map(str::to_string);
                let retryable = status >= 500
                    || status == 429
                    || code
                        .as_deref()
                        .is_some_and(|c| RETRYABLE_CODES.contains(&c));
                AwsError {
                    operation,
                    message: format!(
                        "{} (HTTP {status}): {}",
                        code.as_deref().unwrap_or("UnknownError"),
                        service.err().message().unwrap_or("no message")
                    ),
                    code,
                    retryable,
                    maybe_applied: status >= 500,
                    problem,
                }
            }
            // The request may never have reached AWS, or its answer was lost: safe to try again.
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => AwsError {
                operation,
                code: None,
                message: error::chain_text(err),
                retryable: true,
                maybe_applied: true,
                problem,
            },
            _ => AwsError {
                operation,
                code: None,
                message: error::chain_text(err),
                retryable: false,
                maybe_applied: false,
                problem,
            },
        }
    }
}

/// `text` with every value of `withheld` (of three characters or more: shorter ones would
/// garble the sentence and say nothing) replaced by `<withheld>`.
pub(crate) fn withhold(text: &str, withheld: &[String]) -> String {
    let mut text = text.to_string();
    for value in withheld.iter().filter(|v| v.chars().count() >= 3) {
        text = text.replace(value.as_str(), "<withheld>");
    }
    text
}

/// The values of a RegisterTaskDefinition request that no log line or reason may show: each
/// container's environment values, secret references, registry credentials, Docker label
/// values and log driver options (a log driver's options may hold a token).
fn withheld_of(request: &RegisterTaskDefinitionFluentBuilder) -> Vec<String> {
    let mut withheld = Vec::new();
    for c in request.get_container_definitions().iter().flatten() {
        withheld.extend(
            c.environment()
                .iter()
                .filter_map(|e| e.value())
                .map(str::to_string),
        );
        withheld.extend(c.secrets().iter().map(|s| s.value_from().to_string()));
        withheld.extend(
            c.repository_credentials()
                .map(|r| r.credentials_parameter().to_string()),
        );
        withheld.extend(
            c.docker_labels()
                .into_iter()
                .flatten()
                .map(|(_, v)| v.clone()),
        );
        if let Some(log) = c.log_configuration() {
            withheld.extend(log.options().into_iter().flatten().map(|(_, v)| v.clone()));
            withheld.extend(
                log.secret_options()
                    .iter()
                    .map(|s| s.value_from().to_string()),
            );
        }
    }
    withheld
}

/// Counts the AWS operations an invocation makes (not SDK-level retries), by `service.Operation`,
/// so that each invocation can report what it cost.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallCounter(Arc<Mutex<BTreeMap<String, u32>>>);

impl CallCounter {
    /// The counts so far, and a fresh start.
    pub(crate) fn take(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "pushdeploy::CallCounter"
    }

    // Once per operation, after the operation's metadata is in the bag (not yet at before_execution).
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            let key = format!("{}.{}", metadata.service(), metadata.name());
            *self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default() += 1;
        }
        Ok(())
    }
}

/// The AWS clients of the deploy path.
#[derive(Debug, Clone)]
pub struct Aws {
    pub(crate) ecs: aws_sdk_ecs::Client,
    pub(crate) tagging: aws_sdk_resourcegroupstagging::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) ecr: aws_sdk_ecr::Client,
    pub(crate) codedeploy: aws_sdk_codedeploy::Client,
    pub(crate) calls: CallCounter,
    /// AWS's clock, as the answers to these clients tell it.
    pub(crate) clock: AwsClock,
    /// ECS's request rates, kept by every call this process makes.
    pace: Arc<Pacer>,
}

/// One image of a repository, as ECR describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// The account of the registry.
    pub(crate) registry_id: String,
    pub(crate) digest: String,
    pub(crate) tags: Vec<String>,
    pub(crate) pushed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) manifest_media_type: Option<String>,
    pub(crate) artifact_media_type: Option<String>,
}

impl EcrImage {
    /// The fields pushdeploy reads of an `ImageDetail`; `None` without a registry or digest.
    pub(crate) fn from_detail(d: aws_sdk_ecr::types::ImageDetail) -> Option<EcrImage> {
        Some(EcrImage {
            registry_id: d.registry_id?,
            digest: d.image_digest?,
            tags: d.image_tags.unwrap_or_default(),
            pushed_at: d
                .image_pushed_at
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            manifest_media_type: d.image_manifest_media_type,
            artifact_media_type: d.artifact_media_type,
        })
    }
}

/// DescribeImages' largest page ("This value can be between 1 and 1000", API reference).
pub(crate) const IMAGES_PAGE_SIZE: i32 = 1000;

/// The tagged images of one repository, as far as one read got.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImagesRead {
    pub(crate) images: Vec<EcrImage>,
    /// DescribeImages pages read.
    pub(crate) pages: u32,
    /// Why the read stopped before ECR's last page, when it did.
    pub(crate) stopped: Option<ReadStop>,
}

/// Why a read of a repository's images stopped before its last page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStop {
    /// It read as many pages as it may.
    PageCap,
    /// Its time ran out.
    TimeLimit,
}

/// What DescribeServices found in one cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct DescribedServices {
    pub(crate) services: Vec<Service>,
    /// (service ARN or name, reason) for each service ECS could not describe.
    pub(crate) failures: Vec<(String, String)>,
}

/// The service's new primary deployment, when ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpdatedService {
    pub(crate) deployment_id: Option<String>,
    /// The service deployment it started, when the answer names it.
    pub(crate) service_deployment_arn: Option<String>,
    /// For a CODE_DEPLOY service: the CodeDeploy deployment that moves it.
    pub(crate) codedeploy_deployment_id: Option<String>,
}

/// DescribeServices takes at most 10 services per call.
pub(crate) const DESCRIBE_SERVICES_BATCH: usize = 10;

impl Aws {
    /// Clients from the standard configuration chain (AWS_ENDPOINT_URL, AWS_REGION, credentials).
    pub fn new(sdk: &SdkConfig) -> Aws {
        Aws::from_clients(
            aws_sdk_ecs::Client::new(sdk),
            aws_sdk_resourcegroupstagging::Client::new(sdk),
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_sns::Client::new(sdk),
            aws_sdk_ecr::Client::new(sdk),
            aws_sdk_codedeploy::Client::new(sdk),
        )
    }

    /// Clients configured elsewhere (their own retry policy or HTTP client), each given the
    /// call counter.
    pub fn from_clients(
        ecs: aws_sdk_ecs::Client,
        tagging: aws_sdk_resourcegroupstagging::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        sns: aws_sdk_sns::Client,
        ecr: aws_sdk_ecr::Client,
        codedeploy: aws_sdk_codedeploy::Client,
    ) -> Aws {
        let calls = CallCounter::default();
        let clock = AwsClock::default();
        Aws {
            pace: Arc::default(),
            ecs: aws_sdk_ecs::Client::from_conf(
                ecs.config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            tagging: aws_sdk_resourcegroupstagging::Client::from_conf(
                tagging
                    .config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                dynamodb
                    .config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                sns.config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            ecr: aws_sdk_ecr::Client::from_conf(
                ecr.config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            codedeploy: aws_sdk_codedeploy::Client::from_conf(
                codedeploy
                    .config()
                    .to_builder()
                    .interceptor(calls.clone())
                    .interceptor(clock.clone())
                    .build(),
            ),
            calls,
            clock,
        }
    }

    /// Opens the connections a deploy needs (ECS, the Tagging API, DynamoDB), concurrently, with
    /// one cheap read each whose answer does not matter, so that a cold start pays its TLS
    /// handshakes during init rather than inside the first push. At most `within`.
    pub(crate) async fn warm_up(&self, table: &str, within: Duration) {
        let ecs = self
            .ecs
            .describe_task_definition()
            .task_definition("pushdeploy-warm-up")
            .send();
        let tagging = self
            .tagging
            .get_resources()
            .resource_type_filters("ecs:service")
            .tag_filters(
                TagFilter::builder()
                    .key(crate::tags::TAG_REPOSITORY)
                    .values("pushdeploy-warm-up")
                    .build(),
            )
            .send();
        let dynamodb = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("pushdeploy-warm-up".into()),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("HEAD".into()),
            )
            .send();
        let _ = tokio::time::timeout(within, async { tokio::join!(ecs, tagging, dynamodb) }).await;
    }

    /// Waits for `group`'s token before `operation` is sent ([`Pacer::admit`]); refused as
    /// [`AwsError::past_deadline`] when the token would come too late for this invocation.
    async fn paced(&self, group: ApiGroup, operation: &'static str) -> Result<(), AwsError> {
        self.pace
            .admit(group)
            .await
            .map_err(|refused| AwsError::past_deadline(operation, refused))
    }

    /// The region the clients talk to.
    pub(crate) fn region(&self) -> Option<&str> {
        self.ecs.config().region().map(|r| r.as_ref())
    }

    /// Every ECS service tagged `pushdeploy:repository` = `repository`, in one paginated query.
    pub(crate) async fn tagged_services(
        &self,
        repository: &str,
    ) -> Result<Vec<TaggedService>, AwsError> {
        self.services_tagged(Some(repository)).await
    }

    /// Every ECS service tagged `pushdeploy:repository`, whatever the repository.
    pub(crate) async fn all_tagged_services(&self) -> Result<Vec<TaggedService>, AwsError> {
        self.services_tagged(None).await
    }

    async fn services_tagged(
        &self,
        repository: Option<&str>,
    ) -> Result<Vec<TaggedService>, AwsError> {
        let filter = TagFilter::builder()
            .key(crate::tags::TAG_REPOSITORY)
            .set_values(repository.map(|r| vec![r.to_string()]))
            .build();
        let pages: Vec<_> = self
            .tagging
            .get_resources()
            .resource_type_filters("ecs:service")
            .tag_filters(filter)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::from_sdk("tag:GetResources", e))?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.resource_tag_mapping_list.unwrap_or_default())
            .filter_map(|mapping| {
                Some(TaggedService {
                    arn: mapping.resource_arn?,
                    tags: mapping
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| (t.key, t.value))
                        .collect(),
                })
            })
            .collect())
    }

    /// The tagged images of `repository` in the registry of account `registry` (`None`: the
    /// caller's own), newest first, as far as `max_pages` pages and the instant `until` allow.
    ///
    /// From the ECR API reference, DescribeImages:
    /// - `registryId`: "If you do not specify a registry, the default registry is assumed."
    /// - `filter.tagStatus`: "You can filter results based on whether they are TAGGED or
    ///   UNTAGGED." Only tagged images can be deployed by tag, so untagged ones (the leftovers
    ///   of every moved tag, often most of a repository) are never read.
    /// - `maxResults`: "This value can be between 1 and 1000. If this parameter is not used,
    ///   then DescribeImages returns up to 100 results and a nextToken value, if applicable."
    ///   So pages of [`IMAGES_PAGE_SIZE`] (1000), a tenth of the calls of the default.
    /// - `nextToken`: "This value is null when there are no more results to return."
    ///
    /// The reference documents no order of the results: a read that stops early may have
    /// missed any image, the newest included ([`ImagesRead::stopped`] says when it did). A page
    /// still in flight at `until` is abandoned.
    pub(crate) async fn images(
        &self,
        registry: Option<&str>,
        repository: &str,
        max_pages: u32,
        until: std::time::Instant,
    ) -> Result<ImagesRead, AwsError> {
        use aws_sdk_ecr::types::{DescribeImagesFilter, TagStatus};
        let mut read = ImagesRead::default();
        let mut next_token = None;
        loop {
            if read.pages >= max_pages {
                read.stopped = Some(ReadStop::PageCap);
                break;
            }
            let call = self
                .ecr
                .describe_images()
                .set_registry_id(registry.map(str::to_string))
                .repository_name(repository)
                .filter(
                    DescribeImagesFilter::builder()
                        .tag_status(TagStatus::Tagged)
                        .build(),
                )
                .max_results(IMAGES_PAGE_SIZE)
                .set_next_token(next_token.take())
                .send();
            let page = match tokio::time::timeout_at(until.into(), call).await {
                Ok(page) => page.map_err(|e| AwsError::from_sdk("ecr:DescribeImages", e))?,
                Err(_) => {
                    read.stopped = Some(ReadStop::TimeLimit);
                    break;
                }
            };
            read.pages += 1;
            next_token = page.next_token.filter(|t| !t.is_empty());
            read.images.extend(
                page.image_details
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(EcrImage::from_detail),
            );
            if next_token.is_none() {
                break;
            }
            if std::time::Instant::now() >= until {
                read.stopped = Some(ReadStop::TimeLimit);
                break;
            }
        }
        read.images
            .sort_by_key(|image| std::cmp::Reverse(image.pushed_at));
        Ok(read)
    }

    /// The image `digest` of `repository` in the registry of account `registry`, as ECR
    /// describes it now (its tags, its push time); `None` when ECR has no such image or
    /// repository there. DescribeImages with `imageIds` answers `ImageNotFoundException` for a
    /// digest the repository does not hold (API reference, DescribeImages, Errors).
    pub async fn image_by_digest(
        &self,
        registry: &str,
        repository: &str,
        digest: &str,
    ) -> Result<Option<EcrImage>, AwsError> {
        let answer = self
            .ecr
            .describe_images()
            .registry_id(registry)
            .repository_name(repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out
                .image_details
                .unwrap_or_default()
                .into_iter()
                .filter_map(EcrImage::from_detail)
                .find(|image| image.digest == digest)),
            Err(e) => {
                let e = AwsError::from_sdk("ecr:DescribeImages", e);
                match e.code.as_deref() {
                    Some("ImageNotFoundException" | "RepositoryNotFoundException") => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// Describes up to [`DESCRIBE_SERVICES_BATCH`] services of one cluster, with their tags.
    pub(crate) async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<DescribedServices, AwsError> {
        self.paced(ApiGroup::ServiceRead, "ecs:DescribeServices")
            .await?;
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(services.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeServices", e))?;
        Ok(DescribedServices {
            failures: out
                .failures()
                .iter()
                .map(|f| {
                    (
                        f.arn().unwrap_or("?").to_string(),
                        f.reason().unwrap_or("no reason given").to_string(),
                    )
                })
                .collect(),
            services: out.services.unwrap_or_default(),
        })
    }

    pub(crate) async fn describe_task_definition(
        &self,
        arn: &str,
    ) -> Result<(TaskDefinition, Vec<Tag>), AwsError> {
        self.paced(ApiGroup::TaskDefinitionRead, "ecs:DescribeTaskDefinition")
            .await?;
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeTaskDefinition", e))?;
        let definition = out.task_definition.ok_or_else(|| AwsError {
            operation: "ecs:DescribeTaskDefinition",
            code: None,
            message: format!("ECS returned no task definition for {arn}"),
            retryable: false,
            maybe_applied: false,
            problem: None,
        })?;
        Ok((definition, out.tags.unwrap_or_default()))
    }

    /// The service revisions `arns` (DescribeServiceRevisions takes at most 20 per call).
    pub(crate) async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        let mut revisions = Vec::new();
        for batch in arns.chunks(20) {
            self.paced(ApiGroup::ServiceRevision, "ecs:DescribeServiceRevisions")
                .await?;
            let out = self
                .ecs
                .describe_service_revisions()
                .set_service_revision_arns(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:DescribeServiceRevisions", e))?;
            revisions.extend(out.service_revisions.unwrap_or_default());
        }
        Ok(revisions)
    }

    /// Asks ECS to stop a service deployment and roll it back to the service revision that ran
    /// before it ("ROLLBACK: the service deployment is rolled back to the previous service
    /// revision", API `StopServiceDeployment`). A deployment ECS is already stopping or rolling
    /// back answers ConflictException: that is the state asked for, and counts as done.
    pub(crate) async fn stop_and_roll_back(
        &self,
        service_deployment_arn: &str,
    ) -> Result<(), AwsError> {
        let sent = self
            .ecs
            .stop_service_deployment()
            .service_deployment_arn(service_deployment_arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("ecs:StopServiceDeployment", e);
                if e.code.as_deref() == Some("ConflictException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The service deployments of `service` created after `after`, newest first as ECS lists
    /// them ("ListServiceDeployments ... lists all the service deployments that meet the
    /// specified filter criteria"), every page.
    pub(crate) async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<ServiceDeploymentBrief>, AwsError> {
        let created = CreatedAt::builder()
            .after(aws_smithy_types::DateTime::from_millis(
                after.timestamp_millis(),
            ))
            .build();
        let mut briefs = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .ecs
                .list_service_deployments()
                .cluster(cluster)
                .service(service)
                .created_at(created.clone())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:ListServiceDeployments", e))?;
            briefs.extend(out.service_deployments.unwrap_or_default());
            token = out.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(briefs);
            }
        }
    }

    /// The service deployment `arn`, as ECS describes it; `None` when ECS does not know it.
    pub(crate) async fn describe_service_deployment(
        &self,
        arn: &str,
    ) -> Result<Option<ServiceDeployment>, AwsError> {
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeServiceDeployments", e))?;
        Ok(out
            .service_deployments
            .unwrap_or_default()
            .into_iter()
            .find(|sd| sd.service_deployment_arn() == Some(arn)))
    }

    /// Answers the pause hook `hook_id` of a paused service deployment: CONTINUE or ROLLBACK
    /// (API `ContinueServiceDeployment`).
    pub(crate) async fn continue_paused(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        action: DeploymentLifecycleHookAction,
    ) -> Result<(), AwsError> {
        self.ecs
            .continue_service_deployment()
            .service_deployment_arn(service_deployment_arn)
            .hook_id(hook_id)
            .action(action)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:ContinueServiceDeployment", e))?;
        Ok(())
    }

    /// A request builder for [`crate::revision::revision_request`] to fill.
    pub(crate) fn new_revision(&self) -> RegisterTaskDefinitionFluentBuilder {
        self.ecs.register_task_definition()
    }

    /// Registers the revision and returns its ARN. Sent once (see [`write_at_most_once`]).
    pub(crate) async fn register_task_definition(
        &self,
        request: RegisterTaskDefinitionFluentBuilder,
    ) -> Result<String, AwsError> {
        let withheld = withheld_of(&request);
        self.paced(ApiGroup::TaskDefinitionModify, "ecs:RegisterTaskDefinition")
            .await?;
        let out = request
            .customize()
            .config_override(sent_once())
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk_withholding("ecs:RegisterTaskDefinition", e, &withheld)
            })?;
        out.task_definition
            .and_then(|td| td.task_definition_arn)
            .ok_or_else(|| AwsError {
                operation: "ecs:RegisterTaskDefinition",
                code: None,
                message: "ECS returned no task definition ARN".into(),
                retryable: false,
                maybe_applied: false,
                problem: None,
            })
    }

    /// Puts the service on `task_definition`, at most once: an attempt whose answer was lost is
    /// followed by a look at the service before anything is sent again.
    pub(crate) async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<UpdatedService, AwsError> {
        write_at_most_once(
            || self.update_service_once(cluster, service, task_definition),
            || async {
                let described = self
                    .describe_services(cluster, &[service.to_string()])
                    .await
                    .ok()?;
                let found = described.services.into_iter().next()?;
                (found.task_definition() == Some(task_definition))
                    .then(|| updated_service(&found, task_definition))
            },
        )
        .await
    }

    async fn update_service_once(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
    ) -> Result<UpdatedService, AwsError> {
        self.paced(ApiGroup::ServiceModify, "ecs:UpdateService")
            .await?;
        let out = self
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(task_definition)
            .customize()
            .config_override(sent_once())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UpdateService", e))?;
        Ok(out
            .service()
            .map(|s| updated_service(s, task_definition))
            .unwrap_or(UpdatedService {
                deployment_id: None,
                service_deployment_arn: None,
                codedeploy_deployment_id: None,
            }))
    }
}

/// What an answer shows of the deployment onto `task_definition`: its primary deployment's id
/// and, while that primary runs `task_definition`, the service's current service deployment
/// ("currentServiceDeployment: The ARN of the current service deployment", API `Service`).
fn updated_service(service: &Service, task_definition: &str) -> UpdatedService {
    let deployment_id = primary_deployment(service, task_definition);
    UpdatedService {
        service_deployment_arn: deployment_id
            .as_ref()
            .and(service.current_service_deployment())
            .map(str::to_string),
        deployment_id,
        codedeploy_deployment_id: None,
    }
}

/// The ECS configuration override for the writes [`write_at_most_once`] sends: no SDK retries.
fn sent_once() -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// The id of the service's primary deployment, when that deployment runs `task_definition`.
pub(crate) fn primary_deployment(service: &Service, task_definition: &str) -> Option<String> {
    service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition))
        .and_then(|d| d.id().map(str::to_string))
}

/// Attempts at one ECS write, and the pause before the second and third.
const WRITE_ATTEMPTS: u32 = 3;
const WRITE_BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(800)];

/// ECS's RegisterTaskDefinition and UpdateService take no idempotency token, so a write whose
/// answer was lost must not simply be sent again: that registers a second revision or starts a
/// second deployment. The SDK's own retries are off for them; here each attempt is sent once,
/// and after an error that may hide a write that landed, `landed` asks ECS whether it did
/// (and what it made) before another attempt is sent. Refusals (4xx, throttling) are retried
/// as they are: nothing happened.
pub(crate) async fn write_at_most_once<T, Send, Sent, Landed, Found>(
    send: Send,
    landed: Landed,
) -> Result<T, AwsError>
where
    Send: Fn() -> Sent,
    Sent: Future<Output = Result<T, AwsError>>,
    Landed: Fn() -> Found,
    Found: Future<Output = Option<T>>,
{
    let mut attempt = 1;
    loop {
        let error = match send().await {
            Ok(done) => return Ok(done),
            Err(error) => error,
        };
        if error.maybe_applied {
            if let Some(done) = landed().await {
                return Ok(done);
            }
        }
        if !error.retryable || error.for_the_next_invocation() || attempt >= WRITE_ATTEMPTS {
            return Err(error);
        }
        tokio::time::sleep(WRITE_BACKOFF[attempt as usize - 1]).await;
        attempt += 1;
    }
}

/// The SDK configuration of both functions: the standard chain (AWS_REGION, credentials,
/// AWS_ENDPOINT_URL for an emulator, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE) with time limits per
/// attempt, so that a call that hangs fails in time for the SDK to retry it inside the
/// function's 60 s.
pub async fn load_sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    // Adaptive retries unless AWS_RETRY_MODE says otherwise: a push that fans out to dozens of
    // services meets ECS's rate limits, and the client then slows down instead of failing.
    let loader = if std::env::var_os("AWS_RETRY_MODE").is_none() {
        let attempts = std::env::var("AWS_MAX_ATTEMPTS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(3);
        loader.retry_config(RetryConfig::adaptive().with_max_attempts(attempts))
    } else {
        loader
    };
    loader
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
        .load()
        .await
}
