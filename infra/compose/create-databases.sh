#!/usr/bin/env bash
# One database per service, each owned by its own login role (docker-compose). The postgres
# image runs this once, on an empty volume; it is idempotent, so on a volume an older compose
# made, run it by hand: docker compose exec postgres bash /docker-entrypoint-initdb.d/create-databases.sh
# The SQL is the local stack's too (infra/postgres/service-database.sql, via infra/local/postgres.sh).
set -euo pipefail
SQL=${SHOP_SERVICE_DATABASE_SQL:-/shop/service-database.sql}

for db in wallet catalog order coupon payment analytics; do
  var="SHOP_${db^^}_DB_PASSWORD"
  password=${!var:-}
  # it goes into SHOP_DATABASE_URL as it is, so only characters a URL needs no escaping for
  [[ $password =~ ^[A-Za-z0-9._~-]{16,}$ ]] ||
    { echo "create-databases: set $var to 16+ URL-safe characters (e.g. openssl rand -hex 24)" >&2; exit 1; }
  printf '\\set db %s\n\\set role shop_%s\n\\set password %s\n\\i %s\n' "$db" "$db" "$password" "$SQL" |
    psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}"
  echo "create-databases: $db owned by shop_$db"
done
