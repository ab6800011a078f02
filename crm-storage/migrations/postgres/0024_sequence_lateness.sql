-- What a sequence step reached late does (issue #11): JSON LatePolicy
-- {"grace_seconds", "action": "skip" | "send" | "stop"}; NULL: the default
-- (one day's grace, then message steps are skipped).
ALTER TABLE sequences ADD COLUMN IF NOT EXISTS late_policy jsonb;
