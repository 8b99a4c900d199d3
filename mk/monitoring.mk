# Monitoring (issue 17): Prometheus, Alertmanager, exporters (role monitoring).
#   make monitoring ENV=lab            install/configure the monitoring host and the exporters
#   make lint-rules                    promtool check + unit tests of the alert rules (part of make lint)
MON_RULES_DIR := roles/monitoring/files/rules
MON_RULES_TESTS := roles/monitoring/files/rules-tests

.PHONY: lint-rules molecule-monitoring

lint-rules: ## promtool check rules + promtool test rules (the alert rules' unit tests)
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "make lint: promtool not found; it comes with the Debian package prometheus (make apt installs it)" >&2; exit 1; }
	promtool check rules $(MON_RULES_DIR)/*.yml
	cd $(MON_RULES_TESTS) && promtool test rules *.test.yml

molecule-monitoring: venv ## Molecule scenario of the monitoring role
	lab/molecule-all.sh monitoring
