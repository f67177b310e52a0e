#!/usr/bin/env bash
# Prints the credentials `make secrets` keeps (<SHOP_LOCAL_DIR>/secrets/shop.env, KEY='value'
# lines) as kubectl's --from-env-file reads them: KEY=value, no quotes, and without the
# PostgreSQL superuser's password, which no pod of the chart needs. README, "On Kubernetes":
#   kubectl create secret generic shop-secrets --from-env-file=<(deploy/helm/secret-env.sh FILE)
set -euo pipefail
file=${1:?usage: deploy/helm/secret-env.sh <SHOP_LOCAL_DIR>/secrets/shop.env}
sed -n -e '/^SHOP_PG_PASSWORD=/d' -e "s/^\(SHOP_[A-Z0-9_]*\)='\([^']*\)'\$/\1=\2/p" "$file"
