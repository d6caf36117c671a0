-- Resumable (tus) uploads and who owns them. The bytes live in the tus
-- store (a local directory or S3); this row decides who may touch them.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    size        BIGINT NOT NULL DEFAULT 0,
    offset_     BIGINT NOT NULL DEFAULT 0,
    filename    TEXT NOT NULL DEFAULT '',
    filetype    TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    consumed_at TIMESTAMPTZ
);
CREATE INDEX uploads_owner ON uploads (owner_id);
CREATE INDEX uploads_created ON uploads (created_at);

-- Media items: images (processed at once) and videos (transcoded in the
-- background into HLS). A media item belongs to its owner, and to at most
-- one post.
CREATE TABLE media (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id     BIGINT REFERENCES posts (id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    progress    INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    source_key  TEXT NOT NULL DEFAULT '',
    source_format TEXT NOT NULL DEFAULT '',
    key         TEXT NOT NULL DEFAULT '',
    thumb_key   TEXT NOT NULL DEFAULT '',
    width       INTEGER,
    height      INTEGER,
    duration    DOUBLE PRECISION,
    blurhash    TEXT,
    renditions  TEXT NOT NULL DEFAULT '',
    catalog     BOOLEAN NOT NULL DEFAULT FALSE,
    -- Who is transcoding it, until when (renewed while alive), so a crashed
    -- worker's video is taken over and never transcoded twice at once.
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX media_post ON media (post_id);
CREATE INDEX media_owner ON media (owner_id, id);

-- The staff-curated catalog (Videoflix).
CREATE TABLE videos (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    media_id    BIGINT NOT NULL UNIQUE REFERENCES media (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category    TEXT NOT NULL DEFAULT '',
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
