-- PostgreSQL's 0008 leaves room in posts pages for counter updates; SQLite
-- rewrites the row in place and has no such setting. Kept so that both
-- engines count the same migrations.
SELECT 1;
