-- Token-signing keys are kept sealed (AES-256-GCM under workspaces.signing_key_seal_key).
-- Keys stored in clear before are sealed, and their clear copy erased, by the service at
-- its next start.
ALTER TABLE signing_keys ADD COLUMN sealed bytea, ALTER COLUMN pkcs8 DROP NOT NULL;
