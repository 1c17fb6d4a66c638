-- fleet-upload ledger, version 16: no JIT compilation in the ledger's database.
--
-- The ledger's statements touch a few rows each, through indexes, but the planner's estimates for a batch of
-- files (a lateral probe of every monthly partition per file) pass jit_above_cost, and compiling then takes
-- longer than running: recording a scan batch of 2,000 files took 150-300 ms, up to 1.9 s when the estimate
-- also passed the optimisation thresholds, against about 100 ms without JIT. Device roles have had JIT off since
-- version 10; this is for every other role (an administrator's URL, a single shared URL, Grafana). A database
-- setting, not a session's, so it holds behind a pooler; it applies to connections made from now on. A role
-- that may not change the database's settings gets a warning, and should set `jit = off` for the roles the
-- tools log in with.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'JIT stays on in database %: only its owner or a superuser may turn it off', current_database();
END
$$;
