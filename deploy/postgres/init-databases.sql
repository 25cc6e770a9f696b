-- One database and one login role per service: no service can read another's data.
-- Run by the postgres image on its first start only (an empty data volume), through psql, as
-- the superuser. Passwords come from the container's environment (psql \getenv, PostgreSQL 15+),
-- so none is written here; docker-compose.yml passes them in.

\set ON_ERROR_STOP on

\getenv profile_password PROFILE_DB_PASSWORD
\getenv scoring_password SCORING_DB_PASSWORD
\getenv lifecycle_password LIFECYCLE_DB_PASSWORD
\getenv notification_password NOTIFICATION_DB_PASSWORD

CREATE ROLE profile LOGIN PASSWORD :'profile_password';
CREATE DATABASE profile OWNER profile;
REVOKE ALL ON DATABASE profile FROM PUBLIC;

CREATE ROLE scoring LOGIN PASSWORD :'scoring_password';
CREATE DATABASE scoring OWNER scoring;
REVOKE ALL ON DATABASE scoring FROM PUBLIC;

CREATE ROLE lifecycle LOGIN PASSWORD :'lifecycle_password';
CREATE DATABASE lifecycle OWNER lifecycle;
REVOKE ALL ON DATABASE lifecycle FROM PUBLIC;

CREATE ROLE notification LOGIN PASSWORD :'notification_password';
CREATE DATABASE notification OWNER notification;
REVOKE ALL ON DATABASE notification FROM PUBLIC;
