-- Schema of the Enterprise Environmental Credit Evaluation System (MariaDB, utf8mb4).
-- Mirrors schema.postgresql.sql.
CREATE TABLE IF NOT EXISTS enterprises (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    credit_code    CHAR(18)      NOT NULL UNIQUE,
    name           VARCHAR(200)  NOT NULL,
    district       VARCHAR(50)   NOT NULL,
    industry       VARCHAR(100)  NOT NULL,
    legal_rep      VARCHAR(50),
    address        TEXT,
    registered_on  DATE,
    created_at     TIMESTAMP     NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS indicators (
    id           INT AUTO_INCREMENT PRIMARY KEY,
    code         VARCHAR(20)   NOT NULL UNIQUE,
    name         VARCHAR(200)  NOT NULL,
    category     VARCHAR(50)   NOT NULL,
    weight       DECIMAL(5,2)  NOT NULL,
    description  TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS behaviour_events (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    enterprise_id   BIGINT        NOT NULL,
    indicator_id    INT           NOT NULL,
    occurred_on     DATE          NOT NULL,
    description     TEXT          NOT NULL,
    penalty_amount  DECIMAL(12,2),
    source          VARCHAR(50)   NOT NULL,
    evidence        MEDIUMTEXT,
    KEY behaviour_events_enterprise (enterprise_id),
    CONSTRAINT fk_events_enterprise FOREIGN KEY (enterprise_id) REFERENCES enterprises (id),
    CONSTRAINT fk_events_indicator FOREIGN KEY (indicator_id) REFERENCES indicators (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS ratings (
    id             BIGINT AUTO_INCREMENT PRIMARY KEY,
    enterprise_id  BIGINT        NOT NULL,
    year           INT           NOT NULL,
    score          DECIMAL(5,2)  NOT NULL,
    grade          VARCHAR(10)   NOT NULL,
    rated_on       DATE          NOT NULL,
    UNIQUE KEY ratings_enterprise_year (enterprise_id, year),
    CONSTRAINT fk_ratings_enterprise FOREIGN KEY (enterprise_id) REFERENCES enterprises (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS publications (
    id            INT AUTO_INCREMENT PRIMARY KEY,
    year          INT           NOT NULL,
    title         VARCHAR(200)  NOT NULL,
    published_on  DATE          NOT NULL,
    body          MEDIUMTEXT    NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
