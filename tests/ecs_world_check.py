"""Self-test of the ECS test world (tests/support/ecs_world.py), through the real server script.

Run with moto's virtualenv: /work/main/.venv/bin/python tests/ecs_world_check.py
It starts tests/support/moto_serial.py on free loopback ports, drives it with boto3 and the
/_world/ control endpoints, prints one line per check and ends with "N passed, M failed"
(exit status 1 on any failure).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # moto and boto3 live in the venv

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

SERVER = ROOT / "tests" / "support" / "moto_serial.py"
ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SIDECAR = "public.ecr.aws/envoyproxy/envoy:v1.31-latest"
START_DEADLINE_S = 30


# ---- the server ------------------------------------------------------------------------------


class Server:
    """moto_serial.py on a free port, stopped on exit."""

    def __init__(self, seed: int):
        self.seed = seed
        self.log = tempfile.TemporaryFile()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "127.0.0.1", str(self.port), str(seed)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)  # bounded poll for the listening socket
        self.stop()
        self.log.seek(0)
        raise RuntimeError(f"moto_serial.py did not start:\n{self.log.read().decode(errors='replace')[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, name: str):
        return boto3.client(
            name,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def world(self, method: str, path: str, payload=None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def tasks(self, service: str, cluster: str = "demo", **change) -> dict:
        return self.world("POST", "/_world/tasks", dict(cluster=cluster, service=service, **change))

    def events(self) -> list:
        return self.world("GET", "/_world/events")["events"]

    def advance(self, minutes: float) -> None:
        self.world("POST", "/_world/clock", {"advance_seconds": minutes * 60})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.log.close()


# ---- reporting -------------------------------------------------------------------------------


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}: {detail}")
        return ok

    def run(self, name: str, scenario, *args) -> None:
        """A scenario that crashes counts as one failure and does not stop the others."""
        try:
            scenario(self, *args)
        except Exception as err:  # noqa: BLE001 - reported, then the next scenario runs
            self.check(f"{name} ran to the end", False, repr(err))


# ---- fixtures --------------------------------------------------------------------------------


def manifest(layer: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:" + "0" * 64},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 7, "digest": "sha256:" + layer * 64}],
        }
    )


def task_definition(ecs, family: str, app_tag: str = "latest", sidecar: bool = True) -> str:
    containers = [{"name": "app", "image": f"{REGISTRY}/{family}:{app_tag}", "memory": 128, "essential": True}]
    if sidecar:
        containers.append({"name": "envoy", "image": SIDECAR, "memory": 64, "essential": False})
    return ecs.register_task_definition(family=family, containerDefinitions=containers)["taskDefinition"]["taskDefinitionArn"]


def describe(ecs, service: str, cluster: str = "demo") -> dict:
    return ecs.describe_services(cluster=cluster, services=[service])["services"][0]


def revision(ecs, arn: str) -> dict:
    return ecs.describe_service_revisions(serviceRevisionArns=[arn])["serviceRevisions"][0]


def digests(rev: dict) -> dict:
    return {c["containerName"]: c.get("imageDigest") for c in rev["containerImages"]}


def service_deployment(ecs, arn: str) -> dict:
    return ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]


def names(events: list) -> list:
    return [(e["detail"]["eventName"], e["detail"]["deploymentId"]) for e in events]


def error_code(call) -> str:
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "no error"


# ---- scenarios -------------------------------------------------------------------------------


def rolling_with_rollback(c: Checks, srv: Server) -> None:
    ecs, ecr = srv.client("ecs"), srv.client("ecr")
    ecr.create_repository(repositoryName="web")
    d0 = ecr.put_image(repositoryName="web", imageManifest=manifest("a"), imageTag="latest")["image"]["imageId"]["imageDigest"]
    td1 = task_definition(ecs, "web")
    ecs.create_cluster(clusterName="demo")
    created = ecs.create_service(
        cluster="demo",
        serviceName="web",
        taskDefinition=td1,
        desiredCount=2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )["service"]
    c.check("create_service echoes deploymentConfiguration", created["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}, created.get("deploymentConfiguration"))

    svc = describe(ecs, "web")
    first = svc["deployments"]
    c.check(
        "new service: one deployment, PRIMARY and COMPLETED, all tasks running",
        len(first) == 1 and first[0]["status"] == "PRIMARY" and first[0]["rolloutState"] == "COMPLETED" and first[0]["runningCount"] == 2,
        first,
    )
    c.check("describe_services keeps deploymentConfiguration", svc["deploymentConfiguration"]["deploymentCircuitBreaker"]["rollback"] is True, svc.get("deploymentConfiguration"))
    revs = svc.get("currentServiceRevisions", [])
    c.check("currentServiceRevisions lists the running revision", len(revs) == 1 and revs[0]["runningTaskCount"] == 2, revs)
    c.check("no event for a new service", srv.events() == [], "events were sent")
    rev0 = revision(ecs, revs[0]["arn"])
    c.check("revision resolved the app tag to D0", digests(rev0)["app"] == d0, digests(rev0))
    c.check("revision keeps no digest for the public.ecr.aws sidecar", digests(rev0)["envoy"] is None and "imageDigest" not in rev0["containerImages"][1], rev0["containerImages"])
    missing = ecs.describe_service_revisions(serviceRevisionArns=[revs[0]["arn"] + "0"])
    c.check("an unknown revision is a MISSING failure", missing["failures"][0]["reason"] == "MISSING" and missing["serviceRevisions"] == [], missing)

    d1 = ecr.put_image(repositoryName="web", imageManifest=manifest("b"), imageTag="latest")["image"]["imageId"]["imageDigest"]
    c.check("the tag moved to D1", d1 != d0, (d0, d1))
    c.check("the old revision still says D0 after the tag moved", digests(revision(ecs, revs[0]["arn"]))["app"] == d0)

    td2 = task_definition(ecs, "web")
    updated = ecs.update_service(cluster="demo", service="web", taskDefinition=td2)["service"]["deployments"]
    new_id = updated[0]["id"]
    c.check(
        "update_service answers the new PRIMARY IN_PROGRESS, the old one ACTIVE",
        [(d["status"], d["rolloutState"], d["taskDefinition"]) for d in updated] == [("PRIMARY", "IN_PROGRESS", td2), ("ACTIVE", "COMPLETED", td1)],
        updated,
    )
    c.check("deployment id is ecs-svc/ and 19 digits", new_id.startswith("ecs-svc/") and len(new_id) == 27 and new_id[8:].isdigit(), new_id)
    events = srv.events()
    c.check("IN_PROGRESS event for the new deployment", names(events) == [("SERVICE_DEPLOYMENT_IN_PROGRESS", new_id)], names(events))
    c.check("event resources name the service ARN", events and events[0]["resources"] == [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/demo/web"], events)
    svc = describe(ecs, "web")
    sd_arn = svc["currentServiceDeployment"]
    c.check("service deployment ARN ends in the deployment id's digits", sd_arn == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/demo/web/{new_id[8:]}", sd_arn)
    new_rev = revision(ecs, service_deployment(ecs, sd_arn)["targetServiceRevision"]["arn"])
    c.check("the new deployment resolved the tag again: D1", digests(new_rev)["app"] == d1, digests(new_rev))
    sd = service_deployment(ecs, sd_arn)
    c.check("service deployment IN_PROGRESS in SCALE_UP", sd["status"] == "IN_PROGRESS" and sd.get("lifecycleStage") == "SCALE_UP", sd)
    c.check("circuit breaker threshold for 2 tasks is 3", sd["deploymentCircuitBreaker"] == {"status": "MONITORING", "failureCount": 0, "threshold": 3}, sd["deploymentCircuitBreaker"])

    srv.tasks("web", fail=2)
    c.check("2 failures (below the threshold) fail nothing", describe(ecs, "web")["deployments"][0]["rolloutState"] == "IN_PROGRESS" and srv.events() == [])
    srv.tasks("web", fail=1)
    events = srv.events()
    c.check(
        "threshold reached: FAILED (ERROR) then the rollback's IN_PROGRESS",
        [e["detail"]["eventName"] for e in events] == ["SERVICE_DEPLOYMENT_FAILED", "SERVICE_DEPLOYMENT_IN_PROGRESS"]
        and events[0]["detail"]["deploymentId"] == new_id
        and events[0]["detail"]["eventType"] == "ERROR",
        names(events),
    )
    rollback_id = events[1]["detail"]["deploymentId"] if len(events) > 1 else None
    c.check(
        "rollback reason names the COMPLETED deployment",
        len(events) > 1 and events[1]["detail"]["reason"] == f"ECS deployment circuit breaker: rolling back to deploymentId {first[0]['id']}.",
        events[1]["detail"] if len(events) > 1 else events,
    )
    svc = describe(ecs, "web")
    primary = svc["deployments"][0]
    c.check("rollback PRIMARY runs the old task definition", primary["id"] == rollback_id and primary["taskDefinition"] == td1 and primary["rolloutState"] == "IN_PROGRESS", primary)
    c.check("failed deployment is ACTIVE and FAILED", any(d["id"] == new_id and d["status"] == "ACTIVE" and d["rolloutState"] == "FAILED" for d in svc["deployments"]), svc["deployments"])
    c.check("service taskDefinition is back on the old one", svc["taskDefinition"] == td1, svc["taskDefinition"])
    sd = service_deployment(ecs, sd_arn)
    c.check("failed service deployment is ROLLBACK_IN_PROGRESS", sd["status"] == "ROLLBACK_IN_PROGRESS" and sd["rollback"]["serviceRevisionArn"] == revs[0]["arn"], sd)
    rollback_rev = sd["rollback"]["serviceRevisionArn"]
    c.check("rollback images are D0 (not resolved again to D1)", digests(revision(ecs, rollback_rev))["app"] == d0)
    current = {r["arn"]: r for r in svc["currentServiceRevisions"]}
    c.check("currentServiceRevisions: the rollback's revision, 2 requested", current.get(rollback_rev, {}).get("requestedTaskCount") == 2, svc["currentServiceRevisions"])

    srv.tasks("web", start=2)
    events = srv.events()
    c.check("rollback tasks started: COMPLETED event for the rollback", names(events) == [("SERVICE_DEPLOYMENT_COMPLETED", rollback_id)], names(events))
    c.check("then ROLLBACK_SUCCESSFUL", service_deployment(ecs, sd_arn)["status"] == "ROLLBACK_SUCCESSFUL")
    c.check("older deployments are gone", [d["id"] for d in describe(ecs, "web")["deployments"]] == [rollback_id])

    td3, td4 = task_definition(ecs, "web", "v3"), task_definition(ecs, "web", "v4")
    third = ecs.update_service(cluster="demo", service="web", taskDefinition=td3)["service"]
    fourth = ecs.update_service(cluster="demo", service="web", taskDefinition=td4)["service"]
    sd3, sd4 = third["currentServiceDeployment"], fourth["currentServiceDeployment"]
    c.check("two updates in a row: the first's service deployment is STOPPED", service_deployment(ecs, sd3)["status"] == "STOPPED", service_deployment(ecs, sd3))
    c.check("and the second's is IN_PROGRESS", service_deployment(ecs, sd4)["status"] == "IN_PROGRESS")
    events = srv.events()
    c.check("no event for the replaced deployment", [e["detail"]["eventName"] for e in events] == ["SERVICE_DEPLOYMENT_IN_PROGRESS"] * 2, names(events))
    listed = ecs.list_service_deployments(cluster="demo", service="web")["serviceDeployments"]
    c.check("list_service_deployments newest first", [b["serviceDeploymentArn"] for b in listed[:2]] == [sd4, sd3] and len(listed) == 4, [b["status"] for b in listed])
    only_stopped = ecs.list_service_deployments(cluster="demo", service="web", status=["STOPPED"])["serviceDeployments"]
    c.check("list_service_deployments filters by status", [b["serviceDeploymentArn"] for b in only_stopped] == [sd3], only_stopped)
    same = ecs.update_service(cluster="demo", service="web", taskDefinition=td4)["service"]["deployments"]
    c.check("update_service with the same task definition starts nothing", same[0]["id"] == fourth["deployments"][0]["id"] and srv.events() == [], same)

    ecs.stop_service_deployment(serviceDeploymentArn=sd4, stopType="ROLLBACK")
    stopped = service_deployment(ecs, sd4)
    c.check("stop ROLLBACK: ROLLBACK_IN_PROGRESS to the last COMPLETED revision", stopped["status"] == "ROLLBACK_IN_PROGRESS" and describe(ecs, "web")["taskDefinition"] == td1, stopped)
    c.check("stop of a finished service deployment: ConflictException", error_code(lambda: ecs.stop_service_deployment(serviceDeploymentArn=sd3, stopType="ABORT")) == "ConflictException")
    c.check("stop of an unknown one: ServiceDeploymentNotFoundException", error_code(lambda: ecs.stop_service_deployment(serviceDeploymentArn=sd3 + "x")) == "ServiceDeploymentNotFoundException")
    view = srv.world("GET", "/_world/service?cluster=demo&service=web")
    c.check("/_world/service shows every deployment", len(view["deployments"]) == 6 and len(view["serviceDeployments"]) == 4, len(view["deployments"]))
    srv.events()


def breaker_counts_consecutive_failures(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    td = task_definition(ecs, "reset", sidecar=False)
    ecs.create_service(cluster="demo", serviceName="reset", taskDefinition=td, desiredCount=4,
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}})
    ecs.update_service(cluster="demo", service="reset", taskDefinition=task_definition(ecs, "reset", "v2", sidecar=False))
    srv.events()
    srv.tasks("reset", fail=2)
    after_start = srv.tasks("reset", start=1)
    c.check("a started task resets failedTasks (resetOnHealthyTask defaults to true)", after_start["failedTasks"] == 0, after_start)
    srv.tasks("reset", fail=2)
    c.check("2 failures after the reset: still IN_PROGRESS", describe(ecs, "reset")["deployments"][0]["rolloutState"] == "IN_PROGRESS")
    srv.tasks("reset", fail=1)
    events = srv.events()
    c.check("third consecutive failure: FAILED event, no rollback without rollback: true", [e["detail"]["eventName"] for e in events] == ["SERVICE_DEPLOYMENT_FAILED"], names(events))
    sd = service_deployment(ecs, describe(ecs, "reset")["currentServiceDeployment"])
    c.check("service deployment STOPPED with the breaker TRIGGERED", sd["status"] == "STOPPED" and sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED", sd)


def no_breaker(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    td = task_definition(ecs, "plain", sidecar=False)
    ecs.create_service(cluster="demo", serviceName="plain", taskDefinition=td, desiredCount=2)
    ecs.update_service(cluster="demo", service="plain", taskDefinition=task_definition(ecs, "plain", "v2", sidecar=False))
    srv.events()
    srv.tasks("plain", fail=10)
    primary = describe(ecs, "plain")["deployments"][0]
    c.check("no breaker: 10 failures only count", primary["rolloutState"] == "IN_PROGRESS" and primary["failedTasks"] == 10 and srv.events() == [], primary)


def blue_green_bake(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    td = task_definition(ecs, "bg", sidecar=False)
    ecs.create_service(cluster="demo", serviceName="bg", taskDefinition=td, desiredCount=2,
                       deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 60})
    green = ecs.update_service(cluster="demo", service="bg", taskDefinition=task_definition(ecs, "bg", "v2", sidecar=False))["service"]
    green_id, sd_arn = green["deployments"][0]["id"], green["currentServiceDeployment"]
    srv.events()
    srv.tasks("bg", start=2)
    svc = describe(ecs, "bg")
    c.check("blue/green: no rolloutState (the API returns it for rolling updates only)", "rolloutState" not in svc["deployments"][0], svc["deployments"][0])
    c.check("blue/green: tasks started, not SUCCESSFUL", service_deployment(ecs, sd_arn)["status"] == "IN_PROGRESS" and srv.events() == [], svc["deployments"][0])
    c.check("blue/green: lifecycleStage BAKE_TIME", service_deployment(ecs, sd_arn).get("lifecycleStage") == "BAKE_TIME")
    c.check("blue/green: blue and green both run while baking", svc["runningCount"] == 4, svc["runningCount"])
    srv.advance(59)
    c.check("blue/green: +59 min, still baking", service_deployment(ecs, sd_arn)["status"] == "IN_PROGRESS" and srv.events() == [])
    srv.advance(2)
    events = srv.events()
    c.check("blue/green: +61 min, COMPLETED", names(events) == [("SERVICE_DEPLOYMENT_COMPLETED", green_id)], names(events))
    svc = describe(ecs, "bg")
    c.check("blue/green: blue cleaned up, service deployment SUCCESSFUL", len(svc["deployments"]) == 1 and svc["runningCount"] == 2 and service_deployment(ecs, sd_arn)["status"] == "SUCCESSFUL", svc["deployments"])


def appspec(td: str, container: str = "app", port: int = 80) -> dict:
    content = {"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": td, "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port}}}}]}
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(content)}}


def code_deploy(c: Checks, srv: Server) -> None:
    ecs, cd = srv.client("ecs"), srv.client("codedeploy")
    ecs.create_cluster(clusterName="cd")
    td1 = task_definition(ecs, "cdweb", sidecar=False)
    balancer = {"targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/blue/1", "containerName": "app", "containerPort": 80}
    ecs.create_service(cluster="cd", serviceName="cdweb", taskDefinition=td1, desiredCount=2,
                       deploymentController={"type": "CODE_DEPLOY"}, loadBalancers=[balancer])
    cd.create_application(applicationName="web", computePlatform="ECS")
    cd.create_deployment_group(
        applicationName="web", deploymentGroupName="web-dg", serviceRoleArn=f"arn:aws:iam::{ACCOUNT}:role/cd",
        deploymentConfigName="CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
        ecsServices=[{"serviceName": "cdweb", "clusterName": "cd"}],
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        blueGreenDeploymentConfiguration={"terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE", "terminationWaitTimeInMinutes": 5}},
    )
    td2 = task_definition(ecs, "cdweb", "v2", sidecar=False)
    c.check("codedeploy: UpdateService refuses a new task definition", error_code(lambda: ecs.update_service(cluster="cd", service="cdweb", taskDefinition=td2)) == "InvalidParameterException")
    ecs.update_service(cluster="cd", service="cdweb", desiredCount=2)
    c.check("codedeploy: UpdateService of the desired count goes through", describe(ecs, "cdweb", "cd")["taskDefinition"] == td1)
    first = cd.create_deployment(applicationName="web", deploymentGroupName="web-dg", revision=appspec(td2))["deploymentId"]
    info = cd.get_deployment(deploymentId=first)["deploymentInfo"]
    c.check("codedeploy: a new deployment is InProgress", info["status"] == "InProgress", info["status"])
    c.check("codedeploy: a second one of the group is refused", error_code(lambda: cd.create_deployment(applicationName="web", deploymentGroupName="web-dg", revision=appspec(td2))) == "DeploymentLimitExceededException")
    listed = cd.list_deployments(applicationName="web", deploymentGroupName="web-dg", includeOnlyStatuses=["InProgress"])["deployments"]
    c.check("codedeploy: ListDeployments filters by the world's status", listed == [first], listed)
    svc = describe(ecs, "cdweb", "cd")
    sets = sorted((s["status"], s["taskDefinition"]) for s in svc.get("taskSets", []))
    c.check("codedeploy: the replacement task set runs beside the original", sets == [("ACTIVE", td2), ("PRIMARY", td1)] and svc["taskDefinition"] == td1, sets)
    srv.advance(13)
    c.check("codedeploy: +13 min (9 shifting, 5 waiting), still InProgress", cd.get_deployment(deploymentId=first)["deploymentInfo"]["status"] == "InProgress")
    srv.advance(2)
    info = cd.get_deployment(deploymentId=first)["deploymentInfo"]
    svc = describe(ecs, "cdweb", "cd")
    c.check("codedeploy: +15 min, Succeeded, the service on the new revision", info["status"] == "Succeeded" and svc["taskDefinition"] == td2 and len(svc["taskSets"]) == 1, (info["status"], svc.get("taskSets")))
    td3 = task_definition(ecs, "cdweb", "v3", sidecar=False)
    second = cd.create_deployment(applicationName="web", deploymentGroupName="web-dg", revision=appspec(td3))["deploymentId"]
    srv.world("POST", "/_world/codedeploy/fail", {"cluster": "cd", "service": "cdweb", "code": "HEALTH_CONSTRAINTS", "message": "tasks failed their health checks"})
    info = cd.get_deployment(deploymentId=second)["deploymentInfo"]
    rollback = (info.get("rollbackInfo") or {}).get("rollbackDeploymentId")
    c.check("codedeploy: a failure is Failed with its error and a rollback", info["status"] == "Failed" and info["errorInformation"]["code"] == "HEALTH_CONSTRAINTS" and rollback, info)
    back = cd.get_deployment(deploymentId=rollback)["deploymentInfo"] if rollback else {}
    svc = describe(ecs, "cdweb", "cd")
    c.check("codedeploy: the rollback Succeeded, the service stays on the revision before", back.get("status") == "Succeeded" and back.get("creator") == "codeDeployRollback" and svc["taskDefinition"] == td2, (back, svc["taskDefinition"]))
    third = cd.create_deployment(applicationName="web", deploymentGroupName="web-dg", revision=appspec(td3, port=8080))["deploymentId"]
    info = cd.get_deployment(deploymentId=third)["deploymentInfo"]
    c.check("codedeploy: an AppSpec naming another container port fails", info["status"] == "Failed" and info["errorInformation"]["code"] == "ECS_UPDATE_ERROR", info)


def describe_alarms_cbor(srv: Server, names: list) -> dict:
    """DescribeAlarms as the Rust SDK sends it (Smithy RPC v2 CBOR; boto3 still speaks JSON to
    CloudWatch, which moto answers from its own backend). The pushdeploy gate's tests read the
    same answers with the SDK's own CBOR decoder."""
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    from ecs_world import Cbor

    request = urllib.request.Request(
        srv.url + "/service/GraniteServiceVersion20100801/operation/DescribeAlarms",
        data=Cbor.dumps({"AlarmNames": names}), method="POST")
    request.add_header("Content-Type", "application/cbor")
    request.add_header("smithy-protocol", "rpc-v2-cbor")
    request.add_header("Authorization", f"AWS4-HMAC-SHA256 Credential=testing/20261206/{REGION}/monitoring/aws4_request, SignedHeaders=host, Signature=0")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers.get("smithy-protocol") == "rpc-v2-cbor", dict(answer.headers)
        return Cbor.loads(answer.read())


def cloudwatch_alarms(c: Checks, srv: Server) -> None:
    srv.world("POST", "/_world/alarms", {"name": "web-5xx", "state": "OK"})
    srv.advance(3)
    srv.world("POST", "/_world/alarms", {"name": "web-p99", "state": "ALARM", "reason": "Threshold Crossed: 1 datapoint [2.3] > 1.0"})
    srv.world("POST", "/_world/alarms", {"name": "web-5xx", "state": "OK"})
    found = {a["AlarmName"]: a for a in describe_alarms_cbor(srv, ["web-5xx", "web-p99", "nobody"])["MetricAlarms"]}
    c.check("cloudwatch: DescribeAlarms answers the known names, leaves out the others", sorted(found) == ["web-5xx", "web-p99"], sorted(found))
    held = found["web-p99"]["StateUpdatedTimestamp"] - found["web-5xx"]["StateUpdatedTimestamp"]
    c.check("cloudwatch: an unchanged state keeps its time", 179 <= held <= 181, held)
    c.check("cloudwatch: state and reason", found["web-p99"]["StateValue"] == "ALARM" and "Threshold" in found["web-p99"]["StateReason"], found["web-p99"])


def linear_timing(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    td = task_definition(ecs, "lin", sidecar=False)
    config = {"strategy": "LINEAR", "bakeTimeInMinutes": 10, "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5}}
    ecs.create_service(cluster="demo", serviceName="lin", taskDefinition=td, desiredCount=1, deploymentConfiguration=config)
    sd_arn = ecs.update_service(cluster="demo", service="lin", taskDefinition=task_definition(ecs, "lin", "v2", sidecar=False))["service"]["currentServiceDeployment"]
    srv.events()
    srv.tasks("lin", cluster="demo", start=1)
    c.check("linear: shifting traffic after the tasks run", service_deployment(ecs, sd_arn).get("lifecycleStage") == "PRODUCTION_TRAFFIC_SHIFT")
    srv.advance(24)  # 4 steps of 25%: 3 waits of 5 min, then a 10 min bake = 25 min
    c.check("linear: +24 min, not done", service_deployment(ecs, sd_arn)["status"] == "IN_PROGRESS" and srv.events() == [])
    srv.advance(2)
    c.check("linear: +26 min, COMPLETED", [e["detail"]["eventName"] for e in srv.events()] == ["SERVICE_DEPLOYMENT_COMPLETED"])


def lifecycle_hooks(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    gate = "arn:aws:lambda:us-east-1:123456789012:function:gate"
    hook = {"hookTargetArn": gate, "roleArn": "arn:aws:iam::123456789012:role/hook",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "hookDetails": {"team": "web"}}
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5, "lifecycleHooks": [hook]}
    ecs.create_service(cluster="demo", serviceName="hk", taskDefinition=task_definition(ecs, "hk", sidecar=False),
                       desiredCount=1, deploymentConfiguration=config)
    sd_arn = ecs.update_service(cluster="demo", service="hk", taskDefinition=task_definition(ecs, "hk", "v2", sidecar=False))["service"]["currentServiceDeployment"]
    c.check("hooks: none due while scaling up", srv.world("GET", "/_world/hooks")["hooks"] == [])
    srv.tasks("hk", start=1)
    due = srv.world("GET", "/_world/hooks")["hooks"]
    c.check("hooks: one due at POST_TEST_TRAFFIC_SHIFT, the deployment waits there",
            len(due) == 1 and due[0]["payload"]["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
            and service_deployment(ecs, sd_arn).get("lifecycleStage") == "POST_TEST_TRAFFIC_SHIFT", due)
    payload = due[0]["payload"]
    c.check("hooks: the payload names the service deployment, the service and the green revision",
            payload["resourceArn"] == sd_arn and payload["executionDetails"]["serviceArn"].endswith(":service/demo/hk")
            and payload["executionDetails"]["targetServiceRevisionArn"] and payload["hookDetails"] == {"team": "web"}, payload)
    c.check("hooks: handed out once", srv.world("GET", "/_world/hooks")["hooks"] == [])
    srv.world("POST", "/_world/hooks", {"id": due[0]["id"], "answer": {"hookStatus": "IN_PROGRESS", "callBackDelay": 60, "hookDetails": {"n": 1}}})
    c.check("hooks: IN_PROGRESS is not due again before callBackDelay", srv.world("GET", "/_world/hooks")["hooks"] == [])
    srv.advance(1.1)
    again = srv.world("GET", "/_world/hooks")["hooks"]
    c.check("hooks: due again after it, hookDetails merged", len(again) == 1 and again[0]["payload"]["hookDetails"] == {"team": "web", "n": 1}, again)
    srv.world("POST", "/_world/hooks", {"id": again[0]["id"], "answer": {"hookStatus": "SUCCEEDED"}})
    c.check("hooks: SUCCEEDED moves on to the bake", service_deployment(ecs, sd_arn).get("lifecycleStage") == "BAKE_TIME")
    srv.advance(6)
    c.check("hooks: then SUCCESSFUL", service_deployment(ecs, sd_arn)["status"] == "SUCCESSFUL")
    srv.events()
    sd_arn = ecs.update_service(cluster="demo", service="hk", taskDefinition=task_definition(ecs, "hk", "v3", sidecar=False))["service"]["currentServiceDeployment"]
    srv.tasks("hk", start=1)
    due = srv.world("GET", "/_world/hooks")["hooks"]
    srv.world("POST", "/_world/hooks", {"id": due[0]["id"], "answer": {"hookStatus": "FAILED"}})
    sd = service_deployment(ecs, sd_arn)
    c.check("hooks: FAILED rolls back", sd["status"] == "ROLLBACK_IN_PROGRESS" and "returned FAILED" in sd.get("statusReason", ""), sd)
    c.check("hooks: a FAILED event for the failed deployment", "SERVICE_DEPLOYMENT_FAILED" in [e["detail"]["eventName"] for e in srv.events()])
    srv.tasks("hk", start=1)
    srv.advance(6)
    c.check("hooks: then ROLLBACK_SUCCESSFUL", service_deployment(ecs, sd_arn)["status"] == "ROLLBACK_SUCCESSFUL")


def hooks_at_every_step(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    hook = {"hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:gate", "roleArn": "arn:aws:iam::123456789012:role/hook",
            "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}
    config = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 3}, "bakeTimeInMinutes": 1, "lifecycleHooks": [hook]}
    ecs.create_service(cluster="demo", serviceName="steps", taskDefinition=task_definition(ecs, "steps", sidecar=False),
                       desiredCount=1, deploymentConfiguration=config)
    sd_arn = ecs.update_service(cluster="demo", service="steps", taskDefinition=task_definition(ecs, "steps", "v2", sidecar=False))["service"]["currentServiceDeployment"]
    srv.tasks("steps", start=1)
    seen = []
    for step in range(4):
        due = srv.world("GET", "/_world/hooks")["hooks"]
        if len(due) != 1:
            break
        details = due[0]["payload"]["executionDetails"]
        seen.append(details["productionTrafficWeights"].get(details["targetServiceRevisionArn"]))
        srv.world("POST", "/_world/hooks", {"id": due[0]["id"], "answer": {"hookStatus": "SUCCEEDED"}})
        if step < 3:
            c.check(f"steps: no hook during step {step + 1}'s bake", srv.world("GET", "/_world/hooks")["hooks"] == [])
            srv.advance(3)
    c.check("steps: PRODUCTION_TRAFFIC_SHIFT invoked at each linear step with its weight", seen == [25.0, 50.0, 75.0, 100.0], seen)
    c.check("steps: then the bake", service_deployment(ecs, sd_arn).get("lifecycleStage") == "BAKE_TIME")
    canary = dict(config, strategy="CANARY", canaryConfiguration={"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5})
    canary.pop("linearConfiguration")
    srv.advance(2)
    ecs.update_service(cluster="demo", service="steps", deploymentConfiguration=canary, taskDefinition=task_definition(ecs, "steps", "v3", sidecar=False))
    srv.tasks("steps", start=1)
    due = srv.world("GET", "/_world/hooks")["hooks"]
    first = due[0]["payload"]["executionDetails"] if due else {}
    c.check("steps: a canary's first step shifts canaryPercent", first.get("productionTrafficWeights", {}).get(first.get("targetServiceRevisionArn")) == 10.0, first)
    srv.world("POST", "/_world/hooks", {"id": due[0]["id"], "answer": {"hookStatus": "FAILED"}})
    c.check("steps: FAILED at a step rolls back", service_deployment(ecs, ecs.describe_services(cluster="demo", services=["steps"])["services"][0]["currentServiceDeployment"])["status"].startswith("ROLLBACK"))


def pause_hooks(c: Checks, srv: Server) -> None:
    ecs = srv.client("ecs")
    hook = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [hook]}
    ecs.create_service(cluster="demo", serviceName="ps", taskDefinition=task_definition(ecs, "ps", sidecar=False),
                       desiredCount=1, deploymentConfiguration=config)
    sd_arn = ecs.update_service(cluster="demo", service="ps", taskDefinition=task_definition(ecs, "ps", "v2", sidecar=False))["service"]["currentServiceDeployment"]
    srv.events()
    srv.tasks("ps", start=1)
    events = srv.events()
    waiting = [e for e in events if e["detail-type"] == "ECS Hook State Change"]
    c.check("pause: HOOK_AWAITING_ACTION event with the hook and the service deployment",
            len(waiting) == 1 and waiting[0]["detail"]["eventName"] == "HOOK_AWAITING_ACTION"
            and waiting[0]["detail"]["serviceDeploymentArn"] == sd_arn and waiting[0]["detail"]["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT", events)
    c.check("pause: nothing for a Lambda to run", srv.world("GET", "/_world/hooks")["hooks"] == [])
    details = service_deployment(ecs, sd_arn).get("lifecycleHookDetails", [])
    hook_id = waiting[0]["detail"]["hookId"] if waiting else None
    c.check("pause: lifecycleHookDetails shows it AWAITING_ACTION",
            len(details) == 1 and details[0]["hookId"] == hook_id and details[0]["status"] == "AWAITING_ACTION" and details[0]["targetType"] == "PAUSE", details)
    try:
        ecs.continue_service_deployment(serviceDeploymentArn=sd_arn, hookId="hook-nope")
        refused = False
    except ecs.exceptions.ClientError as err:
        refused = err.response["Error"]["Code"] == "ConflictException"
    c.check("pause: an unknown hook id is a ConflictException", refused)
    ecs.continue_service_deployment(serviceDeploymentArn=sd_arn, hookId=hook_id, action="CONTINUE")
    c.check("pause: CONTINUE moves on to the bake", service_deployment(ecs, sd_arn).get("lifecycleStage") == "BAKE_TIME")
    srv.advance(2)
    c.check("pause: then SUCCESSFUL", service_deployment(ecs, sd_arn)["status"] == "SUCCESSFUL")
    sd_arn = ecs.update_service(cluster="demo", service="ps", taskDefinition=task_definition(ecs, "ps", "v3", sidecar=False))["service"]["currentServiceDeployment"]
    srv.tasks("ps", start=1)
    hook_id = [e for e in srv.events() if e["detail-type"] == "ECS Hook State Change"][0]["detail"]["hookId"]
    ecs.continue_service_deployment(serviceDeploymentArn=sd_arn, hookId=hook_id, action="ROLLBACK")
    sd = service_deployment(ecs, sd_arn)
    c.check("pause: ROLLBACK rolls back", sd["status"] == "ROLLBACK_IN_PROGRESS" and "ROLLBACK" in sd.get("statusReason", ""), sd)


def answers_dated_by_the_world(c: Checks, srv: Server) -> None:
    """Every answer's Date header, ECS or not, is the world's time: the functions read AWS's
    clock from it (src/clock.rs), so theirs moves when a test moves the world's."""
    from email.utils import parsedate_to_datetime

    def dated(client) -> float:
        answer = client.list_clusters() if client.meta.service_model.service_name == "ecs" else client.list_tables()
        return parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()

    ecs, dynamodb = srv.client("ecs"), srv.client("dynamodb")
    world_now = lambda: datetime.fromisoformat(srv.world("GET", "/_world/clock")["now"].replace("Z", "+00:00")).timestamp()
    srv.advance(90)
    for name, client in (("ECS", ecs), ("DynamoDB", dynamodb)):
        said, now = dated(client), world_now()
        c.check(f"{name} answers carry the world's time as Date (90 min ahead)", abs(said - now) <= 2 and said - time.time() > 80 * 60, (said, now, time.time()))


def other_services_unchanged(c: Checks, srv: Server) -> None:
    sqs, sns = srv.client("sqs"), srv.client("sns")
    url = sqs.create_queue(QueueName="passthrough")["QueueUrl"]
    topic = sns.create_topic(Name="passthrough")["TopicArn"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
    c.check("SQS and SNS still answer as moto does", [m["Body"] for m in got] == ["hello"] and topic.startswith("arn:aws:sns:"), got)


def dynamodb_conditional_writes(c: Checks, srv: Server) -> None:
    setup = srv.client("dynamodb")
    setup.create_table(TableName="claims", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    clients = [srv.client("dynamodb") for _ in range(20)]
    for key in ("a", "b", "c"):
        wins, barrier, guard = [], threading.Barrier(20), threading.Lock()

        def claim(client, who):
            barrier.wait()
            try:
                client.put_item(TableName="claims", Item={"pk": {"S": key}, "who": {"N": str(who)}}, ConditionExpression="attribute_not_exists(pk)")
                with guard:
                    wins.append(who)
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

        threads = [threading.Thread(target=claim, args=(clients[i], i)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.check(f"20 concurrent conditional PutItems on key {key!r}: exactly one wins", len(wins) == 1, wins)


def lock_design(c: Checks) -> None:
    """In process: the middleware serializes DynamoDB requests and lets other services overlap.
    (moto's lost conditional writes are too rare to catch on demand, so this checks the cause.)"""
    sys.path.insert(0, str(SERVER.parent))
    sys.dont_write_bytecode = True
    import ecs_world

    busy = {"dynamodb": 0, "sqs": 0, "all": 0}
    most = dict(busy)
    guard = threading.Lock()

    def fake_moto(environ, start_response):
        service = "dynamodb" if "DynamoDB" in environ.get("HTTP_X_AMZ_TARGET", "") else "sqs"
        with guard:
            for key in (service, "all"):
                busy[key] += 1
                most[key] = max(most[key], busy[key])
        time.sleep(0.05)  # holds the request open so that unserialized ones would overlap
        with guard:
            busy[service] -= 1
            busy["all"] -= 1
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [b"{}"]

    app = ecs_world.wrap(fake_moto)

    def request(target: str, scope: str):
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "CONTENT_LENGTH": "2",
            "HTTP_X_AMZ_TARGET": target, "wsgi.input": __import__("io").BytesIO(b"{}"),
            "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{scope}/aws4_request, SignedHeaders=host, Signature=0",
        }
        b"".join(app(environ, lambda status, headers: None))

    work = [("DynamoDB_20120810.UpdateItem", "dynamodb")] * 8 + [("AmazonSQS.SendMessage", "sqs")] * 8
    threads = [threading.Thread(target=request, args=w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.check("DynamoDB requests run one at a time", most["dynamodb"] == 1, most)
    c.check("requests of another service run one at a time too (a lock per service)", most["sqs"] == 1, most)
    c.check("requests of different services overlap (threaded server)", most["all"] > 1, most)
    locks = ecs_world.Locks()
    c.check("ECS, tagging and DynamoDB Streams share their groups' locks",
            locks.named("ecs") is locks.named("tagging") and locks.named("dynamodb") is locks.named("dynamodbstreams") and locks.named("ecs") is not locks.named("ecr"))


def deployment_ids(seed: int) -> list:
    with Server(seed) as srv:
        ecs = srv.client("ecs")
        ecs.create_cluster(clusterName="demo")
        ecs.create_service(cluster="demo", serviceName="web", taskDefinition=task_definition(ecs, "web", sidecar=False), desiredCount=1)
        ids = [describe(ecs, "web")["deployments"][0]["id"]]
        for tag in ("v2", "v3"):
            ids.append(ecs.update_service(cluster="demo", service="web", taskDefinition=task_definition(ecs, "web", tag, sidecar=False))["service"]["deployments"][0]["id"])
        ids.append(srv.events()[0]["id"])
        return ids


def seeded_ids(c: Checks) -> None:
    first, second, other = deployment_ids(7), deployment_ids(7), deployment_ids(8)
    c.check("same seed: same deployment ids and event ids across two server runs", first == second, (first, second))
    c.check("another seed: other ids", first != other, (first, other))


def main() -> int:
    started = time.monotonic()
    c = Checks()
    with Server(7) as srv:
        c.run("rolling deployment with circuit breaker rollback", rolling_with_rollback, srv)
        c.run("breaker counting", breaker_counts_consecutive_failures, srv)
        c.run("no breaker", no_breaker, srv)
        c.run("blue/green bake", blue_green_bake, srv)
        c.run("linear timing", linear_timing, srv)
        c.run("lifecycle hooks", lifecycle_hooks, srv)
        c.run("pause hooks", pause_hooks, srv)
        c.run("hooks at every step", hooks_at_every_step, srv)
        c.run("codedeploy", code_deploy, srv)
        c.run("cloudwatch alarms", cloudwatch_alarms, srv)
        c.run("other services", other_services_unchanged, srv)
        c.run("answers dated by the world", answers_dated_by_the_world, srv)
        c.run("dynamodb atomicity", dynamodb_conditional_writes, srv)
    c.run("lock design", lock_design)
    c.run("seeded ids", seeded_ids)
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
