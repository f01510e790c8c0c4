#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is created: one role and one database each for Label Studio
# and for the backend's audit store. Neither role can connect to the other's database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v ls_pw="$LABEL_STUDIO_DB_PASSWORD" -v hitl_pw="$HITL_AUDIT_DB_PASSWORD" <<'SQL'
CREATE ROLE label_studio LOGIN PASSWORD :'ls_pw';
CREATE ROLE hitl LOGIN PASSWORD :'hitl_pw';
CREATE DATABASE label_studio OWNER label_studio;
CREATE DATABASE hitl_audit OWNER hitl;
REVOKE ALL ON DATABASE label_studio FROM PUBLIC;
REVOKE ALL ON DATABASE hitl_audit FROM PUBLIC;
SQL
