"""The local stack's credentials: made on first start, kept in .local/secrets/shop.env (0600).

The file is an env file as Docker Compose reads it (`make up` passes it with --env-file), and
`make dev` gives each service the part it needs: the wallet its signing key and the admin
password, the order service and the payment provider the merchant key, every service the public
keys. None of it is in the repository. A variable set in the environment wins over the file.

    python -m shopkit.local_secrets           # make them if missing (make secrets)
    python -m shopkit.local_secrets rotate    # a new signing key, the old one still verifies
    python -m shopkit.local_secrets keypair   # a key pair for another deployment
"""

import json
import os
import secrets
import sys
from pathlib import Path

from shopkit.keys import KeyRefused, generate_private_key, key_id, load_private_key, public_text

PRIVATE_KEY = "SHOP_JWT_PRIVATE_KEY"
PUBLIC_KEYS = "SHOP_JWT_PUBLIC_KEYS"
MERCHANT_KEY = "SHOP_MERCHANT_KEY"
ADMIN_PASSWORD = "SHOP_ADMIN_PASSWORD"
DEMO_PASSWORD = "SHOP_DEMO_PASSWORD"
# Compose's PostgreSQL passwords (the superuser's, then one role per service database); the
# local stack keeps its roles' passwords beside this file (infra/local/postgres.sh).
_DATABASES = ("WALLET", "CATALOG", "ORDER", "COUPON", "PAYMENT", "ANALYTICS")
COMPOSE_DB_PASSWORDS = ("SHOP_PG_PASSWORD", *(f"SHOP_{db}_DB_PASSWORD" for db in _DATABASES))


def secrets_file(local_dir: Path) -> Path:
    return local_dir / "secrets" / "shop.env"


def read(file: Path) -> dict[str, str]:
    """KEY='value' lines (values never hold a quote: keys, JSON lists of keys, tokens)."""
    values = {}
    for line in file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip().strip("'")
    return values


def write(file: Path, values: dict[str, str]) -> None:
    """Replace the file, readable by its owner only from the moment it exists."""
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = file.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("# The local stack's credentials (make dev, make up). Keep them private.\n")
        out.writelines(f"{name}='{value}'\n" for name, value in values.items())
    partial.replace(file)


def _public(private_key: str) -> str:
    return public_text(load_private_key(private_key, variable=PRIVATE_KEY).public_key())


def ensure(local_dir: Path) -> dict[str, str]:
    """The local stack's credentials, made where missing; the environment overrides them."""
    return {name: os.environ.get(name, value) for name, value in _kept(local_dir).items()}


def _usable(private_key: str) -> bool:
    try:
        load_private_key(private_key, variable=PRIVATE_KEY)
    except KeyRefused:
        return False
    return True


def _kept(local_dir: Path) -> dict[str, str]:
    """The file's credentials, those missing made and written first."""
    file = secrets_file(local_dir)
    values = read(file) if file.exists() else {}
    made = dict(values)
    if PRIVATE_KEY in made and not _usable(made[PRIVATE_KEY]):
        # An earlier version's key (Ed25519): a new pair; tokens signed before are refused.
        print(f"[secrets] {file}: the signing key is not an RSA key; making a new pair")
        del made[PRIVATE_KEY]
        made.pop(PUBLIC_KEYS, None)
    made.setdefault(PRIVATE_KEY, generate_private_key())
    made.setdefault(PUBLIC_KEYS, json.dumps([_public(made[PRIVATE_KEY])]))
    made.setdefault(MERCHANT_KEY, secrets.token_urlsafe(32))
    made.setdefault(ADMIN_PASSWORD, secrets.token_urlsafe(18))
    made.setdefault(DEMO_PASSWORD, secrets.token_urlsafe(18))
    for name in COMPOSE_DB_PASSWORDS:
        made.setdefault(name, secrets.token_hex(24))  # hex: it goes into a database URL
    if made != values:
        write(file, made)
    return made


def rotate(local_dir: Path) -> dict[str, str]:
    """Sign with a new key from the next start on; tokens signed with the current key stay
    valid (it is still listed) until the next rotation drops it."""
    values = _kept(local_dir)
    current = _public(values[PRIVATE_KEY])
    values[PRIVATE_KEY] = generate_private_key()
    values[PUBLIC_KEYS] = json.dumps([_public(values[PRIVATE_KEY]), current])
    write(secrets_file(local_dir), values)
    return values


def service_env(service: str, values: dict[str, str]) -> dict[str, str]:
    """The credentials one service gets: only the wallet can sign, only order pays."""
    env = {PUBLIC_KEYS: values[PUBLIC_KEYS]}
    if service == "wallet":
        env |= {PRIVATE_KEY: values[PRIVATE_KEY], ADMIN_PASSWORD: values[ADMIN_PASSWORD]}
    if service in ("order", "payment-mock"):
        env[MERCHANT_KEY] = values[MERCHANT_KEY]
    return env


def main(argv: list[str]) -> int:
    local_dir = Path(os.environ.get("SHOP_LOCAL_DIR", ".local"))
    command = argv[0] if argv else "ensure"
    if command == "keypair":
        private = generate_private_key()
        public = load_private_key(private, variable=PRIVATE_KEY).public_key()
        print(f"{PRIVATE_KEY}={private}\npublic key: {public_text(public)}\nkid: {key_id(public)}")
        return 0
    if command not in ("ensure", "rotate"):
        print(__doc__, file=sys.stderr)
        return 2
    values = rotate(local_dir) if command == "rotate" else _kept(local_dir)
    signing = key_id(load_private_key(values[PRIVATE_KEY], variable=PRIVATE_KEY).public_key())
    listed = len(json.loads(values[PUBLIC_KEYS]))
    print(f"[secrets] {secrets_file(local_dir)}: signs with {signing}, {listed} public key(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
