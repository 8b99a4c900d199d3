# Incidents, SLA clocks, on-call (issue 7). Included by the Makefile.
#   make incident-check                      for a timer: exit 1 when an SLA clock is breached
#   make sla-report MONTH=2026-11 SLA_LANG=zh SLA_FORMAT=html
# Emergency runbooks (docs/runbooks/), HIGH RISK: confirmation at a terminal, ARGS=--yes in scripts;
# no LIMIT (they span the web, app and db tiers). INCIDENT= links the run to the incident's timeline.
#   make emergency-recover ENV=production TICKET=CHG-1 INCIDENT=INC-20261128-001
#   make emergency-restore ENV=production TICKET=CHG-1 INCIDENT=INC-20261128-001 [BACKUP_ID=ID]
MONTH      ?= $(shell date +%Y-%m)
SLA_LANG   ?= zh
SLA_FORMAT ?= html
SLA_OUT    ?= var/reports/sla-$(MONTH).$(SLA_LANG).$(SLA_FORMAT)
INCIDENT   ?=
BACKUP_ID  ?= latest-verified
INCIDENT_OPTS = $(if $(INCIDENT),--incident '$(INCIDENT)')

.PHONY: incidents incident-check sla-report oncall oncall-week emergency-recover emergency-restore

incidents: venv ## Open incidents with their next deadline
	$(OPSCTL) incident list --open $(ARGS)

incident-check: venv ## Exit 1 when an SLA clock is breached (run it from a timer); warns of deadlines due soon
	$(OPSCTL) incident check $(ARGS)

sla-report: venv ## SLA report of a month: MONTH=YYYY-MM SLA_LANG=zh|en SLA_FORMAT=html|md|json
	@mkdir -p $(dir $(SLA_OUT))
	$(OPSCTL) report sla --month $(MONTH) --lang $(SLA_LANG) --format $(SLA_FORMAT) --out $(SLA_OUT)

oncall: venv ## Who is on call now, the escalation order and the hotline
	$(OPSCTL) oncall now

oncall-week: venv ## The on-call shifts of this week
	$(OPSCTL) oncall list --week

emergency-recover: venv ## HIGH RISK: diagnostic bundle of every tier, then recover db, app, web; health through nginx (INCIDENT=)
	$(OPSCTL) run emergency-recover $(INCIDENT_OPTS) $(RUN_OPTS)

emergency-restore: venv ## HIGH RISK: backup checked, maintenance on, safety backup, restore BACKUP_ID, verify, maintenance off (INCIDENT=)
	$(OPSCTL) run emergency-restore -e backup_id=$(BACKUP_ID) $(INCIDENT_OPTS) $(RUN_OPTS)
