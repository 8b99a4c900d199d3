# OS maintenance (issue 4): patching with compliance reports, fault diagnosis.
# Included by the Makefile.
#   make patch-scan ENV=lab                 read-only scan of pending updates
#   make patch ENV=lab ARGS='-e os_patch_scope=security'
#   make patch-report ENV=lab PATCH_FORMAT=csv
#   make diagnose ENV=lab LIMIT=lab-app1
PATCH_FORMAT ?= html
PATCH_LANG   ?= zh
PATCH_OUT    ?= var/reports/patches-$(ENV).$(PATCH_LANG).$(PATCH_FORMAT)

.PHONY: patch-report lab-localrepo bench-fanout

patch-report: venv ## Patch compliance report from the newest patch-scan: PATCH_FORMAT=html|csv|json|md PATCH_LANG=zh|en
	@mkdir -p $(dir $(PATCH_OUT))
	$(OPSCTL) report patches --env $(ENV) --format $(PATCH_FORMAT) --lang $(PATCH_LANG) --out $(PATCH_OUT)

lab-localrepo: venv ## Lab: serve the local apt repository to the hosts, packages at the patching baseline
	ANSIBLE_VAULT_PASSWORD_FILE=lab/lab-only-vault-password $(BIN)/ansible-playbook -i inventories/lab lab/localrepo/prepare.yml

bench-fanout: venv ## Fan-out benchmark: inspect over the fleet, project ansible.cfg vs stock (make lab SCALE=20 first)
	$(BIN)/python bench/fanout/run.py $(ARGS)
