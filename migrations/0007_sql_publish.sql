-- pgbus schema, version 7: publishing from SQL, for triggers and services in other languages.
--
-- pgbus.publish(...) writes one event inside the caller's transaction with the checks of the
-- Rust publisher (src/validate.rs, src/reserved.rs), the fan-out of src/sql/publish.sql (due
-- now: the delivery log's current slot; deliver_at in the future: pgbus.deliveries), its
-- dedupe (a duplicate writes nothing and returns the original's id) and its wake-up (a NOTIFY
-- on the channel 'pgbus', delivered at commit). A test publishes the same input both ways and
-- compares the rows written.
--
-- A refused input raises an error with a SQLSTATE of pgbus's own class PB, and the message
-- the Rust API's error displays:
--   PB001  invalid event type        (pgbus::Error::InvalidEventType)
--   PB002  invalid event field       (pgbus::Error::InvalidField)
--   PB003  invalid payload           (pgbus::Error::InvalidPayload)
--   PB004  payload too large         (pgbus::Error::PayloadTooLarge)
-- A NUL character cannot reach these checks: PostgreSQL refuses it in text (54000) and in
-- jsonb (22P05) itself.
--
-- The payload limit is the setting pgbus.max_payload_bytes (bytes of the compact JSON text),
-- 1 MiB when unset, as the Rust publisher's default.

-- A UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, the version, 12 bits of
-- the sub-millisecond fraction (so that ids of one session follow each other, as method 3 of
-- the RFC), the variant and 62 random bits.
CREATE FUNCTION pgbus.uuid_v7() RETURNS uuid LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    t numeric := extract(epoch FROM clock_timestamp()) * 1000;
    ms bigint := floor(t);
    sub integer := floor((t - ms) * 4096);
    b bytea := uuid_send(gen_random_uuid());
BEGIN
    b := overlay(b PLACING substring(int8send(ms) FROM 3 FOR 6) FROM 1 FOR 6);
    b := set_byte(b, 6, 112 | (sub >> 8));
    b := set_byte(b, 7, sub & 255);
    b := set_byte(b, 8, (get_byte(b, 8) & 63) | 128);
    RETURN encode(b, 'hex')::uuid;
END
$f$;

-- Raises a refused input: SQLSTATE p_code, the message of the Rust error.
CREATE FUNCTION pgbus.refuse(p_code text, p_message text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message;
END
$f$;

-- A text quoted as the Rust API's messages quote it (`{:?}`): in double quotes, escaped.
CREATE FUNCTION pgbus.quoted(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT to_json(p)::text
$f$;

-- validate::validate_type: non-empty dot-separated segments of [A-Za-z0-9_-], at most 200
-- bytes; the first bad segment gives the reason.
CREATE FUNCTION pgbus.check_event_type(p_type text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
    seg text;
    reason text;
BEGIN
    IF p_type IS NULL OR p_type = '' THEN
        reason := 'must not be empty';
    ELSIF octet_length(p_type) > 200 THEN
        reason := 'longer than 200 bytes';
    ELSE
        FOREACH seg IN ARRAY string_to_array(p_type, '.') LOOP
            IF seg = '' THEN
                reason := 'has an empty segment (leading, trailing or double dot)';
            ELSIF seg !~ '^[A-Za-z0-9_-]+$' THEN
                reason := 'only ASCII letters, digits, ''_'', ''-'' and ''.'' are allowed';
            END IF;
            EXIT WHEN reason IS NOT NULL;
        END LOOP;
    END IF;
    IF reason IS NOT NULL THEN
        PERFORM pgbus.refuse('PB001', format('invalid event type %s: %s',
                                             pgbus.quoted(coalesce(p_type, '')), reason));
    END IF;
END
$f$;

-- validate::validate_text: not empty, at most 1024 bytes (a NUL cannot be in a text).
CREATE FUNCTION pgbus.check_text(p_field text, p_value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    IF p_value = '' THEN
        PERFORM pgbus.refuse('PB002', format('invalid event field `%s`: must not be empty', p_field));
    ELSIF octet_length(p_value) > 1024 THEN
        PERFORM pgbus.refuse('PB002', format('invalid event field `%s`: %s bytes, longer than 1024',
                                             p_field, octet_length(p_value)));
    END IF;
END
$f$;

-- The header checks of validate::new_event and reserved::validate, in the order of the Rust
-- map (names in byte order). Headers are a JSON object of strings.
CREATE FUNCTION pgbus.check_headers(p_headers jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
    k text;
    v jsonb;
    s text;
    ok boolean;
BEGIN
    IF jsonb_typeof(p_headers) <> 'object' THEN
        PERFORM pgbus.refuse('PB002',
            'invalid event field `headers`: must be a JSON object whose values are strings');
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(p_headers) e ORDER BY e.key COLLATE "C" LOOP
        PERFORM pgbus.check_text('header name', k);
        IF jsonb_typeof(v) <> 'string' THEN
            PERFORM pgbus.refuse('PB002', format('invalid event field `header value`: header %s: must be a string',
                                                 pgbus.quoted(k)));
        END IF;
        s := v #>> '{}';
        IF octet_length(s) > 1024 THEN
            PERFORM pgbus.refuse('PB002', format('invalid event field `header value`: header %s: at most 1024 bytes, no NUL',
                                                 pgbus.quoted(k)));
        END IF;
        CONTINUE WHEN k NOT LIKE 'pgbus-%';
        ok := CASE k
            -- A whole number from 1 that fits in 32 bits, without leading zeros.
            WHEN 'pgbus-version' THEN s ~ '^[1-9][0-9]{0,9}$' AND s::bigint <= 4294967295
            WHEN 'pgbus-time' THEN pgbus.is_rfc3339(s)
            WHEN 'pgbus-id' THEN s <> ''
            WHEN 'pgbus-source' THEN s <> ''
            WHEN 'pgbus-dataschema' THEN s <> ''
            WHEN 'pgbus-datacontenttype' THEN s <> ''
            ELSE true
        END;
        IF NOT ok THEN
            PERFORM pgbus.refuse('PB002', format('invalid event field `header value`: reserved header %s cannot hold %s',
                                                 pgbus.quoted(k), pgbus.quoted(s)));
        END IF;
    END LOOP;
END
$f$;

-- Whether a text is an RFC 3339 date-time, as chrono's parse_from_rfc3339 reads it.
CREATE FUNCTION pgbus.is_rfc3339(p text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    IF p !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' THEN
        RETURN false;
    END IF;
    PERFORM p::timestamptz;
    RETURN true;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RETURN false;
END
$f$;

-- validate::validate_payload and the size check: no array or object nested deeper than 64
-- levels; at most p_limit bytes as compact JSON (jsonb's text form less the space it puts
-- after every ':' and ',').
CREATE FUNCTION pgbus.check_payload(p_data jsonb, p_limit bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE
    too_deep boolean;
    spaces bigint;
    size bigint;
BEGIN
    IF p_data IS NULL THEN
        PERFORM pgbus.refuse('PB003', 'invalid payload: SQL NULL (pass ''null''::jsonb for a JSON null)');
    END IF;
    WITH RECURSIVE walk(v, depth) AS (
        SELECT p_data, 1
        UNION ALL
        SELECT c.v, w.depth + 1
        FROM walk w
        CROSS JOIN LATERAL (
            SELECT a.value FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(w.v) = 'array' THEN w.v ELSE '[]' END) a
            UNION ALL
            SELECT o.value FROM jsonb_each(
                CASE WHEN jsonb_typeof(w.v) = 'object' THEN w.v ELSE '{}' END) o
        ) c(v)
        WHERE w.depth <= 64
    )
    SELECT bool_or(depth > 64 AND jsonb_typeof(v) IN ('array', 'object')),
           sum(CASE jsonb_typeof(v)
                   WHEN 'array' THEN greatest(jsonb_array_length(v) - 1, 0)
                   WHEN 'object' THEN greatest(2 * (SELECT count(*) FROM jsonb_object_keys(v)) - 1, 0)
                   ELSE 0
               END)
      INTO too_deep, spaces
    FROM walk;
    IF too_deep THEN
        PERFORM pgbus.refuse('PB003', 'invalid payload: nested deeper than 64 levels');
    END IF;
    size := octet_length(p_data::text) - spaces;
    IF size > p_limit THEN
        PERFORM pgbus.refuse('PB004', format('payload of %s bytes exceeds the limit of %s bytes',
                                             size, p_limit));
    END IF;
END
$f$;

CREATE FUNCTION pgbus.publish(type text, data jsonb, source text, subject text DEFAULT NULL,
                              key text DEFAULT NULL, headers jsonb DEFAULT '{}',
                              dedupe_key text DEFAULT NULL, priority smallint DEFAULT 0,
                              deliver_at timestamptz DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE AS $f$
#variable_conflict use_column
DECLARE
    v_id uuid := pgbus.uuid_v7();
    v_headers jsonb := coalesce(publish.headers, '{}');
    v_priority smallint := coalesce(publish.priority, 0);
    v_limit bigint := coalesce(nullif(current_setting('pgbus.max_payload_bytes', true), '')::bigint,
                               1048576);
    v_written uuid;
BEGIN
    -- The order of validate::new_event (the source is checked by the Rust builder).
    PERFORM pgbus.check_event_type(publish.type);
    IF publish.source IS NULL THEN
        PERFORM pgbus.refuse('PB002', 'invalid event field `source`: must not be empty');
    END IF;
    PERFORM pgbus.check_text('source', publish.source);
    PERFORM pgbus.check_text('subject', publish.subject);
    PERFORM pgbus.check_text('key', publish.key);
    PERFORM pgbus.check_text('dedupe_key', publish.dedupe_key);
    PERFORM pgbus.check_headers(v_headers);
    PERFORM pgbus.check_payload(publish.data, v_limit);

    INSERT INTO pgbus.events AS e (id, type, source, subject, key, data, headers, dedupe_key,
                                   priority)
    VALUES (v_id, publish.type, publish.source, publish.subject, publish.key, publish.data,
            v_headers, publish.dedupe_key, v_priority)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING e.id INTO v_written;
    IF v_written IS NULL THEN
        -- A duplicate: the original's id, as PublishOutcome::Duplicate carries it (this id
        -- when the original is not visible, e.g. under REPEATABLE READ).
        SELECT e.id INTO v_written FROM pgbus.events e WHERE e.dedupe_key = publish.dedupe_key;
        RETURN coalesce(v_written, v_id);
    END IF;

    IF publish.deliver_at IS NULL OR publish.deliver_at <= now() THEN
        INSERT INTO pgbus.delivery_log (slot, subscription, priority, event_id, key)
        SELECT (SELECT r.slot FROM pgbus.log_ring r ORDER BY r.generation DESC LIMIT 1),
               s.name, v_priority, v_id, publish.key
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns);
    ELSE
        INSERT INTO pgbus.deliveries (event_id, subscription, priority, run_at, key)
        SELECT v_id, s.name, v_priority, publish.deliver_at, publish.key
        FROM pgbus.subscriptions s
        WHERE publish.type LIKE ANY (s.like_patterns);
    END IF;
    -- Delivered at commit; identical notifications of one transaction are sent once.
    PERFORM pg_notify('pgbus', '');
    RETURN v_id;
END
$f$;
