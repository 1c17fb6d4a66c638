-- Runs once, when the postgres service initialises its data volume (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER `fleet`, which owns the ledger: the agent's migrations create the tables later.
--
-- Grafana reads the ledger as `grafana`, a role that can only SELECT (Grafana runs any SQL a dashboard editor
-- types). The default privileges cover the tables and monthly file_uploads partitions `fleet` creates later.
CREATE ROLE grafana LOGIN PASSWORD 'grafana';
GRANT CONNECT ON DATABASE fleet TO grafana;
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE fleet IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
