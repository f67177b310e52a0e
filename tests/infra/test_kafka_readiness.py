"""infra/local/kafka.sh: how a start knows the broker is up, whatever log4j did to its log.

The script runs under `set -euo pipefail`; its `logged_since` function reads what the broker
logged after a start began, from the log and, if log4j rolled it meanwhile, from the rolled
file. These run that function in bash exactly as the script defines it.
"""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "infra" / "local" / "kafka.sh"
STARTED = "Kafka Server started"


def logged_after(log: Path, offset: int, inode: int) -> str:
    """What `logged_since offset inode` prints for `log`, run under the script's options."""
    program = (
        "set -euo pipefail\n"
        f"LOG={log}\n"
        f"eval \"$(sed -n '/^logged_since() {{/,/^}}/p' {SCRIPT})\"\n"
        f"logged_since {offset} {inode}\n"
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout


def where(log: Path) -> tuple[int, int]:
    """(size, inode) of the log as a start records them; (0, 0) when there is none yet."""
    if not log.exists():
        return 0, 0
    return log.stat().st_size, log.stat().st_ino


def test_a_first_start_reads_the_log_it_creates(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    offset, inode = where(log)
    log.write_text(f"formatting\n{STARTED}\n")
    assert STARTED in logged_after(log, offset, inode)


def test_a_restart_reads_only_what_came_after_it_began(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(f"{STARTED}\nstopped\n")  # an earlier run's lines
    offset, inode = where(log)
    assert STARTED not in logged_after(log, offset, inode)
    with log.open("a") as f:
        f.write(f"{STARTED}\n")
    assert logged_after(log, offset, inode) == f"{STARTED}\n"


def test_a_log_rolled_during_the_start_is_read_on_both_sides(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("an earlier run\n")
    offset, inode = where(log)
    with log.open("a") as f:
        f.write("replaying metadata\n")
    log.rename(tmp_path / "server.log.1")  # log4j rolls at 20 MB
    log.write_text(f"{STARTED}\n")
    assert logged_after(log, offset, inode) == f"replaying metadata\n{STARTED}\n"
