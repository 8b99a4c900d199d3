# envcredit-ops: every target an engineer, CI or an auditor needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := $(CURDIR)/.venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
OPSCTL   := $(BIN)/opsctl
ENV      ?= lab
# The lab's timers sign their records with a key of this machine (made by the lab tests, never
# in security/allowed_signers); this file names it, so what make verifies against the lab
# (`make demo`, `make verify-records`) verifies their records too. Only with ENV=lab: a target
# run for staging or production (CI's ci-plan, ci-apply) never trusts a key of this machine.
# Set OPSCTL_ALLOWED_SIGNERS to use others.
ifeq ($(ENV),lab)
export OPSCTL_ALLOWED_SIGNERS ?= $(CURDIR)/var/signing/lab-allowed_signers
endif
SCALE    ?= 0
TICKET   ?=
REASON   ?=
LIMIT    ?=
ARGS     ?=
ROLES    ?=
PYTEST_ARGS ?=
# The release `make demo` (and `make test-nightly`) builds from app/ and installs
DEMO_VERSION ?= 1.0.0
# The system on the lab, as `make demo` and `make test-nightly` install it: the data set, a
# release built from app/, the application tier behind nginx. $(1): the records' reason.
INSTALL_SYSTEM = $(OPSCTL) run seed --env lab --reason "$(1)" \
	&& $(OPSCTL) releases build --version '$(DEMO_VERSION)' \
	&& $(OPSCTL) run site-app --env lab --reason "$(1)" -e app_version='$(DEMO_VERSION)'
comma    := ,
# prometheus: its promtool checks and unit-tests the alert rules in `make lint`
APT_PKGS := podman runc debootstrap e2fsprogs mount openssh-client rsync git sqlite3 zstd curl chromium fonts-noto-cjk prometheus iproute2 age

export PATH := $(BIN):$(PATH)
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

RUN_OPTS = --env $(ENV) $(if $(LIMIT),--limit '$(LIMIT)') $(if $(TICKET),--ticket '$(TICKET)') \
           $(if $(REASON),--reason '$(REASON)') $(ARGS)

.PHONY: help setup apt venv lab lab-down lab-reset lab-status image ops docs lane-lab lane-lab2 lane-nolab lane-unit test-nightly \
        records verify-records export-html lint fmt collection mypy pytest unit e2e molecule test demo \
        bench bench-overhead bench-archive bench-alerting bench-redact mutate clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: ENV=$(ENV) TICKET= REASON= LIMIT= ARGS= SCALE=$(SCALE)"

setup: apt venv ## Install the Debian packages and the Python venv (what is missing)

apt: ## Install the Debian packages the lab needs, when missing
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	  case " $$missing " in *" prometheus "*) \
	    if [ -d /run/systemd/system ]; then \
	      echo "prometheus is installed for its promtool only: its service stays off on the controller"; \
	      $$SUDO systemctl disable --now -q prometheus.service || true; \
	    fi ;; \
	  esac; \
	fi

venv: $(STAMP) ## Create .venv with the pinned tool versions

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

image: setup ## Build the lab's Debian 12 image (once; cached by content hash)
	lab/build-image.sh

lab: setup ## Start the lab (idempotent); SCALE=N adds N fleet hosts
	lab/lab.sh up $(SCALE)

lab-down: ## Remove the lab's containers, network, key (keeps the image); the second lab's too
	lab/lab.sh down
	lab/lab2.sh down

lab-reset: setup ## Recreate the lab from scratch
	lab/lab.sh reset $(SCALE)

lab-status: ## One line per lab host
	lab/lab.sh status

ops: venv ## List the operations catalog
	$(OPSCTL) ops

docs: venv ## Regenerate from the catalog: README operations, docs/awx.md + docs/ci.md tables, mk/operations.mk
	$(BIN)/python -m orchestrator.docsgen

records: venv ## List the change records
	$(OPSCTL) records list $(ARGS)

verify-records: venv ## Verify the change-record chain
	$(OPSCTL) records verify

export-html: venv ## Export the archive as an offline HTML browser (var/reports/archive.html)
	@mkdir -p var/reports
	$(OPSCTL) records export --format html --out var/reports/archive.html

lint: venv lint-rules ## yamllint, ansible-lint (production profile), collection sanity, ruff (check, format), mypy, promtool (alert rules)
	$(BIN)/yamllint -s .
	ANSIBLE_VAULT_PASSWORD_FILE=$(CURDIR)/lab/lab-only-vault-password $(BIN)/ansible-lint
	@# ansible-test sanity on the built collection: only the tests that run offline here
	@# (compile on Python 3.11 and those needing no pip packages; why: ci/collection-sanity.sh)
	ci/collection-sanity.sh
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/mypy ci/test_times.py ci/plan.py ci/approver.py ci/mutate.py

fmt: venv ## Format the Python code (ruff format) and apply ruff's safe fixes
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

collection: venv ## Build the collection envcredit.ops (galaxy.yml) -> var/collection/envcredit-ops-<version>.tar.gz
	$(BIN)/ansible-galaxy collection build --force --output-path var/collection

mypy: venv
	$(BIN)/mypy
	$(BIN)/mypy ci/test_times.py ci/plan.py ci/approver.py ci/mutate.py

unit: venv ## pytest without the lab
	$(BIN)/pytest -m "not lab" -q

e2e: lab ## pytest end-to-end tests against the running lab
	$(BIN)/pytest -m lab -q

pytest: lab ## All pytest tests (unit + lab end-to-end); BASELINE_LAB=1 adds the baseline apply flow (last)
	$(if $(BASELINE_LAB),OPSCTL_BASELINE_LAB=1) $(BIN)/pytest -q $(PYTEST_ARGS)

molecule: image ## Every role's molecule scenario (create, converge, idempotence, check, verify, destroy); ROLES=a,b for some
	lab/molecule-all.sh $(subst $(comma), ,$(ROLES))

TIMES_DIR := $(CURDIR)/var/test-times.d

test: ## Everything CI runs: setup, lab, then four lanes side by side (two labs; lint + molecule; unit); prints the time table
	@# The lanes take the lab as started (-o lab: not `lab.sh up` a second time, 11 s). The lab
	@# needs the venv first: its alerts receiver is `opsctl alerts serve`.
	@# Four lanes on two cores: (1) the lab's end-to-end tests but the databases', one at a
	@# time (they share the lab's hosts and ports), the baseline's apply flow last; (2) the
	@# databases' lab tests (LAB2_TESTS) on a second lab of their own (lab/lab2.sh, started in
	@# the lane); (3) the linters, then every role's molecule scenario (containers of their
	@# own); (4) the tests that need no lab. The lab tests wait on SSH round trips, services and
	@# clocks (a third of the two cores idle with one lab lane), so the two lab lanes overlap
	@# their waits; everything that does not need a lab runs beside them.
	@# The apply flow leaves the lab hardened (`make lab-reset` returns to a plain lab; every
	@# test also passes on a hardened one).
	@# Each part's wall time goes to var/test-times.d; ci/test_times.py prints the table
	@# (also when a part failed) and writes var/test-times.json.
	@rm -rf $(TIMES_DIR); mkdir -p $(TIMES_DIR); export TEST_TIMES_DIR=$(TIMES_DIR); rc=0; \
	ci/timed.sh setup $(MAKE) --no-print-directory setup \
	&& ci/timed.sh lab $(MAKE) --no-print-directory lab \
	&& ci/timed.sh lanes $(MAKE) --no-print-directory -j4 --output-sync=target -o lab lane-lab lane-lab2 lane-nolab lane-unit \
	|| rc=$$?; \
	python3 ci/test_times.py $(TIMES_DIR) $(CURDIR)/var/test-times.json || true; \
	exit $$rc

# The lab's end-to-end tests run in two lanes, each on a lab of its own: the first lab (`make
# lab`) and a second one beside it (lab/lab2.sh: the same hosts, names and ports in a network
# namespace and container store of their own, run from a copy of this checkout). The files
# below (the databases' tests: backups, PITR, rebuilds, transfers) run on the second lab, every
# other lab test on the first (the baseline's apply flow last). Within a lab, one test at a time.
LAB2_TESTS := tests/test_db_faults_lab.py tests/test_db_lab.py tests/test_db_mariadb_archive_lab.py \
	tests/test_db_mariadb_pitr_lab.py tests/test_db_pgbackrest_lab.py tests/test_db_pitr_lab.py \
	tests/test_db_rebuild_lab.py tests/test_db_swap_lab.py tests/test_db_transfer_lab.py
LAB_LANE ?= lab
LAB_LANE_TESTS ?= -m lab $(addprefix --ignore=,$(LAB2_TESTS))
lane-lab: lab ## (make test's first lane) the lab's end-to-end tests but LAB2_TESTS, baseline apply flow last
	ci/timed.sh lanes.$(LAB_LANE) env OPSCTL_BASELINE_LAB=1 $(BIN)/pytest -q $(LAB_LANE_TESTS) --junitxml=$(TIMES_DIR)/pytest-$(LAB_LANE).xml

lane-lab2: image ## (make test's second lane) LAB2_TESTS on the second lab (lab/lab2.sh), started first
	lab/lab2.sh run $(MAKE) --no-print-directory lane-lab LAB_LANE=lab2 'LAB_LANE_TESTS=-m lab $(LAB2_TESTS)' TIMES_DIR=$(TIMES_DIR)

# The no-lab lane and the unit lane. With one lab, the lab lane was the long pole and the no-lab
# lane yielded the CPU to it (nice 10, molecule's containers at CPU weight 256). With two labs the
# two cores are busy all through the run and the lab lanes end first (2026-12-02, 44m11s: lab lanes
# 36 min, the no-lab lane 43 min, its unit tests alone on one core at the end), so no lane yields
# by default: NOLAB_NICE and NOLAB_CPU_SHARES (podman's default weight 1024) remain as knobs.
# The unit tests (one process) run as a lane of their own from the start instead of after molecule.
NOLAB_NICE ?= 0
NOLAB_CPU_SHARES ?= 1024
lane-nolab: image ## (make test's third lane) lint, then every molecule scenario
	@rc=0; export MOLECULE_CPU_SHARES=$(NOLAB_CPU_SHARES); N="nice -n $(NOLAB_NICE)"; \
	ci/timed.sh lanes.lint $$N $(MAKE) --no-print-directory lint || rc=$$?; \
	ci/timed.sh lanes.molecule $$N lab/molecule-all.sh || rc=$$?; \
	exit $$rc

lane-unit: setup ## (make test's fourth lane) the tests without the lab
	ci/timed.sh lanes.unit nice -n $(NOLAB_NICE) $(BIN)/pytest -q -m "not lab" --junitxml=$(TIMES_DIR)/pytest-unit.xml

test-nightly: ## What `make test` leaves out (tests/README.md): the baseline apply flow with Lynis on every lab host, from a fresh lab; the GitLab lint job
	@# A fresh (unhardened) lab, the system installed on it as `make demo` does (the flow proves
	@# the site and the database still answer), records in var/nightly/archive.
	$(MAKE) --no-print-directory lab-reset
	export OPSCTL_ARCHIVE=$(CURDIR)/var/nightly/archive; $(call INSTALL_SYSTEM,nightly test)
	OPSCTL_BASELINE_LAB=1 OPSCTL_LYNIS_ALL=1 $(BIN)/pytest -q tests/test_baseline_lab_apply.py
	@# The GitLab lint job in a clone through gitlab-ci-local: `make lint` again (make test runs it).
	OPSCTL_NIGHTLY=1 $(BIN)/pytest -q tests/test_ci_pipeline.py::test_gitlab_lint_job

demo: lab ## Start the lab and the system: seed, release + site-app, inspect, backup + verify; records, reports
	$(OPSCTL) ops
	$(OPSCTL) run ping --env lab --reason demo
	$(call INSTALL_SYSTEM,demo)
	lab/lab.sh check
	@code=$$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/healthz); \
	 test "$$code" = 200 || { echo "demo: the site does not answer through nginx (healthz: $$code)" >&2; exit 1; }
	$(OPSCTL) run inspect --env lab --reason demo
	$(OPSCTL) run backup --env lab --reason demo
	$(OPSCTL) run backup-verify --env lab --reason demo
	$(OPSCTL) backups list --env lab
	$(OPSCTL) releases --env lab
	$(OPSCTL) records list --limit 10
	$(OPSCTL) records verify
	@mkdir -p var/reports
	$(OPSCTL) report inspect --lang zh --out var/reports/inspect-zh.html
	$(OPSCTL) report inspect --lang en --out var/reports/inspect-en.html
	$(OPSCTL) records export --format html --out var/reports/archive.html
	@echo; echo "the system:        http://127.0.0.1:8080/  (release $(DEMO_VERSION); health: /healthz)"; \
	 echo "change records:    $${OPSCTL_ARCHIVE:-$(CURDIR)/var/archive}  (make records; opsctl records show ID)"; \
	 echo "backup store:      $(CURDIR)/var/backups/lab"; \
	 echo "releases:          $(CURDIR)/var/releases"; \
	 echo "inspection report: $(CURDIR)/var/reports/inspect-zh.html (en: inspect-en.html)"; \
	 echo "HTML archive:      $(CURDIR)/var/reports/archive.html"

bench: bench-overhead bench-archive bench-redact ## All benchmarks (ratios, not timed tests)

bench-overhead: lab ## opsctl run vs bare ansible-playbook, alternated
	$(BIN)/python bench/overhead/run.py $(ARGS)

bench-alerting: lab ## Failure -> on-call notification on the lab (nginx stopped; monitoring applied first)
	$(OPSCTL) run monitoring --env lab --reason bench-alerting
	$(BIN)/python bench/alerting/run.py $(ARGS)

bench-archive: venv ## 100,000 synthetic records: list with a filter, verify
	$(BIN)/python bench/archive/run.py $(ARGS)

bench-redact: venv ## Redaction of events and stdout: throughput, key cache and naive ratios
	$(BIN)/python bench/redact/run.py $(ARGS)

mutate: venv ## Mutation testing of the auditor's core (mutmut; MODULES=redact,lock for some; hours for all; tests/MUTATION.md)
	$(BIN)/python ci/mutate.py $(if $(MODULES),--modules $(MODULES)) $(ARGS)

# Each area of duty adds its targets in mk/<area>.mk; mk/operations.mk (generated by
# `make docs` from the catalog) has `make OP` for every plain operation (ping, inspect...).
-include mk/*.mk

clean: ## Remove caches (not the archive, not the lab)
	rm -rf .pytest_cache .mypy_cache var/facts var/run
