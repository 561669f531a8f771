-- pgbus schema, version 8: a generic trigger that publishes a table's row changes.
--
--   CREATE TRIGGER property_events AFTER INSERT OR UPDATE OR DELETE ON property
--       FOR EACH ROW EXECUTE FUNCTION pgbus.publish_row_change('property');
--
-- publishes, through pgbus.publish and inside the writing transaction:
--   type     <prefix>.created | <prefix>.updated | <prefix>.deleted
--   data     {"new": <the row after>, "old": <the row before>} (null where there is none)
--   subject  <prefix>/<primary key values, joined by '/'> (none without a primary key),
--            also the ordering key
--   source   the second argument, else <schema>.<table>
--   headers  {"table": "<schema>.<table>"}
-- An UPDATE that changes nothing (the row's JSON before and after is equal) publishes
-- nothing. The trigger must be AFTER ... FOR EACH ROW: a BEFORE trigger returning NULL would
-- skip the row's own write.
CREATE FUNCTION pgbus.publish_row_change() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    v_prefix text := TG_ARGV[0];
    v_table text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    v_new jsonb;
    v_old jsonb;
    v_row jsonb;
    v_kind text;
    v_pk text[];
    v_subject text;
BEGIN
    IF TG_NARGS < 1 OR TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'ROW' THEN
        RAISE EXCEPTION USING ERRCODE = 'PB005',
            MESSAGE = format('pgbus.publish_row_change on %s: attach it AFTER ... FOR EACH ROW '
                             'with the event type prefix as its argument', v_table);
    END IF;
    IF TG_OP = 'INSERT' THEN
        v_kind := 'created';
        v_new := to_jsonb(NEW);
    ELSIF TG_OP = 'UPDATE' THEN
        v_new := to_jsonb(NEW);
        v_old := to_jsonb(OLD);
        IF v_new = v_old THEN
            RETURN NULL;
        END IF;
        v_kind := 'updated';
    ELSE
        v_kind := 'deleted';
        v_old := to_jsonb(OLD);
    END IF;
    v_row := coalesce(v_new, v_old);
    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO v_pk
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
    IF v_pk IS NOT NULL THEN
        SELECT v_prefix || '/' || string_agg(coalesce(v_row ->> c, ''), '/' ORDER BY o)
          INTO v_subject
        FROM unnest(v_pk) WITH ORDINALITY AS u(c, o);
    END IF;
    PERFORM pgbus.publish(
        type => v_prefix || '.' || v_kind,
        data => jsonb_build_object('new', v_new, 'old', v_old),
        source => coalesce(TG_ARGV[1], v_table),
        subject => v_subject,
        key => v_subject,
        headers => jsonb_build_object('table', v_table));
    RETURN NULL;
END
$f$;
