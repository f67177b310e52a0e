-- One service's database and its own login role, idempotently (local stack and compose alike).
-- Run by a superuser connected to the maintenance database, with psql variables set:
--   db        the database                 role      the service's login role
--   password  the role's password (URL-safe characters: it goes into SHOP_DATABASE_URL)
-- The role owns its database and nothing else: no superuser, no CREATEDB/CREATEROLE, and
-- CONNECT on each service database is revoked from PUBLIC, so another service's role cannot
-- even connect. Leaves the session connected to :db.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'password';

SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";

\connect :"db"
-- PostgreSQL 15+ gives public to pg_database_owner already; older servers let PUBLIC create in it.
ALTER SCHEMA public OWNER TO :"role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- A database made by an older run (every service connected as the superuser then) holds tables
-- the superuser owns; the role takes them over so its migrations can alter them. Sequences and
-- indexes follow their tables; extension members stay with their extension.
SELECT format('ALTER %s %s OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END,
              c.oid::regclass, :'role')
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND c.relowner <> :'role'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('e', 'a', 'i')) \gexec
SELECT format('ALTER %s %s OWNER TO %I',
              CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, :'role')
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace
   AND t.typtype IN ('e', 'd', 'r')
   AND t.typowner <> :'role'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                      AND d.deptype = 'e') \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'role')
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proowner <> :'role'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                      AND d.deptype = 'e') \gexec
