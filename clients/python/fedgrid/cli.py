"""The ``fedgrid`` command line: host, status, cycles, checkpoints, watch, download, train,
simulate, and the process controls pause, resume, stop and delete.

Every command takes ``--url`` (env ``FEDGRID_URL``, default ``http://localhost:5000``); admin
commands take ``--admin-token`` (env ``FEDGRID_ADMIN_TOKEN`` or ``GRID_ADMIN_TOKEN``). Failures
print one line saying what went wrong and exit 1; ``--debug`` (env ``FEDGRID_DEBUG=1``) shows the
traceback instead. Output piped into ``head`` and cut short ends quietly, like other Unix tools.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .admin import Admin, compile_model
from .errors import FedgridError
from .model_names import resolve_model

DEFAULT_URL = "http://localhost:5000"


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object given inline, or ``@file.json``."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    common = argparse.ArgumentParser(add_help=False)
    # Also accepted after the command; SUPPRESS keeps a subcommand from resetting the global one.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of a failure (env FEDGRID_DEBUG=1)")
    common.add_argument("--url", default=env.get("FEDGRID_URL", DEFAULT_URL),
                        help="Node URL, http(s):// or ws(s):// (env FEDGRID_URL)")
    admin = argparse.ArgumentParser(add_help=False)
    admin.add_argument("--admin-token",
                       default=env.get("FEDGRID_ADMIN_TOKEN") or env.get("GRID_ADMIN_TOKEN"),
                       help="the Node's admin token (env FEDGRID_ADMIN_TOKEN or GRID_ADMIN_TOKEN)")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("name", help="hosted model name")
    model.add_argument("--version", default=None, help="model version (default: newest)")

    parser = argparse.ArgumentParser(prog="fedgrid", description="Fedgrid SDK command line.")
    parser.add_argument("--version", action="version", version=f"fedgrid {_version()}")
    parser.add_argument("--debug", action="store_true", default=env.get("FEDGRID_DEBUG", "") not in ("", "0"),
                        help="show the traceback of a failure (env FEDGRID_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    host = commands.add_parser("host", parents=[common, admin],
                               help="host a model: a zoo name or a plan file")
    host.add_argument("model", help="zoo model name (e.g. digits_mlp; needs torch) or a .fgplan file")
    host.add_argument("--name", help="name to host it under (default: the zoo name or file stem)")
    host.add_argument("--version", default="1.0")
    host.add_argument("--checkpoint", type=Path,
                      help="initial parameters (.safetensors); required with a plan file")
    host.add_argument("--client-config", type=_json_object, default={},
                      help='JSON object (or @file), e.g. \'{"batch_size": 10, "epochs": 5}\'')
    host.add_argument("--server-config", type=_json_object, default={},
                      help='JSON object (or @file), e.g. \'{"max_diffs": 5, "num_cycles": 40}\'')
    host.add_argument("--evaluation-set", type=Path,
                      help="held-out test set (.npz with features and labels): the Node scores "
                      "every checkpoint on it (test_metrics in `fedgrid cycles`)")

    commands.add_parser("status", parents=[common, admin],
                        help="the Node's status and its hosted processes")

    cycles = commands.add_parser("cycles", parents=[common, admin, model],
                                 help="per-cycle metrics of a hosted model")
    cycles.add_argument("--json", action="store_true", help="print the raw JSON")

    commands.add_parser("checkpoints", parents=[common, admin, model],
                        help="list a model's checkpoints")

    watch = commands.add_parser("watch", parents=[common, admin, model],
                                help="score each new checkpoint on a local test set, until the "
                                     "model is finished")
    watch.add_argument("--test", type=Path, required=True,
                       help=".npz with arrays 'features' and 'labels' (or 'x' and 'y')")
    watch.add_argument("--plan", type=Path, required=True,
                       help="the model's plan file (.fgplan): its forward graph scores")
    watch.add_argument("--interval", type=float, default=5.0,
                       help="seconds between looks for a new checkpoint")

    download = commands.add_parser("download", parents=[common, admin, model],
                                   help="save a checkpoint as .safetensors")
    download.add_argument("--checkpoint", default="latest", help="checkpoint number or 'latest'")
    download.add_argument("-o", "--output", type=Path, help="file to write (default: <name>.safetensors)")

    train = commands.add_parser("train", parents=[common, model],
                                help="train as one device on a local data file until done")
    train.add_argument("--data", type=Path, required=True,
                       help=".npz with arrays 'features' and 'labels' (or 'x' and 'y')")
    train.add_argument("--auth-token", default=env.get("FEDGRID_AUTH_TOKEN"),
                       help="device auth token, if the model requires one (env FEDGRID_AUTH_TOKEN)")
    train.add_argument("--cycles", type=int, default=None, help="stop after this many reports")

    sim = commands.add_parser(
        "simulate", parents=[common, admin],
        help="simulated devices train a model on your data (or the digits) against a Node",
        description="Host a model and train it with simulated devices on your data: one .npz "
                    "split over --devices (--data), or one .npz per device (--device-data); "
                    "without either, scikit-learn's digits. An .npz holds arrays 'features' and "
                    "'labels' (or 'x' and 'y'). Rows of the table go to stdout, progress to "
                    "stderr; data that does not fit the model exits with status 2.")
    sim.add_argument("--model", default="digits_mlp",
                     help="zoo name (needs torch) or a .fgplan file with --checkpoint")
    sim.add_argument("--checkpoint", type=Path, help="initial parameters for a plan file")
    source = sim.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="one .npz dataset, split over --devices")
    source.add_argument("--device-data", type=Path, nargs="+", metavar="PATH",
                        help="one .npz per device: the files, or a directory of them")
    held_out = sim.add_mutually_exclusive_group()
    held_out.add_argument("--test", type=Path, help="the test set, an .npz")
    held_out.add_argument("--test-fraction", type=float, default=None,
                          help="hold this fraction of the data out as the test set (default 0.2)")
    sim.add_argument("--devices", type=int, default=None,
                     help="devices to split --data over (default 20; with --device-data: one a file)")
    sim.add_argument("--per-cycle", type=int, default=5, help="devices per cycle")
    sim.add_argument("--cycles", type=int, default=40)
    sim.add_argument("--split", choices=("iid", "shards", "dirichlet", "noniid"), default="iid",
                     help="iid; shards: label shards (McMahan et al.; noniid is the same); "
                          "dirichlet: label skew (Hsu et al.)")
    sim.add_argument("--alpha", type=float, default=0.5,
                     help="Dirichlet concentration for --split dirichlet (smaller: more skewed)")
    sim.add_argument("--shards-per-device", type=int, default=2,
                     help="label shards per device for --split shards")
    sim.add_argument("--epochs", type=int, default=5)
    sim.add_argument("--batch-size", type=int, default=10)
    sim.add_argument("--lr", type=float, default=None, help="learning rate (default: the plan's)")
    sim.add_argument("--processes", type=int, default=2,
                     help="device processes (bounded; 0 = threads in this process)")
    sim.add_argument("--target-accuracy", type=float, default=None,
                     help="stop once the test accuracy reaches this")
    sim.add_argument("--strategy", default=None, help="server strategy name (default: fedavg)")
    sim.add_argument("--diff-encoding", choices=("float32", "float16", "int8"), default=None,
                     help="how the devices upload their diffs (default: float32)")
    sim.add_argument("--seed", type=int, default=0, help="seeds the split, the test hold-out, "
                     "the choice of devices and their shuffling")

    commands.add_parser("pause", parents=[common, admin, model],
                        help="pause a model's training (accepted devices may still report)")
    commands.add_parser("resume", parents=[common, admin, model],
                        help="resume a paused model (its open cycle gets a fresh deadline)")
    commands.add_parser("stop", parents=[common, admin, model],
                        help="finish a model's training now, with its current checkpoint")
    delete = commands.add_parser("delete", parents=[common, admin, model],
                                 help="delete a paused, stopped or finished model and its data")
    delete.add_argument("--force", action="store_true",
                        help="delete even while it trains (its open cycle's work is lost)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _version() -> str:
    try:
        return metadata.version("fedgrid")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return f"{__version__} (not installed)"


def _progress(text: str) -> None:
    """A step of a slow command, on stderr so that stdout stays the command's answer."""
    print(text, file=sys.stderr, flush=True)


def _admin(args: argparse.Namespace) -> Admin:
    if not args.admin_token:
        raise SystemExit("fedgrid: this command needs the Node's admin token: pass --admin-token "
                         "or set FEDGRID_ADMIN_TOKEN")
    # A person is waiting: fail within seconds rather than after a device's patient backoff.
    return Admin(args.url, args.admin_token, retries=2)


def _model_source(model: str, checkpoint: Path | None) -> tuple[Any, Any, str]:
    """(model, checkpoint, default name) for a zoo name or a plan file path."""
    path = resolve_model(model)  # an existing file, a zoo name, or one line saying neither
    if isinstance(path, Path):
        if checkpoint is None:
            raise SystemExit("fedgrid: hosting a plan file needs --checkpoint <initial .safetensors>")
        return path.read_bytes(), checkpoint.read_bytes(), path.stem
    return model, None, model


def cmd_host(args: argparse.Namespace) -> None:
    model, checkpoint, default_name = _model_source(args.model, args.checkpoint)
    name = args.name or default_name
    with _admin(args) as admin:
        if isinstance(model, str):
            _progress(f"compiling {model} (needs torch)…")
            model = compile_model(model)
        _progress(f"hosting {name} {args.version} on {admin.url}…")
        # Sent with the hosting: a file the plan cannot score hosts nothing.
        from .data import load_npz

        evaluation_set = load_npz(args.evaluation_set) if args.evaluation_set else None
        answer = admin.host_training(model, name, args.version,
                                     checkpoint=checkpoint, client_config=args.client_config,
                                     server_config=args.server_config,
                                     evaluation_set=evaluation_set)
    print(f"hosted {answer['model']} {answer['version']}: process {answer['process_id']}, "
          f"plans {answer['plans']}, checkpoint {answer['checkpoint']}"
          + (f"; scored on {args.evaluation_set}" if evaluation_set is not None else ""))


def cmd_status(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        status = admin.status()
        processes = admin.processes()
        # A cycle trains *on* a checkpoint and, once completed, makes the next one: the latest
        # checkpoint is the `checkpoints` event's, as the dashboard's list shows it.
        latest = {(p["model"], p["version"]): admin.checkpoints(p["model"], p["version"])["latest"]
                  for p in processes}
    print(f"{status.get('kind', 'node')} {status.get('node_id', status.get('id', ''))} at {args.url}"
          f" (version {status.get('version', '?')})")
    if not processes:
        print("no hosted models")
    for process in processes:
        cycle = process.get("cycle") or {}
        where = (f"cycle {cycle.get('sequence')} {cycle.get('status')} on checkpoint "
                 f"{cycle.get('checkpoint')}") if cycle else "no cycle"
        print(f"  {process['model']} {process['version']}: {process['status']}, {where}, latest "
              f"checkpoint {latest[process['model'], process['version']]}")


def _accuracy(evaluation: dict[str, Any] | None, federated: bool = False) -> str:
    """An evaluation's accuracy for the table ("-" while there is none)."""
    metrics = (evaluation or {}).get("metrics") if federated else evaluation
    value = (metrics or {}).get("accuracy")
    return "-" if value is None else f"{value:.4f}"


def cmd_cycles(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        cycles = admin.cycles(args.name, args.version)
        evaluations = admin.evaluations(args.name, args.version)
    if args.json:
        print(json.dumps(cycles, indent=2))
        return
    # Evaluation columns once the model has any: `test acc` (the Node's held-out score) and
    # `fed acc` (devices' federated evaluation), both of the checkpoint the cycle produced.
    tested = any(entry.get("test_metrics") for entry in evaluations)
    federated = any(entry.get("federated_metrics") for entry in evaluations)
    hosted = next((entry for entry in evaluations if entry["number"] == 1), None)
    if hosted is not None:
        print("checkpoint 1 (hosted)"
              + (f"  test acc {_accuracy(hosted.get('test_metrics'))}" if tested else "")
              + (f"  fed acc {_accuracy(hosted.get('federated_metrics'), True)}"
                 if federated else ""))
    for cycle in cycles:
        metrics = " ".join(f"{k} {v:.4f}" for k, v in sorted((cycle.get("client_metrics") or {}).items()))
        columns = ""
        if tested:
            columns += f"  test acc {_accuracy(cycle.get('test_metrics'))}"
        if federated:
            columns += f"  fed acc {_accuracy(cycle.get('federated_metrics'), True)}"
        # Differentially private processes: ε spent after this cycle (closed cycles only).
        privacy = cycle.get("privacy") or {}
        if "epsilon" in privacy:
            columns += f"  ε {privacy['epsilon']:.3f}"
        print(f"cycle {cycle['sequence']:3d}  {cycle['status']:<9}  checkpoint {cycle['checkpoint']}"
              f"  reports {cycle.get('reported', 0)} of {cycle.get('accepted', 0)} accepted devices"
              f"  dropped {cycle.get('dropped', 0)}{columns}  {metrics}".rstrip())


def cmd_checkpoints(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        answer = admin.checkpoints(args.name, args.version)
    print(f"{answer['model']} {answer['version']}: latest checkpoint {answer['latest']}")
    for checkpoint in answer["checkpoints"]:
        print(f"  {checkpoint['number']:4d}  {checkpoint['created_at']}")


def cmd_watch(args: argparse.Namespace) -> None:
    """The client-side alternative to the Node's held-out evaluation: poll the checkpoints and
    score each new one here, one line each."""
    import time

    from fedgrid_plans.executor import PlanExecutor
    from fedgrid_plans.scoring import forward_spec, score

    from .data import as_arrays

    executor = PlanExecutor(args.plan.read_bytes())
    spec = forward_spec(executor.plan.manifest)
    if spec is None:
        raise SystemExit(f"fedgrid: {args.plan} has no forward graph, so it cannot score")
    with np.load(args.test) as archive:
        features, labels = as_arrays({key: archive[key] for key in archive.files})
    scored = 0
    with _admin(args) as admin:
        while True:
            # Read first whether the model is finished: a checkpoint written after this look is
            # still listed below, so the last one is never missed.
            finished = any(p["model"] == args.name and p["status"] == "finished"
                           and args.version in (None, p["version"]) for p in admin.processes())
            for entry in admin.checkpoints(args.name, args.version)["checkpoints"]:
                number = entry["number"]
                if number <= scored:
                    continue
                parameters = admin.retrieve_model(args.name, args.version, number)
                result = score(executor, parameters, features, labels, spec)
                shown = "  ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "loss") if k in result)
                print(f"checkpoint {number}: {shown}  ({result['num_samples']} samples)", flush=True)
                scored = number
            if finished:
                break
            time.sleep(args.interval)


def cmd_download(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        data = admin.download_checkpoint(args.name, args.version, args.checkpoint)
    output = args.output or Path(f"{args.name}.safetensors")
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")


def cmd_train(args: argparse.Namespace) -> None:
    from .jobs import Client

    with np.load(args.data) as archive:
        data = {key: archive[key] for key in archive.files}
    with Client(args.url, auth_token=args.auth_token) as client:
        job = client.new_job(args.name, args.version)

        def said(assignment, result) -> None:
            metrics = " ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
            print(f"cycle {assignment.cycle}: reported {result.num_samples} samples, {metrics}",
                  flush=True)

        reports = job.participate(data, cycles=args.cycles, on_report=said)
    print(f"done: {len(reports)} report(s)")


def cmd_simulate(args: argparse.Namespace) -> None:
    from .data import DataError
    from .simulate import simulate
    from .simulation_console import SimulationConsole

    def usage_error(message: str) -> SystemExit:
        # Like argparse's own errors: one line, exit status 2, nothing hosted.
        print(f"fedgrid: {message}", file=sys.stderr)
        return SystemExit(2)

    if not args.admin_token:
        raise usage_error("simulate hosts its model, so it needs --admin-token (or "
                          "FEDGRID_ADMIN_TOKEN)")
    plan_path = Path(args.model)
    if plan_path.suffix == ".fgplan" or plan_path.exists():
        if not plan_path.is_file():
            raise usage_error(f"{plan_path}: no such plan file")
        if args.checkpoint is None:
            raise usage_error("a plan file needs --checkpoint <initial .safetensors>")
        if not args.checkpoint.is_file():
            raise usage_error(f"{args.checkpoint}: no such checkpoint file")
    model, checkpoint, _ = _model_source(args.model, args.checkpoint)
    console = SimulationConsole()
    try:
        result = simulate(
            args.url, args.admin_token, model=model, checkpoint=checkpoint, data=args.data,
            device_data=args.device_data, test=args.test, test_fraction=args.test_fraction,
            devices=args.devices, per_cycle=args.per_cycle, cycles=args.cycles, split=args.split,
            alpha=args.alpha, shards_per_device=args.shards_per_device, epochs=args.epochs,
            batch_size=args.batch_size, learning_rate=args.lr, processes=args.processes,
            seed=args.seed, target_accuracy=args.target_accuracy, strategy=args.strategy,
            diff_encoding=args.diff_encoding, on_cycle=console.cycle, on_progress=console.progress,
        )
    except DataError as exc:
        raise usage_error(str(exc)) from None
    console.summary(result)

def _controlled(answer: dict[str, Any], done: str) -> str:
    who = f"{answer['model']} {answer['version']}"
    if not answer.get("changed", True):
        return f"{who} was already {answer['process_status']}"
    return f"{done} {who}: now {answer['process_status']}"


def cmd_pause(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        print(_controlled(admin.pause(args.name, args.version), "paused"))


def cmd_resume(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        print(_controlled(admin.resume(args.name, args.version), "resumed"))


def cmd_stop(args: argparse.Namespace) -> None:
    with _admin(args) as admin:
        answer = admin.stop(args.name, args.version)
    line = _controlled(answer, "stopped")
    cycle = answer.get("cycle")
    if cycle:
        line += (f"; cycle {cycle['sequence']} {cycle['status']}, final checkpoint "
                 f"{cycle['checkpoint']}")
    print(line)


def cmd_delete(args: argparse.Namespace) -> None:
    which = f"{args.name} version {args.version}" if args.version else f"the newest {args.name}"
    if not args.yes:
        # Deleting drops every checkpoint: a person confirms, a script says --yes.
        if not sys.stdin.isatty():
            raise SystemExit(f"fedgrid: deleting {which} removes all its checkpoints; "
                             "pass --yes to confirm")
        reply = input(f"Delete {which} with all its cycles and checkpoints? [y/N] ")
        if reply.strip().lower() not in ("y", "yes"):
            raise SystemExit("fedgrid: nothing deleted")
    with _admin(args) as admin:
        answer = admin.delete(args.name, args.version, force=args.force)
    print(f"deleted {answer['model']} {answer['version']}")


COMMANDS = {
    "host": cmd_host, "status": cmd_status, "cycles": cmd_cycles, "checkpoints": cmd_checkpoints,
    "download": cmd_download, "train": cmd_train, "simulate": cmd_simulate, "watch": cmd_watch,
    "pause": cmd_pause, "resume": cmd_resume, "stop": cmd_stop, "delete": cmd_delete,
}


def main(argv: list[str] | None = None) -> int:
    debug = False
    try:
        args = build_parser().parse_args(argv)  # --help and --version print here, too
        debug = args.debug
        COMMANDS[args.command](args)
        sys.stdout.flush()  # inside the try: a reader that went away is seen here, not at exit
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        if debug:
            raise
        print("fedgrid: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:  # argparse's usage errors and the commands' own one-liners
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            return 1
        return exit_.code or 0
    except Exception as exc:
        if debug:
            raise
        print(f"fedgrid: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _one_line(exc: BaseException) -> str:
    """What went wrong, without a traceback: the SDK's and the standard errors speak for
    themselves; anything else is named so that a bug report can quote it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FedgridError | ImportError | ValueError | OSError | TypeError):
        return text
    return f"{type(exc).__name__}: {text} (run with --debug for the traceback)"


def _reader_went_away() -> int:
    """`fedgrid ... | head`: the reader closed the pipe. Exit quietly, as Python's documentation
    advises: point stdout at devnull so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    sys.exit(main())
