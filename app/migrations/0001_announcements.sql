-- Release migration: announcements shown by the application (notices of the bureau).
CREATE TABLE IF NOT EXISTS announcements (
    id            SERIAL PRIMARY KEY,
    title         VARCHAR(200) NOT NULL,
    body          TEXT         NOT NULL,
    published_on  DATE         NOT NULL DEFAULT CURRENT_DATE
);
