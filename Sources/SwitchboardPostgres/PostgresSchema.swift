import Logging
import PostgresNIO

/// The cluster's tables, created or brought up to date at start (SPEC section 7). Several
/// nodes may start at once: the migrations run under a transaction-scoped advisory lock, so
/// one node applies them and the others find them applied.
enum PostgresSchema {
    /// Any fixed number: the advisory lock that serialises migrations.
    static let migrationLock: Int64 = 0x5357_4254_4348  // "SWBTCH"

    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)
            """,
            // `keep` is the history size the last publisher's policy asked for: history reads
            // serve only that many, and pruning keeps at least a delivery window beyond it.
            """
            CREATE TABLE channels (
                name text PRIMARY KEY,
                epoch text NOT NULL,
                last_offset bigint NOT NULL,
                keep integer NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE messages (
                channel text NOT NULL,
                pos bigint NOT NULL,
                data text NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint,
                PRIMARY KEY (channel, pos)
            )
            """,
            "CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL",
            """
            CREATE TABLE records (
                collection text NOT NULL,
                id text NOT NULL,
                version bigint NOT NULL,
                created_at text NOT NULL,
                updated_at text NOT NULL,
                data text NOT NULL,
                PRIMARY KEY (collection, id)
            )
            """,
            """
            CREATE TABLE idempotency (
                channel text NOT NULL,
                key text NOT NULL,
                epoch text NOT NULL,
                pos bigint NOT NULL,
                created_at bigint NOT NULL,
                PRIMARY KEY (channel, key)
            )
            """,
            "CREATE INDEX idempotency_age ON idempotency (created_at)",
            """
            CREATE TABLE nodes (
                id text PRIMARY KEY,
                seen_at bigint NOT NULL,
                report text NOT NULL
            )
            """,
            """
            CREATE TABLE presence (
                channel text NOT NULL,
                client text NOT NULL,
                node text NOT NULL,
                member text NOT NULL,
                PRIMARY KEY (channel, client)
            )
            """,
            "CREATE INDEX presence_node ON presence (node)",
            // One round trip and one statement per publish. The idempotency key is claimed
            // first (a concurrent publish with the same key waits for this one and then finds
            // it); the channel's counter row is locked last, so it is held only for the
            // message insert and the commit. Offsets from the counter follow commit order:
            // committed offsets always form a contiguous prefix.
            """
            CREATE FUNCTION switchboard_publish(
                p_channel text, p_data text, p_key text, p_keep integer, p_ttl_ms bigint,
                p_now bigint, p_window bigint, p_epoch text,
                OUT out_epoch text, OUT out_pos bigint, OUT out_duplicate boolean
            ) LANGUAGE plpgsql AS $$
            BEGIN
                IF p_key IS NOT NULL THEN
                    INSERT INTO idempotency AS i (channel, key, epoch, pos, created_at)
                    VALUES (p_channel, p_key, '', 0, p_now)
                    ON CONFLICT (channel, key) DO UPDATE SET epoch = '', pos = 0, created_at = p_now
                        WHERE i.created_at <= p_now - p_window;
                    IF NOT FOUND THEN
                        SELECT i.epoch, i.pos INTO out_epoch, out_pos FROM idempotency i
                        WHERE i.channel = p_channel AND i.key = p_key;
                        out_duplicate := true;
                        RETURN;
                    END IF;
                END IF;
                INSERT INTO channels AS c (name, epoch, last_offset, keep) VALUES (p_channel, p_epoch, 1, p_keep)
                ON CONFLICT (name) DO UPDATE SET last_offset = c.last_offset + 1, keep = p_keep
                RETURNING c.epoch, c.last_offset INTO out_epoch, out_pos;
                INSERT INTO messages (channel, pos, data, created_at, expires_at)
                VALUES (p_channel, out_pos, p_data, p_now, CASE WHEN p_ttl_ms > 0 THEN p_now + p_ttl_ms END);
                IF p_key IS NOT NULL THEN
                    UPDATE idempotency SET epoch = out_epoch, pos = out_pos WHERE channel = p_channel AND key = p_key;
                END IF;
                out_duplicate := false;
            END
            $$
            """,
            // Many publishes in one statement and one commit (group commit: the node batches
            // the publishes that arrive while others are on their way). Counters are locked
            // in channel order, whatever order the batch came in, so that two batches never
            // wait for each other in a cycle; results come back in the batch's order.
            """
            CREATE FUNCTION switchboard_publish_batch(
                p_channels text[], p_data text[], p_keys text[], p_keep integer[], p_ttl_ms bigint[],
                p_now bigint, p_window bigint, p_epoch text
            ) RETURNS TABLE (out_epoch text, out_pos bigint, out_duplicate boolean) LANGUAGE plpgsql AS $$
            DECLARE
                n integer := coalesce(array_length(p_channels, 1), 0);
                epochs text[] := array_fill(NULL::text, ARRAY[n]);
                offsets bigint[] := array_fill(NULL::bigint, ARRAY[n]);
                duplicates boolean[] := array_fill(NULL::boolean, ARRAY[n]);
                i integer;
                r record;
            BEGIN
                FOR i IN SELECT t.ord FROM unnest(p_channels) WITH ORDINALITY AS t(name, ord) ORDER BY t.name, t.ord LOOP
                    SELECT * INTO r FROM switchboard_publish(
                        p_channels[i], p_data[i], NULLIF(p_keys[i], ''), p_keep[i], p_ttl_ms[i], p_now, p_window, p_epoch
                    );
                    epochs[i] := r.out_epoch;
                    offsets[i] := r.out_pos;
                    duplicates[i] := r.out_duplicate;
                END LOOP;
                RETURN QUERY SELECT e.v, o.v, d.v
                    FROM unnest(epochs) WITH ORDINALITY AS e(v, ord)
                    JOIN unnest(offsets) WITH ORDINALITY AS o(v, ord) USING (ord)
                    JOIN unnest(duplicates) WITH ORDINALITY AS d(v, ord) USING (ord)
                    ORDER BY ord;
            END
            $$
            """,
        ]),
        // Version 1's batch claimed each publish's key just before taking its channel's
        // counter, so two batches with the same keys in different orders could each hold
        // what the other waited for (PostgreSQL broke the cycle after its deadlock_timeout,
        // and one batch failed). Every batch now takes its locks in one order: first all its
        // keys, by channel and key; then the counters, by channel, each once.
        (2, [
            """
            CREATE OR REPLACE FUNCTION switchboard_publish_batch(
                p_channels text[], p_data text[], p_keys text[], p_keep integer[], p_ttl_ms bigint[],
                p_now bigint, p_window bigint, p_epoch text
            ) RETURNS TABLE (out_epoch text, out_pos bigint, out_duplicate boolean) LANGUAGE plpgsql AS $$
            DECLARE
                n integer := coalesce(array_length(p_channels, 1), 0);
                epochs text[] := array_fill(NULL::text, ARRAY[n]);
                offsets bigint[] := array_fill(NULL::bigint, ARRAY[n]);
                duplicates boolean[] := array_fill(false, ARRAY[n]);
                i integer;
                r record;
                v_epoch text;
                v_pos bigint;
            BEGIN
                -- The keys. One already claimed (by a committed publish, or earlier in this
                -- batch) makes a duplicate; one claimed by a batch still running waits for
                -- its commit.
                FOR i IN SELECT t.ord FROM unnest(p_channels, p_keys) WITH ORDINALITY AS t(name, key, ord)
                         WHERE t.key <> '' ORDER BY t.name, t.key, t.ord LOOP
                    INSERT INTO idempotency AS k (channel, key, epoch, pos, created_at)
                    VALUES (p_channels[i], p_keys[i], '', 0, p_now)
                    ON CONFLICT (channel, key) DO UPDATE SET epoch = '', pos = 0, created_at = p_now
                        WHERE k.created_at <= p_now - p_window;
                    duplicates[i] := NOT FOUND;
                END LOOP;
                -- Each channel's counter, once for its new messages, which take its next
                -- offsets in the batch's order.
                FOR r IN SELECT t.name, count(*)::integer AS fresh, (array_agg(t.keep ORDER BY t.ord DESC))[1] AS keep,
                                array_agg(t.ord::integer ORDER BY t.ord) AS ords
                         FROM unnest(p_channels, p_keep, duplicates) WITH ORDINALITY AS t(name, keep, dup, ord)
                         WHERE NOT t.dup GROUP BY t.name ORDER BY t.name LOOP
                    INSERT INTO channels AS c (name, epoch, last_offset, keep) VALUES (r.name, p_epoch, r.fresh, r.keep)
                    ON CONFLICT (name) DO UPDATE SET last_offset = c.last_offset + r.fresh, keep = r.keep
                    RETURNING c.epoch, c.last_offset - r.fresh INTO v_epoch, v_pos;
                    FOREACH i IN ARRAY r.ords LOOP
                        v_pos := v_pos + 1;
                        epochs[i] := v_epoch;
                        offsets[i] := v_pos;
                        INSERT INTO messages (channel, pos, data, created_at, expires_at)
                        VALUES (r.name, v_pos, p_data[i], p_now, CASE WHEN p_ttl_ms[i] > 0 THEN p_now + p_ttl_ms[i] END);
                        IF p_keys[i] <> '' THEN
                            UPDATE idempotency SET epoch = v_epoch, pos = v_pos WHERE channel = r.name AND key = p_keys[i];
                        END IF;
                    END LOOP;
                END LOOP;
                -- Duplicates answer with their key's position, now known.
                FOR i IN SELECT t.ord FROM unnest(duplicates) WITH ORDINALITY AS t(dup, ord) WHERE t.dup LOOP
                    SELECT k.epoch, k.pos INTO v_epoch, v_pos FROM idempotency k
                    WHERE k.channel = p_channels[i] AND k.key = p_keys[i];
                    epochs[i] := v_epoch;
                    offsets[i] := v_pos;
                END LOOP;
                RETURN QUERY SELECT e.v, o.v, d.v
                    FROM unnest(epochs) WITH ORDINALITY AS e(v, ord)
                    JOIN unnest(offsets) WITH ORDINALITY AS o(v, ord) USING (ord)
                    JOIN unnest(duplicates) WITH ORDINALITY AS d(v, ord) USING (ord)
                    ORDER BY ord;
            END
            $$
            """,
            "DROP FUNCTION switchboard_publish(text, text, text, integer, bigint, bigint, bigint, text)",
        ]),
    ]

    /// Applies what is missing, and returns the database's epoch.
    static func migrate(_ connection: PostgresConnection, epoch newEpoch: String, logger: Logger) async throws -> String {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS switchboard_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger
            )
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM switchboard_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.sql {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO switchboard_migrations (version) VALUES (\(migration.version))", logger: logger)
                logger.info("database schema migrated", metadata: ["version": "\(migration.version)"])
            }
            try await connection.query(
                "INSERT INTO meta (key, value) VALUES ('epoch', \(newEpoch)) ON CONFLICT (key) DO NOTHING", logger: logger
            )
            var epoch = newEpoch
            for try await value in try await connection.query("SELECT value FROM meta WHERE key = 'epoch'", logger: logger).decode(String.self) {
                epoch = value
            }
            try await connection.query("COMMIT", logger: logger)
            return epoch
        } catch {
            try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
