# Security baseline and compliance evidence (issue 8). Included by the Makefile.
#   make baseline-check ENV=lab                        read-only check, record in the archive
#   make baseline-report ENV=lab BASELINE_LANG=en BASELINE_FORMAT=csv
#   make baseline ENV=staging TICKET=CHG-123           apply (high risk in production: --yes needed there)
BASELINE_LANG   ?= zh
BASELINE_FORMAT ?= html
BASELINE_OUT    ?= var/reports/baseline-$(ENV).$(BASELINE_LANG).$(BASELINE_FORMAT)

.PHONY: baseline-check baseline baseline-report test-baseline-lab molecule-baseline

baseline-check: venv ## Read-only security baseline check of ENV (per host and control: pass/fail/waived/not applicable)
	$(OPSCTL) run baseline-check --env $(ENV) $(if $(REASON),--reason "$(REASON)") $(ARGS)

baseline: venv ## Apply the security baseline to ENV, one host at a time (TICKET=... in production; ARGS=--yes without a terminal)
	$(OPSCTL) run baseline --env $(ENV) $(if $(TICKET),--ticket "$(TICKET)") $(ARGS)

baseline-report: venv ## Baseline evidence report of the newest baseline-check: BASELINE_LANG=zh|en BASELINE_FORMAT=html|csv|json
	@mkdir -p $(dir $(BASELINE_OUT))
	$(OPSCTL) report baseline --env $(ENV) --lang $(BASELINE_LANG) --format $(BASELINE_FORMAT) --out $(BASELINE_OUT)

molecule-baseline: venv ## Molecule scenario of the baseline role (converge, idempotence, check, verify)
	lab/molecule-all.sh baseline

test-baseline-lab: lab ## Apply the baseline to the lab and prove nobody is locked out (hardens the lab; the system installed first, e.g. `make demo`; `make test` runs it last)
	OPSCTL_BASELINE_LAB=1 $(VENV)/bin/pytest -q tests/test_baseline_lab_apply.py
