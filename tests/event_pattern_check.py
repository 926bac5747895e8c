#!/usr/bin/env python3
"""Check the EventBridge rules of DeployFunction and RollbackFunction against
the sample events in events/ (ecr-*.json and ecs-*.json).

Run from the repository root:

    .venv/bin/python tests/event_pattern_check.py

Each rule pattern is read from template.yaml (with cfn-lint's YAML decoder, so
!Ref / !If short forms load), its conditions are resolved for a few parameter
values, and each resolved pattern is installed as a real rule on an
in-process moto server. Every sample in events/ (both families) is sent with
PutEvents and the rule's SQS target is drained to see which of them were
delivered: the deploy rule must take only the ECR pushes it should, the
rollback rule every ECS deployment state change of its own account and no ECR
event. The rollback rule pins `account` to the stack's (AWS::AccountId): the
samples' account, 123456789012, is moto's default, which moto stamps on every
PutEvents; the same rule of a stack in another account must receive none of
them, and moto's own matcher must refuse a sample whose account is another.
(moto's TestEventPattern is a stub, so it is not used.)

It also reads RollbackFunction's definition: its inline policy grants
ecs:RegisterTaskDefinition (wildcards included) only as the deploy function's is scoped (the
rollback registers a pinned copy of a revision that names an image by tag, so that it never
lands on a tag resolved anew), passes roles only to ECS tasks, and it must have a Schedule
event (the stuck-deployment sweep).

Prints one line per check and ends with "N passed, M failed"; exits 0 only
when every check passed.
"""

from __future__ import annotations

import copy
import datetime as dt
import fnmatch
import json
import logging
import os
import re
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS_DIR = ROOT / "events"
DEPLOY_FUNCTION = "DeployFunction"
ROLLBACK_FUNCTION = "RollbackFunction"
REGION = "us-east-1"
# moto's default account: PutEvents stamps it on every event, and every sample carries it.
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
# The pseudo parameters a pattern may use, for a stack in ACCOUNT (see parameter_values).
PSEUDO_PARAMETERS = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
DEADLINE_SECONDS = 30.0

# Which ECR samples must reach the deploy function, per RepositoryFilter value.
# Every events/ecr-*.json must appear in every scenario. No ECR sample may
# reach the rollback function.
SCENARIOS: dict[str, dict[str, bool]] = {
    "": {
        "ecr-push.json": True,
        "ecr-push-index.json": True,
        "ecr-push-platform-manifest.json": True,
        "ecr-push-signature.json": True,
        "ecr-push-notation-signature.json": True,
        "ecr-push-attestation.json": True,
        "ecr-push-sbom.json": True,
        "ecr-push-second-tag.json": True,
        "ecr-push-untagged.json": True,
        "ecr-push-failed.json": False,
        "ecr-delete.json": False,
        "ecr-replication.json": True,  # ECR Replication Action (issue 13, item 1)
    },
    "pushdeploy-demo": {
        "ecr-push.json": True,
        "ecr-push-index.json": True,
        "ecr-push-platform-manifest.json": True,
        "ecr-push-signature.json": True,
        "ecr-push-notation-signature.json": True,
        "ecr-push-attestation.json": True,
        "ecr-push-sbom.json": True,
        "ecr-push-second-tag.json": True,
        "ecr-push-untagged.json": True,
        "ecr-push-failed.json": False,
        "ecr-delete.json": False,
        "ecr-replication.json": True,  # ECR Replication Action (issue 13, item 1)
    },
    "other-repo": {
        "ecr-push.json": False,
        "ecr-push-index.json": False,
        "ecr-push-platform-manifest.json": False,
        "ecr-push-signature.json": False,
        "ecr-push-notation-signature.json": False,
        "ecr-push-attestation.json": False,
        "ecr-push-sbom.json": False,
        "ecr-push-second-tag.json": False,
        "ecr-push-untagged.json": False,
        "ecr-push-failed.json": False,
        "ecr-delete.json": False,
        "ecr-replication.json": False,  # ECR Replication Action (issue 13, item 1)
    },
}

# Which ECS samples must reach the rollback function. Every events/ecs-*.json
# must appear here. No ECS sample may reach the deploy function.
ROLLBACK_EXPECTED: dict[str, bool] = {
    "ecs-deployment-in-progress.json": True,
    "ecs-deployment-completed.json": True,
    "ecs-deployment-failed.json": True,
    "ecs-deployment-failed-rollback.json": True,
    "ecs-hook-awaiting-action.json": True,  # a pause hook (issue 17)
}

# The documented "ECS Deployment State Change" detail: these keys, exactly.
ECS_DETAIL_KEYS = {"eventType", "eventName", "deploymentId", "updatedAt", "reason"}
ECS_EVENT_TYPES = {
    "SERVICE_DEPLOYMENT_IN_PROGRESS": "INFO",
    "SERVICE_DEPLOYMENT_COMPLETED": "INFO",
    "SERVICE_DEPLOYMENT_FAILED": "ERROR",
}
ECS_SERVICE_ARN = "arn:aws:ecs:us-east-1:123456789012:service/demo/web"

# Actions the rollback function may be granted only with the deploy function's scope. It used to
# be forbidden: a rollback only called UpdateService. Since a rollback onto a revision that names
# the followed image by tag would let ECS resolve the tag anew (possibly to the failed image), the
# rollback registers a pinned copy of that revision; it gets no wider a grant than the deploy
# function has for the same action.
ROLLBACK_SCOPED_LIKE_DEPLOY = ("ecs:RegisterTaskDefinition", "ecs:TagResource")

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DEPLOYMENT_ID = re.compile(r"^ecs-svc/[0-9]+$")


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {why}" if why else ""))
        sys.stdout.flush()
        return ok


# --------------------------------------------------------------------------
# Template loading and intrinsic resolution
# --------------------------------------------------------------------------

NO_VALUE = object()


class Unresolvable(Exception):
    pass


def load_template() -> dict:
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    if matches:
        raise Unresolvable("; ".join(str(m) for m in matches))
    if not isinstance(template, dict):
        raise Unresolvable("template is not a mapping")
    return template


def resolve(node, template: dict, params: dict[str, str]):
    """Resolve the intrinsics an event pattern may use against `params`."""
    if isinstance(node, list):
        out = [resolve(v, template, params) for v in node]
        return [v for v in out if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            if arg in params:
                return params[arg]
            raise Unresolvable(f"Ref {arg}")
        if key == "Fn::If":
            cond, if_true, if_false = arg
            branch = if_true if condition(cond, template, params) else if_false
            return resolve(branch, template, params)
        if key.startswith("Fn::") or key == "Condition":
            raise Unresolvable(f"intrinsic {key} not supported in a pattern")
    out = {}
    for k, v in node.items():
        r = resolve(v, template, params)
        if r is not NO_VALUE:
            out[str(k)] = r
    return out


def condition(name: str, template: dict, params: dict[str, str]) -> bool:
    conditions = template.get("Conditions", {})
    if name not in conditions:
        raise Unresolvable(f"unknown condition {name}")
    return cond_value(conditions[name], template, params)


def cond_value(node, template: dict, params: dict[str, str]):
    if isinstance(node, dict) and len(node) == 1:
        (key, arg), = node.items()
        if key == "Fn::Equals":
            a, b = (cond_value(x, template, params) for x in arg)
            return a == b
        if key == "Fn::Not":
            return not cond_value(arg[0], template, params)
        if key == "Fn::And":
            return all(cond_value(x, template, params) for x in arg)
        if key == "Fn::Or":
            return any(cond_value(x, template, params) for x in arg)
        if key == "Condition":
            return condition(arg, template, params)
        if key == "Ref":
            if arg in params:
                return params[arg]
            raise Unresolvable(f"Ref {arg}")
        raise Unresolvable(f"condition function {key}")
    return node


def parameter_values(template: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Defaults, then the pseudo parameters (a stack in ACCOUNT), then `overrides`."""
    values = dict(PSEUDO_PARAMETERS)
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            values[str(name)] = str(spec["Default"])
    values.update(overrides)
    return values


def function_events(template: dict, function: str) -> dict:
    fn = template.get("Resources", {}).get(function, {})
    return fn.get("Properties", {}).get("Events", {}) or {}


def rule_events(template: dict, function: str) -> list[dict]:
    return [
        ev.get("Properties", {}) or {}
        for ev in function_events(template, function).values()
        if isinstance(ev, dict) and ev.get("Type") == "EventBridgeRule"
    ]


def rule_patterns(template: dict, function: str) -> list:
    return [props.get("Pattern") for props in rule_events(template, function)]


# --------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------


def load_samples(report: Report, glob: str) -> dict[str, dict]:
    samples = {}
    for path in sorted(EVENTS_DIR.glob(glob)):
        try:
            samples[path.name] = json.loads(path.read_text())
        except ValueError as exc:
            report.check(False, f"{path.name} is JSON", str(exc))
    return samples


def envelope_problems(ev: dict, want: dict) -> list[str]:
    """What is off in an EventBridge envelope: fixed fields, a UUID id, an RFC 3339 time."""
    problems = [f"{key}={ev.get(key)!r}" for key, value in want.items() if ev.get(key) != value]
    try:
        uuid.UUID(str(ev.get("id")))
    except ValueError:
        problems.append(f"id={ev.get('id')!r} is not a UUID")
    if not RFC3339_Z.match(str(ev.get("time", ""))):
        problems.append(f"time={ev.get('time')!r}")
    return problems


def check_sample_shape(report: Report, name: str, ev: dict) -> None:
    problems = []
    replication = ev.get("detail-type") == "ECR Replication Action"
    want = {
        "version": "0",
        "detail-type": "ECR Replication Action" if replication else "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "region": REGION,
    }
    if not replication:
        want["resources"] = []
    problems.extend(envelope_problems(ev, want))
    detail = ev.get("detail")
    if not isinstance(detail, dict):
        problems.append("detail is not an object")
    else:
        if detail.get("repository-name") != "pushdeploy-demo":
            problems.append("repository-name")
        if detail.get("result") not in ("SUCCESS", "FAILURE"):
            problems.append("result")
        if detail.get("action-type") not in (("REPLICATE",) if replication else ("PUSH", "DELETE")):
            problems.append("action-type")
        # The replication event's own fields (ECR user guide, "Amazon ECR events and
        # EventBridge"): where the image was replicated from.
        if replication and not (re.fullmatch(r"[0-9]{12}", str(detail.get("source-account")))
                                and re.fullmatch(r"[a-z0-9-]+", str(detail.get("source-region")))):
            problems.append("source-account / source-region")
        if "image-digest" in detail and not DIGEST.match(str(detail["image-digest"])):
            problems.append("image-digest")
    report.check(not problems, f"{name} has the documented ECR event shape",
                 ", ".join(problems))


# "Pause hooks for Amazon ECS service deployments" (Developer Guide): the event's detail.
ECS_HOOK_DETAIL_KEYS = {"eventName", "hookId", "hookType", "expiresAt", "lifecycleStage",
                        "clusterArn", "serviceArn", "serviceDeploymentArn", "updatedAt"}


def check_ecs_sample_shape(report: Report, name: str, ev: dict) -> None:
    """The shape of the examples in "Amazon ECS service deployment state
    change events" (Amazon ECS Developer Guide), or of a pause hook's event."""
    if ev.get("detail-type") == "ECS Hook State Change":
        detail = ev.get("detail") if isinstance(ev.get("detail"), dict) else {}
        problems = envelope_problems(ev, {"version": "0", "source": "aws.ecs", "account": "123456789012",
                                          "region": REGION, "resources": [ECS_SERVICE_ARN]})
        if set(detail) != ECS_HOOK_DETAIL_KEYS:
            problems.append(f"detail keys {sorted(detail)} != {sorted(ECS_HOOK_DETAIL_KEYS)}")
        if detail.get("serviceArn") != ECS_SERVICE_ARN:
            problems.append(f"serviceArn={detail.get('serviceArn')!r}")
        report.check(not problems, f"{name} has the documented ECS hook event shape", ", ".join(problems))
        return
    problems = []
    want = {
        "version": "0",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "region": REGION,
        "resources": [ECS_SERVICE_ARN],
    }
    problems.extend(envelope_problems(ev, want))
    detail = ev.get("detail")
    if not isinstance(detail, dict):
        problems.append("detail is not an object")
    else:
        if set(detail) != ECS_DETAIL_KEYS:
            problems.append(f"detail keys {sorted(detail)} != {sorted(ECS_DETAIL_KEYS)}")
        name_ = detail.get("eventName")
        if name_ not in ECS_EVENT_TYPES:
            problems.append(f"eventName={name_!r}")
        elif detail.get("eventType") != ECS_EVENT_TYPES[name_]:
            problems.append(f"eventType={detail.get('eventType')!r} for {name_}")
        if not DEPLOYMENT_ID.match(str(detail.get("deploymentId", ""))):
            problems.append(f"deploymentId={detail.get('deploymentId')!r}")
        if not RFC3339_Z.match(str(detail.get("updatedAt", ""))):
            problems.append(f"updatedAt={detail.get('updatedAt')!r}")
        if not isinstance(detail.get("reason"), str) or not detail.get("reason"):
            problems.append("reason")
    report.check(not problems, f"{name} has the documented ECS deployment event shape",
                 ", ".join(problems))


def check_expectation_table(report: Report, label: str, family: str,
                            samples: dict[str, dict], table: dict[str, bool]) -> None:
    missing = sorted(set(samples) - set(table))
    stale = sorted(set(table) - set(samples))
    report.check(not missing, f"[{label}] every events/{family} has an expectation",
                 "add to the table: " + ", ".join(missing))
    report.check(not stale, f"[{label}] every expectation has a sample file",
                 "missing files: " + ", ".join(stale))


# --------------------------------------------------------------------------
# RollbackFunction's definition
# --------------------------------------------------------------------------


def policy_actions(node, found: list[str], problems: list[str]) -> None:
    """Every Action anywhere under `node` (both branches of any Fn::If)."""
    if isinstance(node, list):
        for v in node:
            policy_actions(v, found, problems)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "NotAction":
            problems.append("a NotAction statement grants everything it does not list")
        elif key == "Action":
            for action in value if isinstance(value, list) else [value]:
                if isinstance(action, str):
                    found.append(action)
                else:
                    problems.append(f"non-literal action {action!r}")
        else:
            policy_actions(value, found, problems)


READ_ONLY_VERBS = ("Describe", "Get", "List", "Query", "Scan", "BatchGet")


def statements(policy) -> list[dict]:
    """A policy's statements, with both branches of a conditional (Fn::If) statement."""
    found = []
    for statement in (policy.get("Statement", []) if isinstance(policy, dict) else []):
        if isinstance(statement, dict) and "Fn::If" in statement:
            branches = statement["Fn::If"][1:]
            found.extend(b for b in branches if isinstance(b, dict) and "Action" in b)
        elif isinstance(statement, dict):
            found.append(statement)
    return found


def check_no_wildcard_mutations(report: Report, template: dict) -> None:
    """No statement that grants a mutating action may have Resource '*'."""
    for name, resource in sorted(template.get("Resources", {}).items()):
        if not (isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function"):
            continue
        policies = (resource.get("Properties", {}) or {}).get("Policies", [])
        for policy in policies if isinstance(policies, list) else [policies]:
            for statement in statements(policy):
                actions = statement.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                mutating = [a for a in actions if not str(a).split(":")[-1].startswith(READ_ONLY_VERBS)]
                resources = statement.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                wildcard = any(r == "*" for r in resources)
                sid = statement.get("Sid", "?")
                report.check(not (mutating and wildcard),
                             f"{name} {sid}: no Resource '*' on a mutating action",
                             f"{mutating} on {resources}")
                report.check(not any("*" in str(a) for a in actions),
                             f"{name} {sid}: no wildcard in action names", f"{actions}")


def queue_ref(node, template: dict) -> str | None:
    """The logical id of the template's SQS queue that `node` (!GetAtt Q.Arn) names."""
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        target = target.split(".") if isinstance(target, str) else target
        if list(target[1:]) == ["Arn"]:
            kind = template.get("Resources", {}).get(target[0], {}).get("Type")
            return target[0] if kind == "AWS::SQS::Queue" else None
    return None


def check_nothing_dropped(report: Report, template: dict) -> None:
    """Both functions keep what they could not handle: explicit async retry limits with an SQS
    on-failure destination, and a dead-letter queue on every EventBridge target."""
    queues = set()
    for function in (DEPLOY_FUNCTION, ROLLBACK_FUNCTION):
        props = template["Resources"][function].get("Properties", {})
        invoke = props.get("EventInvokeConfig", {}) or {}
        report.check(isinstance(invoke.get("MaximumRetryAttempts"), int)
                     and 0 <= invoke["MaximumRetryAttempts"] <= 2,
                     f"{function}: explicit MaximumRetryAttempts (0-2)", str(invoke))
        report.check(isinstance(invoke.get("MaximumEventAgeInSeconds"), int)
                     and 60 <= invoke["MaximumEventAgeInSeconds"] <= 21600,
                     f"{function}: explicit MaximumEventAgeInSeconds (60-21600)", str(invoke))
        on_failure = (invoke.get("DestinationConfig", {}) or {}).get("OnFailure", {}) or {}
        queue = queue_ref(on_failure.get("Destination"), template)
        report.check(on_failure.get("Type") == "SQS" and queue is not None,
                     f"{function}: on-failure destination is an SQS queue of the template",
                     str(on_failure))
        queues.add(queue)
        for name, event in sorted(function_events(template, function).items()):
            if event.get("Type") not in ("EventBridgeRule", "Schedule"):
                continue
            dlq = (event.get("Properties", {}).get("DeadLetterConfig", {}) or {}).get("Arn")
            report.check(queue_ref(dlq, template) == queue,
                         f"{function} {name}: the rule target's dead letters go to {queue}",
                         str(dlq))
    report.check(len(queues) == 2, "each function has a dead-letter queue of its own",
                 str(queues))


def granting_statements(policies: list, action: str) -> list[dict]:
    """The Allow statements of `policies` whose actions (wildcards included) cover `action`."""
    found = []
    for policy in policies:
        for statement in (policy.get("Statement", []) if isinstance(policy, dict) else []):
            granted = statement.get("Action", []) if isinstance(statement, dict) else []
            granted = granted if isinstance(granted, list) else [granted]
            if statement.get("Effect") == "Allow" and any(
                    fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in granted):
                found.append(statement)
    return found


def deploy_policies(template: dict) -> list:
    props = template.get("Resources", {}).get(DEPLOY_FUNCTION, {}).get("Properties", {}) or {}
    policies = props.get("Policies", [])
    return policies if isinstance(policies, list) else [policies]


def check_rollback_definition(report: Report, template: dict) -> None:
    fn = template.get("Resources", {}).get(ROLLBACK_FUNCTION)
    if not report.check(isinstance(fn, dict)
                        and fn.get("Type") == "AWS::Serverless::Function",
                        f"{ROLLBACK_FUNCTION} is an AWS::Serverless::Function"):
        return
    props = fn.get("Properties", {}) or {}

    # Only inline statements can be read here: a role, a managed policy or a
    # SAM policy template would grant what this check cannot see.
    policies = props.get("Policies", [])
    policies = policies if isinstance(policies, list) else [policies]
    opaque = [p for p in policies
              if not (isinstance(p, dict) and "Statement" in p)]
    if "Role" in props:
        opaque.append({"Role": props["Role"]})
    report.check(not opaque and bool(policies),
                 f"{ROLLBACK_FUNCTION} permissions are inline policy statements only",
                 f"cannot inspect: {opaque!r}" if opaque else "no Policies")

    actions: list[str] = []
    problems: list[str] = []
    policy_actions(policies, actions, problems)
    report.check(not problems, f"{ROLLBACK_FUNCTION} policy actions are literal",
                 "; ".join(problems))
    for action in ROLLBACK_SCOPED_LIKE_DEPLOY:
        mine = granting_statements(policies, action)
        deploys = granting_statements(deploy_policies(template), action)
        scope = lambda st: (st.get("Resource"), st.get("Condition"))
        report.check(all(scope(st) in [scope(d) for d in deploys] for st in mine),
                     f"{ROLLBACK_FUNCTION} grants {action} only with the deploy function's scope",
                     f"rollback {[scope(st) for st in mine]!r}, deploy {[scope(d) for d in deploys]!r}")

    # iam:PassRole only as UpdateService needs it: the listed task roles, to ECS tasks.
    for policy in policies:
        for statement in (policy.get("Statement", []) if isinstance(policy, dict) else []):
            granted = statement.get("Action", [])
            granted = granted if isinstance(granted, list) else [granted]
            if any(fnmatch.fnmatchcase("iam:passrole", str(a).lower()) for a in granted):
                passed_to = (statement.get("Condition", {}) or {}).get("StringEquals", {}).get("iam:PassedToService")
                report.check(statement.get("Resource") == {"Ref": "TaskRoleArns"}
                             and passed_to == "ecs-tasks.amazonaws.com",
                             f"{ROLLBACK_FUNCTION} iam:PassRole is limited to TaskRoleArns and ecs-tasks.amazonaws.com",
                             f"statement {statement!r}")

    schedules = [ev for ev in function_events(template, ROLLBACK_FUNCTION).values()
                 if isinstance(ev, dict) and ev.get("Type") == "Schedule"]
    report.check(len(schedules) == 1,
                 f"{ROLLBACK_FUNCTION} has one Schedule event (stuck-deployment sweep)",
                 f"found {len(schedules)}")
    for ev in schedules:
        sprops = ev.get("Properties", {}) or {}
        report.check(sprops.get("Schedule") == {"Ref": "SweepSchedule"},
                     f"{ROLLBACK_FUNCTION} Schedule is !Ref SweepSchedule",
                     f"got {sprops.get('Schedule')!r}")
        report.check(not {"Input", "InputTransformer", "InputPath"} & set(sprops),
                     f"{ROLLBACK_FUNCTION} Schedule sends the standard Scheduled Event (no Input)",
                     f"has {sorted({'Input', 'InputTransformer', 'InputPath'} & set(sprops))}")

    deploy_retry = [e.get("RetryPolicy") for e in rule_events(template, DEPLOY_FUNCTION)]
    rollback_retry = [e.get("RetryPolicy") for e in rule_events(template, ROLLBACK_FUNCTION)]
    report.check(len(rollback_retry) == 1 and rollback_retry[0] is not None
                 and deploy_retry == rollback_retry,
                 f"{ROLLBACK_FUNCTION} rule has the deploy rule's explicit RetryPolicy",
                 f"{rollback_retry!r} != {deploy_retry!r}")


def check_foreign_account_refused(report: Report, label: str, pattern: dict,
                                  ecs: dict[str, dict]) -> None:
    """On an event bus that also receives other accounts' events (EventBridge keeps the sender's
    account on them), none reaches the rule. moto cannot deliver such an event to a rule (PutEvents
    stamps the caller's account, and a cross-account bus target stamps the receiver's), so each ECS
    sample, with another account, goes through moto's own pattern matcher: the one that decides
    deliveries in the runs below, where the same samples with ACCOUNT do arrive."""
    from moto.events.models import EventPattern

    matcher = EventPattern.load(json.dumps(pattern))
    for name in sorted(n for n, ok in ROLLBACK_EXPECTED.items() if ok and n in ecs):
        own = copy.deepcopy(ecs[name])
        foreign = dict(own, account=OTHER_ACCOUNT)
        report.check(matcher.matches_event(own) and not matcher.matches_event(foreign),
                     f"[{label}] {name} of account {OTHER_ACCOUNT} does not match "
                     f"(of {own.get('account')}: matches)",
                     f"own: {matcher.matches_event(own)}, foreign: {matcher.matches_event(foreign)}")


# --------------------------------------------------------------------------
# moto
# --------------------------------------------------------------------------


def clients(endpoint: str):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )
    return (session.client("events", endpoint_url=endpoint),
            session.client("sqs", endpoint_url=endpoint))


def put_entry(ev: dict) -> dict:
    return {
        "Source": ev["source"],
        "DetailType": ev["detail-type"],
        "Detail": json.dumps(ev["detail"]),
        "Resources": ev.get("resources", []),
        "Time": dt.datetime.fromisoformat(ev["time"].replace("Z", "+00:00")),
    }


def run_scenario(report: Report, events, sqs, label: str, pattern: dict,
                 samples: dict[str, dict], expected: dict[str, bool],
                 sentinel: dict, sentinel_pattern: dict | None = None) -> None:
    """Install `pattern` as a rule into a fresh queue, send every sample and then the sentinel.

    The sentinel must reach the queue: through `pattern` itself, or, when `pattern` is to match
    nothing at all, through a second rule with `sentinel_pattern` into the same queue.
    """
    tag = uuid.uuid4().hex[:8]
    queue_url = sqs.create_queue(QueueName=f"pushdeploy-check-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"pushdeploy-check-{tag}"
    try:
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
        if sentinel_pattern is not None:
            events.put_rule(Name=f"{rule}-sentinel", EventPattern=json.dumps(sentinel_pattern),
                            State="ENABLED")
            events.put_targets(Rule=f"{rule}-sentinel", Targets=[{"Id": "queue", "Arn": queue_arn}])

        names = sorted(samples)
        by_event_id: dict[str, str] = {}
        for start in range(0, len(names), 10):
            batch = names[start:start + 10]
            resp = events.put_events(Entries=[put_entry(samples[n]) for n in batch])
            if not report.check(resp.get("FailedEntryCount", 0) == 0,
                                f"[{label}] PutEvents accepted {len(batch)} samples",
                                json.dumps(resp.get("Entries"))):
                return
            for n, entry in zip(batch, resp["Entries"]):
                by_event_id[entry["EventId"]] = n
        # The sentinel is sent last and matches the rule by construction: once
        # it is in the queue, everything sent before it has been routed.
        resp = events.put_events(Entries=[put_entry(sentinel)])
        sentinel_id = resp["Entries"][0].get("EventId")

        received: dict[str, dict] = {}
        unknown: list[str] = []
        want = {n for n, ok in expected.items() if ok}
        seen_sentinel = False
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1).get("Messages", [])
            for msg in msgs:
                sqs.delete_message(QueueUrl=queue_url,
                                   ReceiptHandle=msg["ReceiptHandle"])
                body = json.loads(msg["Body"])
                if body.get("id") == sentinel_id:
                    seen_sentinel = True
                elif body.get("id") in by_event_id:
                    received[by_event_id[body["id"]]] = body
                else:
                    unknown.append(msg["Body"][:200])
            if seen_sentinel and want <= set(received):
                break

        report.check(seen_sentinel,
                     f"[{label}] rule delivers a matching event (sentinel)",
                     f"no sentinel within {DEADLINE_SECONDS:.0f}s")
        report.check(not unknown, f"[{label}] no unexpected messages", "; ".join(unknown))
        for name in names:
            should = expected[name]
            got = name in received
            verb = "arrives" if should else "does not arrive"
            why = "arrived" if got else "did not arrive"
            ok = got == should
            if ok and got:
                ok, why = delivered_matches(received[name], samples[name])
            report.check(ok, f"[{label}] {name} {verb}", why)
    finally:
        try:
            events.remove_targets(Rule=rule, Ids=["queue"])
            events.delete_rule(Name=rule)
            if sentinel_pattern is not None:
                events.remove_targets(Rule=f"{rule}-sentinel", Ids=["queue"])
                events.delete_rule(Name=f"{rule}-sentinel")
            sqs.delete_queue(QueueUrl=queue_url)
        except Exception as exc:  # cleanup only; the server is discarded anyway
            print(f"note: cleanup of {rule} failed: {exc}")


def delivered_matches(body: dict, sample: dict) -> tuple[bool, str]:
    """The delivered envelope must carry the fields the pattern matches on.

    moto's default target input drops "account": it is set on the event moto matches (from
    the caller's credentials: ACCOUNT, as in every sample), which is where the rollback rule's
    `account` is matched, but not copied into the message; so "account" is not compared.
    """
    diffs = [k for k in ("source", "detail-type", "detail", "region", "resources", "time")
             if body.get(k) != sample.get(k)]
    return (not diffs, "delivered event differs in " + ", ".join(f"{k}: {body.get(k)!r} != {sample.get(k)!r}" for k in diffs))


# --------------------------------------------------------------------------


def main() -> int:
    os.chdir(ROOT)
    # Loopback traffic to the in-process server must not go through a proxy.
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    report = Report()

    try:
        template = load_template()
        report.check(True, "template.yaml loads with cfn-lint's decoder")
    except Exception as exc:
        report.check(False, "template.yaml loads with cfn-lint's decoder", str(exc))
        return finish(report)

    check_rollback_definition(report, template)
    check_no_wildcard_mutations(report, template)
    check_nothing_dropped(report, template)

    raw_patterns: dict[str, dict] = {}
    for function in (DEPLOY_FUNCTION, ROLLBACK_FUNCTION):
        patterns = rule_patterns(template, function)
        if report.check(len(patterns) == 1 and isinstance(patterns[0], dict),
                        f"{function} has exactly one EventBridgeRule event with a Pattern",
                        f"found {len(patterns)}"):
            raw_patterns[function] = patterns[0]

    ecr = load_samples(report, "ecr-*.json")
    ecs = load_samples(report, "ecs-*.json")
    report.check(bool(ecr), "events/ has ecr-*.json samples")
    report.check(bool(ecs), "events/ has ecs-*.json samples")
    for name in sorted(ecr):
        check_sample_shape(report, name, ecr[name])
    for name in sorted(ecs):
        check_ecs_sample_shape(report, name, ecs[name])
    samples = {**ecr, **ecs}
    ids = [str(s.get("id")) for s in samples.values()]
    report.check(len(ids) == len(set(ids)), "sample ids are unique")
    for value, table in SCENARIOS.items():
        check_expectation_table(report, f"{DEPLOY_FUNCTION} RepositoryFilter={value!r}",
                                "ecr-*.json", ecr, table)
    check_expectation_table(report, ROLLBACK_FUNCTION, "ecs-*.json", ecs, ROLLBACK_EXPECTED)

    # (label, pattern, expected deliveries over every sample, sentinel, sentinel's own pattern)
    runs: list[tuple[str, dict, dict[str, bool], dict, dict | None]] = []
    if DEPLOY_FUNCTION in raw_patterns and "ecr-push.json" in ecr:
        for value in SCENARIOS:
            label = f"{DEPLOY_FUNCTION} RepositoryFilter={value!r}"
            try:
                params = parameter_values(template, {"RepositoryFilter": value})
                pattern = resolve(copy.deepcopy(raw_patterns[DEPLOY_FUNCTION]), template, params)
            except Unresolvable as exc:
                report.check(False, f"[{label}] pattern resolves", str(exc))
                continue
            repo = pattern.get("detail", {}).get("repository-name")
            want_repo = [value] if value else None
            report.check(repo == want_repo,
                         f"[{label}] pattern resolves, repository-name {want_repo}: "
                         + json.dumps(pattern, sort_keys=True),
                         f"got {repo!r}")
            sentinel = copy.deepcopy(ecr["ecr-push.json"])
            sentinel["detail"]["repository-name"] = value or "pushdeploy-sentinel"
            expected = {n: SCENARIOS[value].get(n, False) for n in ecr}
            expected.update({n: False for n in ecs})  # never to the deploy rule
            runs.append((label, pattern, expected, sentinel, None))
    if ROLLBACK_FUNCTION in raw_patterns and ecs:
        label = ROLLBACK_FUNCTION
        try:
            pattern = resolve(copy.deepcopy(raw_patterns[ROLLBACK_FUNCTION]), template,
                              parameter_values(template, {}))
            report.check(True, f"[{label}] pattern resolves: "
                         + json.dumps(pattern, sort_keys=True))
            report.check(pattern.get("account") == [ACCOUNT],
                         f"[{label}] pattern matches only the stack's own account (AWS::AccountId)",
                         f"account {pattern.get('account')!r}")
            check_foreign_account_refused(report, label, pattern, ecs)
            expected = {n: ROLLBACK_EXPECTED.get(n, False) for n in ecs}
            expected.update({n: False for n in ecr})  # never to the rollback rule
            sentinel_name = next((n for n, ok in sorted(ROLLBACK_EXPECTED.items())
                                  if ok and n in ecs), None)
            if report.check(sentinel_name is not None,
                            f"[{label}] a sample that must arrive serves as sentinel"):
                runs.append((label, pattern, expected, copy.deepcopy(ecs[sentinel_name]), None))
            # The same rule, of a stack in another account: the samples (ACCOUNT's, as moto
            # stamps them) reach none of it. Its sentinel, a custom event, has a rule of its own.
            foreign_label = f"{ROLLBACK_FUNCTION} of a stack in {OTHER_ACCOUNT}"
            foreign = resolve(copy.deepcopy(raw_patterns[ROLLBACK_FUNCTION]), template,
                              parameter_values(template, {"AWS::AccountId": OTHER_ACCOUNT}))
            sentinel = {"source": "pushdeploy.check", "detail-type": "Sentinel", "detail": {},
                        "resources": [], "time": "2026-01-01T00:00:00Z"}
            runs.append((foreign_label, foreign, {n: False for n in samples}, sentinel,
                         {"source": ["pushdeploy.check"]}))
        except Unresolvable as exc:
            report.check(False, f"[{label}] pattern resolves", str(exc))

    if not runs:
        return finish(report)

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        report.check(True, f"moto server listening on {endpoint}")
        events, sqs = clients(endpoint)
        for label, pattern, expected, sentinel, sentinel_pattern in runs:
            run_scenario(report, events, sqs, label, pattern, samples, expected, sentinel,
                         sentinel_pattern)
    except Exception as exc:
        report.check(False, "moto scenarios ran", f"{type(exc).__name__}: {exc}")
    finally:
        server.stop()
    return finish(report)


def finish(report: Report) -> int:
    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
