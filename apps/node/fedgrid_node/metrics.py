"""Prometheus text exposition (`/metrics`) of every hosted process's cycle figures.

Counters are totals over all cycles (closed ones from their stored summaries, the open one live
from the engine); gauges describe the current state. Admin token required, as for the JSON
figures: model names and progress are the researcher's business.
"""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from .auth.admin import check_admin_token
from .cycles.cycle_aggregate import privacy_status
from .cycles.federated_evaluation import federated_scores
from .cycles.held_out import held_out_scores
from .cycles.server_config import parse_server_config
from .cycles.statuses import CycleStatus, ProcessStatus
from .db.models import Cycle, Process

blueprint = Blueprint("metrics", __name__)

HELP = {
    "fedgrid_cycle": ("gauge", "Sequence number of the current (or last) cycle"),
    "fedgrid_checkpoint": ("gauge", "Number of the newest checkpoint"),
    "fedgrid_process_finished": ("gauge", "1 when the process has run all its cycles"),
    "fedgrid_process_status": (
        "gauge", "1 for the process's status (active, paused, stopped, finished), 0 for the others"),
    "fedgrid_cycles_total": ("counter", "Cycles closed, by outcome"),
    "fedgrid_assignments_accepted_total": ("counter", "Places in cycles handed to devices"),
    "fedgrid_reports_total": ("counter", "Reports acknowledged"),
    "fedgrid_assignments_dropped_total": ("counter", "Assignments whose cycle closed before they reported"),
    "fedgrid_assignments_expired_total": ("counter", "Assignments whose lease ran out before they reported"),
    "fedgrid_cycle_requests_rejected_total": ("counter", "Cycle requests rejected, by reason"),
    "fedgrid_client_metric": ("gauge", "num_samples-weighted client metric of the last completed cycle"),
    "fedgrid_aggregation_seconds": ("gauge", "Time to close the last completed cycle"),
    "fedgrid_checkpoint_test_accuracy": (
        "gauge", "Accuracy of the newest scored checkpoint on the held-out evaluation set"),
    "fedgrid_checkpoint_test_loss": (
        "gauge", "Loss of the newest scored checkpoint on the held-out evaluation set"),
    "fedgrid_checkpoint_federated_metric": (
        "gauge", "num_samples-weighted metric of the newest checkpoint evaluated by devices"),
    "fedgrid_evaluated_checkpoint": (
        "gauge", "Number of the checkpoint the test (held-out) or federated gauges describe"),
    "fedgrid_privacy_epsilon": ("gauge", "Differential privacy: epsilon spent by the completed cycles, at the process's delta"),
    "fedgrid_privacy_clip": ("gauge", "Differential privacy: the L2 clip of the next cycle's updates"),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@blueprint.get("/metrics")
def metrics():
    state = current_app.extensions["fedgrid"]
    check_admin_token(state.config.admin_token, request.headers.get("Authorization"))
    samples: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in HELP}
    with state.db.session() as session:
        for process in session.scalars(select(Process).order_by(Process.id)):
            labels = {"model": process.name, "version": process.version}
            cycles = session.scalars(
                select(Cycle).where(Cycle.process_id == process.id).order_by(Cycle.sequence)
            ).all()
            outcomes, rejected = Counter(), Counter()
            accepted = reports = dropped = expired = 0
            last_completed = None
            checkpoint = 1
            for cycle in cycles:
                figures = state.engine.cycle_metrics(cycle)
                accepted += figures.get("accepted", 0)
                reports += figures.get("reported", 0)
                dropped += figures.get("dropped", 0)
                expired += figures.get("expired", 0)
                rejected.update(figures.get("rejected", {}))
                if cycle.status != CycleStatus.OPEN:
                    outcomes[cycle.status] += 1
                if cycle.status == CycleStatus.COMPLETED:
                    last_completed = figures
                    checkpoint = max(checkpoint, figures.get("new_checkpoint") or 1)
            samples["fedgrid_cycle"].append((labels, cycles[-1].sequence if cycles else 0))
            samples["fedgrid_checkpoint"].append((labels, checkpoint))
            samples["fedgrid_process_finished"].append((labels, int(process.status == ProcessStatus.FINISHED)))
            for status in ProcessStatus:
                samples["fedgrid_process_status"].append(
                    ({**labels, "status": status.value}, int(process.status == status)))
            for outcome in (CycleStatus.COMPLETED, CycleStatus.ABANDONED):
                samples["fedgrid_cycles_total"].append(({**labels, "outcome": outcome}, outcomes[outcome]))
            samples["fedgrid_assignments_accepted_total"].append((labels, accepted))
            samples["fedgrid_reports_total"].append((labels, reports))
            samples["fedgrid_assignments_dropped_total"].append((labels, dropped))
            samples["fedgrid_assignments_expired_total"].append((labels, expired))
            for reason, count in sorted(rejected.items()):
                samples["fedgrid_cycle_requests_rejected_total"].append(
                    ({**labels, "reason": reason}, count)
                )
            if last_completed is not None:
                for metric, value in sorted((last_completed.get("client_metrics") or {}).items()):
                    samples["fedgrid_client_metric"].append(({**labels, "metric": metric}, value))
                samples["fedgrid_aggregation_seconds"].append(
                    (labels, last_completed.get("aggregation_seconds") or 0.0)
                )
            _evaluation_samples(samples, labels, held_out_scores(session, process.id),
                                federated_scores(session, process.id))
            privacy = privacy_status(session, process.id, parse_server_config(process.server_config))
            if privacy is not None:
                samples["fedgrid_privacy_epsilon"].append(
                    ({**labels, "delta": f"{privacy['delta']:.3g}"}, privacy["epsilon"]))
                samples["fedgrid_privacy_clip"].append((labels, privacy["clip"]))
    lines = []
    for name, (kind, help_text) in HELP.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples[name]:
            rendered = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{rendered}}} {float(value)!r}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


def _evaluation_samples(samples, labels, held_out: dict[int, dict], federated: dict[int, dict]) -> None:
    """The newest checkpoint's evaluations: one series per process, not one per checkpoint."""
    if held_out:
        number = max(held_out)
        score = held_out[number]
        if "accuracy" in score:
            samples["fedgrid_checkpoint_test_accuracy"].append((labels, score["accuracy"]))
        if "loss" in score:
            samples["fedgrid_checkpoint_test_loss"].append((labels, score["loss"]))
        samples["fedgrid_evaluated_checkpoint"].append(({**labels, "evaluation": "test"}, number))
    if federated:
        number = max(federated)
        for metric, value in federated[number]["metrics"].items():
            samples["fedgrid_checkpoint_federated_metric"].append(
                ({**labels, "metric": metric}, value))
        samples["fedgrid_evaluated_checkpoint"].append(
            ({**labels, "evaluation": "federated"}, number))
