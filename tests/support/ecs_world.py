"""A deployment-aware ECS "test world", run inside the moto server process.

moto's ECS keeps one fake deployment per service and never moves it: no rollout, no circuit
breaker, no service revisions, no events. This module wraps moto's WSGI app (see
moto_serial.py) and gives the ECS services it sees real deployment life cycles, driven by the
test through plain-HTTP control endpoints under /_world/.

What the world models (each model's code carries the AWS sentence it follows):
  - deployments per service: PRIMARY / ACTIVE / INACTIVE, rolloutState IN_PROGRESS / COMPLETED
    / FAILED, running / pending / failed counts, draining of the older deployments;
  - deploymentConfiguration kept as given to CreateService / UpdateService (moto drops it);
  - service revisions with their container images resolved to digests when the deployment
    starts ("software version consistency"), read from moto's own ECR;
  - service deployments (ListServiceDeployments, DescribeServiceDeployments,
    StopServiceDeployment, ContinueServiceDeployment) and service revisions (DescribeServiceRevisions), which moto lacks;
  - the strategies' timing: ROLLING completes when its tasks run; BLUE_GREEN bakes for
    bakeTimeInMinutes; LINEAR and CANARY shift traffic step by step, then bake;
  - the deployment circuit breaker (threshold, reset on a healthy task, rollback to the last
    COMPLETED deployment, with that deployment's resolved images);
  - "ECS Deployment State Change" events, in an outbox the test drains;
  - a clock: real time plus an offset the test can advance.

What it does not model: real tasks or containers (the test says how many start or fail), load
balancers and traffic, CloudWatch alarms, hook timeouts, service events
("has reached a steady state"), task sets, CODE_DEPLOY and EXTERNAL deployment controllers
(their services are left exactly as moto answers), capacity, placement, scaling policies,
DeleteService (a re-created service starts a new world record), moto's /moto-api/reset (it
does not reset the world). Service deployment ARNs end in the deployment id's digits so that
tests can tie them together; real ones end in a 21-character id of their own (kayac/ecspresso
issue #899 shows "…/service-deployment/myproject/myproject_sidekiq/2OpWf9AkJKOIuWfBW7Ata").

Control endpoints (JSON in and out, never reached by an AWS SDK):
  GET  /_world/clock                 -> {"now": RFC 3339}
  POST /_world/clock {"advance_seconds": N}
  POST /_world/tasks {"cluster", "service", "start": N | "fail": N, "deploymentId"?}
  GET  /_world/events                -> {"events": [...]}, and empties the outbox
  GET  /_world/service?cluster=C&service=S -> the world's full view of one service
  POST /_world/seed {"seed": N}      -> reseeds the ids (the command line's SEED does too)
  GET  /_world/hooks                 -> {"hooks": [{"id", "payload"}]}: lifecycle-hook invocations due
  GET  /_world/subnets?region=R      -> {"subnets": [...]}: moto's default VPC subnets (for ELBv2)
  POST /_world/hooks {"id", "answer"} -> the hook function's answer (hookStatus, callBackDelay, ...)
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import struct
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
JSON_11 = "application/x-amz-json-1.1"

# Sources quoted below, by short name:
#   [API] Amazon ECS API Reference, https://docs.aws.amazon.com/AmazonECS/latest/APIReference/
#         (the same text ships in botocore's ecs service model, in this venv).
#   [DG]  Amazon ECS Developer Guide, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(ts: Optional[float]) -> Optional[float]:
    """Timestamps go out as epoch seconds with milliseconds, as moto writes them."""
    return None if ts is None else round(ts, 3)


def compact(d: dict) -> dict:
    """Drops the keys whose value is None: AWS leaves absent members out."""
    return {k: v for k, v in d.items() if v is not None}


def last_segment(name_or_arn: str) -> str:
    return name_or_arn.rsplit("/", 1)[-1]


class ApiError(Exception):
    """An ECS error answer, written the way moto writes ECS errors."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Response:
    status: str
    headers: list
    body: bytes

    @staticmethod
    def json(payload: Any, status: str = "200 OK", extra_headers: Optional[list] = None) -> "Response":
        body = json.dumps(payload).encode()
        headers = [("Content-Type", JSON_11)] + (extra_headers or [])
        return Response(status, headers, body)

    @staticmethod
    def error(err: ApiError, status: str = "400 BAD REQUEST") -> "Response":
        return Response.json(
            {"__type": err.code, "message": err.message, "Message": err.message},
            status=status,
            extra_headers=[("X-Amzn-Errortype", err.code)],
        )

    def with_json(self, payload: Any) -> "Response":
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        return Response(self.status, headers, json.dumps(payload).encode())


# --------------------------------------------------------------------------------------------
# Who is asking: account and region of a request
# --------------------------------------------------------------------------------------------

CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


def credential_scope(environ: dict) -> Optional[tuple]:
    """(access key, region, service) from a SigV4 Authorization header or presigned query."""
    found = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        cred = (query.get("X-Amz-Credential") or [""])[0]
        found = CREDENTIAL.search("Credential=" + cred)
    return found.groups() if found else None


@dataclass(frozen=True)
class Caller:
    account: str
    region: str


def caller_of(environ: dict) -> Caller:
    """The account the way moto picks it (env, x-moto-account-id, access key, default); the
    region from the credential scope."""
    from moto.core import DEFAULT_ACCOUNT_ID

    scope = credential_scope(environ)
    region = scope[1] if scope else "us-east-1"
    if "MOTO_ACCOUNT_ID" in os.environ:
        return Caller(os.environ["MOTO_ACCOUNT_ID"], region)
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return Caller(environ["HTTP_X_MOTO_ACCOUNT_ID"], region)
    if scope:
        from moto.iam.models import get_account_id_from

        return Caller(get_account_id_from(scope[0]), region)
    return Caller(DEFAULT_ACCOUNT_ID, region)


# --------------------------------------------------------------------------------------------
# Locks: what must not run at the same time
# --------------------------------------------------------------------------------------------


class Locks:
    """One lock per service, with two groups.

    - "dynamodb": every DynamoDB (and DynamoDB Streams) request. moto evaluates a conditional
      write and applies it without a lock, so two concurrent writes to one item can both pass
      their condition; real DynamoDB applies them atomically, and the tests rely on that.
    - "ecs": ECS, Resource Groups Tagging (it reads moto's ECS services) and the world's control
      endpoints, which read and write the same ECS state; it also keeps task definition
      revision numbers per family from racing.
    The ECS handler reads moto's ECR backend under the "ecr" lock, always inside "ecs", never
    the other way round, so no cycle is possible.
    """

    # CodeDeploy moves ECS services: its requests touch the same world state as ECS's.
    GROUPS = {"ecs": "ecs", "tagging": "ecs", "codedeploy": "ecs", "monitoring": "ecs", "dynamodb": "dynamodb", "dynamodbstreams": "dynamodb"}
    # For requests without a SigV4 credential scope: the X-Amz-Target prefix names the service.
    TARGETS = {
        "AmazonEC2ContainerServiceV20141113": "ecs",
        "ResourceGroupsTaggingAPI_20170126": "tagging",
        "DynamoDB_20120810": "dynamodb",
        "DynamoDB_20111205": "dynamodb",
        "DynamoDBStreams_20120810": "dynamodb",
        "AmazonEC2ContainerRegistry_V20150921": "ecr",
        "AmazonSQS": "sqs",
        "CodeDeploy_20141006": "codedeploy",
    }

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict = {}

    def named(self, service: str) -> threading.Lock:
        group = self.GROUPS.get(service, service)
        with self._guard:
            return self._locks.setdefault(group, threading.Lock())

    @property
    def ecs(self) -> threading.Lock:
        return self.named("ecs")

    @property
    def ecr(self) -> threading.Lock:
        return self.named("ecr")

    @classmethod
    def service_of(cls, environ: dict) -> str:
        scope = credential_scope(environ)
        if scope:
            return scope[2].lower()
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            prefix = target.split(".", 1)[0]
            return cls.TARGETS.get(prefix, prefix)
        return "unidentified"


# --------------------------------------------------------------------------------------------
# Image resolution ("software version consistency")
# --------------------------------------------------------------------------------------------

# An ECR image reference: <account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest], or the
# dual-stack host <account>.dkr-ecr.<region>.on.aws.
ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr(?:\.ecr|-ecr)\.(?P<region>[a-z0-9-]+)\.(?:amazonaws\.com|on\.aws)/(?P<rest>.+)$"
)


def parse_ecr_image(image: str) -> Optional[dict]:
    found = ECR_IMAGE.match(image or "")
    if not found:
        return None
    rest, digest = found["rest"], None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    repo, tag = rest, "latest"
    if ":" in rest.rsplit("/", 1)[-1]:
        repo, tag = rest.rsplit(":", 1)
    return {"account": found["account"], "region": found["region"], "repo": repo, "tag": tag, "digest": digest}


# Model: image resolution when a deployment starts.
# [API] ContainerImage: "To ensure that all tasks in a service use the same container image,
#   Amazon ECS resolves container image names and any image tags specified in the task
#   definition to container image digests. After the container image digest has been
#   established, Amazon ECS uses the digest to start any other desired tasks".
# AWS Containers blog, "Announcing software version consistency for Amazon ECS services":
#   "Amazon ECS will now resolve a container image tag to its container image digest for every
#   version (deployment) of an Amazon ECS Service." So each new deployment resolves its tags
#   again, and a revision keeps the digests it resolved.
# [API] ContainerDefinition.versionConsistency: "If you set the value for a container as
#   disabled, Amazon ECS will not resolve the provided container image tag to a digest".
# The world hosts no registry but moto's ECR: images elsewhere (public.ecr.aws, Docker Hub) and
# tags that moto's ECR does not have get no digest.
class ImageResolver:
    def __init__(self, locks: Locks):
        self.locks = locks

    def resolve(self, container_definitions: list) -> list:
        with self.locks.ecr:
            return [self._resolve_one(c) for c in container_definitions]

    def _resolve_one(self, container: dict) -> dict:
        entry = {"containerName": container.get("name"), "image": container.get("image")}
        if container.get("versionConsistency") != "disabled":
            digest = self._digest(container.get("image") or "")
            if digest:
                entry["imageDigest"] = digest
        return entry

    @staticmethod
    def _digest(image: str) -> Optional[str]:
        ref = parse_ecr_image(image)
        if ref is None:
            return None
        if ref["digest"]:
            return ref["digest"]
        from moto.ecr.models import ecr_backends

        try:
            repository = ecr_backends[ref["account"]][ref["region"]].repositories.get(ref["repo"])
        except Exception:  # an account or region moto cannot make a backend for
            return None
        if repository is None:
            return None
        for image_obj in repository.images:
            if ref["tag"] in image_obj.image_tags:
                return image_obj.get_image_digest()
        return None


# --------------------------------------------------------------------------------------------
# The world's records
# --------------------------------------------------------------------------------------------


# Model: service revisions.
# [API] ServiceRevision: "A service revision contains a record of the workload configuration
#   Amazon ECS is attempting to deploy. Whenever you create or deploy a service, Amazon ECS
#   automatically creates and captures the configuration that you're trying to deploy in the
#   service revision."
@dataclass
class Revision:
    arn: str
    service_arn: str
    cluster_arn: str
    task_definition: str
    container_images: list
    created_at: float
    launch_type: Optional[str] = None

    def to_api(self) -> dict:
        return compact(
            {
                "serviceRevisionArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "taskDefinition": self.task_definition,
                "launchType": self.launch_type,
                "containerImages": [dict(c) for c in self.container_images],
                "createdAt": epoch(self.created_at),
            }
        )


# Model: deployments (the `deployments` of DescribeServices).
# [API] Deployment.status: "PRIMARY The most recent deployment of a service. ACTIVE A service
#   deployment that still has running tasks, but are in the process of being replaced with a
#   new PRIMARY deployment. INACTIVE A deployment that has been completely replaced."
# [API] Deployment.rolloutState: "When a service deployment is started, it begins in an
#   IN_PROGRESS state. When the service reaches a steady state, the deployment transitions to a
#   COMPLETED state. If the service fails to reach a steady state and circuit breaker is turned
#   on, the deployment transitions to a FAILED state. A deployment in FAILED state doesn't
#   launch any new tasks."
@dataclass
class Deployment:
    id: str
    task_definition: str
    revision: Revision
    desired: int
    config: dict  # the service's deploymentConfiguration when this deployment started
    created_at: float
    updated_at: float
    status: str = "PRIMARY"
    running: int = 0
    pending: int = 0
    failed: int = 0
    rollout_state: str = "IN_PROGRESS"
    rollout_reason: str = ""
    stage: Optional[str] = "SCALE_UP"
    stage_ends_at: Optional[float] = None
    rollback_eligible: bool = True
    service_deployment: Optional["ServiceDeployment"] = None
    # Lifecycle hooks: the points still ahead of this deployment, the hook invocations it
    # waits on now, and whether it is ECS's own rollback (its hooks see the weights reversed).
    points: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    is_rollback: bool = False
    extras: dict = field(default_factory=dict)  # moto's launchType, platformFamily, ...

    @property
    def in_progress(self) -> bool:
        return self.rollout_state == "IN_PROGRESS"

    @property
    def strategy(self) -> str:
        return self.config.get("strategy") or "ROLLING"

    def summary(self) -> dict:
        return {
            "arn": self.revision.arn,
            "requestedTaskCount": self.desired,
            "runningTaskCount": self.running,
            "pendingTaskCount": self.pending,
        }

    def to_api(self) -> dict:
        out = {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": self.desired,
            "pendingCount": self.pending,
            "runningCount": self.running,
            "failedTasks": self.failed,
            "createdAt": epoch(self.created_at),
            "updatedAt": epoch(self.updated_at),
        }
        out.update(self.extras)
        # Model: [API] Deployment.rolloutState: "The rolloutState of a service is only returned
        # for services that use the rolling update (ECS) deployment type that aren't behind a
        # Classic Load Balancer." Whether BLUE_GREEN, LINEAR and CANARY (also under the ECS
        # controller) return it is not documented: the world leaves it out for them, so that
        # pushdeploy is shown to follow those by their service deployment alone. The world
        # still keeps the state inside, to drive its own model.
        if self.strategy == "ROLLING":
            out["rolloutState"] = self.rollout_state
            out["rolloutStateReason"] = self.rollout_reason
        return out


# Model: service deployments.
# [API] ServiceDeployment: "Service deployments provide a comprehensive view of your
#   deployments." Status values (enum ServiceDeploymentStatus): PENDING | SUCCESSFUL | STOPPED |
#   STOP_REQUESTED | IN_PROGRESS | ROLLBACK_REQUESTED | ROLLBACK_IN_PROGRESS |
#   ROLLBACK_SUCCESSFUL | ROLLBACK_FAILED.
# [DG] "View service history using Amazon ECS service deployments": "Completed: A service
#   deployment has finished (successfully or unsuccessfully): SUCCESSFUL, STOPPED,
#   ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED".
# A rollback stays inside the service deployment that failed (its `rollback` member and its
# ROLLBACK_* states); the rollback's own ECS deployment gets no service deployment of its own.
# Evidence: [API] Rollback.serviceRevisionArn "The ARN of the service revision deployed as part
# of the rollback", and users waiting on their deployment's ARN see ROLLBACK_SUCCESSFUL
# (anomalyco/sst issue #5922).
FINISHED = {"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}


@dataclass
class ServiceDeployment:
    arn: str
    service_arn: str
    cluster_arn: str
    target: Deployment
    sources: list
    config: dict
    created_at: float
    status: str = "IN_PROGRESS"
    status_reason: Optional[str] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    stopped_at: Optional[float] = None
    updated_at: Optional[float] = None
    rollback: Optional[dict] = None
    rollback_deployment: Optional[Deployment] = None
    breaker_status: str = "DISABLED"
    threshold: int = 0

    @property
    def driving(self) -> Deployment:
        """The ECS deployment doing this service deployment's work now."""
        return self.rollback_deployment or self.target

    def finish(self, status: str, at: float, reason: Optional[str] = None, stopped: bool = False) -> None:
        self.status = status
        self.finished_at = self.updated_at = at
        if stopped:
            self.stopped_at = at
        if reason is not None:
            self.status_reason = reason

    def brief(self) -> dict:
        return compact(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "startedAt": epoch(self.started_at),
                "createdAt": epoch(self.created_at),
                "finishedAt": epoch(self.finished_at),
                "targetServiceRevisionArn": self.target.revision.arn,
                "status": self.status,
                "statusReason": self.status_reason,
            }
        )

    def to_api(self) -> dict:
        stage = self.driving.stage if self.status not in FINISHED and self.driving.in_progress else None
        rollback = None
        if self.rollback:
            rollback = dict(self.rollback, startedAt=epoch(self.rollback["startedAt"]))
        return compact(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "createdAt": epoch(self.created_at),
                "startedAt": epoch(self.started_at),
                "finishedAt": epoch(self.finished_at),
                "stoppedAt": epoch(self.stopped_at),
                "updatedAt": epoch(self.updated_at),
                "sourceServiceRevisions": [d.summary() for d in self.sources],
                "targetServiceRevision": self.target.summary(),
                "status": self.status,
                "statusReason": self.status_reason,
                "lifecycleStage": stage,
                "lifecycleHookDetails": [c.detail() for c in self.driving.waiting] or None,
                "deploymentConfiguration": self.config,
                "rollback": rollback,
                "deploymentCircuitBreaker": {
                    "status": self.breaker_status,
                    "failureCount": self.target.failed if self.breaker_status != "DISABLED" else 0,
                    "threshold": self.threshold,
                },
            }
        )


# Model: lifecycle hooks ([DG] "Lifecycle hooks for Amazon ECS service deployments", "Lambda
# hooks for Amazon ECS service deployments").
#   - Hooks run at the stages their `lifecycleStages` name, in the deployment's order
#     (POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT,
#     PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT); the deployment waits at a stage
#     until every hook there answers SUCCEEDED ("Hooks at one stage run in parallel").
#   - The payload: executionId, lifecycleStage, resourceArn (the service deployment),
#     executionDetails {serviceArn, targetServiceRevisionArn, testTrafficWeights,
#     productionTrafficWeights} and hookDetails (the hook's static details, merged with what the
#     function answered last: "Amazon ECS merges this data and passes it back on the next
#     invocation"). The weight maps are empty except at the traffic-shift stages, as in the
#     Developer Guide's examples.
#   - "IN_PROGRESS: Amazon ECS invokes the function again after a delay. By default, the delay
#     is 30 seconds." (callBackDelay, on the world's clock.)
#   - "FAILED: Amazon ECS rolls back the deployment to the last successful service revision.";
#     "If your function doesn't return a valid hookStatus, or if it fails, Amazon ECS rolls back
#     the deployment."
#   - "There is no dedicated ROLLBACK lifecycle stage. When a rollback occurs, Amazon ECS
#     re-invokes hooks registered at the PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT stages"
#     with the weights reversed; "targetServiceRevisionArn remains the green revision ARN".
# The world does not run the hook's Lambda itself: the test takes the due invocations
# (GET /_world/hooks), runs the gate binary, and posts its answer (POST /_world/hooks). Not
# modelled: PRE_SCALE_UP and RECONCILE_SERVICE hooks, hook timeouts, and a hook failing
# during ECS's own rollback (the world goes on rolling back).
# - Linear and canary steps: [DG] "Amazon ECS linear deployments": "Lambda functions or
#   lifecycle hooks configured for PRODUCTION_TRAFFIC_SHIFT will be invoked at every production
#   traffic shift step." The world invokes them at each step with that step's weights (a
#   linear step of stepPercent, a canary's canaryPercent then 100), and waits the step's bake
#   after the hooks answered SUCCEEDED (production_steps).
BEFORE_SHIFT_POINTS = ["POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"]
ROLLBACK_HOOK_POINTS = ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "SHIFT"]
DEFAULT_CALLBACK_DELAY = 30.0


@dataclass
class HookCall:
    id: str
    deployment: "Deployment"
    hook: dict
    stage: str
    due_at: float
    details: dict
    out: bool = False  # handed to the test, its answer awaited
    pause: bool = False  # a PAUSE hook: waits for ContinueServiceDeployment, never invoked
    weight: float = 100.0  # the green revision's production weight after this step

    def detail(self) -> dict:
        """The hook as DescribeServiceDeployments' lifecycleHookDetails shows it."""
        return compact({
            "hookId": self.id,
            "targetType": "PAUSE" if self.pause else "AWS_LAMBDA",
            "targetArn": None if self.pause else self.hook.get("hookTargetArn"),
            "status": "AWAITING_ACTION" if self.pause else "IN_PROGRESS",
            "expiresAt": epoch(self.due_at + 1440 * 60),
            "timeoutAction": "ROLLBACK",
        })


# Model: pause hooks ([DG] "Pause hooks for Amazon ECS service deployments"): targetType PAUSE
# "Pauses the deployment at the specified lifecycle stage until you call
# ContinueServiceDeployment"; "Amazon ECS emits an EventBridge event with the detail-type ECS
# Hook State Change and the event name HOOK_AWAITING_ACTION" (detail: eventName, hookId,
# hookType, expiresAt, lifecycleStage, clusterArn, serviceArn, serviceDeploymentArn,
# updatedAt). [API] ContinueServiceDeployment: "Continues or rolls back an Amazon ECS service
# deployment that is paused at a lifecycle hook", action CONTINUE (the default) or ROLLBACK;
# [DG] "Continuing service deployments": "The pause hook must be in AWAITING_ACTION status."
# A pause hook's timeout (default 1,440 minutes, action ROLLBACK) is shown, not enforced.
def is_pause(hook: dict) -> bool:
    return hook.get("targetType") == "PAUSE"


def hooks_at(config: dict, stage: str) -> list:
    return [h for h in (config.get("lifecycleHooks") or []) if stage in (h.get("lifecycleStages") or [])]


@dataclass
class WorldService:
    cluster: str
    name: str
    arn: str
    cluster_arn: str
    account: str
    region: str
    config: dict
    extras: dict
    controller: str = "ECS"  # deploymentController.type
    deployments: list = field(default_factory=list)  # every deployment, oldest first
    service_deployments: list = field(default_factory=list)  # oldest first
    revisions: list = field(default_factory=list)

    def primary(self) -> Optional[Deployment]:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def listed(self) -> list:
        """PRIMARY first, then the ACTIVE ones, newest first; INACTIVE ones are gone."""
        active = [d for d in self.deployments if d.status == "ACTIVE"]
        primary = self.primary()
        return ([primary] if primary else []) + sorted(active, key=lambda d: d.created_at, reverse=True)

    def moto_service(self) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[self.account][self.region].services.get(f"{self.cluster}:{self.name}")

    def desired_count(self, fallback: int) -> int:
        service = self.moto_service()
        return service.desired_count if service is not None else fallback


# --------------------------------------------------------------------------------------------
# Deployment configuration
# --------------------------------------------------------------------------------------------

# Model: deploymentConfiguration defaults, filled where the caller left them out.
# [API] DeploymentConfiguration.maximumPercent: "The default maximumPercent value for a service
#   using the REPLICA service scheduler is 200%." minimumHealthyPercent: "The default value for
#   a replica service for minimumHealthyPercent is 100%." DeploymentCircuitBreaker: off unless
#   given. strategy: an absent strategy is ROLLING (the rolling update is the default type).
DEFAULT_CONFIG = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def merge_config(current: Optional[dict], given: Optional[dict]) -> dict:
    merged = json.loads(json.dumps(current if current is not None else DEFAULT_CONFIG))
    for key, value in (given or {}).items():
        merged[key] = value
    for key, value in DEFAULT_CONFIG.items():
        merged.setdefault(key, json.loads(json.dumps(value)))
    return merged


# Model: which strategies the circuit breaker watches.
# [DG] "Amazon ECS deployment failure detection": "Both methods only support rolling update
#   deployment and blue/green deployment types." (The older [API] DeploymentCircuitBreaker note
#   says "rolling update (ECS) deployment type", written before ECS-native blue/green.) LINEAR
#   and CANARY are not named, so the world does not apply the breaker to them.
BREAKER_STRATEGIES = {"ROLLING", "BLUE_GREEN"}


def breaker_of(config: dict) -> dict:
    return config.get("deploymentCircuitBreaker") or {}


def breaker_watches(config: dict) -> bool:
    return bool(breaker_of(config).get("enable")) and (config.get("strategy") or "ROLLING") in BREAKER_STRATEGIES


# Model: the failure threshold.
# [API] ServiceDeploymentCircuitBreaker.threshold: "The deployment circuit breaker has a minimum
#   threshold of 3 and a maximum threshold of 200. and uses the values in the following formula
#   to determine the deployment failure. 0.5 * desired task count".
# The halves are rounded up: the Developer Guide's table (awsdocs/amazon-ecs-developer-guide,
#   deployment-circuit-breaker.md) gives desired 25 -> "13 (the value is rounded up)".
# [API] ThresholdConfiguration (2026): "By default, the threshold configuration uses a type of
#   BOUNDED_PERCENT with a value of 50. ... For the percentage types (BOUNDED_PERCENT and
#   UNBOUNDED_PERCENT), Amazon ECS multiplies value by the latest service desired count. For
#   COUNT, Amazon ECS uses value directly as the threshold." BOUNDED keeps the 3..200 bounds.
def breaker_threshold(config: dict, desired: int) -> int:
    threshold = breaker_of(config).get("thresholdConfiguration") or {}
    kind = threshold.get("type") or "BOUNDED_PERCENT"
    value = threshold.get("value", 50)
    if kind == "COUNT":
        return max(int(value), 1)
    raw = math.ceil(value * desired / 100)
    if kind == "UNBOUNDED_PERCENT":
        return max(raw, 1)
    return min(max(raw, 3), 200)


# Model: resetting the failure count.
# [API] DeploymentCircuitBreaker.resetOnHealthyTask: "When set to true, a task that reaches a
#   healthy state resets the failure count to 0. When set to false, Amazon ECS does not reset
#   the failure count. The default is true." [API] Deployment.failedTasks: "The number of
#   consecutively failed tasks in the deployment. ... Once a service deployment has one or more
#   successfully running tasks, the failed task count resets to zero". So failedTasks is the
#   count the breaker reads, and a task the test starts (RUNNING, so healthy) resets it. (The
#   older "and stops being evaluated" is not followed: the Developer Guide's stage 2 goes on
#   counting health-check failures after a task runs, and resetOnHealthyTask=false keeps the
#   whole count.)
def breaker_resets(config: dict) -> bool:
    return breaker_of(config).get("resetOnHealthyTask", True) is not False


# Model: how long traffic shifting takes, after the new tasks run.
# [API] LinearConfiguration: "stepPercent ... The default value is 10.0." "stepBakeTimeInMinutes
#   ... The amount of time in minutes to wait between each traffic shifting step ... The default
#   value is 6. This bake time is not applied after reaching 100 percent traffic." So a linear
#   shift waits between its ceil(100 / stepPercent) steps: steps - 1 waits.
# [API] CanaryConfiguration: "shifts a fixed percentage of traffic to the new service revision,
#   waits for a specified bake time, then shifts the remaining traffic"; canaryBakeTimeInMinutes
#   "The default value is 10." So one wait.
def production_steps(config: dict) -> list:
    """(the green revision's production weight after the step, minutes baked after it), for each
    production traffic shift step of a forward deployment (see the lifecycle hooks' model)."""
    strategy = config.get("strategy") or "ROLLING"
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        percent = float(linear.get("stepPercent") or 10.0)
        steps = math.ceil(100 / percent)
        bake = float(linear.get("stepBakeTimeInMinutes", 6))
        return [(min(100.0, k * percent), bake if k < steps else 0.0) for k in range(1, steps + 1)]
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        # [API] CanaryConfiguration.canaryPercent: "The percentage of production traffic to shift
        # to the new service revision during the canary phase" (5.0 when absent).
        percent = float(canary.get("canaryPercent") or 5.0)
        return [(percent, float(canary.get("canaryBakeTimeInMinutes", 10))), (100.0, 0.0)]
    return [(100.0, 0.0)]


def forward_points(config: dict) -> list:
    """The points a forward deployment of a native strategy goes through: the hook stages, and
    each production step as `PRODUCTION_TRAFFIC_SHIFT@<weight>` then `WAIT@<minutes>`."""
    points = list(BEFORE_SHIFT_POINTS)
    for weight, bake in production_steps(config):
        points.append(f"PRODUCTION_TRAFFIC_SHIFT@{weight}")
        if bake > 0:
            points.append(f"WAIT@{bake}")
    return points + ["POST_PRODUCTION_TRAFFIC_SHIFT"]


def shift_minutes(config: dict) -> float:
    strategy = config.get("strategy") or "ROLLING"
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        steps = math.ceil(100 / float(linear.get("stepPercent") or 10.0))
        return max(steps - 1, 0) * float(linear.get("stepBakeTimeInMinutes", 6))
    if strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        return float(canary.get("canaryBakeTimeInMinutes", 10))
    return 0.0


# Model: the bake.
# [API] DeploymentConfiguration.bakeTimeInMinutes: "The time period when both blue and green
#   service revisions are running simultaneously after the production traffic has shifted. You
#   must provide this parameter when you use the BLUE_GREEN deployment strategy." (Absent, the
#   world bakes for 0 minutes.) ROLLING has no bake.
def bake_minutes(config: dict) -> float:
    if (config.get("strategy") or "ROLLING") == "ROLLING":
        return 0.0
    return float(config.get("bakeTimeInMinutes") or 0)


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# CodeDeploy deployments of CODE_DEPLOY services
# --------------------------------------------------------------------------------------------

# Model: CodeDeploy deployment statuses. [API] DeploymentInfo.status, enum DeploymentStatus:
#   Created | Queued | InProgress | Baking | Succeeded | Failed | Stopped | Ready. moto leaves
#   every deployment "Created"; the world moves its own: InProgress from the start (no queue),
#   Succeeded when the traffic shift and the original task set's termination wait have passed
#   on the world's clock, Failed when the test says the replacement task set failed. It does
#   not model Baking, Ready (a reroute that waits for someone), Stopped, or CodeDeploy's own
#   time limits.
CODEDEPLOY_ENDED = {"Succeeded", "Failed", "Stopped"}


@dataclass
class CodeDeployment:
    id: str
    application: str
    group: str
    ws: "WorldService"
    task_definition: str
    green: Optional[Deployment]
    created_at: float
    shift_ends_at: float
    ends_at: float
    rolls_back: bool  # the group's automatic rollback covers DEPLOYMENT_FAILURE
    status: str = "InProgress"
    completed_at: Optional[float] = None
    error: Optional[dict] = None
    rollback: Optional[dict] = None
    creator: str = "user"

    def overlay(self, info: dict) -> dict:
        info.update(
            compact(
                {
                    "deploymentId": self.id,
                    "applicationName": self.application,
                    "deploymentGroupName": self.group,
                    "status": self.status,
                    "creator": self.creator,
                    "createTime": epoch(self.created_at),
                    "startTime": epoch(self.created_at),
                    "completeTime": epoch(self.completed_at),
                    "errorInformation": self.error,
                    "rollbackInfo": self.rollback,
                    "computePlatform": "ECS",
                }
            )
        )
        return info


# Model: how long CodeDeploy shifts traffic, from the deployment configuration's name.
# [CodeDeploy User Guide, "Deployment configurations on an Amazon ECS compute platform"]:
#   CodeDeployDefault.ECSLinear10PercentEvery1Minutes "Shifts 10 percent of traffic every
#   minute until all traffic is shifted"; ECSCanary10Percent5Minutes "Shifts 10 percent of
#   traffic in the first increment. The remaining 90 percent is deployed five minutes later";
#   ECSAllAtOnce "Shifts all traffic to the updated Amazon ECS container at once."
# Then the original task set stays for the group's terminationWaitTimeInMinutes
# (blueGreenDeploymentConfiguration.terminateBlueInstancesOnDeploymentSuccess; 0 if unset).
def codedeploy_shift_minutes(config_name: str) -> float:
    linear = re.search(r"Linear(\d+)PercentEvery(\d+)Minute", config_name or "")
    if linear:
        return (100.0 / float(linear.group(1)) - 1.0) * float(linear.group(2))
    canary = re.search(r"Canary(\d+)Percent(\d+)Minute", config_name or "")
    if canary:
        return float(canary.group(2))
    return 0.0


def codedeploy_wait_minutes(group: Any) -> float:
    blue_green = getattr(group, "blue_green_deployment_configuration", None) or {}
    on_success = blue_green.get("terminateBlueInstancesOnDeploymentSuccess") or {}
    return float(on_success.get("terminationWaitTimeInMinutes") or 0)


# Model: automatic rollback. [CloudFormation, AWS::CodeDeploy::DeploymentGroup
#   AutoRollbackConfiguration]: it "configures automatic rollback for an AWS CodeDeploy
#   deployment group when a deployment is not completed successfully"; Events: "DEPLOYMENT_FAILURE,
#   DEPLOYMENT_STOP_ON_ALARM, or DEPLOYMENT_STOP_ON_REQUEST". The rollback is a deployment of
#   its own (rollbackInfo.rollbackDeploymentId, creator codeDeployRollback), which the world
#   ends at once: production traffic never left the original task set before the failure.
def group_rolls_back(group: Any) -> bool:
    auto = getattr(group, "auto_rollback_configuration", None) or {}
    return bool(auto.get("enabled")) and "DEPLOYMENT_FAILURE" in (auto.get("events") or [])


class World:
    """All deployment state. Every method runs with the "ecs" lock held (see Locks)."""

    def __init__(self, locks: Locks, seed: int = 0):
        self.locks = locks
        self.images = ImageResolver(locks)
        self.rng = random.Random(seed)
        self.offset = 0.0
        self.services: dict = {}  # (cluster name, service name) -> WorldService
        self.revisions: dict = {}  # ARN -> Revision
        self.service_deployments: dict = {}  # ARN -> ServiceDeployment
        self.outbox: list = []
        self.hook_calls: dict = {}  # id -> HookCall waiting on its answer
        self.codedeploy: dict = {}  # CodeDeploy deployment id -> CodeDeployment
        self.alarms: dict = {}  # CloudWatch alarm name -> Alarm

    # ---- clock and ids -------------------------------------------------------------------

    # Model: the clock. World time is real time plus an offset the test advances; every
    # timestamp the world writes uses it, and every entry into the world first completes what
    # is due (bakes, traffic-shift steps).
    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += float(seconds)
        self.tick()

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def _deployment_id(self) -> str:
        return f"ecs-svc/{self.rng.randrange(10**18, 10**19)}"

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---- lookups ---------------------------------------------------------------------------

    def service(self, cluster: str, name: str) -> Optional[WorldService]:
        return self.services.get((last_segment(cluster or "default"), last_segment(name or "")))

    def deployment(self, ws: WorldService, deployment_id: Optional[str]) -> Optional[Deployment]:
        if not deployment_id:
            return ws.primary()
        return next((d for d in ws.deployments if d.id == deployment_id), None)

    # ---- revisions -------------------------------------------------------------------------

    def _new_revision(self, ws: WorldService, task_definition: Any, at: float) -> Revision:
        number = self.rng.randrange(10**18, 10**19)
        revision = Revision(
            arn=f"arn:aws:ecs:{ws.region}:{ws.account}:service-revision/{ws.cluster}/{ws.name}/{number}",
            service_arn=ws.arn,
            cluster_arn=ws.cluster_arn,
            task_definition=task_definition.arn,
            container_images=self.images.resolve(task_definition.container_definitions),
            created_at=at,
            launch_type=ws.extras.get("launchType"),
        )
        ws.revisions.append(revision)
        self.revisions[revision.arn] = revision
        return revision

    # ---- events ----------------------------------------------------------------------------

    # Model: deployment state change events.
    # [DG] "Amazon ECS service deployment state change events": "Amazon ECS sends service
    #   deployment change state events with the detail type ECS Deployment State Change."
    #   SERVICE_DEPLOYMENT_IN_PROGRESS "is sent for both initial deployments and rollback
    #   deployments"; SERVICE_DEPLOYMENT_COMPLETED "is sent once a service reaches a steady state
    #   after a deployment"; SERVICE_DEPLOYMENT_FAILED "is sent for services with deployment
    #   circuit breaker logic turned on". The shape follows that page's examples (and the
    #   project's events/ecs-deployment-*.json); FAILED is the ERROR event type.
    def _emit(self, ws: WorldService, name: str, d: Deployment, reason: str, at: float) -> None:
        self.outbox.append(
            {
                "version": "0",
                "id": self._event_id(),
                "detail-type": "ECS Deployment State Change",
                "source": "aws.ecs",
                "account": ws.account,
                "time": rfc3339(at),
                "region": ws.region,
                "resources": [ws.arn],
                "detail": {
                    "eventType": "ERROR" if name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
                    "eventName": name,
                    "deploymentId": d.id,
                    "updatedAt": rfc3339(d.updated_at),
                    "reason": reason,
                },
            }
        )

    def drain_events(self) -> list:
        events, self.outbox = self.outbox, []
        return events

    # ---- CreateService ---------------------------------------------------------------------

    # Model: a new service starts with one deployment that has already COMPLETED: the world
    # does not make the test start the first tasks. Its service revision resolves the images
    # now; it sends no events.
    def create_service(self, caller: Caller, answer: dict, given_config: Optional[dict], task_definition: Any) -> WorldService:
        at = self.now()
        moto_deployment = (answer.get("deployments") or [{}])[0]
        extras = {k: moto_deployment[k] for k in ("launchType", "platformVersion", "platformFamily", "networkConfiguration") if moto_deployment.get(k) is not None}
        ws = WorldService(
            cluster=last_segment(answer["clusterArn"]),
            name=answer["serviceName"],
            arn=answer["serviceArn"],
            cluster_arn=answer["clusterArn"],
            account=caller.account,
            region=caller.region,
            config=merge_config(None, given_config),
            extras=extras,
        )
        self.services[(ws.cluster, ws.name)] = ws
        if task_definition is None:
            return ws
        desired = answer.get("desiredCount", 0)
        d = self._new_deployment(ws, task_definition.arn, self._new_revision(ws, task_definition, at), desired, at)
        d.running, d.pending = desired, 0
        d.rollout_state, d.rollout_reason, d.stage = "COMPLETED", f"ECS deployment {d.id} completed.", None
        sd = self._new_service_deployment(ws, d, [], at)
        if sd.breaker_status == "MONITORING":
            sd.breaker_status = "MONITORING_COMPLETE"
        sd.finish("SUCCESSFUL", at)
        return ws

    # ---- UpdateService ---------------------------------------------------------------------

    # Model: which UpdateService calls start a deployment: a task definition other than the
    # one the service runs, or forceNewDeployment.
    # [API] UpdateServiceRequest.taskDefinition: "If you modify the task definition with
    #   UpdateService, Amazon ECS spawns a task with the new version of the task definition and
    #   then stops an old task after the new version is running. This parameter triggers a new
    #   service deployment." forceNewDeployment: "You can use this option to start a new
    #   deployment with no service definition changes."
    # The same task definition without force, a desired count or a configuration change start
    # none (as the brief asks; no document says ECS starts a deployment for an unchanged one).
    def update_service(self, ws: WorldService, task_definition: Any, force: bool, given_config: Optional[dict]) -> None:
        at = self.now()
        if given_config is not None:
            ws.config = merge_config(ws.config, given_config)
        primary = ws.primary()
        desired = ws.desired_count(primary.desired if primary else 0)
        changed = task_definition is not None and (primary is None or task_definition.arn != primary.task_definition)
        if changed or (force and (task_definition is not None or primary is not None)):
            td = task_definition if task_definition is not None else self._task_definition(ws, primary.task_definition)
            self.start_deployment(ws, td, desired, at)
        elif primary is not None and desired != primary.desired:
            self._rescale(ws, primary, desired, at)

    def _task_definition(self, ws: WorldService, arn: str) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[ws.account][ws.region].describe_task_definition(arn)

    # Model: scaling without a deployment. moto sets the running count to the new desired
    # count at once; a COMPLETED deployment does the same here, an unfinished one keeps going.
    def _rescale(self, ws: WorldService, d: Deployment, desired: int, at: float) -> None:
        d.desired, d.updated_at = desired, at
        if d.rollout_state == "COMPLETED":
            d.running, d.pending = desired, 0
        elif d.in_progress:
            d.running = min(d.running, desired)
            d.pending = max(desired - d.running, 0)
            self._check_scaled_up(ws, d, at)

    # Model: a new deployment.
    # [API] Deployment.status above: the previous PRIMARY becomes ACTIVE and drains.
    # A previous PRIMARY that had not finished is replaced: its service deployment becomes
    # STOPPED. Evidence: kayac/ecspresso issue #899, where ListServiceDeployments shows the
    # replaced service deployment with a finishedAt and ecspresso reports "Service deployment
    # failed STOPPED". No AWS document says ECS sends an event for a replaced deployment, and
    # none was found in the deployment state change events page: the world sends none.
    def start_deployment(self, ws: WorldService, task_definition: Any, desired: int, at: float) -> Deployment:
        sources = [d for d in ws.listed() if d.running + d.pending > 0]
        previous = ws.primary()
        revision = self._new_revision(ws, task_definition, at)
        if previous is not None:
            self._replace(previous, at)
        d = self._new_deployment(ws, task_definition.arn, revision, desired, at)
        d.pending = desired
        d.points = forward_points(d.config) if d.strategy != "ROLLING" else []
        d.rollout_reason = f"ECS deployment {d.id} in progress."
        self._new_service_deployment(ws, d, sources, at)
        self._emit(ws, "SERVICE_DEPLOYMENT_IN_PROGRESS", d, d.rollout_reason, at)
        self._check_scaled_up(ws, d, at)
        return d

    def _replace(self, previous: Deployment, at: float) -> None:
        previous.status, previous.pending, previous.updated_at = "ACTIVE", 0, at
        previous.stage, previous.stage_ends_at = None, None
        self._drop_hooks(previous)
        sd = previous.service_deployment
        if sd is not None and sd.status not in FINISHED and sd.driving is previous:
            sd.finish("STOPPED", at, reason="Replaced by a newer service deployment.", stopped=True)

    def _new_deployment(self, ws: WorldService, td_arn: str, revision: Revision, desired: int, at: float) -> Deployment:
        d = Deployment(
            id=self._deployment_id(),
            task_definition=td_arn,
            revision=revision,
            desired=desired,
            config=json.loads(json.dumps(ws.config)),
            created_at=at,
            updated_at=at,
            extras=dict(ws.extras),
        )
        ws.deployments.append(d)
        return d

    def _new_service_deployment(self, ws: WorldService, d: Deployment, sources: list, at: float) -> ServiceDeployment:
        suffix = d.id.split("/", 1)[1]
        sd = ServiceDeployment(
            arn=f"arn:aws:ecs:{ws.region}:{ws.account}:service-deployment/{ws.cluster}/{ws.name}/{suffix}",
            service_arn=ws.arn,
            cluster_arn=ws.cluster_arn,
            target=d,
            sources=sources,
            config=d.config,
            created_at=at,
            started_at=at,
            updated_at=at,
            breaker_status="MONITORING" if breaker_watches(d.config) else "DISABLED",
            threshold=breaker_threshold(d.config, d.desired),
        )
        d.service_deployment = sd
        ws.service_deployments.append(sd)
        self.service_deployments[sd.arn] = sd
        return sd

    # ---- task progress ---------------------------------------------------------------------

    # Model: tasks starting. The test says how many of a deployment's tasks reached RUNNING.
    # ROLLING replaces the older tasks as the new ones start ([API] DeploymentConfiguration
    # .strategy: "the Amazon ECS service scheduler replaces the currently running tasks with new
    # tasks"), so the older deployments drain by as many. BLUE_GREEN, LINEAR and CANARY keep
    # the blue revision running until clean-up ([API] ServiceDeployment.lifecycleStage:
    # "BAKE_TIME The stage when both blue and green service revisions are running
    # simultaneously after the production traffic has shifted. CLEAN_UP The stage when the
    # blue service revision has completely scaled down to 0 running tasks.").
    def start_tasks(self, ws: WorldService, d: Deployment, count: int) -> None:
        at = self.now()
        if d.rollout_state == "FAILED" or count <= 0:
            return
        started = max(min(count, d.desired - d.running), 0)
        if started == 0:
            return
        d.running += started
        d.pending = max(d.desired - d.running, 0)
        d.updated_at = at
        if breaker_resets(d.config):
            d.failed = 0
        if d.status == "PRIMARY" and d.strategy == "ROLLING":
            self._drain_others(ws, started, at)
        if d.status == "PRIMARY":
            self._check_scaled_up(ws, d, at)

    def _drain_others(self, ws: WorldService, count: int, at: float) -> None:
        for older in ws.listed()[1:]:
            taken = min(count, older.running)
            if taken:
                older.running -= taken
                older.updated_at = at
                count -= taken
            if count == 0:
                return

    # Model: tasks failing. failedTasks counts them (see breaker_resets); the circuit breaker
    # acts on that count while the deployment is PRIMARY, IN_PROGRESS and of a strategy it
    # watches. Without the breaker, failures only count.
    # [DG] "How the Amazon ECS deployment circuit breaker detects failures" (archived copy):
    #   "When the failure count equals the threshold, the deployment is marked as FAILED".
    def fail_tasks(self, ws: WorldService, d: Deployment, count: int) -> None:
        at = self.now()
        if count <= 0:
            return
        d.failed += count
        d.updated_at = at
        if not (d.in_progress and d.status == "PRIMARY" and breaker_watches(d.config)):
            return
        sd = d.service_deployment
        threshold = breaker_threshold(d.config, d.desired)
        if sd is not None:
            sd.threshold, sd.updated_at = threshold, at
        if d.failed >= threshold:
            self._trip_breaker(ws, d, at)

    # Model: what the breaker does when it trips.
    # [DG] "How the Amazon ECS deployment circuit breaker detects failures": "When the
    #   deployment circuit breaker determines that a deployment failed, it looks for the most
    #   recent deployment that is in a COMPLETED state. This is the deployment that it uses as
    #   the roll-back deployment. When the rollback starts, the deployment changes from a
    #   COMPLETED to IN_PROGRESS. This means that the deployment is not eligible for another
    #   rollback until it reaches a COMPLETED state. When the deployment circuit breaker does
    #   not find a deployment that is in a COMPLETED state, the circuit breaker does not launch
    #   new tasks and the deployment is stalled."
    # [DG] "Amazon ECS deployment failure detection": "The rollback method requires a previous
    #   deployment in COMPLETED state."
    # Reasons: the FAILED event's reason is the one in the events page's example, "ECS
    #   deployment circuit breaker: task failed to start."; the deployment's rolloutStateReason
    #   is the one real services show, "ECS deployment circuit breaker: tasks failed to start."
    #   (the API reference gives no example; e.g. fabfuel/ecs-deploy's test fixtures and user
    #   reports quote this text).
    # [API] ServiceDeployment.stoppedAt: "The service deployment stops when ... The rollback
    #   option is not in use for the failure detection mechanism (the circuit breaker or
    #   alarm-based) and the service fails." -> STOPPED without a rollback.
    def _trip_breaker(self, ws: WorldService, d: Deployment, at: float) -> None:
        d.rollout_state = "FAILED"
        d.rollout_reason = "ECS deployment circuit breaker: tasks failed to start."
        d.pending, d.stage, d.updated_at = 0, None, at
        self._emit(ws, "SERVICE_DEPLOYMENT_FAILED", d, "ECS deployment circuit breaker: task failed to start.", at)
        sd = d.service_deployment
        if sd is not None:
            sd.breaker_status = "TRIGGERED"
        if sd is not None and sd.rollback_deployment is d:
            sd.finish("ROLLBACK_FAILED", at, reason="The rollback deployment failed.")
            return
        target = self._rollback_target(ws, d) if breaker_of(d.config).get("rollback") else None
        if target is None:
            if sd is not None and sd.status not in FINISHED:
                sd.finish("STOPPED", at, reason="ECS deployment circuit breaker: task failed to start.", stopped=True)
            return
        reason = f"ECS deployment circuit breaker: rolling back to deploymentId {target.id}."
        self._start_rollback(ws, d, target, reason, "ECS deployment circuit breaker: task failed to start.", at)

    def _rollback_target(self, ws: WorldService, failed: Deployment) -> Optional[Deployment]:
        candidates = [x for x in ws.listed() if x is not failed and x.rollout_state == "COMPLETED" and x.rollback_eligible]
        return max(candidates, key=lambda x: x.created_at, default=None)

    # Model: the rollback deployment: a new PRIMARY on the COMPLETED deployment's task
    # definition and service revision, so with the digests that revision resolved, not
    # resolved again ([API] Rollback.serviceRevisionArn: "The ARN of the service revision
    # deployed as part of the rollback."). The service's task definition goes back too.
    # [DG] events page: "The following shows an example output for a rollback deployment
    #   starting. The reason field provides the ID of the deployment the service is rolling
    #   back to." with reason "ECS deployment circuit breaker: rolling back to deploymentId
    #   deploymentID."
    def _start_rollback(self, ws: WorldService, failed: Deployment, target: Deployment, reason: Optional[str], why: str, at: float) -> Deployment:
        """`reason` is the rollback deployment's rolloutStateReason and event reason; None
        means the plain "ECS deployment <id> in progress." reason."""
        failed.status, failed.pending, failed.stage, failed.updated_at = "ACTIVE", 0, None, at
        target.rollback_eligible = False
        desired = ws.desired_count(failed.desired)
        r = self._new_deployment(ws, target.task_definition, target.revision, desired, at)
        r.pending, r.rollout_reason = desired, reason or f"ECS deployment {r.id} in progress."
        r.is_rollback = True
        r.points = list(ROLLBACK_HOOK_POINTS) if r.strategy != "ROLLING" else []
        self._drop_hooks(failed)
        sd = failed.service_deployment
        if sd is not None:
            r.service_deployment = sd
            sd.rollback_deployment = r
            sd.status, sd.updated_at = "ROLLBACK_IN_PROGRESS", at
            sd.status_reason = why
            sd.rollback = {"reason": why, "startedAt": at, "serviceRevisionArn": target.revision.arn}
        moto_service = ws.moto_service()
        if moto_service is not None:
            moto_service.task_definition = target.task_definition
        self._emit(ws, "SERVICE_DEPLOYMENT_IN_PROGRESS", r, r.rollout_reason, at)
        self._check_scaled_up(ws, r, at)
        return r

    # ---- stage progress --------------------------------------------------------------------

    # Model: lifecycle stages ([API] ServiceDeployment.lifecycleStage): "SCALE_UP The stage
    # when the green service revision scales up to 100% and launches new tasks";
    # "PRODUCTION_TRAFFIC_SHIFT ... For linear and canary deployments, this stage is invoked at
    # every traffic shift step"; "BAKE_TIME ..."; then clean-up and completion. With no load
    # balancer in the world, test traffic and the blue/green production shift take no time.
    # Evidence for baking in progress: kayac/ecspresso PR #1063, "the service deployment stays
    # IN_PROGRESS for the whole bake".
    def _check_scaled_up(self, ws: WorldService, d: Deployment, at: float) -> None:
        if d.status != "PRIMARY" or not d.in_progress or d.stage != "SCALE_UP" or d.running < d.desired:
            return
        self._next_point(ws, d, at)

    # The deployment's next stage: hooks to wait on, the timed production shift, or the bake.
    def _next_point(self, ws: WorldService, d: Deployment, at: float) -> None:
        while d.points:
            point = d.points.pop(0)
            if point == "SHIFT" or point.startswith("WAIT@"):
                shift = shift_minutes(d.config) if point == "SHIFT" else float(point[len("WAIT@"):])
                if shift > 0:
                    d.stage, d.stage_ends_at = "PRODUCTION_TRAFFIC_SHIFT", at + shift * 60
                    return
                continue
            point, _, weight = point.partition("@")
            hooks = hooks_at(d.config, point)
            if hooks:
                d.stage = point
                d.waiting = [self._hook_call(d, h, point, at) for h in hooks]
                for call in d.waiting:
                    call.weight = float(weight or 100.0)
                for call in d.waiting:
                    if call.pause:
                        self._emit_hook(ws, call, "HOOK_AWAITING_ACTION", at)
                return
        self._start_bake(ws, d, at)

    def _hook_call(self, d: Deployment, hook: dict, stage: str, at: float) -> HookCall:
        call = HookCall(
            id=f"hook-{self.rng.getrandbits(48):012x}", deployment=d, hook=hook, stage=stage,
            due_at=at, details=dict(hook.get("hookDetails") or {}), pause=is_pause(hook),
        )
        self.hook_calls[call.id] = call
        return call

    def _drop_hooks(self, d: Deployment) -> None:
        for call in d.waiting:
            self.hook_calls.pop(call.id, None)
        d.waiting = []

    def hook_payload(self, call: HookCall) -> dict:
        d = call.deployment
        sd = d.service_deployment
        green = sd.target.revision.arn if sd else d.revision.arn
        blue = d.revision.arn if d.is_rollback else (sd.sources[0].revision.arn if sd and sd.sources else None)
        weights = {}
        if call.stage in ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"):
            shifted = call.weight if call.stage == "PRODUCTION_TRAFFIC_SHIFT" else 100.0
            weights = {green: 0, blue: 100} if d.is_rollback else {green: shifted, **({blue: 100 - shifted} if blue else {})}
        return {
            "executionId": call.id,
            "lifecycleStage": call.stage,
            "resourceArn": sd.arn if sd else None,
            "executionDetails": {
                "serviceArn": sd.service_arn if sd else None,
                "targetServiceRevisionArn": green,
                "testTrafficWeights": weights if call.stage == "TEST_TRAFFIC_SHIFT" else {},
                "productionTrafficWeights": weights if call.stage == "PRODUCTION_TRAFFIC_SHIFT" else {},
            },
            "hookDetails": call.details,
            "hookTargetArn": call.hook.get("hookTargetArn"),
        }

    def due_hooks(self) -> list:
        """The hook invocations due now, handed out once each until answered."""
        now = self.now()
        due = [c for c in self.hook_calls.values() if not c.pause and not c.out and c.due_at <= now]
        for call in due:
            call.out = True
        return [{"id": c.id, "payload": self.hook_payload(c)} for c in sorted(due, key=lambda c: c.due_at)]

    def answer_hook(self, call_id: str, answer: Any) -> str:
        call = self.hook_calls.get(call_id)
        if call is None or not call.out:
            raise ApiError("UnknownHook", f"no hook invocation {call_id} awaits an answer")
        d = call.deployment
        ws = self.services[(last_segment(d.service_deployment.cluster_arn), last_segment(d.service_deployment.service_arn))]
        at = self.now()
        status = answer.get("hookStatus") if isinstance(answer, dict) else None
        details = answer.get("hookDetails") if isinstance(answer, dict) else None
        if status == "IN_PROGRESS":
            if isinstance(details, dict):
                call.details.update(details)
            delay = answer.get("callBackDelay")
            call.due_at = at + (float(delay) if isinstance(delay, (int, float)) else DEFAULT_CALLBACK_DELAY)
            call.out = False
            return "again"
        self.hook_calls.pop(call.id, None)
        d.waiting = [c for c in d.waiting if c is not call]
        if status == "SUCCEEDED" or d.is_rollback:
            if not d.waiting:
                self._next_point(ws, d, at)
            return "continued"
        self._hook_failed(ws, d, call, at)
        return "rolled back"

    def _emit_hook(self, ws: WorldService, call: HookCall, name: str, at: float) -> None:
        sd = call.deployment.service_deployment
        self.outbox.append({
            "version": "0",
            "id": self._event_id(),
            "detail-type": "ECS Hook State Change",
            "source": "aws.ecs",
            "account": ws.account,
            "time": rfc3339(at),
            "region": ws.region,
            "resources": [ws.arn],
            "detail": {
                "eventName": name,
                "hookId": call.id,
                "hookType": "PAUSE",
                "expiresAt": rfc3339(call.due_at + 1440 * 60),
                "lifecycleStage": call.stage,
                "clusterArn": ws.cluster_arn,
                "serviceArn": ws.arn,
                "serviceDeploymentArn": sd.arn if sd else None,
                "updatedAt": rfc3339(at),
            },
        })

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None:
        sd = self.service_deployments.get(arn)
        if sd is None:
            raise ApiError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
        call = self.hook_calls.get(hook_id)
        if sd.status != "IN_PROGRESS" or call is None or not call.pause or call.deployment is not sd.driving:
            raise ApiError("ConflictException", f"The service deployment has no pause hook {hook_id} in AWAITING_ACTION status.")
        d = call.deployment
        ws = self.services[(last_segment(sd.cluster_arn), last_segment(sd.service_arn))]
        at = self.now()
        self.hook_calls.pop(call.id, None)
        d.waiting = [c for c in d.waiting if c is not call]
        if action == "ROLLBACK":
            self._hook_failed(ws, d, call, at, why=f"Rolled back by ContinueServiceDeployment (ROLLBACK) at {call.stage}.")
        elif not d.waiting:
            self._next_point(ws, d, at)

    def _hook_failed(self, ws: WorldService, d: Deployment, call: HookCall, at: float, why: Optional[str] = None) -> None:
        why = why or f"Lifecycle hook {call.hook.get('hookTargetArn', '?')} at {call.stage} returned FAILED."
        self._drop_hooks(d)
        d.rollout_state, d.rollout_reason = "FAILED", why
        d.stage, d.stage_ends_at, d.updated_at = None, None, at
        self._emit(ws, "SERVICE_DEPLOYMENT_FAILED", d, why, at)
        target = self._rollback_target(ws, d)
        sd = d.service_deployment
        if target is None:
            if sd is not None and sd.status not in FINISHED:
                sd.finish("STOPPED", at, reason=why, stopped=True)
            return
        self._start_rollback(ws, d, target, None, why, at)

    def _start_bake(self, ws: WorldService, d: Deployment, at: float) -> None:
        bake = bake_minutes(d.config)
        if bake > 0:
            d.stage, d.stage_ends_at = "BAKE_TIME", at + bake * 60
            return
        self._complete(ws, d, at)

    def tick(self) -> None:
        """Completes every stage whose time has come, at the time it came."""
        now = self.now()
        for cd in list(self.codedeploy.values()):
            if cd.status == "InProgress" and cd.ends_at <= now:
                self._codedeploy_succeeded(cd, cd.ends_at)
        for ws in list(self.services.values()):
            d = ws.primary()
            while d is not None and d.in_progress and d.stage_ends_at is not None and d.stage_ends_at <= now:
                due, d.stage_ends_at = d.stage_ends_at, None
                if d.stage == "PRODUCTION_TRAFFIC_SHIFT":
                    self._next_point(ws, d, due)
                else:
                    self._complete(ws, d, due)

    # Model: completion. [API] rolloutState: "When the service reaches a steady state, the
    # deployment transitions to a COMPLETED state"; [API] Deployment.status: the replaced
    # deployments become INACTIVE ("A deployment that has been completely replaced") and leave
    # the service's list. The service deployment is SUCCESSFUL, or ROLLBACK_SUCCESSFUL when its
    # rollback is what completed.
    def _complete(self, ws: WorldService, d: Deployment, at: float) -> None:
        d.rollout_state, d.rollout_reason = "COMPLETED", f"ECS deployment {d.id} completed."
        d.stage, d.stage_ends_at, d.pending, d.updated_at = None, None, 0, at
        for older in ws.deployments:
            if older is not d and older.status != "INACTIVE":
                older.status, older.running, older.pending, older.updated_at = "INACTIVE", 0, 0, at
        sd = d.service_deployment
        if sd is not None and sd.status not in FINISHED:
            if sd.breaker_status == "MONITORING":
                sd.breaker_status = "MONITORING_COMPLETE"
            sd.finish("ROLLBACK_SUCCESSFUL" if sd.rollback_deployment is d else "SUCCESSFUL", at)
        self._emit(ws, "SERVICE_DEPLOYMENT_COMPLETED", d, d.rollout_reason, at)

    # ---- CodeDeploy --------------------------------------------------------------------------

    # Model: a CodeDeploy deployment of an ECS service starts a replacement task set with the
    # AppSpec's task definition ([CodeDeploy User Guide, "What happens during an Amazon ECS
    # deployment"]: "CodeDeploy creates a replacement task set ... and reroutes production
    # traffic from the original task set to the replacement task set"). The world starts its
    # tasks at once. A deployment it cannot make (the AppSpec's task definition unknown, or a
    # container and port other than the service's load balancer's) fails at once, with the
    # world's own words. A second deployment of a group while one has not ended is refused as
    # users report it (CircleCI-Public/aws-ecs-orb issue #181): "The Deployment Group '<name>'
    # already has an active Deployment '<id>'".
    def refuse_second_codedeploy(self, application: str, group: str) -> None:
        for cd in self.codedeploy.values():
            if cd.application == application and cd.group == group and cd.status not in CODEDEPLOY_ENDED:
                raise ApiError("DeploymentLimitExceededException", f"The Deployment Group '{group}' already has an active Deployment '{cd.id}'")

    def start_codedeploy(self, deployment_id: str, application: str, group: Any, spec: dict, td: Any, problem: Optional[str]) -> CodeDeployment:
        at = self.now()
        target = (group.ecs_services or [{}])[0]
        ws = self.service(target.get("clusterName", ""), target.get("serviceName", ""))
        shift = codedeploy_shift_minutes(group.deployment_config_name if isinstance(group.deployment_config_name, str) else str(group.deployment_config_name))
        cd = CodeDeployment(
            id=deployment_id,
            application=application,
            group=group.deployment_group_name,
            ws=ws,
            task_definition=td.arn if td is not None else str(spec.get("TaskDefinition")),
            green=None,
            created_at=at,
            shift_ends_at=at + shift * 60,
            ends_at=at + (shift + codedeploy_wait_minutes(group)) * 60,
            rolls_back=group_rolls_back(group),
        )
        self.codedeploy[cd.id] = cd
        if ws is None or ws.controller != "CODE_DEPLOY":
            problem = problem or "the deployment group's ECS service is not a CODE_DEPLOY service the world knows"
        if problem is not None:
            cd.status, cd.completed_at = "Failed", at
            cd.error = {"code": "ECS_UPDATE_ERROR", "message": problem}
            return cd
        green = self._new_deployment(ws, td.arn, self._new_revision(ws, td, at), ws.desired_count(0), at)
        green.status, green.running, green.pending, green.stage = "ACTIVE", green.desired, 0, None
        cd.green = green
        return cd

    def _codedeploy_succeeded(self, cd: CodeDeployment, at: float) -> None:
        ws, green = cd.ws, cd.green
        for older in ws.deployments:
            if older is not green and older.status != "INACTIVE":
                older.status, older.running, older.pending, older.updated_at = "INACTIVE", 0, 0, at
        green.status, green.updated_at = "PRIMARY", at
        green.rollout_state, green.rollout_reason = "COMPLETED", f"CodeDeploy deployment {cd.id} succeeded."
        moto_service = ws.moto_service()
        if moto_service is not None:
            moto_service.task_definition = green.task_definition
        cd.status, cd.completed_at = "Succeeded", at

    def fail_codedeploy(self, ws: WorldService, code: str, message: str) -> CodeDeployment:
        cd = next((c for c in self.codedeploy.values() if c.ws is ws and c.status not in CODEDEPLOY_ENDED), None)
        if cd is None:
            raise ApiError("DeploymentDoesNotExistException", "no CodeDeploy deployment of the service is in progress")
        at = self.now()
        cd.status, cd.completed_at = "Failed", at
        cd.error = {"code": code, "message": message}
        green = cd.green
        green.rollout_state, green.rollout_reason, green.updated_at = "FAILED", message, at
        if cd.rolls_back:
            rollback_id = "d-" + "".join(self.rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(9))
            self.codedeploy[rollback_id] = CodeDeployment(
                id=rollback_id, application=cd.application, group=cd.group, ws=ws,
                task_definition=(ws.primary().task_definition if ws.primary() else ""), green=None,
                created_at=at, shift_ends_at=at, ends_at=at, rolls_back=False,
                status="Succeeded", completed_at=at, creator="codeDeployRollback",
            )
            cd.rollback = {
                "rollbackDeploymentId": rollback_id,
                "rollbackMessage": f"Deployment {cd.id} has been rolled back by {rollback_id}",
            }
            green.status, green.running, green.pending = "INACTIVE", 0, 0
        return cd

    def list_codedeploy(self, application: str, group: str, statuses: Optional[list]) -> list:
        return [
            cd.id
            for cd in self.codedeploy.values()
            if cd.application == application and cd.group == group and (not statuses or cd.status in statuses)
        ]

    # ---- StopServiceDeployment -------------------------------------------------------------

    # Model: stopping a service deployment.
    # [API] StopServiceDeployment: "ROLLBACK - This option rolls back the service deployment to
    #   the previous service revision. You can use this option even if you didn't configure the
    #   service deployment for the rollback option."
    # [DG] "Stopping Amazon ECS service deployments": "You can stop a deployment that is in any
    #   of the following states ... PENDING - The service deployment moves to the
    #   ROLLBACK_REQUESTED state, and then the rollback operation starts. IN_PROGRESS - [same].
    #   STOP_REQUESTED - The service deployment continues to stop. ROLLBACK_REQUESTED - The
    #   service deployment continues the rollback operation. ROLLBACK_IN_PROGRESS - The service
    #   deployment continues the rollback operation."
    # Any other (finished) state is refused with the error the API lists for a state conflict:
    #   [API] ConflictException "The request could not be processed because of conflict in the
    #   current state of the resource."
    # Not documented, so chosen here: ABORT marks the service deployment STOPPED and leaves the
    # ECS deployment's tasks as they are; a manual rollback's IN_PROGRESS event carries the
    # plain "ECS deployment <id> in progress." reason; with no COMPLETED deployment to go back
    # to, ROLLBACK is refused with a ConflictException.
    def stop_service_deployment(self, arn: str, stop_type: str) -> None:
        sd = self.service_deployments.get(arn)
        if sd is None:
            raise ApiError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
        if sd.status in FINISHED:
            raise ApiError("ConflictException", f"The service deployment is {sd.status} and cannot be stopped.")
        if sd.status in {"STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}:
            return
        ws = self.services[(last_segment(sd.cluster_arn), last_segment(sd.service_arn))]
        at = self.now()
        if stop_type == "ABORT":
            sd.finish("STOPPED", at, reason="Stopped by StopServiceDeployment (ABORT).", stopped=True)
            return
        target = self._rollback_target(ws, sd.target)
        if target is None:
            raise ApiError("ConflictException", "There is no COMPLETED deployment to roll back to.")
        sd.status = "ROLLBACK_REQUESTED"  # and at once ROLLBACK_IN_PROGRESS: the world has no delay
        self._start_rollback(ws, sd.target, target, None, "Rollback requested by StopServiceDeployment.", at)

    # ---- answers ---------------------------------------------------------------------------

    # Model: DescribeServices. [API] Service.deployments: "The current state of deployments for
    # the service."; Service.taskDefinition: the PRIMARY's; runningCount and pendingCount: the
    # sums over the deployments; currentServiceDeployment: "The ARN of the current service
    # deployment."; currentServiceRevisions: "The list of the service revisions." The API says
    # no more about which: the world lists every revision that still has tasks, and the
    # PRIMARY's even before its tasks run.
    def overlay_service(self, answer: dict, ws: WorldService) -> dict:
        listed = ws.listed()
        primary = ws.primary()
        if ws.controller == "CODE_DEPLOY":
            return self._overlay_code_deploy_service(answer, ws, listed, primary)
        answer["deployments"] = [d.to_api() for d in listed]
        answer["deploymentConfiguration"] = ws.config
        answer["runningCount"] = sum(d.running for d in listed)
        answer["pendingCount"] = sum(d.pending for d in listed)
        if primary is not None:
            answer["taskDefinition"] = primary.task_definition
            if primary.service_deployment is not None:
                answer["currentServiceDeployment"] = primary.service_deployment.arn
        answer["currentServiceRevisions"] = self._current_revisions(listed, primary)
        return answer

    # Model: DescribeServices of a CODE_DEPLOY service. [API] Service.taskSets: "Information
    # about a set of Amazon ECS tasks in either an CodeDeploy or an EXTERNAL deployment."
    # TaskSet.status: "PRIMARY: The task set is serving production traffic. ACTIVE: The task
    # set isn't serving production traffic." The world shows each of its deployments as a task
    # set, the service's taskDefinition as the PRIMARY one's, and no `deployments` (whether
    # ECS fills them for these services is not documented; pushdeploy does not read them).
    def _overlay_code_deploy_service(self, answer: dict, ws: WorldService, listed: list, primary: Optional[Deployment]) -> dict:
        answer["deployments"] = []
        answer["taskSets"] = [
            compact(
                {
                    "id": d.id,
                    "taskSetArn": f"arn:aws:ecs:{ws.region}:{ws.account}:task-set/{ws.cluster}/{ws.name}/{d.id.split('/', 1)[1]}",
                    "status": d.status,
                    "taskDefinition": d.task_definition,
                    "computedDesiredCount": d.desired,
                    "pendingCount": d.pending,
                    "runningCount": d.running,
                    "createdAt": epoch(d.created_at),
                    "updatedAt": epoch(d.updated_at),
                }
            )
            for d in listed
        ]
        answer["runningCount"] = sum(d.running for d in listed)
        answer["pendingCount"] = sum(d.pending for d in listed)
        if primary is not None:
            answer["taskDefinition"] = primary.task_definition
        answer.pop("currentServiceDeployment", None)
        return answer

    @staticmethod
    def _current_revisions(listed: list, primary: Optional[Deployment]) -> list:
        """One summary per revision. A rollback shares its revision with the deployment it
        goes back to: their tasks add up, and the revision is requested once (the PRIMARY's
        desired count; an ACTIVE deployment's request is what it still runs)."""
        by_arn: dict = {}
        for d in listed:
            if d is not primary and d.running + d.pending == 0:
                continue
            summary = by_arn.setdefault(d.revision.arn, {"arn": d.revision.arn, "requestedTaskCount": 0, "runningTaskCount": 0, "pendingTaskCount": 0})
            requested = d.desired if d is primary else d.running
            summary["requestedTaskCount"] = max(summary["requestedTaskCount"], requested)
            summary["runningTaskCount"] += d.running
            summary["pendingTaskCount"] += d.pending
        return list(by_arn.values())

    def describe_revisions(self, arns: list) -> dict:
        found = [self.revisions[a].to_api() for a in arns if a in self.revisions]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in self.revisions]
        return {"serviceRevisions": found, "failures": failures}

    def describe_service_deployments(self, arns: list) -> dict:
        found = [self.service_deployments[a].to_api() for a in arns if a in self.service_deployments]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in self.service_deployments]
        return {"serviceDeployments": found, "failures": failures}

    # [API] ListServiceDeployments: "This operation lists all the service deployments that
    # meet the specified filter criteria." status: "If you do not specify a status, then all
    # status values are included"; CreatedAt {before, after}. Newest first.
    def list_service_deployments(self, ws: WorldService, statuses: Optional[list], created: Optional[dict], max_results: Optional[int], token: Optional[str]) -> dict:
        chosen = [sd for sd in reversed(ws.service_deployments) if not statuses or sd.status in statuses]
        created = created or {}
        if created.get("before") is not None:
            chosen = [sd for sd in chosen if sd.created_at < float(created["before"])]
        if created.get("after") is not None:
            chosen = [sd for sd in chosen if sd.created_at > float(created["after"])]
        start = int(token) if token else 0
        end = len(chosen) if not max_results else start + int(max_results)
        page = {"serviceDeployments": [sd.brief() for sd in chosen[start:end]]}
        if end < len(chosen):
            page["nextToken"] = str(end)
        return page

    def view(self, ws: WorldService) -> dict:
        """Everything the world knows about one service, for the test's assertions."""
        return {
            "serviceArn": ws.arn,
            "clusterArn": ws.cluster_arn,
            "deploymentConfiguration": ws.config,
            "deployments": [
                dict(
                    d.to_api(),
                    # The world's own state, which the API leaves out for the native
                    # strategies: the test sees everything.
                    rolloutState=d.rollout_state,
                    rolloutStateReason=d.rollout_reason,
                    lifecycleStage=d.stage,
                    serviceDeploymentArn=d.service_deployment.arn if d.service_deployment else None,
                    serviceRevisionArn=d.revision.arn,
                )
                for d in reversed(ws.deployments)
            ],
            "serviceDeployments": [sd.to_api() for sd in reversed(ws.service_deployments)],
            "serviceRevisions": [r.to_api() for r in reversed(ws.revisions)],
            "taskDefinition": ws.primary().task_definition if ws.primary() else None,
            "codeDeployDeployments": [cd.overlay({"taskDefinition": cd.task_definition}) for cd in self.codedeploy.values() if cd.ws is ws],
            "now": rfc3339(self.now()),
        }


# --------------------------------------------------------------------------------------------
# ECS requests: the operations the world answers, moto's answer amended where moto has one
# --------------------------------------------------------------------------------------------


class Front:
    """Turns one service's JSON requests into world calls: `handlers` maps the operations the
    world answers; `moto` sends the request on to moto. A bug in the world is answered as the
    service's server error (`server_error`), and logged."""

    server_error = "ServerException"

    def __init__(self, world: World):
        self.world = world
        self.handlers: dict = {}

    def owns(self, operation: str) -> bool:
        return operation in self.handlers

    def handle(self, operation: str, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        try:
            return self.handlers[operation](caller, request, moto)
        except ApiError as err:
            return Response.error(err)
        except Exception as err:  # a bug in the world: say so, in the service's words, and log it
            traceback.print_exc(file=sys.stderr)
            return Response.error(ApiError(self.server_error, f"ecs_world failed: {err!r}"), status="500 INTERNAL SERVER ERROR")


class EcsFront(Front):
    """ECS's operations the world answers."""

    def __init__(self, world: World):
        super().__init__(world)
        self.handlers = {
            "CreateService": self.create_service,
            "UpdateService": self.update_service,
            "DescribeServices": self.describe_services,
            "DescribeServiceRevisions": self.describe_service_revisions,
            "ListServiceDeployments": self.list_service_deployments,
            "DescribeServiceDeployments": self.describe_service_deployments,
            "StopServiceDeployment": self.stop_service_deployment,
            "ContinueServiceDeployment": self.continue_service_deployment,
        }

    @staticmethod
    def _backend(caller: Caller) -> Any:
        from moto.ecs.models import ecs_backends

        return ecs_backends[caller.account][caller.region]

    def create_service(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        answer = moto()
        if not answer.status.startswith("200"):
            return answer
        body = json.loads(answer.body)
        service = body["service"]
        controller = (service.get("deploymentController") or {}).get("type", "ECS")
        if controller not in ("ECS", "CODE_DEPLOY"):
            return answer
        td = None
        if service.get("taskDefinition"):
            td = self._backend(caller).describe_task_definition(service["taskDefinition"])
        ws = self.world.create_service(caller, service, request.get("deploymentConfiguration"), td)
        ws.controller = controller
        self.world.overlay_service(service, ws)
        return answer.with_json(body)

    def update_service(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        ws = self.world.service(request.get("cluster", "default"), request.get("service", ""))
        if ws is not None and ws.controller == "CODE_DEPLOY":
            return self._update_code_deploy_service(caller, ws, request, moto)
        answer = moto()
        if ws is None or not answer.status.startswith("200"):
            return answer
        td = None
        if request.get("taskDefinition"):
            td = self._backend(caller).describe_task_definition(request["taskDefinition"])
            moto_service = ws.moto_service()
            if moto_service is not None:
                moto_service.task_definition = td.arn  # ECS keeps the ARN; moto keeps what it was given
        self.world.update_service(ws, td, bool(request.get("forceNewDeployment")), request.get("deploymentConfiguration"))
        body = json.loads(answer.body)
        self.world.overlay_service(body["service"], ws)
        return answer.with_json(body)

    # Model: UpdateService on a CODE_DEPLOY service. [API] UpdateService: "If the network
    #   configuration, platform version, task definition, or load balancer need to be updated,
    #   create a new CodeDeploy deployment." The refusal's words are those users report
    #   (boto/boto3 issue #1936): "Unable to update task definition on services with a
    #   CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment."
    #   moto accepts the change; the world refuses it before moto sees it. Other changes (the
    #   desired count) go through and start no deployment.
    def _update_code_deploy_service(self, caller: Caller, ws: WorldService, request: dict, moto: Callable[[], Response]) -> Response:
        primary = ws.primary()
        given = request.get("taskDefinition")
        if given:
            td = self._backend(caller).describe_task_definition(given)
            if primary is None or td.arn != primary.task_definition:
                raise ApiError(
                    "InvalidParameterException",
                    "Unable to update task definition on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.",
                )
        answer = moto()
        if not answer.status.startswith("200"):
            return answer
        if primary is not None:
            self.world._rescale(ws, primary, ws.desired_count(primary.desired), self.world.now())
        body = json.loads(answer.body)
        self.world.overlay_service(body["service"], ws)
        return answer.with_json(body)

    def describe_services(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        answer = moto()
        if not answer.status.startswith("200"):
            return answer
        body = json.loads(answer.body)
        for service in body.get("services", []):
            ws = self.world.service(last_segment(service.get("clusterArn", "")), service.get("serviceName", ""))
            if ws is not None and ws.arn == service.get("serviceArn"):
                self.world.overlay_service(service, ws)
        return answer.with_json(body)

    def describe_service_revisions(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        return Response.json(self.world.describe_revisions(request.get("serviceRevisionArns") or []))

    def describe_service_deployments(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        return Response.json(self.world.describe_service_deployments(request.get("serviceDeploymentArns") or []))

    def list_service_deployments(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        cluster = last_segment(request.get("cluster") or "default")
        if cluster not in self._backend(caller).clusters:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        ws = self.world.service(cluster, request.get("service", ""))
        if ws is None:
            raise ApiError("ServiceNotFoundException", "Service not found.")
        page = self.world.list_service_deployments(ws, request.get("status"), request.get("createdAt"), request.get("maxResults"), request.get("nextToken"))
        return Response.json(page)

    def stop_service_deployment(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        arn = request.get("serviceDeploymentArn") or ""
        self.world.stop_service_deployment(arn, request.get("stopType") or "ROLLBACK")
        return Response.json({"serviceDeploymentArn": arn})

    def continue_service_deployment(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        arn = request.get("serviceDeploymentArn") or ""
        self.world.continue_service_deployment(arn, request.get("hookId") or "", request.get("action") or "CONTINUE")
        return Response.json({"serviceDeploymentArn": arn})


# --------------------------------------------------------------------------------------------
# CodeDeploy requests: the deployments moto keeps "Created" forever, moved by the world
# --------------------------------------------------------------------------------------------

CODEDEPLOY_TARGET = "CodeDeploy_20141006."


class CodeDeployFront(Front):
    """CreateDeployment goes to moto (which checks the application and group) and then to the
    world; GetDeployment and ListDeployments answer with the world's statuses."""

    server_error = "InternalFailure"

    def __init__(self, world: World):
        super().__init__(world)
        self.handlers = {
            "CreateDeployment": self.create_deployment,
            "GetDeployment": self.get_deployment,
            "ListDeployments": self.list_deployments,
        }

    @staticmethod
    def _group(caller: Caller, application: str, group: str) -> Any:
        from moto.codedeploy.models import codedeploy_backends

        return codedeploy_backends[caller.account][caller.region].get_deployment_group(application, group)

    def create_deployment(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        application, group_name = request.get("applicationName", ""), request.get("deploymentGroupName", "")
        self.world.refuse_second_codedeploy(application, group_name)
        answer = moto()
        if not answer.status.startswith("200"):
            return answer
        deployment_id = json.loads(answer.body)["deploymentId"]
        spec, td, problem = self._read_appspec(caller, request)
        group = self._group(caller, application, group_name)
        if problem is None:
            problem = self._load_balancer_mismatch(group, spec)
        self.world.start_codedeploy(deployment_id, application, group, spec, td, problem)
        return answer

    def _read_appspec(self, caller: Caller, request: dict) -> tuple:
        """(TargetService properties, the task definition, why the world cannot deploy it)."""
        content = ((request.get("revision") or {}).get("appSpecContent") or {}).get("content") or ""
        try:
            resources = json.loads(content).get("Resources") or []
            spec = next(r["TargetService"]["Properties"] for r in resources if "TargetService" in r)
        except (ValueError, KeyError, StopIteration, AttributeError):
            return {}, None, "the world reads only JSON AppSpec content with a TargetService"
        try:
            td = EcsFront._backend(caller).describe_task_definition(spec.get("TaskDefinition", ""))
        except Exception:
            return spec, None, f"task definition {spec.get('TaskDefinition')} does not exist"
        return spec, td, None

    def _load_balancer_mismatch(self, group: Any, spec: dict) -> Optional[str]:
        target = (group.ecs_services or [{}])[0]
        ws = self.world.service(target.get("clusterName", ""), target.get("serviceName", ""))
        service = ws.moto_service() if ws is not None else None
        balancers = service.load_balancers if service is not None else []
        given = spec.get("LoadBalancerInfo") or {}
        if not any(lb.get("containerName") == given.get("ContainerName") and lb.get("containerPort") == given.get("ContainerPort") for lb in balancers):
            return f"the AppSpec's LoadBalancerInfo {given} names no load balancer of the service"
        return None

    def get_deployment(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        cd = self.world.codedeploy.get(request.get("deploymentId", ""))
        answer = moto()
        if cd is None:
            return answer
        if not answer.status.startswith("200"):  # CodeDeploy's own rollback: moto never saw it
            return Response.json({"deploymentInfo": cd.overlay({})})
        body = json.loads(answer.body)
        cd.overlay(body.setdefault("deploymentInfo", {}))
        return answer.with_json(body)

    def list_deployments(self, caller: Caller, request: dict, moto: Callable[[], Response]) -> Response:
        ids = self.world.list_codedeploy(request.get("applicationName", ""), request.get("deploymentGroupName", ""), request.get("includeOnlyStatuses"))
        return Response.json({"deployments": ids})


# --------------------------------------------------------------------------------------------
# CloudWatch alarms, in the protocol the SDKs speak to CloudWatch now (Smithy RPC v2 CBOR),
# which moto 5.2.5 does not parse
# --------------------------------------------------------------------------------------------

# Model: CloudWatch alarm states, set by the test (`POST /_world/alarms`), read with
# DescribeAlarms. [API] DescribeAlarms: AlarmNames "The names of the alarms to retrieve
# information about"; a name CloudWatch does not know is left out of the answer.
# MetricAlarm.StateUpdatedTimestamp: "The time stamp of the last update to the value of either
# the StateValue or EvaluationState parameters": a state set again unchanged keeps its time.
# The protocol: [Smithy, "RPC v2 CBOR protocol"]: requests are POST
# /service/{ServiceName}/operation/{OperationName} with a CBOR body and the header
# `smithy-protocol: rpc-v2-cbor`; answers carry the same header; timestamps are CBOR tag 1
# (epoch seconds); errors name their shape in `__type`.
CLOUDWATCH_PATH = "/service/GraniteServiceVersion20100801/operation/"


class Cbor:
    """The CBOR (RFC 8949) the protocol needs: maps, arrays, text, numbers, booleans, null,
    tag 1 timestamps; definite lengths out, definite or indefinite in."""

    class Timestamp(float):
        pass

    @staticmethod
    def _head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError("integer too large")

    @classmethod
    def dumps(cls, value: Any) -> bytes:
        if value is None:
            return b"\xf6"
        if value is True or value is False:
            return b"\xf5" if value else b"\xf4"
        if isinstance(value, Cbor.Timestamp):
            return b"\xc1" + cls.dumps(float(value))
        if isinstance(value, int):
            return cls._head(0, value) if value >= 0 else cls._head(1, -1 - value)
        if isinstance(value, float):
            return b"\xfb" + struct.pack(">d", value)
        if isinstance(value, str):
            raw = value.encode()
            return cls._head(3, len(raw)) + raw
        if isinstance(value, (bytes, bytearray)):
            return cls._head(2, len(value)) + bytes(value)
        if isinstance(value, (list, tuple)):
            return cls._head(4, len(value)) + b"".join(cls.dumps(v) for v in value)
        if isinstance(value, dict):
            return cls._head(5, len(value)) + b"".join(cls.dumps(k) + cls.dumps(v) for k, v in value.items())
        raise TypeError(f"no CBOR for {type(value)}")

    @classmethod
    def loads(cls, data: bytes) -> Any:
        value, end = cls._item(data, 0)
        if end != len(data):
            raise ValueError("trailing bytes after the CBOR item")
        return value

    @classmethod
    def _length(cls, data: bytes, at: int, info: int) -> tuple:
        if info < 24:
            return info, at
        if info == 31:
            return None, at  # indefinite
        size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        return int.from_bytes(data[at:at + size], "big"), at + size

    @classmethod
    def _item(cls, data: bytes, at: int) -> tuple:
        first = data[at]
        major, info, at = first >> 5, first & 31, at + 1
        if major == 7:
            if info in (20, 21, 22, 23):
                return {20: False, 21: True, 22: None, 23: None}[info], at
            fmt, size = {25: (">e", 2), 26: (">f", 4), 27: (">d", 8)}[info]
            return struct.unpack(fmt, data[at:at + size])[0], at + size
        n, at = cls._length(data, at, info)
        if major == 0:
            return n, at
        if major == 1:
            return -1 - n, at
        if major in (2, 3):
            if n is None:
                chunks = []
                while data[at] != 0xFF:
                    chunk, at = cls._item(data, at)
                    chunks.append(chunk)
                joined = ("" if major == 3 else b"").join(chunks)
                return joined, at + 1
            raw = data[at:at + n]
            return (raw.decode() if major == 3 else bytes(raw)), at + n
        if major == 4:
            items = []
            while (n is None and data[at] != 0xFF) or (n is not None and len(items) < n):
                item, at = cls._item(data, at)
                items.append(item)
            return items, at + (1 if n is None else 0)
        if major == 5:
            out, count = {}, 0
            while (n is None and data[at] != 0xFF) or (n is not None and count < n):
                key, at = cls._item(data, at)
                out[key], at = cls._item(data, at)
                count += 1
            return out, at + (1 if n is None else 0)
        if major == 6:
            value, at = cls._item(data, at)
            return (Cbor.Timestamp(value) if n == 1 else value), at
        raise ValueError(f"CBOR major type {major}")


@dataclass
class Alarm:
    name: str
    state: str
    reason: str
    since: float


class CloudWatchFront:
    def __init__(self, world: "World"):
        self.world = world

    def handle(self, operation: str, body: bytes) -> Response:
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        if operation != "DescribeAlarms":
            error = {"__type": "com.amazonaws.cloudwatch#InvalidAction", "message": f"the world answers DescribeAlarms only, not {operation}"}
            return Response("400 BAD REQUEST", headers, Cbor.dumps(error))
        request = Cbor.loads(body) if body else {}
        names = request.get("AlarmNames") or list(self.world.alarms)
        found = [self.world.alarms[n] for n in names if n in self.world.alarms]
        answer = {
            "MetricAlarms": [
                {
                    "AlarmName": a.name,
                    "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{a.name}",
                    "StateValue": a.state,
                    "StateReason": a.reason,
                    "StateUpdatedTimestamp": Cbor.Timestamp(a.since),
                }
                for a in found
            ],
            "CompositeAlarms": [],
        }
        return Response("200 OK", headers, Cbor.dumps(answer))


# --------------------------------------------------------------------------------------------
# Control endpoints: /_world/...
# --------------------------------------------------------------------------------------------


class Control:
    def __init__(self, world: World):
        self.world = world

    def handle(self, method: str, path: str, query: dict, payload: dict) -> tuple:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_world/clock"):
            return 200, {"now": rfc3339(self.world.now())}
        if route == ("POST", "/_world/clock"):
            self.world.advance(float(payload.get("advance_seconds", 0)))
            return 200, {"now": rfc3339(self.world.now())}
        if route == ("GET", "/_world/events"):
            return 200, {"events": self.world.drain_events()}
        if route == ("POST", "/_world/seed"):
            self.world.reseed(int(payload["seed"]))
            return 200, {"seed": int(payload["seed"])}
        if route == ("GET", "/_world/service"):
            ws = self._service(query.get("cluster", [""])[0], query.get("service", [""])[0])
            return (404, {"error": "unknown service"}) if ws is None else (200, self.world.view(ws))
        if route == ("POST", "/_world/tasks"):
            return self._tasks(payload)
        if route == ("GET", "/_world/subnets"):
            # moto's default VPC subnets, for a test that makes a load balancer (moto's ELBv2
            # wants real subnet ids; the test has no EC2 client of its own).
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.ec2.models import ec2_backends

            region = query.get("region", ["us-east-1"])[0]
            subnets = ec2_backends[DEFAULT_ACCOUNT_ID][region].describe_subnets()
            return 200, {"subnets": [s.id for s in subnets]}
        if route == ("POST", "/_world/alarms"):
            name, state = payload["name"], payload["state"]
            if state not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
                return 400, {"error": f"no alarm state {state}"}
            known = self.world.alarms.get(name)
            since = known.since if known is not None and known.state == state else self.world.now()
            self.world.alarms[name] = Alarm(name, state, payload.get("reason", f"set to {state} by the test"), since)
            return 200, {"name": name, "state": state, "since": rfc3339(since)}
        if route == ("POST", "/_world/codedeploy/fail"):
            ws = self._service(payload.get("cluster", ""), payload.get("service", ""))
            if ws is None:
                return 404, {"error": "unknown service"}
            try:
                cd = self.world.fail_codedeploy(ws, payload.get("code", "ECS_UPDATE_ERROR"), payload.get("message", "the replacement task set failed"))
            except ApiError as err:
                return 404, {"error": err.message}
            return 200, cd.overlay({})
        if route == ("GET", "/_world/hooks"):
            return 200, {"hooks": self.world.due_hooks()}
        if route == ("POST", "/_world/hooks"):
            try:
                return 200, {"did": self.world.answer_hook(payload["id"], payload.get("answer"))}
            except ApiError as err:
                return 404, {"error": err.message}
        return 404, {"error": f"no control endpoint {method} {path}"}

    def _service(self, cluster: str, service: str) -> Optional[WorldService]:
        return self.world.service(cluster or "default", service)

    def _tasks(self, payload: dict) -> tuple:
        ws = self._service(payload.get("cluster", ""), payload.get("service", ""))
        if ws is None:
            return 404, {"error": "unknown service"}
        d = self.world.deployment(ws, payload.get("deploymentId"))
        if d is None:
            return 404, {"error": "unknown deployment"}
        if "start" in payload:
            self.world.start_tasks(ws, d, int(payload["start"]))
        if "fail" in payload:
            self.world.fail_tasks(ws, d, int(payload["fail"]))
        sd = d.service_deployment
        return 200, dict(d.to_api(), lifecycleStage=d.stage, serviceDeploymentArn=sd.arn if sd else None)


# --------------------------------------------------------------------------------------------
# The WSGI middleware
# --------------------------------------------------------------------------------------------


def read_body(environ: dict) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length > 0:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def call_app(app: Callable, environ: dict) -> Response:
    """Runs a WSGI app to the end and keeps its whole answer."""
    captured: dict = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        captured["status"], captured["headers"] = status, list(headers)
        return lambda data: captured.setdefault("written", []).append(data)

    result = app(environ, start_response)
    try:
        body = b"".join(captured.get("written", [])) + b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Response(captured["status"], captured["headers"], body)


class WorldMiddleware:
    """Routes each request: control endpoints to the world, ECS operations the world owns
    through it, everything else straight to moto; each under the lock its service needs."""

    def __init__(self, app: Callable, seed: int = 0):
        self.app = app
        self.locks = Locks()
        self.world = World(self.locks, seed)
        self.ecs = EcsFront(self.world)
        self.codedeploy = CodeDeployFront(self.world)
        self.cloudwatch = CloudWatchFront(self.world)
        self.control = Control(self.world)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_world/"):
            response = self._control(environ)
        else:
            service = Locks.service_of(environ)
            with self.locks.named(service):
                if service == "ecs":
                    response = self._ecs(environ)
                elif service == "codedeploy":
                    response = self._codedeploy(environ)
                elif environ.get("PATH_INFO", "").startswith(CLOUDWATCH_PATH):
                    response = self.cloudwatch.handle(environ["PATH_INFO"][len(CLOUDWATCH_PATH):], read_body(environ))
                else:
                    response = call_app(self.app, environ)
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(response.status, headers)
        return [response.body]

    def _ecs(self, environ: dict) -> Response:
        return self._through(self.ecs, ECS_TARGET, environ)

    def _codedeploy(self, environ: dict) -> Response:
        return self._through(self.codedeploy, CODEDEPLOY_TARGET, environ)

    def _through(self, front: "Front", target_prefix: str, environ: dict) -> Response:
        """A JSON request (`X-Amz-Target` = `target_prefix` + operation) through `front` when it
        owns the operation, else straight to moto."""
        self.world.tick()
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target[len(target_prefix):] if target.startswith(target_prefix) else ""
        if not front.owns(operation):
            return call_app(self.app, environ)
        body = read_body(environ)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return call_app(self.app, environ)
        return front.handle(operation, caller_of(environ), request, lambda: call_app(self.app, environ))

    def _control(self, environ: dict) -> Response:
        body = read_body(environ)
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return Response.json({"error": "the body is not JSON"}, status="400 BAD REQUEST")
        with self.locks.ecs:
            self.world.tick()
            try:
                code, answer = self.control.handle(
                    environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""), parse_qs(environ.get("QUERY_STRING", "")), payload
                )
            except (KeyError, TypeError, ValueError) as err:
                code, answer = 400, {"error": f"bad request: {err!r}"}
            except Exception as err:  # a bug in the world
                traceback.print_exc(file=sys.stderr)
                code, answer = 500, {"error": f"ecs_world failed: {err!r}"}
        reasons = {200: "200 OK", 400: "400 BAD REQUEST", 404: "404 NOT FOUND", 500: "500 INTERNAL SERVER ERROR"}
        return Response(reasons[code], [("Content-Type", "application/json")], json.dumps(answer).encode())


# Model: a tag that moves to another image leaves the image it named in the repository, without
# that tag (untagged when it had no other). moto deletes such an image outright.
# [ECR user guide, "Preventing image tags from being overwritten in Amazon ECR"]: "Mutable" tags
#   are allowed "to be overwritten"; the images they leave are the "untagged" images that
#   lifecycle policies select with tagStatus "untagged" ([ECR user guide, "Lifecycle policy
#   properties", tagStatus]). pushdeploy relies on it: a late push event still finds its image,
#   without the tag, and is skipped as stale.
def keep_images_a_tag_leaves() -> None:
    from moto.ecr.models import ECRBackend

    if getattr(ECRBackend.put_image, "keeps_images", False):
        return
    original = ECRBackend.put_image

    def put_image(self, repository_name, image_manifest, image_tag, *args, **kwargs):
        repository = self.repositories.get(repository_name)
        if repository is not None and image_tag and repository.image_tag_mutability == "MUTABLE":
            for image in repository.images:
                if image_tag in image.image_tags and image.image_manifest != image_manifest:
                    image.image_tags.remove(image_tag)
        return original(self, repository_name, image_manifest, image_tag, *args, **kwargs)

    put_image.keeps_images = True
    ECRBackend.put_image = put_image


def wrap(app: Callable, seed: int = 0) -> WorldMiddleware:
    keep_images_a_tag_leaves()
    return WorldMiddleware(app, seed)
