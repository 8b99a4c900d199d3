# Test areas (issue 23): one area of the suite alone, against the running lab.
#   make test-db        database: backup, restore, faults, transfer, retention, the tools
#   make test-app       application tier: deploy/rollback, update-stack, emergency runbooks
#   make test-os        OS: patching, diagnosis and their reports
#   make test-inspect   inspection, forecasts, reports, SLA
#   make test-baseline  security baseline (check; BASELINE_LAB=1 adds the apply flow)
#   make test-lab       the lab itself (hosts, names, services)
#   make test-orchestrator  opsctl without the lab (records, archive, CLI, CI, AWX)
# Add PYTEST_ARGS='-k name' to narrow further; `make molecule ROLES=inspect` for scenarios.
TEST_AREA_db           := tests/test_db_*.py
TEST_AREA_app          := tests/test_app_*.py tests/test_update_stack_lab.py tests/test_emergency_lab.py tests/test_e2e_lab.py
TEST_AREA_os           := tests/test_os_*.py
TEST_AREA_inspect      := tests/test_inspect_lab.py tests/test_forecast.py tests/test_report_*.py tests/test_incidents.py \
                          tests/test_workdays.py tests/test_oncall.py tests/test_schedule.py tests/test_alerts.py \
                          tests/test_monitoring_lab.py tests/test_availability.py tests/test_inspect_backups.py tests/test_alerts.py
TEST_AREA_baseline     := tests/test_baseline_*.py
TEST_AREA_lab          := tests/lab
TEST_AREA_orchestrator := tests/test_run.py tests/test_records.py tests/test_archive.py tests/test_cli_*.py \
                          tests/test_redact.py tests/test_store.py tests/test_ci_*.py tests/test_awx_*.py
TEST_AREAS := db app os inspect baseline lab orchestrator

.PHONY: $(addprefix test-,$(TEST_AREAS)) test-times

pytest_area = $(if $(BASELINE_LAB),OPSCTL_BASELINE_LAB=1) $(BIN)/pytest -q $(wildcard $(TEST_AREA_$(1))) $(PYTEST_ARGS)

test-db: lab ## Database tests: backup, restore, faults, transfer, retention, the tools
	$(call pytest_area,db)

test-app: lab ## Application tier tests: deploy/rollback, update-stack, emergency runbooks, e2e
	$(call pytest_area,app)

test-os: lab ## OS tests: patching, diagnosis, their reports
	$(call pytest_area,os)

test-inspect: lab ## Inspection, forecasts, reports, SLA, schedules, on-call
	$(call pytest_area,inspect)

test-baseline: lab ## Security baseline tests (read-only lab check; BASELINE_LAB=1 adds the apply flow)
	$(call pytest_area,baseline)

test-lab: lab ## The lab itself: hosts, names between tiers, services per role
	$(call pytest_area,lab)

test-orchestrator: venv ## opsctl without the lab: records, archive, CLI, redaction, store, CI, AWX
	$(call pytest_area,orchestrator)

test-times: ## Print the time table of the last `make test` (var/test-times.json)
	@python3 ci/test_times.py $(TIMES_DIR) $(CURDIR)/var/test-times.json
