"""`make chaos`: python -m chaos [--runs N] [--seed S] [--smoke] [--replicas R] [--scenario X].

Starts the suite's own PostgreSQL, Kafka and gateway (SHOP_LOCAL_DIR, default .local/chaos;
SHOP_PG_PORT 5532, SHOP_KAFKA_PORT 9192, SHOP_KAFKA_CONTROLLER_PORT 9193), runs seeds S, S+1,
... each on a fresh shop (R processes of every service), prints a table and writes a JSON summary next to the data. Exits 1 on
any violation, and always stops everything it started.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from chaos.report import table
from chaos.runner import SCENARIOS, RunResult, run_once
from chaos.stack import ROOT, Infra, Ports, start_infra


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="how many seeds (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--smoke", action="store_true", help="the short run (<= 3 min a seed)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="processes per service (default 1; 2 for replicas)",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="faults",
        help="faults: every kind of fault; replicas: kill -9 one replica of each service, twice",
    )
    args = parser.parse_args()
    if args.replicas is None:
        args.replicas = 2 if args.scenario == "replicas" else 1
    if args.scenario == "replicas" and args.replicas < 2:
        parser.error("the replicas scenario needs --replicas 2 or more")
    if not 1 <= args.replicas <= 9:
        parser.error("--replicas must be 1..9")
    return args


def _failed(seed: int, error: BaseException, run_dir: Path) -> RunResult:
    """A run that could not finish: its error is its violation."""
    return RunResult(
        seed=seed,
        ok=False,
        duration_s=0.0,
        orders={},
        failure_codes={},
        faults=[],
        violations=[f"run did not finish: {error!r}"],
        http_status={},
        requests={},
        transport_errors={},
        server_errors=[],
        skipped_ticks=0,
        settled_after_s=None,
        drained=False,
        dead_letter_samples=[],
        logged={},
        namespace="",
        log_dir=str(run_dir / "logs"),
        error="".join(traceback.format_exception(error))[-3000:],
    )


async def _main(args: argparse.Namespace, infra: Infra) -> list[RunResult]:
    print(f"[chaos] starting the suite's infrastructure in {infra.local_dir} ...", flush=True)
    await start_infra(infra)
    results = []
    for seed in range(args.seed, args.seed + args.runs):
        run_dir = infra.local_dir / "runs" / f"seed-{seed}"
        try:
            result = await run_once(
                infra, seed, smoke=args.smoke, run_dir=run_dir, scenario=args.scenario
            )
        except Exception as exc:  # one broken run must not hide the others' figures
            result = _failed(seed, exc, run_dir)
            print(result.error, file=sys.stderr, flush=True)
        results.append(result)
        print(table([result]), flush=True)
    return results


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that the cleanup in `finally` runs on SIGTERM too


def main() -> int:
    args = _arguments()
    local = Path(os.environ.get("SHOP_LOCAL_DIR", ROOT / ".local" / "chaos")).resolve()
    infra = Infra(local_dir=local, ports=Ports.from_env(), replicas=args.replicas)
    signal.signal(signal.SIGTERM, _terminate)
    results: list[RunResult] = []
    try:
        results = asyncio.run(_main(args, infra))
    except KeyboardInterrupt:
        print("\n[chaos] interrupted", flush=True)
        return 130
    finally:
        print("[chaos] stopping the suite's gateway, Kafka and PostgreSQL ...", flush=True)
        infra.stop_all()
    summary = {
        "smoke": args.smoke,
        "scenario": args.scenario,
        "replicas": args.replicas,
        "seeds": [r.seed for r in results],
        "ok": all(r.ok for r in results),
        "violations": sum(len(r.violations) for r in results),
        "runs": [asdict(r) for r in results],
    }
    local.mkdir(parents=True, exist_ok=True)
    path = local / f"summary-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(summary, indent=2))
    (local / "summary-last.json").write_text(json.dumps(summary, indent=2))
    print("\n" + table(results, details=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    print(f"[chaos] summary written to {path}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
