-- Notification indexes that serve the queries the hot paths run:
-- a post's new_post notifications are inserted skipping followers who
-- already have one (NOT EXISTS by post and user: with the post alone, each
-- insert scanned every notification of the post so far, quadratic in the
-- author's followers); undoing a like finds its notification by actor,
-- type and post; most notifications have no comment, which the comment
-- index (for cascading deletes) need not hold.
DROP INDEX notifications_post;
CREATE INDEX notifications_post ON notifications (post_id, user_id);
DROP INDEX notifications_actor;
CREATE INDEX notifications_actor ON notifications (actor_id, type, post_id);
DROP INDEX notifications_comment;
CREATE INDEX notifications_comment ON notifications (comment_id) WHERE comment_id IS NOT NULL;
