-- Profiles: what a user shows others. Owned by package social; the counters
-- are kept in step with follows inside the same transactions.
CREATE TABLE profiles (
    user_id          BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    first_name       TEXT NOT NULL DEFAULT '',
    last_name        TEXT NOT NULL DEFAULT '',
    bio              TEXT NOT NULL DEFAULT '',
    picture_key      TEXT NOT NULL DEFAULT '',
    cover_key        TEXT NOT NULL DEFAULT '',
    followers_count  BIGINT NOT NULL DEFAULT 0,
    following_count  BIGINT NOT NULL DEFAULT 0,
    updated_at       TIMESTAMPTZ
);
CREATE INDEX profiles_first_name ON profiles (lower(first_name) text_pattern_ops);
CREATE INDEX profiles_last_name ON profiles (lower(last_name) text_pattern_ops);
CREATE INDEX users_username_prefix ON users (lower(username) text_pattern_ops);

CREATE TABLE follows (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    follower_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, id);
CREATE INDEX follows_follower ON follows (follower_id, id);

CREATE TABLE suggestions (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    suggested_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mutuals      INTEGER NOT NULL,
    computed_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, suggested_id)
);
CREATE INDEX suggestions_suggested ON suggestions (suggested_id);
CREATE INDEX profiles_followers ON profiles (followers_count);
