-- Schema of the Enterprise Environmental Credit Evaluation System (PostgreSQL).
-- The one definition every role and test uses; the MariaDB file mirrors it.
CREATE TABLE IF NOT EXISTS enterprises (
    id             BIGSERIAL PRIMARY KEY,
    credit_code    CHAR(18)      NOT NULL UNIQUE,  -- unified social credit code
    name           VARCHAR(200)  NOT NULL,
    district       VARCHAR(50)   NOT NULL,         -- county/district of Shaoguan
    industry       VARCHAR(100)  NOT NULL,
    legal_rep      VARCHAR(50),
    address        TEXT,
    registered_on  DATE,
    created_at     TIMESTAMP     NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS indicators (
    id           SERIAL PRIMARY KEY,
    code         VARCHAR(20)   NOT NULL UNIQUE,
    name         VARCHAR(200)  NOT NULL,
    category     VARCHAR(50)   NOT NULL,
    weight       NUMERIC(5,2)  NOT NULL,
    description  TEXT
);

CREATE TABLE IF NOT EXISTS behaviour_events (
    id              BIGSERIAL PRIMARY KEY,
    enterprise_id   BIGINT        NOT NULL REFERENCES enterprises(id),
    indicator_id    INTEGER       NOT NULL REFERENCES indicators(id),
    occurred_on     DATE          NOT NULL,
    description     TEXT          NOT NULL,
    penalty_amount  NUMERIC(12,2),                 -- NULL when no penalty
    source          VARCHAR(50)   NOT NULL,
    evidence        TEXT                           -- large free text, may be NULL
);
CREATE INDEX IF NOT EXISTS behaviour_events_enterprise ON behaviour_events (enterprise_id);

CREATE TABLE IF NOT EXISTS ratings (
    id             BIGSERIAL PRIMARY KEY,
    enterprise_id  BIGINT        NOT NULL REFERENCES enterprises(id),
    year           INTEGER       NOT NULL,
    score          NUMERIC(5,2)  NOT NULL,
    grade          VARCHAR(10)   NOT NULL,         -- 环保诚信 / 环保良好 / 环保警示 / 环保不良
    rated_on       DATE          NOT NULL,
    UNIQUE (enterprise_id, year)
);

CREATE TABLE IF NOT EXISTS publications (
    id            SERIAL PRIMARY KEY,
    year          INTEGER       NOT NULL,
    title         VARCHAR(200)  NOT NULL,
    published_on  DATE          NOT NULL,
    body          TEXT          NOT NULL
);
