-- Notifications: what happened to a user. Rows that point at a post or
-- comment go with it; likes and follows are removed when undone.
CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id        BIGINT REFERENCES users (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    post_id         BIGINT REFERENCES posts (id) ON DELETE CASCADE,
    comment_id      BIGINT REFERENCES comments (id) ON DELETE CASCADE,
    media_id        BIGINT REFERENCES media (id) ON DELETE CASCADE,
    conversation_id BIGINT,
    read            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read = FALSE;
CREATE INDEX notifications_post ON notifications (post_id);
CREATE INDEX notifications_comment ON notifications (comment_id);
CREATE INDEX notifications_actor ON notifications (actor_id, type);

-- One-to-one conversations: user_a < user_b, one row per pair.
CREATE TABLE conversations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_a          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_b          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_message_id BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (user_a, user_b)
);
CREATE INDEX conversations_b ON conversations (user_b);

CREATE TABLE messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- How far each participant has read.
CREATE TABLE conversation_reads (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_id    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
