# GENERATED from the operations catalog by `make docs` (orchestrator/docsgen.py): do not edit.
# `make OP` for every operation whose make_target is plain (the default): opsctl run OP with
# ENV, LIMIT, TICKET, REASON and ARGS (RUN_OPTS in the Makefile). Operations with
# make_target: custom have their own rule in mk/<area>.mk.
PLAIN_OPS := ping inspect maintenance-on maintenance-off recover logs seed backup backup-verify rebuild-db restore-drill monitoring patch-scan patch diagnose

.PHONY: $(PLAIN_OPS)

$(PLAIN_OPS): venv
	$(OPSCTL) run $@ $(RUN_OPTS)

# for `make help`
ping: ## Check connectivity to the hosts and gather their facts
inspect: ## Daily inspection, read-only (system, services, certificates, health, databases, backups, updates, log errors)
maintenance-on: ## Show the zh-CN maintenance page (HTTP 503) through nginx (emergency runbooks)
maintenance-off: ## Serve the application again through nginx (ends maintenance-on)
recover: ## Fault recovery in order database, application, web tier; starts what is down, waits for health
logs: ## Collect app, nginx and PostgreSQL logs to var/logs/<record id>/ and analyse them (rates, slow requests, errors)
seed: ## Create the envcredit database, accounts and schema; load the seeded data set (empty databases only)
backup: ## Logical, consistent backup of the databases (zstd, manifest, sha256) to the backup store; retention
backup-verify: ## Restore a backup into a scratch database, compare row counts with its manifest, mark it verified
rebuild-db: ## A database host destroyed and recreated empty, rebuilt from the backup host alone (--limit HOST): security baseline, the newest state restored (PostgreSQL: pgBackRest; MariaDB: physical backup and binary logs), counted, archiving started again, the application's access put back; a host that holds the database is refused
restore-drill: ## Restore drill (weekly timer): the newest state on the backup host into a side cluster/instance of each database host (PostgreSQL: pgBackRest; MariaDB: physical backup and binary logs; the live one untouched), rows counted, restore time measured, side cluster/instance dropped
monitoring: ## Install or re-apply the monitoring: node exporter on every host, PostgreSQL/MariaDB exporters (stats-only accounts), Prometheus with the alert rules, Alertmanager to the alert webhook, blackbox probes of the site; publishes the backup times from the store
patch-scan: ## Pending updates per host (security, held, reboot pending, last patch) for the compliance report
patch: ## Install updates (all or -e os_patch_scope=security), rolling, db hosts last; reboot when needed
diagnose: ## Diagnostic bundle per host (tarball under var/diagnostics) and findings by rules
