"""``python -m fedgrid_plans describe|validate PLAN [CHECKPOINT]``: inspect plan files from a shell."""

from __future__ import annotations

import argparse
import pathlib
import sys

from fedgrid_plans import tensors
from fedgrid_plans.inspection import describe
from fedgrid_plans.validation import PlanValidationError, validate_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedgrid_plans", description=__doc__)
    parser.add_argument("command", choices=["describe", "validate"])
    parser.add_argument("plan", type=pathlib.Path, help="a plan file (.fgplan)")
    parser.add_argument("checkpoint", type=pathlib.Path, nargs="?", help="safetensors checkpoint to check against")
    args = parser.parse_args(argv)
    data = args.plan.read_bytes()
    if args.command == "describe":
        print(describe(data))
        return 0
    checkpoint = tensors.decode(args.checkpoint.read_bytes()) if args.checkpoint else None
    try:
        plan = validate_plan(data, checkpoint)
    except PlanValidationError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(f"valid: {plan.name} {plan.content_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
