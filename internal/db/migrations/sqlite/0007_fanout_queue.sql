-- Posts whose fan-out (followers' home feeds and new_post notifications)
-- is still to do. Creating a post adds a row in the post's transaction;
-- the fan-out worker takes many at a time and writes their followers'
-- rows sorted by follower, one transaction per batch (post.FanOutPending).
-- after_follow_id is the progress through a very large audience, which
-- is served in several transactions.
CREATE TABLE fanout_queue (
    post_id         INTEGER PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    author_id       INTEGER NOT NULL,
    after_follow_id INTEGER NOT NULL DEFAULT 0
);
