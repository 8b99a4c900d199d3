# Daily inspection, its report, forecasts, schedules, monthly report (issue 6). Included by the Makefile.
#   make inspect-report ENV=lab INSPECT_LANG=zh        newest inspection as zh-CN HTML under var/reports/
#   make monthly-report MONTH=2026-11 MONTHLY_LANG=en
#   make schedule-install [TARGET=local|HOST]           systemd timers from schedules/schedules.yml
MONTH          ?= $(shell date +%Y-%m)
INSPECT_LANG   ?= zh
INSPECT_FORMAT ?= html
INSPECT_OUT    ?= var/reports/inspect-$(ENV).$(INSPECT_LANG).$(INSPECT_FORMAT)
MONTHLY_LANG   ?= zh
MONTHLY_FORMAT ?= html
MONTHLY_OUT    ?= var/reports/monthly-$(MONTH).$(MONTHLY_LANG).$(MONTHLY_FORMAT)
TARGET         ?= local

.PHONY: inspect-report monthly-report schedule-install schedule-list schedule-remove

inspect-report: venv ## Report of the newest inspection of ENV: INSPECT_LANG=zh|en INSPECT_FORMAT=html|md|json
	@mkdir -p $(dir $(INSPECT_OUT))
	$(OPSCTL) report inspect --latest --env $(ENV) --lang $(INSPECT_LANG) --format $(INSPECT_FORMAT) --out $(INSPECT_OUT) $(ARGS)

monthly-report: venv ## Monthly service report: MONTH=YYYY-MM MONTHLY_LANG=zh|en MONTHLY_FORMAT=html|md|json
	@mkdir -p $(dir $(MONTHLY_OUT))
	$(OPSCTL) report monthly --month $(MONTH) --lang $(MONTHLY_LANG) --format $(MONTHLY_FORMAT) --out $(MONTHLY_OUT) $(ARGS)

schedule-install: venv ## Install the timers of schedules/schedules.yml on TARGET (local or a lab host)
	$(OPSCTL) schedule install --target $(TARGET) $(ARGS)

schedule-list: venv ## List the installed envcredit-ops timers on TARGET
	$(OPSCTL) schedule list --target $(TARGET) $(ARGS)

schedule-remove: venv ## Remove the envcredit-ops timers from TARGET
	$(OPSCTL) schedule remove --target $(TARGET) $(ARGS)

