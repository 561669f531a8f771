-- pgbus schema, version 6: what the admin API needs (src/admin/).
--
-- Nothing here adds a write to the hot paths: publish and claim write what they wrote before,
-- and a delivery done at its first attempt writes no history.

-- Pause: claims skip a subscription whose paused_at is set (claim.sql, solo_due.sql), so
-- across every dispatcher nothing new starts; deliveries already claimed finish. Publishing
-- still fans out to it. The registration upsert (register_subscriptions.sql) never writes
-- this column, so a pause survives dispatchers restarting.
ALTER TABLE pgbus.subscriptions ADD COLUMN paused_at timestamptz;

-- Failure history: the last attempts of a delivery that failed, newest last, at most 10 per
-- delivery. Written by a trigger on pgbus.deliveries rather than by the completer, so that the
-- completer's statement stays as it is:
--
-- - AFTER UPDATE OF last_error: only statements that name last_error in their SET list
--   (the completer's, the admin's) are looked at; claims and lease extensions are not. Its
--   WHEN keeps a row only for a counted attempt that ended in a failure: running before,
--   pending or dead after, attempts unchanged (an attempt given back unstarted is uncounted,
--   attempts - 1), and an error set. One row per such attempt, even when its message
--   repeats the previous one.
-- - AFTER INSERT of a row that failed already: the first attempt of a delivery from the
--   delivery log runs under its batch's lease and arrives here with its outcome
--   (complete_log.sql), pending or dead, attempt counted, an error set.
-- - AFTER DELETE, only for rows with a last_error (a delivery without one has no history):
--   the history goes with its delivery. Deliveries deleted as done at their first attempt
--   (the common case) do not call the trigger at all.
--
-- duration is null: the row does not record when its attempt started. It is there for the
-- completer to fill when it writes the history itself (it knows the handler's duration).
CREATE TABLE pgbus.delivery_failures (
    delivery_id bigint      NOT NULL,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    attempt     integer     NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    duration    interval,
    error       text        NOT NULL,
    PRIMARY KEY (delivery_id, id)
);

CREATE FUNCTION pgbus.record_delivery_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgbus.delivery_failures (delivery_id, attempt, error)
    VALUES (NEW.id, NEW.attempts, NEW.last_error);
    DELETE FROM pgbus.delivery_failures f
    WHERE f.delivery_id = NEW.id
      AND f.id <= (SELECT k.id FROM pgbus.delivery_failures k WHERE k.delivery_id = NEW.id
                   ORDER BY k.id DESC OFFSET 10 LIMIT 1);
    RETURN NULL;
END
$$;

CREATE FUNCTION pgbus.forget_delivery_failures() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgbus.delivery_failures WHERE delivery_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_record_failure
    AFTER UPDATE OF last_error ON pgbus.deliveries
    FOR EACH ROW
    WHEN (OLD.state = 1 AND NEW.state IN (0, 3) AND NEW.attempts = OLD.attempts
          AND NEW.last_error IS NOT NULL)
    EXECUTE FUNCTION pgbus.record_delivery_failure();

CREATE TRIGGER deliveries_record_first_failure
    AFTER INSERT ON pgbus.deliveries
    FOR EACH ROW
    WHEN (NEW.state IN (0, 3) AND NEW.attempts > 0 AND NEW.last_error IS NOT NULL)
    EXECUTE FUNCTION pgbus.record_delivery_failure();

CREATE TRIGGER deliveries_forget_failures
    AFTER DELETE ON pgbus.deliveries
    FOR EACH ROW
    WHEN (OLD.last_error IS NOT NULL)
    EXECUTE FUNCTION pgbus.forget_delivery_failures();

-- Which subscriptions each dispatcher serves, written once when it starts (after it joined
-- pgbus.dispatchers). Apart from pgbus.dispatchers, whose row is removed when a dispatcher
-- is found gone and inserted again when it comes back: these rows stay. Rows of dispatchers
-- that are gone are removed when a dispatcher starts, and ignored by every reader (which
-- joins pgbus.dispatchers).
CREATE TABLE pgbus.dispatcher_subscriptions (
    dispatcher   integer NOT NULL,
    subscription text    NOT NULL,
    PRIMARY KEY (dispatcher, subscription)
);
