-- The account's IANA time zone (issue #11), e.g. America/Sao_Paulo:
-- business-hours conditions and sequence send windows with neither their
-- own zone nor a UTC offset are read on this clock. NULL: UTC.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS time_zone TEXT;
