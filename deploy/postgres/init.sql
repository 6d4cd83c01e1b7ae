-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as the
-- superuser named by POSTGRES_USER (ti). One database per service: each owns its data.
CREATE DATABASE ti_territory_registry OWNER ti;
CREATE DATABASE ti_action_tracker OWNER ti;
CREATE DATABASE ti_funding_ledger OWNER ti;
CREATE DATABASE ti_site_catalog OWNER ti;
CREATE DATABASE ti_reporting OWNER ti;
