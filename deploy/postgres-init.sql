-- Runs once, when the PostgreSQL volume is created: a database for the backend's audit store
-- beside Label Studio's own.
CREATE DATABASE hitl_audit;
