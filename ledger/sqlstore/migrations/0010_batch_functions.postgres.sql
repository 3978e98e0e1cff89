-- A batch's read and write as two functions (sqlstore/arrays.go,
-- Dialect.BatchFunctions): their statements are parsed and planned once
-- per connection instead of at every batch, a third of the server's CPU
-- per operation as one statement of common table expressions. The plans
-- are generic and, whatever the tables' sizes when they were made, index
-- lookups and nested loops: every statement here reads or writes the few
-- rows its arrays name.

-- byoc_prefetch locks the accounts named by refs and the pools of the jobs
-- among them, in ref order, and returns them (the columns of
-- sqlstore.accountCols, then NULLs); then a row per (session, nonce) pair
-- whose session exists (NULLs for the account's columns), its nonce NULL
-- unless the session holds it (nonce -1 asks for the session only).
CREATE FUNCTION byoc_prefetch(refs TEXT[], sessions TEXT[], nonces BIGINT[])
RETURNS TABLE (id BIGINT, ref TEXT, pool_ref TEXT, pool_id BIGINT, state TEXT, balance TEXT, credited TEXT,
    charged TEXT, moved_in TEXT, moved_out TEXT, ttl_us BIGINT, opened_at BIGINT, updated_at BIGINT,
    expires_at BIGINT, closed_at BIGINT, session TEXT, session_nonces BIGINT, session_expiry BIGINT, nonce BIGINT)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    -- The pools' refs are an array computed before any row is locked, so
    -- the re-check of a row that changed while waiting for its lock
    -- cannot drop it; a job's pool never changes.
    RETURN QUERY SELECT a.id, a.ref, a.pool_ref, a.pool_id, a.state, CAST(a.balance AS TEXT), CAST(a.credited AS TEXT),
            CAST(a.charged AS TEXT), CAST(a.moved_in AS TEXT), CAST(a.moved_out AS TEXT), a.ttl_us, a.opened_at,
            a.updated_at, a.expires_at, a.closed_at,
            CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
        FROM accounts a
        WHERE a.ref = ANY(refs || ARRAY(SELECT j.pool_ref FROM accounts j WHERE j.ref = ANY(refs) AND j.pool_ref <> ''))
        ORDER BY a.ref FOR UPDATE;
    IF cardinality(sessions) > 0 THEN
        RETURN QUERY SELECT CAST(NULL AS BIGINT), NULL, NULL, CAST(NULL AS BIGINT), NULL, NULL, NULL, NULL, NULL, NULL,
                CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
                v.session, s.nonces, s.expiry, t.nonce
            FROM unnest(sessions, nonces) AS v (session, nonce)
            JOIN ticket_sessions s ON s.session = v.session
            LEFT JOIN ticket_nonces t ON t.session = s.session AND t.nonce = v.nonce;
    END IF;
END
$$;

-- byoc_write_rows writes a batch: the new accounts (pools first, then the
-- jobs, whose pool, when new, is found by ref), the updated accounts, the
-- entries (an account that is 0 in from_ids / to_ids and named in
-- from_refs / to_refs is a new one), the new ticket sessions, the updated
-- ones (each only if it still holds the count read before) and the
-- nonces. NULL travels as a sentinel: 0 for an account ID, '' for a key
-- or hash, the smallest BIGINT for a time. It returns a row (id, ref) per
-- account inserted, then the counts of accounts updated, entries inserted
-- and ticket sessions updated as (count, '#accounts' / '#entries' /
-- '#sessions'), each only when its arrays are not empty. A count short of
-- its arrays' is an error, so that the caller may send COMMIT with the
-- call: BY001 an entry's key was taken, BY002 an account was not updated,
-- BY003 a ticket session changed since it was read.
CREATE FUNCTION byoc_write_rows(
    a_ref TEXT[], a_kind TEXT[], a_sender TEXT[], a_name TEXT[], a_customer TEXT[], a_pool_ref TEXT[],
    a_pool_id BIGINT[], a_state TEXT[], a_balance TEXT[], a_credited TEXT[], a_charged TEXT[], a_moved_in TEXT[],
    a_moved_out TEXT[], a_ttl_us BIGINT[], a_opened_at BIGINT[], a_updated_at BIGINT[], a_expires_at BIGINT[],
    a_closed_at BIGINT[],
    u_id BIGINT[], u_state TEXT[], u_balance TEXT[], u_credited TEXT[], u_charged TEXT[], u_moved_in TEXT[],
    u_moved_out TEXT[], u_ttl_us BIGINT[], u_updated_at BIGINT[], u_expires_at BIGINT[], u_closed_at BIGINT[],
    e_at BIGINT[], e_kind TEXT[], e_from_id BIGINT[], e_to_id BIGINT[], e_amount TEXT[], e_idem_key TEXT[],
    e_input_hash TEXT[], e_balance_after TEXT[], e_from_ref TEXT[], e_to_ref TEXT[],
    c_session TEXT[], c_expiry BIGINT[], c_nonces BIGINT[],
    s_session TEXT[], s_added BIGINT[], s_expiry BIGINT[], s_count BIGINT[],
    n_session TEXT[], n_nonce BIGINT[])
RETURNS TABLE (n BIGINT, r TEXT)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    k BIGINT;
BEGIN
    IF 'pool' = ANY(a_kind) THEN
        RETURN QUERY INSERT INTO accounts (ref, kind, sender, name, customer, pool_ref, pool_id, state, balance,
                credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
            SELECT v.ref, v.kind, v.sender, v.name, v.customer, v.pool_ref, NULLIF(v.pool_id, 0), v.state,
                CAST(v.balance AS {{AMOUNT}}), CAST(v.credited AS {{AMOUNT}}), CAST(v.charged AS {{AMOUNT}}),
                CAST(v.moved_in AS {{AMOUNT}}), CAST(v.moved_out AS {{AMOUNT}}), v.ttl_us, v.opened_at, v.updated_at,
                NULLIF(v.expires_at, -9223372036854775808), NULLIF(v.closed_at, -9223372036854775808)
            FROM unnest(a_ref, a_kind, a_sender, a_name, a_customer, a_pool_ref, a_pool_id, a_state, a_balance,
                a_credited, a_charged, a_moved_in, a_moved_out, a_ttl_us, a_opened_at, a_updated_at, a_expires_at,
                a_closed_at)
                AS v (ref, kind, sender, name, customer, pool_ref, pool_id, state, balance, credited, charged,
                    moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
            WHERE v.kind = 'pool'
            RETURNING accounts.id, accounts.ref;
    END IF;
    IF EXISTS (SELECT FROM unnest(a_kind) AS v (kind) WHERE v.kind <> 'pool') THEN
        RETURN QUERY INSERT INTO accounts (ref, kind, sender, name, customer, pool_ref, pool_id, state, balance,
                credited, charged, moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
            SELECT v.ref, v.kind, v.sender, v.name, v.customer, v.pool_ref,
                CASE WHEN v.pool_id = 0 AND v.pool_ref <> ''
                    THEN (SELECT p.id FROM accounts p WHERE p.ref = v.pool_ref) ELSE NULLIF(v.pool_id, 0) END,
                v.state,
                CAST(v.balance AS {{AMOUNT}}), CAST(v.credited AS {{AMOUNT}}), CAST(v.charged AS {{AMOUNT}}),
                CAST(v.moved_in AS {{AMOUNT}}), CAST(v.moved_out AS {{AMOUNT}}), v.ttl_us, v.opened_at, v.updated_at,
                NULLIF(v.expires_at, -9223372036854775808), NULLIF(v.closed_at, -9223372036854775808)
            FROM unnest(a_ref, a_kind, a_sender, a_name, a_customer, a_pool_ref, a_pool_id, a_state, a_balance,
                a_credited, a_charged, a_moved_in, a_moved_out, a_ttl_us, a_opened_at, a_updated_at, a_expires_at,
                a_closed_at)
                AS v (ref, kind, sender, name, customer, pool_ref, pool_id, state, balance, credited, charged,
                    moved_in, moved_out, ttl_us, opened_at, updated_at, expires_at, closed_at)
            WHERE v.kind <> 'pool'
            RETURNING accounts.id, accounts.ref;
    END IF;
    IF cardinality(u_id) > 0 THEN
        UPDATE accounts SET state = v.state,
                balance = CAST(v.balance AS {{AMOUNT}}), credited = CAST(v.credited AS {{AMOUNT}}),
                charged = CAST(v.charged AS {{AMOUNT}}), moved_in = CAST(v.moved_in AS {{AMOUNT}}),
                moved_out = CAST(v.moved_out AS {{AMOUNT}}), ttl_us = v.ttl_us, updated_at = v.updated_at,
                expires_at = NULLIF(v.expires_at, -9223372036854775808),
                closed_at = NULLIF(v.closed_at, -9223372036854775808)
            FROM unnest(u_id, u_state, u_balance, u_credited, u_charged, u_moved_in, u_moved_out, u_ttl_us,
                u_updated_at, u_expires_at, u_closed_at)
                AS v (id, state, balance, credited, charged, moved_in, moved_out, ttl_us, updated_at, expires_at,
                    closed_at)
            WHERE accounts.id = v.id;
        GET DIAGNOSTICS k = ROW_COUNT;
        IF k <> cardinality(u_id) THEN
            RAISE EXCEPTION 'updated % of % accounts', k, cardinality(u_id) USING ERRCODE = 'BY002';
        END IF;
        n := k; r := '#accounts'; RETURN NEXT;
    END IF;
    IF cardinality(e_at) > 0 THEN
        INSERT INTO entries (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after)
            SELECT v.at, v.kind,
                CASE WHEN v.from_id = 0 AND v.from_ref <> ''
                    THEN (SELECT a.id FROM accounts a WHERE a.ref = v.from_ref) ELSE NULLIF(v.from_id, 0) END,
                CASE WHEN v.to_id = 0 AND v.to_ref <> ''
                    THEN (SELECT a.id FROM accounts a WHERE a.ref = v.to_ref) ELSE NULLIF(v.to_id, 0) END,
                CAST(v.amount AS {{AMOUNT}}), NULLIF(v.idem_key, ''), NULLIF(v.input_hash, ''),
                CAST(v.balance_after AS {{AMOUNT}})
            FROM unnest(e_at, e_kind, e_from_id, e_to_id, e_amount, e_idem_key, e_input_hash, e_balance_after,
                e_from_ref, e_to_ref)
                AS v (at, kind, from_id, to_id, amount, idem_key, input_hash, balance_after, from_ref, to_ref)
            ON CONFLICT (idem_key) WHERE idem_key IS NOT NULL DO NOTHING;
        GET DIAGNOSTICS k = ROW_COUNT;
        IF k <> cardinality(e_at) THEN
            RAISE EXCEPTION '% of % entries', cardinality(e_at) - k, cardinality(e_at) USING ERRCODE = 'BY001';
        END IF;
        n := k; r := '#entries'; RETURN NEXT;
    END IF;
    IF cardinality(c_session) > 0 THEN
        INSERT INTO ticket_sessions (session, expiry, nonces)
            SELECT * FROM unnest(c_session, c_expiry, c_nonces);
    END IF;
    IF cardinality(s_session) > 0 THEN
        UPDATE ticket_sessions SET nonces = ticket_sessions.nonces + v.added,
                expiry = GREATEST(ticket_sessions.expiry, v.expiry)
            FROM unnest(s_session, s_added, s_expiry, s_count) AS v (session, added, expiry, count)
            WHERE ticket_sessions.session = v.session AND ticket_sessions.nonces = v.count;
        GET DIAGNOSTICS k = ROW_COUNT;
        IF k <> cardinality(s_session) THEN
            RAISE EXCEPTION '% of % ticket sessions changed meanwhile', cardinality(s_session) - k, cardinality(s_session)
                USING ERRCODE = 'BY003';
        END IF;
        n := k; r := '#sessions'; RETURN NEXT;
    END IF;
    IF cardinality(n_session) > 0 THEN
        INSERT INTO ticket_nonces (session, nonce) SELECT * FROM unnest(n_session, n_nonce);
    END IF;
END
$$;
