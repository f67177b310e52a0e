"""The per-run table a person reads at the end of `make chaos`."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.runner import RunResult


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def table(results: "list[RunResult]", *, details: bool = False) -> str:
    """One line per run; with `details`, each run's faults and violations under it."""
    head = (
        f"{'seed':>6} {'result':6} {'faults':>6} {'PAID':>6} {'FAILED':>6} {'CANCEL':>6}"
        f" {'other':>5} {'viol.':>5} {'worst rec. s':>12} {'outage s':>8} {'500s':>5} {'503s':>5}"
        f" {'settled s':>9} {'time s':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        counted = ("PAID", "FAILED", "CANCELLED")
        other = sum(n for s, n in r.orders.items() if s not in counted)
        recoveries = [f["recovery_s"] for f in r.faults]
        worst = None if None in recoveries else max(recoveries, default=0.0)
        outages = [f["outage_s"] for f in r.faults]
        outage = None if None in outages else max(outages, default=0.0)
        lines.append(
            f"{r.seed:>6} {'ok' if r.ok else 'FAIL':6} {len(r.faults):>6}"
            f" {r.orders.get('PAID', 0):>6} {r.orders.get('FAILED', 0):>6}"
            f" {r.orders.get('CANCELLED', 0):>6} {other:>5} {len(r.violations):>5}"
            f" {_seconds(worst) if r.faults else '-':>12}"
            f" {_seconds(outage) if r.faults else '-':>8} {r.http_status.get(500, 0):>5}"
            f" {r.http_status.get(503, 0):>5} {_seconds(r.settled_after_s):>9}"
            f" {r.duration_s:>6.0f}"
        )
        if details:
            lines += _details(r)
    return "\n".join(lines)


def _details(r: "RunResult") -> list[str]:
    lines = []
    for f in r.faults:
        boot = "" if f["boot_s"] is None else f" (boot {f['boot_s']:.1f})"
        lines.append(
            f"         {f['at'][11:19]} {f['name']:<24} down {f['down_s']:5.1f} s{boot:<11}"
            f" reads 2xx {_seconds(f['recovery_s']):>5} s after, {_seconds(f['outage_s']):>5} s"
            f" after start; load 500 x {f['http_500']}, 503 x {f['http_503']}"
        )
        slow = f["recovery_s"] is None or f["recovery_s"] > 0
        if slow or (f.get("spared") and f["failed_reads"]):
            lines.append(f"           failing reads: {f['failed_reads']}")
    if r.failure_codes:
        lines.append(f"         FAILED by code: {r.failure_codes}")
    noisy = {s: c for s, c in r.logged.items() if c}
    if noisy:
        lines.append(f"         logged: {noisy}")
    lines += [f"       ! {v}" for v in r.violations]
    lines += [f"       500: {e}" for e in r.server_errors[:5]]
    lines += [f"       dead letter: {d}" for d in r.dead_letter_samples]
    if r.transport_errors:
        lines.append(f"         transport errors: {r.transport_errors}")
    if not r.drained:
        lines.append("         (outboxes/analytics had not drained when the books were read)")
    lines.append(f"         logs: {r.log_dir}")
    return lines
