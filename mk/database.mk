# Database operations (issue 3). Included by the Makefile.
#   make backup ENV=lab [LIMIT=lab-db1]
#   make restore ENV=lab LIMIT=lab-db1 BACKUP_ID=latest-verified [TARGET_DB=envcredit_check] ARGS=--yes
BACKUP_ID ?= latest-verified
TARGET_DB ?=

.PHONY: restore backups

restore: venv ## HIGH RISK: restore BACKUP_ID (default latest-verified) [TARGET_DB= beside the live one]
	$(OPSCTL) run restore -e backup_id=$(BACKUP_ID) $(if $(TARGET_DB),-e target_db=$(TARGET_DB)) $(RUN_OPTS)

backups: venv ## List the backups in the store with verification status and age
	$(OPSCTL) backups list --env $(ENV) $(ARGS)

# Export and import (role db_transfer).
#   make export ENV=lab [LIMIT=lab-db1] TABLES=enterprises,ratings [QUERY="SELECT ..."] [NAME=report] [EXPORT_FORMAT=xlsx]
#   make import ENV=lab LIMIT=lab-db1 FILE=path.csv TABLE=indicators ARGS=--yes
TABLES ?=
QUERY ?=
NAME ?=
EXPORT_FORMAT ?=
FILE ?=
TABLE ?=

.PHONY: export import

export: venv ## Export TABLES=a,b and/or QUERY="SELECT ..." to CSV (EXPORT_FORMAT=xlsx: Excel) under var/exports/<env>/<host>/<record id>/
	$(OPSCTL) run export $(if $(TABLES),-e db_export_tables=$(TABLES)) $(if $(QUERY),-e "db_export_query=$(QUERY)") $(if $(NAME),-e db_export_name=$(NAME)) $(if $(EXPORT_FORMAT),-e db_export_format=$(EXPORT_FORMAT)) $(RUN_OPTS)

import: venv ## HIGH RISK: import FILE=path.csv into TABLE= (validated, table backed up, all or nothing)
	$(OPSCTL) run import -e db_import_file=$(abspath $(FILE)) -e db_import_table=$(TABLE) $(RUN_OPTS)

# Benchmark on the `bench` data set (seeded into envcredit_bench on lab-db1 and lab-db2 when
# missing): opsctl backup/restore against the bare tools, zstd against gzip. See bench/db/README.md.
#   make bench-db ARGS="--rounds 3 --hosts lab-db1"
.PHONY: bench-db

bench-db: lab ## DB benchmark: opsctl backup/restore vs bare pg_dump/mariadb-dump, zstd vs gzip (bench data set)
	$(BIN)/python bench/db/run.py $(ARGS)

# Physical backups and point-in-time restore (pgBackRest, mariadb-backup + binary logs) against
# the bare tools, and the recovery point objective under writes (--rpo: each host killed and
# rebuilt from the backup host). See bench/db/README.md.
#   make bench-db-pitr ARGS="--rounds 3 --rpo"
.PHONY: bench-db-pitr

bench-db-pitr: lab ## DB benchmark: physical backup and PITR vs bare pgbackrest/mariadb-backup; RPO under writes (--rpo)
	$(BIN)/python bench/db/pitr.py $(ARGS)
