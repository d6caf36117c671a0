-- Leave a tenth of each posts page free, so that moving a post's counters
-- (every like, unlike and comment) writes the new row version on the same
-- page: a heap-only update that touches none of the post's three indexes.
-- With full pages a third of the counter updates also inserted into every
-- index (pg_stat_user_tables n_tup_hot_upd, docs/performance.md). Applies
-- to pages written from now on; VACUUM FULL posts applies it to old ones.
ALTER TABLE posts SET (fillfactor = 90);
