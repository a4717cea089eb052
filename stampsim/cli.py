"""Command line: ``python -m stampsim --name stamp-a --port 8101 --data DIR``."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from datetime import timedelta

from .fabric import DEFAULT_OPERATION_RETENTION
from .server import serve
from .state import DEFAULT_CAPACITY

__all__ = ["build_parser", "main"]


def _rate(text: str) -> tuple[str, float]:
    kind, sep, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not sep or not kind or not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(
            f"expected KIND=RATE with RATE between 0 and 1, got {text!r}"
        )
    return kind, rate


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of hours >= 0, got {text!r}")
    return hours


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stampsim",
        description="A simulated fabric controller (stamp) speaking the stampsim HTTP API.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8101, help="port to listen on, 0 for any (default %(default)s)"
    )
    parser.add_argument("--name", default="stamp", help="the stamp's name (default %(default)s)")
    parser.add_argument(
        "--data", metavar="DIR", help="directory for state.json; without it state is not kept"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("STAMPSIM_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' (default: $STAMPSIM_TOKEN, else none)",
    )
    parser.add_argument(
        "--operation-retention-hours",
        type=_hours,
        default=DEFAULT_OPERATION_RETENTION.total_seconds() / 3600,
        metavar="HOURS",
        help="forget an operation and its idempotency key this long after it finished (the"
        " stamp's clock), so the same key is then a new call; 0 keeps them forever"
        " (default %(default)g)",
    )
    capacity = parser.add_argument_group("capacity")
    capacity.add_argument("--vcpus", type=int, default=DEFAULT_CAPACITY["vcpus"])
    capacity.add_argument("--memory-mb", type=int, default=DEFAULT_CAPACITY["memory_mb"])
    capacity.add_argument("--storage-gb", type=int, default=DEFAULT_CAPACITY["storage_gb"])
    capacity.add_argument("--max-vms", type=int, default=DEFAULT_CAPACITY["vms"])
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency-ms", type=int, default=0, help="delay before each operation runs"
    )
    faults.add_argument(
        "--fail-rate",
        type=_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="answer 503 to this share of KIND calls (KIND may be '*'); repeatable",
    )
    faults.add_argument(
        "--fail-op-rate",
        type=_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="fail this share of accepted KIND operations; repeatable",
    )
    faults.add_argument(
        "--crash-after", type=int, metavar="N", help="exit hard after N more operations"
    )
    faults.add_argument("--seed", type=int, help="seed for the failure dice")
    parser.add_argument(
        "--no-fsync", action="store_true", help="do not fsync state writes (faster, less safe)"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="logging level (default %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(
        host=args.host,
        port=args.port,
        name=args.name,
        data_dir=args.data,
        token=args.token,
        capacity={
            "vcpus": args.vcpus,
            "memory_mb": args.memory_mb,
            "storage_gb": args.storage_gb,
            "vms": args.max_vms,
        },
        latency_ms=args.latency_ms,
        fail_rate=dict(args.fail_rate),
        fail_op_rate=dict(args.fail_op_rate),
        crash_after=args.crash_after,
        seed=args.seed,
        durable=not args.no_fsync,
        operation_retention=(
            timedelta(hours=args.operation_retention_hours)
            if args.operation_retention_hours
            else None
        ),
    )
    return 0
