-- A Contact who asked to receive no broadcasts (by API, import or an SMS keyword).
ALTER TABLE contacts ADD COLUMN broadcast_opt_out boolean NOT NULL DEFAULT false;
