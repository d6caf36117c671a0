-- Notifications: what happened to a user. Rows that point at a post or
-- comment go with it; likes and follows are removed when undone.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id        INTEGER REFERENCES users (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    post_id         INTEGER REFERENCES posts (id) ON DELETE CASCADE,
    comment_id      INTEGER REFERENCES comments (id) ON DELETE CASCADE,
    media_id        INTEGER REFERENCES media (id) ON DELETE CASCADE,
    conversation_id INTEGER,
    read            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read = FALSE;
CREATE INDEX notifications_post ON notifications (post_id);
CREATE INDEX notifications_comment ON notifications (comment_id);
CREATE INDEX notifications_actor ON notifications (actor_id, type);

-- One-to-one conversations: user_a < user_b, one row per pair.
CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_a          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_b          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_message_id INTEGER,
    created_at      TIMESTAMP NOT NULL,
    UNIQUE (user_a, user_b)
);
CREATE INDEX conversations_b ON conversations (user_b);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content         TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- How far each participant has read.
CREATE TABLE conversation_reads (
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_id    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
