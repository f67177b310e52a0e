"""Every key-like string written in this repository, in its files and in its history.

Whoever has the source has these, so none may configure a service or sign a token that a
service accepts. Found: PEM blocks; base64url DER blocks (how the shop writes its RSA keys on one
line); 43-character base64url strings (the form of a raw Ed25519 key or a SHA-256 digest); values given to a secret-like name (`..._secret = "..."`, `PASSWORD: ...`,
`${X_KEY:-...}`). Noisy on purpose: a false find costs one more refused token in a test.
"""

import re
import subprocess
from functools import lru_cache
from pathlib import Path

from shopdev.testing import repo_root

PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(?:\s|\\n|[A-Za-z0-9+/=]){40,}?-----END \1-----")
DER = re.compile(r"(?<![\w-])MI[\w-]{200,}(?![\w-])")  # 0x30 0x82: a DER sequence, base64url
RAW_KEY = re.compile(r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]{43}(?![\w-])")
ASSIGNED = re.compile(
    r"""(?i)[\w.-]*(?:secret|passw|private_key|merchant_key|api_key|signing_key)\w*["']?\s*"""
    r"""(?::\s*[\w\[\]| .]+?)?\s*[:=,]\s*(?:\$\{\w+:-)?["']?([^\s"'${}(),=]{8,})"""
)
SKIPPED = ("uv.lock", "package-lock.json")  # package hashes, not keys


def strings_in(text: str) -> set[str]:
    found = {m.group(0).replace("\\n", "\n") for m in PEM.finditer(text)}
    found |= set(DER.findall(text)) | set(RAW_KEY.findall(text))
    return found | set(ASSIGNED.findall(text))


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


@lru_cache(maxsize=1)
def repository_secrets() -> tuple[str, ...]:
    root = repo_root()
    listed = _git(root, "ls-files")
    files = (
        [root / name for name in listed.split()]
        if listed
        else [p for p in root.rglob("*") if not {".venv", ".local", ".git"} & set(p.parts)]
    )
    found: set[str] = set()
    for path in files:
        if path.name in SKIPPED or not path.is_file():
            continue
        try:
            found |= strings_in(path.read_text())
        except (UnicodeDecodeError, OSError):
            continue
    locks = [f":(exclude,glob)**/{name}" for name in SKIPPED]
    history = _git(root, "log", "-p", "--no-color", "HEAD", "--", ".", *locks)
    if history:
        added = (line[1:] for line in history.splitlines() if line.startswith("+"))
        found |= strings_in("\n".join(added))
    return tuple(sorted(found))
