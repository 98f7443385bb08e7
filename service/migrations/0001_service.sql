-- The service's change requests: previews, the approvals of one preview each, the one apply of each
-- approval, rejections, and each tenant's stack secrets-manager block (ciphertext only).
-- Applied once by service.db.migrate (recorded in scoutflo_migrations), inside its transaction.
-- Rules the database itself keeps, so no code path can break them:
--   * one approval per preview, ever (approvals.preview_id UNIQUE);
--   * one apply per approval, ever (applies.approval_id UNIQUE);
--   * an approval carries its preview's fingerprint (foreign key on (preview_id, fingerprint));
--   * previews, approvals, applies and rejections are never deleted (triggers refuse DELETE and
--     TRUNCATE; no ON DELETE CASCADE anywhere); an approval or a rejection is never rewritten.

CREATE TABLE previews (
    id bigserial PRIMARY KEY,
    -- DNS-1123 label of at most 40 characters, as automation.tenant.tenant_settings demands.
    tenant text NOT NULL CHECK (tenant ~ '^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$'),
    reason text NOT NULL CHECK (reason IN ('request', 'drift', 'upgrade')),
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'ready', 'empty', 'failed', 'superseded', 'approved', 'rejected', 'applied')),
    fingerprint text,
    plan_sha256 text,
    config_digest text,
    state_digest text,
    program_digest text,
    -- ChangeSet.to_json(): secrets are masked there already (automation/changeset.py).
    changes jsonb,
    text text,
    error text,
    created timestamptz NOT NULL DEFAULT now(),
    finished timestamptz,
    -- A ready preview has what an approval binds to.
    CHECK (status <> 'ready' OR (fingerprint IS NOT NULL AND finished IS NOT NULL)),
    UNIQUE (id, fingerprint)
);
CREATE INDEX previews_tenant_id ON previews (tenant, id DESC);

CREATE TABLE approvals (
    id bigserial PRIMARY KEY,
    preview_id bigint NOT NULL UNIQUE,
    approver text NOT NULL CHECK (approver <> ''),
    fingerprint text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (preview_id, fingerprint) REFERENCES previews (id, fingerprint)
);

CREATE TABLE applies (
    id bigserial PRIMARY KEY,
    approval_id bigint NOT NULL UNIQUE REFERENCES approvals (id),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'started', 'succeeded', 'failed', 'interrupted')),
    worker text,
    host text,
    pid int,
    update_version int,
    summary jsonb,
    error text,
    queued timestamptz NOT NULL DEFAULT now(),
    started timestamptz,
    heartbeat timestamptz,
    finished timestamptz,
    CHECK (status = 'queued' OR started IS NOT NULL),
    CHECK (status IN ('queued', 'started') OR finished IS NOT NULL)
);
CREATE INDEX applies_open ON applies (status) WHERE status IN ('queued', 'started');

CREATE TABLE rejections (
    preview_id bigint PRIMARY KEY REFERENCES previews (id),
    "by" text NOT NULL CHECK ("by" <> ''),
    reason text NOT NULL DEFAULT '',
    created timestamptz NOT NULL DEFAULT now()
);

-- What Pulumi writes into Pulumi.<stack>.yaml for the stack's secrets manager: the provider URL,
-- the data key wrapped by KMS (encryptedkey) or the passphrase salt (encryptionsalt). Ciphertext
-- only: the key that unwraps it stays in KMS (or the passphrase file), never here.
CREATE TABLE stack_secrets (
    tenant text PRIMARY KEY CHECK (tenant ~ '^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$'),
    secretsprovider text NOT NULL,
    encryptedkey text,
    encryptionsalt text,
    updated timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION scoutflo_keep_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'scoutflo: % on % is refused: the audit trail keeps every row', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER previews_keep BEFORE DELETE ON previews FOR EACH ROW EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER previews_keep_all BEFORE TRUNCATE ON previews FOR EACH STATEMENT EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER approvals_keep BEFORE DELETE OR UPDATE ON approvals FOR EACH ROW EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER approvals_keep_all BEFORE TRUNCATE ON approvals FOR EACH STATEMENT EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER applies_keep BEFORE DELETE ON applies FOR EACH ROW EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER applies_keep_all BEFORE TRUNCATE ON applies FOR EACH STATEMENT EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER rejections_keep BEFORE DELETE OR UPDATE ON rejections FOR EACH ROW EXECUTE FUNCTION scoutflo_keep_rows();
CREATE TRIGGER rejections_keep_all BEFORE TRUNCATE ON rejections FOR EACH STATEMENT EXECUTE FUNCTION scoutflo_keep_rows();
