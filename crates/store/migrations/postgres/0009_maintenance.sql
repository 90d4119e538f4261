-- Maintenance windows (issue 5): ordering on `channel` (order-app, order-card or order for
-- all) is refused during [starts_at, ends_at) with `message`, which the pages show.
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX maintenance_windows_ends_at ON maintenance_windows (ends_at);
