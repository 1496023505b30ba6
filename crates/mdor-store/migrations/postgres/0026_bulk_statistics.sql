-- Fresh planner statistics for bulk writes, whichever role the server runs as.
--
-- Autovacuum cannot analyse `procedure` while bulk writes hold their table locks, one
-- transaction after another, so a large submission runs on statistics taken when the table
-- was much smaller. Sampled while the registry held a few procedures from many providers,
-- they make every provider look as if it had one procedure, and a new provider's records
-- were then looked up by (provider_id, local_record_id) through the data-quality index
-- procedure_provider_date, visiting every procedure of that provider for each record: a
-- 1M-record submission stalled at 50,000 records (docs/benchmarks.md, 2026-12-06).
--
-- The bulk path calls this at the start of each transaction. It analyses `procedure` and
-- `patient` when `procedure` has more than doubled (plus 1,000 rows) since it was last
-- analysed, about ten times over a 1M-record submission into an empty registry, and returns
-- whether it did. SECURITY DEFINER because only a table's owner may analyse it, and in
-- production the server connects as a role that owns nothing (docs/security.md); the
-- function does nothing else, so any role may call it.
CREATE FUNCTION mdor_refresh_bulk_statistics() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    stale boolean;
BEGIN
    SELECT s.n_live_tup > 2 * greatest(c.reltuples, 0) + 1000
      INTO stale
      FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE c.oid = 'public.procedure'::regclass;
    IF coalesce(stale, false) THEN
        ANALYZE public.procedure;
        ANALYZE public.patient;
    END IF;
    RETURN coalesce(stale, false);
END
$$;
