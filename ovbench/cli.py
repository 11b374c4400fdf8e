"""The `ovbench` command line: one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ovbench import __version__
from ovbench.errors import UserError

DEFAULT_DATA = Path("ovbench-data")
# `ovbench generate` with no stage: demo-size data, fully offline.
DEMO_POOL = {"models": 28, "views": 40}


def _add_generator_options(parser: argparse.ArgumentParser, out_help: str, out_default=None) -> None:
    parser.add_argument("--out", type=Path, default=out_default, help=out_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes; the output is identical for any number (default: cores)")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run (same settings) instead of refusing to touch it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _pool_parser(stages) -> None:
    pool = stages.add_parser("pool", help="3D silhouette pool → one HDF5 file",
                             description="Render vehicle silhouettes from many viewpoints into one HDF5 file.")
    pool.add_argument("--source", default="procedural",
                      help="procedural (default) | shapenet:ROOT | meshes:DIR")
    pool.add_argument("--synset", default="car", help="ShapeNet synset, by id (02958343) or name (car)")
    pool.add_argument("--models", type=int, default=None,
                      help="number of models (default: 401 procedural, or all of a file source)")
    pool.add_argument("--views", type=int, default=80, help="views per model (default 80)")
    pool.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    pool.add_argument("--up", default=None, help="source up axis, e.g. +y (default: per format)")
    pool.add_argument("--front", default=None, help="source front axis, e.g. -z (default: per format)")
    _add_generator_options(pool, "output file (default ovbench-data/pool.h5)", DEFAULT_DATA / "pool.h5")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ovbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate", help="make data: with no stage, the demo-size default suite into ./ovbench-data",
        description="Generate benchmark data. Without a stage: the default suite at demo size.")
    _add_generator_options(generate, "output folder of the default suite (default ovbench-data)",
                           DEFAULT_DATA)
    stages = generate.add_subparsers(dest="stage")
    _pool_parser(stages)

    commands.add_parser("models", help="list the model zoo")
    return parser


def _print_pool_summary(summary) -> None:
    rate = summary.silhouettes / summary.seconds if summary.seconds else float("nan")
    print(f"pool: {summary.silhouettes:,} silhouettes of {summary.models} models in "
          f"{summary.seconds:.1f} s ({rate:,.0f}/s) → {summary.path}")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} models:", file=sys.stderr)
        for model_id, reason in sorted(summary.skipped.items()):
            print(f"  {model_id}: {reason}", file=sys.stderr)
    if summary.empty_views:
        print(f"dropped {summary.empty_views} empty views", file=sys.stderr)


def _generate(args) -> None:
    from ovbench.pool import PoolConfig, generate_pool

    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.stage == "pool":
        config = PoolConfig(source=args.source, synset=args.synset, models=args.models,
                            views=args.views, size=args.size, seed=args.seed, up=args.up,
                            front=args.front)
        _print_pool_summary(generate_pool(config, args.out, args.workers, args.resume,
                                          progress=not args.quiet))
        return
    # The default suite: every stage at demo size; reruns finish or keep what is there.
    args.out.mkdir(parents=True, exist_ok=True)
    config = PoolConfig(seed=args.seed, **DEMO_POOL)
    _print_pool_summary(generate_pool(config, args.out / "pool.h5", args.workers, resume=True,
                                      progress=not args.quiet))


def _models(_args) -> None:
    from ovbench.baselines import available_models

    models = available_models()
    if not models:
        print("no models registered yet")
    for name, factory in models.items():
        print(f"{name:12s} {(factory.__doc__ or '').strip().splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"generate": _generate, "models": _models}
    try:
        handlers[args.command](args)
    except UserError as exc:
        print(f"ovbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ovbench: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return 0
