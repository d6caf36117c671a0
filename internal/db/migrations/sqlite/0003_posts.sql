CREATE TABLE posts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          TEXT NOT NULL DEFAULT '',
    content        TEXT NOT NULL DEFAULT '',
    likes_count    INTEGER NOT NULL DEFAULT 0,
    comments_count INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX posts_author ON posts (author_id, id);
CREATE INDEX posts_created ON posts (created_at);

CREATE TABLE likes (
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (post_id, user_id)
) WITHOUT ROWID;
CREATE INDEX likes_user ON likes (user_id);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX comments_post ON comments (post_id, id);
CREATE INDEX comments_author ON comments (author_id);

CREATE TABLE post_hashtags (
    tag        TEXT NOT NULL,
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tag, post_id)
) WITHOUT ROWID;
CREATE INDEX post_hashtags_post ON post_hashtags (post_id);
CREATE INDEX post_hashtags_created ON post_hashtags (created_at);

-- Home timelines, materialised on write (fan-out): one row per reader and
-- post. Rows exist for every post newer than feeds.floor_post_id by the
-- reader or someone the reader follows; older pages are read directly.
CREATE TABLE feed_entries (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id   INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, post_id)
) WITHOUT ROWID;
CREATE INDEX feed_entries_post ON feed_entries (post_id);

CREATE TABLE feeds (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    floor_post_id INTEGER NOT NULL DEFAULT 0
);

-- The last result of the trends job.
CREATE TABLE trend_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    computed_at TIMESTAMP NOT NULL,
    data        TEXT NOT NULL
);
