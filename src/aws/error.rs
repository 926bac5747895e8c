//! The AWS failures a person fixes by setting or granting something: no credentials, no region,
//! credentials AWS refuses, access denied, an endpoint that cannot be reached, a ledger table
//! that is not there. Each is told apart by the structure of the SDK's error (its variant, the
//! credential provider's error in its chain, the service's error code), never by its Debug
//! text, and said as one sentence that names what to set or grant. [`super::AwsError`] carries
//! the problem when there is one, and its Display is then that sentence, in the CLI and in the
//! functions' `reason` fields alike; the SDK's whole error chain is logged at debug level.

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::error::Error;

/// A failed AWS call that a setting or a grant fixes, each said as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The credential chain found none at all. It fails before anything is sent, as a dispatch
    /// failure, so [`super::AwsError`] counts it retryable, though only a setting fixes it.
    #[error("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides them")]
    NoCredentials,
    /// A credential source is configured but fails (a broken profile, a provider that errs or
    /// times out); retryable as for [`Problem::NoCredentials`].
    #[error("the AWS credentials could not be loaded ({detail}): fix the profile or credential source that AWS_PROFILE names, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    CredentialsUnusable {
        /// The provider's error and its sources, each said once.
        detail: String,
    },
    /// AWS answered with a code for unknown, badly signed or expired credentials: a 4xx, not
    /// retryable.
    #[error("AWS refused the credentials for {operation} ({code}): they are wrong or expired; set valid ones (AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or refresh them")]
    CredentialsRejected {
        /// The call refused, as `service:Operation`.
        operation: &'static str,
        /// AWS's error code (`ExpiredToken`, `InvalidClientTokenId`, ...).
        code: String,
    },
    /// No region is configured: the SDK resolves no endpoint (or, with AWS_ENDPOINT_URL set,
    /// cannot sign). As [`Problem::NoCredentials`], it fails before sending and counts retryable.
    #[error("no AWS region: set AWS_REGION")]
    NoRegion,
    /// AWS answered that the caller may not make the call: a 4xx, not retryable.
    #[error("{}", denied(.action, .resource.as_deref(), .principal.as_deref(), .barrier))]
    AccessDenied {
        /// The IAM action refused (AWS's word for it when its message names it).
        action: String,
        /// The resource refused, when AWS's message names it.
        resource: Option<String>,
        /// Who asked: the user or role AWS names.
        principal: Option<String>,
        /// Which policy refused: it decides whether to grant the action or lift a deny.
        barrier: Barrier,
    },
    /// DynamoDB does not know the ledger table (ResourceNotFoundException, a 4xx: not
    /// retryable): `PUSHDEPLOY_TABLE` or the region is wrong.
    #[error("the ledger table {table} does not exist in {region}: set PUSHDEPLOY_TABLE to the stack's LedgerTableName output (and AWS_REGION to the stack's region)")]
    NoTable {
        /// The table's name, as `PUSHDEPLOY_TABLE` gives it.
        table: String,
        /// The DynamoDB client's region, or `no region`.
        region: String,
    },
    /// The call got no answer: the connection failed or timed out (retryable).
    #[error("cannot reach {} for {operation} ({cause}): check {} and the network", .endpoint.as_ref().map(|(_, url)| url.as_str()).unwrap_or("the AWS endpoint"), .endpoint.as_ref().map(|(var, _)| var.as_str()).unwrap_or("AWS_ENDPOINT_URL"))]
    Unreachable {
        /// The call, as `service:Operation`.
        operation: &'static str,
        /// The setting that named the endpoint, and its value, when one did.
        endpoint: Option<(String, String)>,
        /// The innermost error of the chain (the refused connection, the timeout).
        cause: String,
    },
}

/// Which policy refused an access, as AWS's message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Barrier {
    /// No identity-based policy allows it (or AWS did not say): the caller's IAM policy.
    IdentityPolicy,
    /// No resource-based policy allows it: the policy on the resource itself.
    ResourcePolicy,
    /// The permissions boundary set on the caller's user or role does not allow it.
    PermissionsBoundary,
    /// The session policy of the caller's assumed-role session does not allow it.
    SessionPolicy,
    /// "with an explicit deny in `<where>`": granting does not help, the deny must go.
    ExplicitDeny(String),
}

fn denied(
    action: &str,
    resource: Option<&str>,
    principal: Option<&str>,
    barrier: &Barrier,
) -> String {
    let on = resource.map(|r| format!(" on {r}")).unwrap_or_default();
    let who = principal.unwrap_or("the caller's IAM role or user");
    match barrier {
        Barrier::ExplicitDeny(place) => format!(
            "access denied to {action}{on} by an explicit deny in {place}: lift that deny for {who}"
        ),
        Barrier::IdentityPolicy => {
            format!("access denied to {action}{on}: grant {action} to {who} in its IAM policy")
        }
        Barrier::ResourcePolicy => format!(
            "access denied to {action}{on}: allow {who} {action} in the resource's own policy"
        ),
        Barrier::PermissionsBoundary => format!(
            "access denied to {action}{on}: allow {action} in the permissions boundary of {who}"
        ),
        Barrier::SessionPolicy => {
            format!("access denied to {action}{on}: allow {action} in the session policy of {who}")
        }
    }
}

/// Error codes that mean "this caller may not": AWS's JSON services say AccessDeniedException,
/// the query ones AccessDenied, SNS AuthorizationError.
const DENIED: [&str; 4] = [
    "AccessDeniedException",
    "AccessDenied",
    "AuthorizationError",
    "UnauthorizedOperation",
];

/// Error codes that mean "these credentials are not good": unknown key, bad signature, expired.
const REJECTED: [&str; 10] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "AuthFailure",
];

/// What the SDK says when no region is configured: the endpoint resolver of every generated
/// client, or (with an endpoint set, AWS_ENDPOINT_URL) the SigV4 signer. The error types that
/// carry these words are not ones pushdeploy depends on.
const MISSING_REGION: [&str; 2] = [
    "Invalid Configuration: Missing Region",
    "missing signing region",
];

/// The problem behind a failed call, when it is one of those a person fixes by a setting or a
/// grant; `None` for everything else (throttling, 5xx, a bad request ...).
pub(crate) fn classify<E>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> Option<Problem>
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = err {
        let code = service.err().code()?;
        let message = service.err().message().unwrap_or_default();
        return if DENIED.contains(&code) {
            Some(access_denied(operation, message))
        } else if REJECTED.contains(&code) {
            Some(Problem::CredentialsRejected {
                operation,
                code: code.to_string(),
            })
        } else {
            None
        };
    }
    let chain = || sources(err);
    if let Some(credentials) = chain().find_map(|e| e.downcast_ref::<CredentialsError>()) {
        return Some(match credentials {
            CredentialsError::CredentialsNotLoaded(_) => Problem::NoCredentials,
            other => Problem::CredentialsUnusable {
                detail: chain_text(other),
            },
        });
    }
    if chain().any(|e| MISSING_REGION.contains(&e.to_string().as_str())) {
        return Some(Problem::NoRegion);
    }
    match err {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            Some(Problem::Unreachable {
                operation,
                endpoint: configured_endpoint(operation),
                cause: chain().last().map(|e| e.to_string()).unwrap_or_default(),
            })
        }
        _ => None,
    }
}

/// The error and each of its sources, outermost first.
fn sources<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e| (*e).source())
}

/// AWS's denial reads "User: <principal> is not authorized to perform: <action> on resource:
/// <arn> because no identity-based policy allows the <action> action" (or "with an explicit
/// deny in a service control policy", ...); each part is optional.
fn access_denied(operation: &'static str, message: &str) -> Problem {
    let between = |start: &str, ends: &[&str]| {
        let rest = &message[message.find(start)? + start.len()..];
        let end = ends
            .iter()
            .filter_map(|e| rest.find(e))
            .min()
            .unwrap_or(rest.len());
        let found = rest[..end].trim().trim_end_matches(['.', ',']);
        (!found.is_empty()).then(|| found.to_string())
    };
    let barrier = if let Some(place) = between("with an explicit deny in ", &[]) {
        Barrier::ExplicitDeny(place)
    } else if message.contains("no resource-based policy") {
        Barrier::ResourcePolicy
    } else if message.contains("permissions boundary") {
        Barrier::PermissionsBoundary
    } else if message.contains("session policy") {
        Barrier::SessionPolicy
    } else {
        Barrier::IdentityPolicy
    };
    Problem::AccessDenied {
        action: between("to perform: ", &[" "]).unwrap_or_else(|| operation.to_string()),
        resource: between("on resource: ", &[" because", " with "]),
        principal: between("User: ", &[" is not authorized"]),
        barrier,
    }
}

/// The endpoint setting that applies to `operation`'s service (`dynamodb:Query`: first
/// AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL), as (variable, value).
fn configured_endpoint(operation: &str) -> Option<(String, String)> {
    let service = match operation.split(':').next().unwrap_or_default() {
        "tag" => "RESOURCE_GROUPS_TAGGING_API".to_string(),
        other => other.to_ascii_uppercase(),
    };
    [
        format!("AWS_ENDPOINT_URL_{service}"),
        "AWS_ENDPOINT_URL".into(),
    ]
    .into_iter()
    .find_map(|var| {
        let url = std::env::var(&var).ok().filter(|url| !url.is_empty())?;
        Some((var, url))
    })
}

/// The Display of an error and of each of its sources, each said once: the chain without the
/// Debug dump that [`aws_smithy_types::error::display::DisplayErrorContext`] appends.
pub(crate) fn chain_text(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for text in sources(err).map(|e| e.to_string()) {
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::query::QueryError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    type Failed = SdkError<QueryError, HttpResponse>;

    fn dispatch(source: impl Into<aws_smithy_runtime_api::box_error::BoxError>) -> Failed {
        SdkError::dispatch_failure(ConnectorError::other(source.into(), None))
    }

    fn answered(status: u16, code: &str, message: &str) -> Failed {
        SdkError::service_error(
            QueryError::generic(ErrorMetadata::builder().code(code).message(message).build()),
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn the_credential_providers_error_says_which_credentials_problem_it_is() {
        let none = dispatch(CredentialsError::not_loaded(
            "no credentials found in chain",
        ));
        assert_eq!(
            classify("dynamodb:Query", &none),
            Some(Problem::NoCredentials)
        );
        let timed_out = dispatch(CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(5),
        ));
        let Some(Problem::CredentialsUnusable { detail }) = classify("dynamodb:Query", &timed_out)
        else {
            panic!("{timed_out:?}")
        };
        assert!(detail.contains("timed out"), "{detail}");
        assert_eq!(
            classify(
                "dynamodb:Query",
                &answered(
                    400,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid."
                )
            ),
            Some(Problem::CredentialsRejected {
                operation: "dynamodb:Query",
                code: "UnrecognizedClientException".into()
            })
        );
    }

    #[test]
    fn a_write_that_meets_a_transaction_is_retried_a_failed_condition_is_not() {
        let conflict = answered(
            400,
            "TransactionConflictException",
            "Transaction is ongoing for the item",
        );
        assert!(crate::aws::AwsError::from_sdk("dynamodb:UpdateItem", conflict).retryable);
        let condition = answered(
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
        );
        assert!(!crate::aws::AwsError::from_sdk("dynamodb:UpdateItem", condition).retryable);
    }

    #[test]
    fn a_missing_region_is_known_by_either_words_the_sdk_uses() {
        for words in MISSING_REGION {
            let missing = dispatch(words);
            assert_eq!(
                classify("ecs:DescribeServices", &missing),
                Some(Problem::NoRegion)
            );
        }
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_throttling_is_none_of_these() {
        let refused = SdkError::<QueryError, HttpResponse>::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        ));
        let Some(Problem::Unreachable {
            operation, cause, ..
        }) = classify("dynamodb:Query", &refused)
        else {
            panic!("{refused:?}")
        };
        assert_eq!(operation, "dynamodb:Query");
        assert!(cause.to_lowercase().contains("refused"), "{cause}");
        assert_eq!(
            classify(
                "dynamodb:Query",
                &answered(400, "ThrottlingException", "slow down")
            ),
            None
        );
    }

    #[test]
    fn the_chain_is_said_without_a_debug_dump() {
        let failed = dispatch(CredentialsError::not_loaded(
            "no credentials found in chain",
        ));
        let text = chain_text(&failed);
        assert!(text.starts_with("dispatch failure"), "{text}");
        assert!(!text.contains("DispatchFailure(") && !text.contains("ConnectorError {"));
    }

    #[test]
    fn a_denial_names_the_action_the_resource_and_who_to_grant_it_to() {
        let problem = access_denied(
            "dynamodb:Query",
            "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/in-flight because no identity-based policy allows the dynamodb:Query action",
        );
        assert_eq!(
            problem.to_string(),
            "access denied to dynamodb:Query on arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/in-flight: grant dynamodb:Query to arn:aws:iam::123456789012:user/ops in its IAM policy"
        );
    }

    #[test]
    fn an_explicit_deny_is_said_to_be_lifted_not_granted() {
        let problem = access_denied(
            "ecs:UpdateService",
            "User: arn:aws:sts::123456789012:assumed-role/deploy/fn is not authorized to perform: ecs:UpdateService on resource: arn:aws:ecs:us-east-1:123456789012:service/prod/web with an explicit deny in a service control policy",
        );
        assert_eq!(
            problem.to_string(),
            "access denied to ecs:UpdateService on arn:aws:ecs:us-east-1:123456789012:service/prod/web by an explicit deny in a service control policy: lift that deny for arn:aws:sts::123456789012:assumed-role/deploy/fn"
        );
    }

    #[test]
    fn a_denial_without_details_still_says_what_to_grant() {
        assert_eq!(
            access_denied("tag:GetResources", "").to_string(),
            "access denied to tag:GetResources: grant tag:GetResources to the caller's IAM role or user in its IAM policy"
        );
    }
}
