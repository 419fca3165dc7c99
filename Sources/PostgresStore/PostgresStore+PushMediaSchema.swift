extension PostgresStore {
    /// v3: push targets, the durable push queue and media metadata (docs/PUSH.md,
    /// docs/MEDIA.md), the same tables as the embedded store's v4 migrations.
    ///
    /// - `push_targets`: one row per (user, platform, address); `fields` the registration's JSON
    ///   object as text.
    /// - `push_jobs`: a notification waiting to be sent; `claimed_until` a worker's lease (0:
    ///   unclaimed), `not_before` the end of the collapse window it was created in (a merge never
    ///   makes it due earlier), `messages` the JSON array of its entries (`listed` of them),
    ///   `body` the newest message's body with `include_body`. Workers on every node claim with
    ///   `FOR UPDATE SKIP LOCKED` (see `claimDue`).
    /// - `push_windows`: per (target, collapse key), when its collapse window ends.
    /// - `chat_push_enqueue(...)`: a whole `enqueue` call in one statement (one round trip).
    /// - `media`, `media_conversations`: as in SQLite; `media_totals` in 16 rows like `counters`
    ///   (uploads on several nodes rarely wait on the same row).
    static let pushAndMediaMigration = Migration(version: 3, name: "push-and-media", statements: [
        """
        CREATE TABLE push_targets (
            id text PRIMARY KEY,
            user_id text NOT NULL,
            device text NOT NULL,
            platform text NOT NULL,
            address text NOT NULL,
            fields text NOT NULL,
            created_at bigint NOT NULL,
            UNIQUE (user_id, platform, address)
        )
        """,
        """
        CREATE TABLE push_jobs (
            id bigserial PRIMARY KEY,
            user_id text NOT NULL,
            target_id text NOT NULL REFERENCES push_targets(id) ON DELETE CASCADE,
            collapse_key text NOT NULL,
            due bigint NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            claimed_until bigint NOT NULL DEFAULT 0,
            not_before bigint NOT NULL DEFAULT 0,
            count integer NOT NULL,
            listed integer NOT NULL,
            max_seq bigint NOT NULL,
            max_id bigint NOT NULL,
            messages bytea NOT NULL,
            body bytea
        )
        """,
        "CREATE INDEX push_jobs_by_due ON push_jobs(due, id)",
        "CREATE INDEX push_jobs_by_target ON push_jobs(target_id, collapse_key)",
        "CREATE INDEX push_jobs_by_user ON push_jobs(user_id)",
        """
        CREATE TABLE push_windows (
            target_id text NOT NULL,
            collapse_key text NOT NULL,
            until bigint NOT NULL,
            PRIMARY KEY (target_id, collapse_key)
        )
        """,
        "CREATE INDEX push_windows_by_until ON push_windows(until)",
        pushEnqueueFunction,
        """
        CREATE TABLE media (
            id text PRIMARY KEY,
            uploader text NOT NULL,
            content_type text NOT NULL,
            name text,
            size bigint NOT NULL,
            stored_size bigint NOT NULL,
            compression text NOT NULL,
            sha256 text NOT NULL,
            blob_key text NOT NULL,
            width integer,
            height integer,
            thumbnail_id text,
            original_id text,
            created_at bigint NOT NULL
        )
        """,
        "CREATE INDEX media_by_uploader ON media(uploader) WHERE original_id IS NULL",
        """
        CREATE TABLE media_conversations (
            media_id text NOT NULL REFERENCES media(id) ON DELETE CASCADE,
            conversation text NOT NULL,
            PRIMARY KEY (media_id, conversation)
        )
        """,
        """
        CREATE TABLE media_totals (
            shard integer PRIMARY KEY,
            uploads bigint NOT NULL,
            bytes_in bigint NOT NULL,
            bytes_stored bigint NOT NULL
        )
        """,
    ])

    /// `PushQueue.enqueue` in one statement. Items are taken in the order of an advisory lock
    /// key per (target, collapse key), then in the given order: each (target, key) is locked for
    /// the transaction, so two nodes queueing for the same conversation and device merge into one
    /// job instead of creating two, and concurrent calls take their locks in the same order
    /// (no deadlock). Per item, as in SQLite: join an unclaimed job of the same (target, key),
    /// else skip a target that is gone (its row is locked `FOR KEY SHARE` so it cannot go
    /// before the insert), else open or reuse the collapse window and insert a job.
    ///
    /// `p_tails` is `,ENTRY]` (appended to a job's `messages` in place of its closing bracket).
    static let pushEnqueueFunction = """
        CREATE FUNCTION chat_push_enqueue(
            p_users text[], p_targets text[], p_keys text[], p_due bigint[], p_seqs bigint[], p_ids bigint[],
            p_entries bytea[], p_tails bytea[], p_bodies bytea[], p_has_bodies boolean[], p_collapse_ms bigint, p_max_listed integer)
        RETURNS integer
        LANGUAGE plpgsql AS $$
        DECLARE
            r record;
            v_window bigint;
            v_not_before bigint;
            v_due bigint;
            v_done integer := 0;
        BEGIN
            FOR r IN
                SELECT i.*, CASE WHEN i.has_body THEN i.raw_body END AS body, hashtextextended(i.target_id || chr(31) || i.collapse_key, 0) AS lock_key
                FROM unnest(p_users, p_targets, p_keys, p_due, p_seqs, p_ids, p_entries, p_tails, p_bodies, p_has_bodies)
                    WITH ORDINALITY AS i(user_id, target_id, collapse_key, due, seq, msg_id, entry, tail, raw_body, has_body, n)
                ORDER BY lock_key, n
            LOOP
                PERFORM pg_advisory_xact_lock(r.lock_key);
                UPDATE push_jobs SET
                    count = count + 1,
                    messages = CASE WHEN listed < p_max_listed
                                    THEN substring(messages FROM 1 FOR octet_length(messages) - 1) || r.tail
                                    ELSE messages END,
                    listed = CASE WHEN listed < p_max_listed THEN listed + 1 ELSE listed END,
                    max_seq = greatest(max_seq, r.seq), max_id = greatest(max_id, r.msg_id), body = r.body,
                    due = greatest(not_before, least(due, r.due))
                WHERE id = (SELECT id FROM push_jobs
                            WHERE target_id = r.target_id AND collapse_key = r.collapse_key AND claimed_until = 0
                            ORDER BY id LIMIT 1)
                  AND claimed_until = 0;  -- re-checked after waiting for a claim's row lock
                IF FOUND THEN
                    v_done := v_done + 1;
                    CONTINUE;
                END IF;
                PERFORM 1 FROM push_targets WHERE id = r.target_id FOR KEY SHARE;
                IF NOT FOUND THEN
                    CONTINUE;
                END IF;
                SELECT until INTO v_window FROM push_windows WHERE target_id = r.target_id AND collapse_key = r.collapse_key;
                v_not_before := coalesce(v_window, 0);
                v_due := greatest(r.due, v_not_before);
                INSERT INTO push_windows(target_id, collapse_key, until) VALUES (r.target_id, r.collapse_key, v_due + p_collapse_ms)
                ON CONFLICT (target_id, collapse_key) DO UPDATE SET until = excluded.until;
                INSERT INTO push_jobs(user_id, target_id, collapse_key, due, not_before, count, listed, max_seq, max_id, messages, body)
                VALUES (r.user_id, r.target_id, r.collapse_key, v_due, v_not_before, 1, 1, r.seq, r.msg_id,
                        '\\x5b'::bytea || r.entry || '\\x5d'::bytea, r.body);
                v_done := v_done + 1;
            END LOOP;
            RETURN v_done;
        END;
        $$
        """
}
