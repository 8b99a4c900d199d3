# Application operations (issue 5). Included by the Makefile.
#   make app-release VERSION=1.2.0          var/releases/envcredit-1.2.0.tar.gz + .sha256
#   make deploy ENV=lab VERSION=1.2.0        rolling deploy behind the health gate
#   make rollback ENV=lab [VERSION=1.1.0]    back to the previous (or the named) release
VERSION     ?=
LOGS_WINDOW ?= 5
LOGS_LANG   ?= zh

APP_VERSION_ARG = $(if $(VERSION),-e app_version='$(VERSION)')

.PHONY: app-release releases site-app deploy rollback update-stack logs-analyze

app-release: venv ## Build the release artifact from app/: VERSION=x -> var/releases/envcredit-x.tar.gz + .sha256
	@test -n "$(VERSION)" || { echo "usage: make app-release VERSION=x" >&2; exit 2; }
	$(OPSCTL) releases build --version '$(VERSION)'

releases: venv ## Which application release runs on which host (from the change records)
	$(OPSCTL) releases --env $(ENV) $(ARGS)

site-app: venv ## Install the application tier (nginx + app hosts) at VERSION=x
	$(OPSCTL) run site-app $(RUN_OPTS) $(APP_VERSION_ARG)

deploy: venv ## Rolling deploy of VERSION=x behind the health gate (automatic rollback of a failing host)
	@test -n "$(VERSION)" || { echo "usage: make deploy ENV=... VERSION=x" >&2; exit 2; }
	$(OPSCTL) run deploy $(RUN_OPTS) $(APP_VERSION_ARG)

rollback: venv ## Rolling rollback to the previous release, or VERSION=x
	$(OPSCTL) run rollback $(RUN_OPTS) $(APP_VERSION_ARG)

update-stack: venv ## Security updates of nginx and the runtime, rolling behind the health gate [PACKAGES=nginx,python3*]
	$(OPSCTL) run update-stack $(RUN_OPTS) $(if $(PACKAGES),-e update_stack_packages='$(PACKAGES)')

logs-analyze: venv ## Analyse the latest collected logs: LOGS_WINDOW=minutes LOGS_LANG=zh|en (HTML in var/reports/)
	@mkdir -p var/reports
	$(OPSCTL) logs analyze --window $(LOGS_WINDOW) --lang $(LOGS_LANG) --html var/reports/logs.$(LOGS_LANG).html $(ARGS)

