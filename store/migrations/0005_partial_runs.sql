-- A crawl where some queries (instances, feeds, tags) worked and some failed ends 'partial': what it
-- stored is kept, and its stats say how many queries worked and how many did not.
ALTER TABLE job_runs DROP CONSTRAINT IF EXISTS job_runs_status_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_status_check
    CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted'));
