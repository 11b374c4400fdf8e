"""The `ovbench` command line: one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from ovbench import __version__
from ovbench.errors import InputError
from ovbench.evaluation.reproduce import STUDIES

DEFAULT_DATA = Path("ovbench-data")
SUITE = "suite_"  # dest prefix of `ovbench generate`'s own options (the default suite's)
# `ovbench generate` with no stage: demo-size data, fully offline.
DEMO_POOL = {"models": 28, "views": 40}
DEMO_OVD = {"splits": (("train", 200), ("test", 50))}


GENERATOR_DEFAULTS = {"seed": 0, "workers": os.cpu_count() or 1, "resume": False, "quiet": False,
                      "executor": "process", "address": None}


def _add_generator_options(parser: argparse.ArgumentParser, out_help: str, out_default=None,
                           dest_prefix: str = "", executors: bool = True) -> None:
    """The options every generator takes (`executors`: where its shard tasks run). The default
    suite's are kept apart (`dest_prefix`, no defaults), so that one written before a stage's name
    is refused instead of silently ignored."""
    def add(flag, **kwargs):
        name = flag[2:].replace("-", "_")
        default = {**GENERATOR_DEFAULTS, "out": out_default}[name]
        parser.add_argument(flag, dest=dest_prefix + name,
                            default=argparse.SUPPRESS if dest_prefix else default, **kwargs)

    add("--out", type=Path, help=out_help)
    add("--seed", type=int, help="random seed (default 0)")
    add("--workers", type=int, help="worker processes; the output is identical for any number (default: cores)")
    add("--resume", action="store_true",
        help="finish an interrupted run (same settings) instead of refusing to touch it")
    add("--quiet", action="store_true", help="no progress bar")
    if executors:
        add("--executor", choices=["process", "ray"],
            help="process: a pool on this machine (default); ray: a Ray cluster, same output byte for byte")
        add("--address", help="HOST:PORT of the Ray cluster's head (default: a local Ray for the run)")


def _shown(value) -> str:
    """A setting's default as its flag is written: train=200,test=50 · car,truck · 0.1:0.7."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return ",".join(f"{name}={count}" for name, count in value)
    if isinstance(value, tuple):
        return (",".join(value) if isinstance(value[0], str) else ":".join(map(str, value))) if value else ""
    return str(value)


def _config_flags(parser: argparse.ArgumentParser, config, helps: dict[str, str], **extra) -> None:
    """One flag per setting named in `helps`, its default and type read from the settings class
    (the default shown in the help, applied when the settings are built: written once)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name, meaning in helps.items():
        default, annotation = fields[name].default, fields[name].type  # annotations are text here
        shown = f" (default {_shown(default)})" if default is not None and annotation != "bool" else ""
        options = ({"action": "store_true"} if annotation == "bool"
                   else {"type": int} if annotation.split(" | ")[0] == "int" else {})
        parser.add_argument("--" + name.replace("_", "-"), default=None, help=meaning + shown,
                            **options, **extra.get(name, {}))


def _pool_parser(stages) -> None:
    from ovbench.generator_settings import PoolConfig

    pool = stages.add_parser("pool", help="3D silhouette pool → one HDF5 file",
                             description="Render vehicle silhouettes from many viewpoints into one HDF5 file.")
    _config_flags(pool, PoolConfig, {
        "source": "procedural | shapenet:ROOT | meshes:DIR",
        "synset": "ShapeNet synset, by id (02958343) or name",
        "models": "number of models (default: 401 procedural, or all of a file source)",
        "views": "views per model", "size": "image side in pixels"})
    for flag, meaning in AXIS_OPTIONS.items():
        pool.add_argument(flag, default=None, help=meaning)
    _add_generator_options(pool, "output file (default ovbench-data/pool.h5)", DEFAULT_DATA / "pool.h5")


def _ovd_parser(stages) -> None:
    from ovbench.generator_settings import OvdConfig

    ovd = stages.add_parser(
        "ovd", help="OVD-style occlusion composites → dataset folder",
        description="Paste occluders over whole vehicles: exact amodal masks and hidden appearance.")
    _config_flags(ovd, OvdConfig, {
        "base": "whole vehicles: builtin | coco:ANN.json:IMAGES_DIR | dir:DIR (images with NAME.mask.png beside them)",
        "base_categories": "COCO categories taken as bases",
        "base_min_size": "smallest photo base: longer box side in pixels (default --size / 4, so no base is "
                         "upscaled 4× or more)",
        "occluders": "builtin | coco:ANN.json:IMAGES_DIR | dir:DIR of RGBA PNG cut-outs",
        "occluder_categories": "COCO categories cut out as occluders",
        "occluder_min_size": "smallest occluder instance, box side in pixels",
        "keep_border_occluders": "also cut out COCO occluders touching their photo's border (cut straight there)",
        "occluder_bank": "cut-outs to draw from (default: half the images, 64-400, for builtin; all instances "
                         "for COCO/dir)",
        "max_occluders": "occluders per image: 1..N",
        "occlusion": "target occluded share LOW:HIGH",
        "harmonize": "none | reinhard",
        "splits": "images per split",
        "reuse": "composites per built-in base vehicle (as OVD)",
        "min_visible": "fewest visible vehicle pixels",
        "size": "image side in pixels"})
    _add_generator_options(ovd, "output folder (default ovbench-data/ovd)", DEFAULT_DATA / "ovd")


def _dyce_parser(stages) -> None:
    from ovbench.generator_settings import DEFAULT_OBJECTS, LAYOUTS, DyceConfig

    dyce = stages.add_parser(
        "dyce", help="DYCE-style 3D scenes → dataset folder",
        description="Render scenes of several objects, together and each alone: exact amodal masks, "
                    "appearance, depth and the occlusion graph.")
    objects = ", ".join(f"{_shown(r)} {layout}" for layout, r in DEFAULT_OBJECTS.items())
    _config_flags(dyce, DyceConfig, {
        "vehicles": "procedural | shapenet:ROOT | meshes:DIR",
        "models": "vehicle models (default 200 procedural, or all of a file source)",
        "layout": "street (road, kerbs, sidewalks, façades, parked rows) | open (objects on a bare ground disc)",
        "objects": f"objects per scene MIN:MAX (default {objects})",
        "views_per_scene": "camera views rendered of each scene",
        "splits": "images per split",
        "min_visible": "objects with fewer visible pixels are not annotated (as DYCE)",
        "size": "image side in pixels"}, layout={"choices": LAYOUTS})
    for flag, meaning in AXIS_OPTIONS.items():
        dyce.add_argument(flag, default=None, help=meaning)
    _add_generator_options(dyce, "output folder (default ovbench-data/dyce)", DEFAULT_DATA / "dyce")


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when torch sees one)")


def _add_training_budget(parser: argparse.ArgumentParser) -> None:
    """The options that set a training run's size and initialisation (train and reproduce)."""
    from ovbench.training_settings import default_of

    parser.add_argument("--preset", choices=["tiny"], default=None,
                        help="tiny: narrow networks at 64 px, for a few CPU minutes")
    for name, meaning in (("epochs", "epochs"), ("batch_size", "images a batch"), ("size", "training size")):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                            help=f"{meaning}: default {default_of(name)} (tiny: {default_of(name, 'tiny')})")
    _add_device_option(parser)
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", type=Path, default=None,
                         help="ImageNet weights file (ResNet/VGG); default: torchvision's weights "
                              "(the torch hub cache, downloaded when missing), else random with a warning")
    weights.add_argument("--no-pretrained", action="store_true", help="start from random weights")


def _model_named(argv: list[str]) -> str | None:
    """The value of --model in a command line, before it is parsed (to add that model's flags)."""
    for k, word in enumerate(argv):
        if word == "--model" and k + 1 < len(argv):
            return argv[k + 1]
        if word.startswith("--model="):
            return word.split("=", 1)[1]
    return None


def _add_model_options(parser: argparse.ArgumentParser, factory, evaluation: bool) -> None:
    """The chosen model's own flags, with the model's defaults in their help."""
    group = parser.add_argument_group(f"options of {factory.name}")
    for option in factory.options:
        if evaluation and not option.at_evaluation:
            continue
        kind = type(option.default)
        group.add_argument(option.flag, dest=f"model_{option.name}", type=kind, default=None,
                           choices=list(option.choices) or None, metavar=None if option.choices else "VALUE",
                           help=f"{option.help} (default {option.default})")


def _model_options(args, factory) -> dict:
    return {o.name: getattr(args, f"model_{o.name}") for o in factory.options
            if getattr(args, f"model_{o.name}", None) is not None}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ovbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate", help="make data: with no stage, the demo-size default suite into ./ovbench-data",
        description="Generate benchmark data. Without a stage: the default suite at demo size.")
    _add_generator_options(generate, "output folder of the default suite (default ovbench-data)",
                           DEFAULT_DATA, dest_prefix=SUITE)
    stages = generate.add_subparsers(dest="stage")
    _pool_parser(stages)
    _ovd_parser(stages)
    _dyce_parser(stages)

    validate = commands.add_parser("validate", help="check a dataset folder's checksums and invariants")
    validate.add_argument("dir", type=Path)

    show = commands.add_parser("show", help="contact sheet: input, visible (blue), invisible (red), "
                                            "appearance; or a pool's views per model")
    show.add_argument("dir", type=Path, metavar="DIR|POOL.h5", help="dataset folder or silhouette pool file")
    show.add_argument("-o", "--out", type=Path, default=Path("sheet.png"))
    show.add_argument("--split", default=None, help="split to show (default: the first)")
    show.add_argument("--count", type=int, default=8, help="images, or a pool's models (default 8)")
    show.add_argument("--seed", type=int, default=0)

    convert = commands.add_parser("convert", help="write the annotations in another dataset's layout")
    convert.add_argument("dir", type=Path)
    convert.add_argument("--to", required=True, choices=["cocoa", "kins2020"])
    convert.add_argument("-o", "--out", type=Path, required=True, help="output folder: <split>.json each")

    importer = commands.add_parser(
        "import", help="a real amodal set (KINS, COCOA) → dataset folder of kind real",
        description="One record per instance, framed as ovd frames its photo bases, with amodal and "
                    "visible masks and no appearance ground truth.")
    importer.add_argument("layout", choices=["kins", "cocoa"], help="kins (original or 2020 keys) | cocoa")
    importer.add_argument("annotations", type=Path, metavar="ANN.json")
    importer.add_argument("--images", type=Path, required=True, help="folder of the photos the file names")
    importer.add_argument("--categories", default=None, help="only these categories, comma-separated (default all)")
    importer.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    importer.add_argument("--split", default="test", help="the folder's one split (default test)")
    _add_generator_options(importer, "output folder (required)", executors=False)

    evaluate = commands.add_parser("evaluate", help="score a model (or outside predictions) on a split",
                                   description="Run a registered model over a split and score it. "
                                               "A model's own options: ovbench evaluate --model NAME --help.")
    evaluate.add_argument("--model", help="registered model name (see `ovbench models`)")
    evaluate.add_argument("--predictions", type=Path, default=None,
                          help="score predictions made elsewhere (DIR/predictions.json, see README)")
    evaluate.add_argument("--data", default=DEFAULT_DATA / "ovd",
                          help="dataset folder, or hub:ORG/NAME[/CONFIG] (default ovbench-data/ovd)")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--checkpoint", default=None,
                          help="checkpoint: a run folder, checkpoint-S.json, model-S.safetensors, a "
                               "published model's folder, or hub:ORG/NAME (default: the newest under runs/NAME)")
    evaluate.add_argument("--batch-size", type=int, default=16)
    _add_device_option(evaluate)
    evaluate.add_argument("--pool", default=None,
                          help="silhouette pool file or hub:ORG/NAME (pool-nn, seganv)")
    evaluate.add_argument("--icp-weights", type=Path, default=None, help="Inception-v3 ImageNet weights")
    evaluate.add_argument("--ss-weights", type=Path, default=None,
                          help="DeepLabv3-ResNet50 (VOC labels) weights")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="results JSON (default leaderboards/<benchmark>/<model>[-itK][-ckpt].json)")
    evaluate.add_argument("--quiet", action="store_true")

    train = commands.add_parser("train", help="train a model of the zoo",
                                description="Train a learned model; checkpoints go to runs/NAME. "
                                            "A model's own options: ovbench train --model NAME --help.")
    train.add_argument("--model", required=True)
    train.add_argument("--data", default=DEFAULT_DATA / "ovd",
                       help="dataset folder, or hub:ORG/NAME[/CONFIG] (default ovbench-data/ovd)")
    train.add_argument("--split", default="train")
    train.add_argument("--pool", default=None, help="silhouette pool file or hub:ORG/NAME (seganv)")
    _add_training_budget(train)
    train.add_argument("--lr", type=float, default=None, help="default: the model's own")
    train.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (default: each epoch)")
    train.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    train.add_argument("--time-limit", type=float, default=None,
                       help="stop (with a checkpoint) after this many seconds of training")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--checkpoint", default=None,
                       help="start from these weights (fine-tuning; fresh optimisers): a run folder, "
                            "checkpoint-S.json, or hub:ORG/NAME (a published model)")
    train.add_argument("--out", type=Path, default=None, help="run folder (default runs/NAME)")
    train.add_argument("--quiet", action="store_true")

    reproduce = commands.add_parser(
        "reproduce", help="re-verify a paper's table: its rows at matched budgets and seeds, with verdicts",
        description="Train every row of a paper's table with the same epochs and seeds, select each "
                    "run's checkpoint on a validation split carved from train, score it on test, and "
                    "write NAME.md: mean ± std per row, IoU-per-epoch curves and a verdict per claim.")
    reproduce.add_argument("table", choices=sorted(STUDIES), help="the paper's table")
    reproduce.add_argument("--data", type=Path, default=None,
                           help="dataset folder (default ovbench-data/ovd; ovbench-data/dyce for segan2018)")
    reproduce.add_argument("--pool", type=Path, default=None, help="silhouette pool file (yan2019)")
    reproduce.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    _add_training_budget(reproduce)
    reproduce.add_argument("--validation", type=float, default=0.1,
                           help="share of the train images kept for checkpoint selection (default 0.1)")
    reproduce.add_argument("--rows", default=None, help="only these rows, comma-separated (default: all)")
    reproduce.add_argument("--out", type=Path, default=None,
                           help="results folder (default leaderboards/TABLE, or TABLE-tiny with the tiny preset)")
    reproduce.add_argument("--runs", type=Path, default=None,
                           help="training runs folder (default runs/reproduce/<out's name>)")
    reproduce.add_argument("--quiet", action="store_true")

    publish = commands.add_parser(
        "publish", help="push datasets or a trained model to the Hugging Face Hub (or write the same "
                        "repository locally)",
        description="Dataset folders and pool files → one Hub dataset repository: parquet shards, a "
                    "config per dataset (ovd, dyce, pool, real) and a dataset card. A training run "
                    "(runs/NAME) → a model repository: safetensors weights, config, its result files "
                    "and a model card. The token comes from HF_TOKEN or `hf auth login`.")
    publish.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                         help="dataset folder, pool .h5 file, a folder holding them (ovbench-data), or "
                              "one training run folder")
    publish.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset or model repository")
    publish.add_argument("--to", type=Path, default=None,
                         help="write the repository's files into this folder instead of pushing")
    publish.add_argument("--private", action="store_true",
                         help="make the repository private (new or existing)")
    publish.add_argument("--max-shard-size", default="500MB", help="largest parquet shard (default 500MB)")
    publish.add_argument("--overwrite", action="store_true",
                         help="replace a repository (or --to folder) that holds something else")
    publish.add_argument("--license", default=None,
                         help="licence id for the card (default: cc-by-4.0 for built-in data, "
                              "else other)")
    publish.add_argument("--quiet", action="store_true")

    leaderboard = commands.add_parser("leaderboard", help="rebuild leaderboards/*.md from result files")
    leaderboard.add_argument("--dir", type=Path, default=Path("leaderboards"))

    commands.add_parser("models", help="list the model zoo")
    factory = _registered(_model_named(argv or []))
    if factory is not None:
        _add_model_options(train, factory, evaluation=False)
        _add_model_options(evaluate, factory, evaluation=True)
    return parser


def _registered(name: str | None):
    """The registered model of that name, or None (unknown names are reported when used)."""
    if name is None:
        return None
    from ovbench.baselines import get_model

    try:
        return get_model(name)
    except InputError:
        return None


def _print_pool_summary(summary) -> None:
    made = (f"in {summary.seconds:.1f} s ({summary.silhouettes / summary.seconds:,.0f}/s)" if summary.seconds
            else "(already complete)")
    print(f"pool: {summary.silhouettes:,} silhouettes of {summary.models} models {made} → {summary.path}")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} models:", file=sys.stderr)
        for model_id, reason in sorted(summary.skipped.items()):
            print(f"  {model_id}: {reason}", file=sys.stderr)
    if summary.empty_views:
        print(f"dropped {summary.empty_views} empty views", file=sys.stderr)


def _print_dataset_summary(summary) -> None:
    images = sum(c["images"] for c in summary.counts.values())
    splits = ", ".join(f"{name} {c['images']:,}" for name, c in summary.counts.items())
    made = (f"in {summary.seconds:.1f} s ({images / summary.seconds:,.1f} img/s)" if summary.made
            else "(already complete)")
    print(f"{images:,} images ({splits}) {made}, mean occlusion {summary.mean_occlusion:.2f} → {summary.path}")
    print(_occlusion_histogram(summary.path, list(summary.counts), images))
    if summary.rejected:
        print("bases rejected: " + ", ".join(f"{n} {why}" for why, n in summary.rejected.items()),
              file=sys.stderr)


def _occlusion_histogram(root: Path, splits: list[str], images: int) -> str:
    """One line: annotated objects per image, and how many are hidden by how much."""
    import json

    import numpy as np

    rates = np.array([a["occlude_rate"] for split in splits for a in
                      json.loads((Path(root) / split / "annotations.json").read_text())["annotations"]])
    counts, _ = np.histogram(rates, bins=(0.0, 0.01, 0.25, 0.5, 0.75, 1.0))
    bins = ("< 0.01", "0.01-0.25", "0.25-0.5", "0.5-0.75", "≥ 0.75")
    share = float((rates >= 0.25).mean()) if len(rates) else 0.0
    return (f"occlusion of {len(rates):,} objects ({len(rates) / max(images, 1):.1f} an image): "
            + ", ".join(f"{label} {n:,}" for label, n in zip(bins, counts)) + f"; {share:.0%} at least 0.25 hidden")


def _settings(config, args, **parsers):
    """The settings given on the command line (the class's defaults for the rest), text values
    parsed by `parsers`."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
             if getattr(args, f.name, None) is not None}
    return config(**{name: parsers[name](value) if name in parsers else value for name, value in given.items()})


def _categories(text: str) -> tuple:
    return tuple(_names(text))


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _generate(args) -> None:
    from ovbench.generate.dyce import generate_dyce
    from ovbench.generate.ovd.generate import generate_ovd
    from ovbench.generate.pool import generate_pool
    from ovbench.generator_settings import DyceConfig, OvdConfig, PoolConfig, parse_objects, parse_range, parse_splits

    given = {k[len(SUITE):]: v for k, v in vars(args).items() if k.startswith(SUITE)}
    if args.stage and given:
        flag = "--" + next(iter(given)).replace("_", "-")
        raise InputError(f"{flag} was written before the stage; options go after it: "
                         f"ovbench generate {args.stage} {flag} ...")
    if not args.stage:
        vars(args).update({**GENERATOR_DEFAULTS, "out": DEFAULT_DATA, **given})
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    from ovbench.generate.common import Executor

    executor = Executor(args.executor, args.address)
    run = dict(workers=args.workers, progress=not args.quiet, executor=executor)
    if args.stage == "dyce":
        config = _settings(DyceConfig, args, objects=parse_objects, splits=parse_splits)
        _print_dataset_summary(generate_dyce(config, args.out, resume=args.resume, **run))
    elif args.stage == "ovd":
        config = _settings(OvdConfig, args, base_categories=_categories, occluder_categories=_categories,
                           occlusion=parse_range, splits=parse_splits)
        _print_dataset_summary(generate_ovd(config, args.out, resume=args.resume, **run))
    elif args.stage == "pool":
        _print_pool_summary(generate_pool(_settings(PoolConfig, args), args.out, resume=args.resume, **run))
    else:  # the default suite: every stage at demo size; reruns finish or keep what is there
        args.out.mkdir(parents=True, exist_ok=True)
        _print_pool_summary(generate_pool(PoolConfig(seed=args.seed, **DEMO_POOL), args.out / "pool.h5",
                                          resume=True, **run))
        _print_dataset_summary(generate_ovd(OvdConfig(seed=args.seed, **DEMO_OVD), args.out / "ovd", resume=True,
                                            **run))
        _print_dataset_summary(generate_dyce(DyceConfig(seed=args.seed), args.out / "dyce", resume=True, **run))


def _models(_args) -> None:
    from ovbench.baselines import available_models

    for name, factory in available_models().items():
        aliases = ", ".join(getattr(factory, "aliases", ()))
        summary = (factory.__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} {summary}" + (f" (aliases: {aliases})" if aliases else "") + f" — {factory.status()}")


def _device(args) -> str:
    """--device, or cuda when torch sees one (torch is imported only for commands that use it)."""
    if args.device:
        return args.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _evaluate(args) -> None:
    from ovbench.evaluation.evaluator import default_output, evaluate
    from ovbench.formats.fileio import write_json

    if (args.model is None) == (args.predictions is None):
        raise InputError("give exactly one of --model NAME or --predictions DIR")
    options = _model_options(args, _registered(args.model)) if args.model and _registered(args.model) else {}
    result = evaluate(args.model, args.data, args.split, args.checkpoint, options, args.batch_size,
                      _device(args), args.pool, args.predictions, args.icp_weights, args.ss_weights,
                      progress=not args.quiet)
    checkpoint = result["checkpoint"]["sha256"] if result["checkpoint"] else None
    out = args.out or default_output(result["benchmark"], result["model"], options, checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    mask = result["metrics"]["mask"]["all"]
    appearance = result["metrics"]["appearance"]
    painted = (f", appearance L1 {appearance['l1']:.4f} SSIM {appearance['ssim']:.3f}"
               if "l1" in appearance else "")
    print(f"{result['model']} on {result['benchmark']}/{args.split} ({mask['instances']} objects): "
          f"IoU {mask['iou']:.4f}, F1 {mask['f1']:.4f}, P {mask['precision']:.4f}, "
          f"R {mask['recall']:.4f}{painted} in {result['wall_seconds']:.1f} s → {out}")


def _pretrained(args) -> str:
    return "none" if args.no_pretrained else str(args.pretrained) if args.pretrained else "imagenet"


def _train(args) -> None:
    from ovbench.baselines import get_model
    from ovbench.baselines.training import TrainSettings, train

    factory = get_model(args.model)
    if not factory.learned:
        raise InputError(f"{factory.name} is a non-learned reference: it needs no training")
    settings = TrainSettings.with_preset(
        args.preset, model=factory.name, data=str(args.data), split=args.split,
        pool=str(args.pool) if args.pool else None, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, size=args.size, device=_device(args), amp=args.amp, seed=args.seed,
        out=str(args.out or Path("runs") / factory.name), pretrained=_pretrained(args),
        save_every=args.save_every, max_steps=args.max_steps, time_limit=args.time_limit,
        resume=args.resume, checkpoint=args.checkpoint, options=_model_options(args, factory))
    summary = train(factory, settings, progress=not args.quiet)
    if summary["rank"] == 0:
        print(f"{factory.name}: {summary['steps']} steps in {summary['seconds']:.1f} s "
              f"({summary['images_per_second']:.1f} img/s), pretrained: {summary['pretrained']} "
              f"→ {summary['run']}")


def _reproduce(args) -> None:
    from ovbench.evaluation.reproduce import Budget, reproduce

    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    out = args.out or Path("leaderboards") / (args.table + ("-tiny" if args.preset == "tiny" else ""))
    budget = Budget(preset=args.preset, epochs=args.epochs, batch_size=args.batch_size, size=args.size,
                    device=_device(args), pretrained=_pretrained(args), validation=args.validation)
    rows = _names(args.rows) if args.rows else None
    data = args.data or DEFAULT_DATA / STUDIES[args.table].kind
    report = reproduce(args.table, data, args.pool, args.seeds, budget, out,
                       args.runs or Path("runs") / "reproduce" / out.name, rows, progress=not args.quiet)
    print(f"{args.table}: {report.results} result files, {report.claims} claims "
          f"({report.verdicts}) in {report.seconds:.0f} s → {report.table}")


def _publish(args) -> None:
    from ovbench.hub.publish import publish

    summary = publish(args.paths, args.repo_id, args.to, args.private, args.max_shard_size,
                      args.overwrite, args.license, progress=not args.quiet)
    rows = f"{summary.rows:,} rows, " if summary.rows else ""
    print(f"{', '.join(summary.configs)}: {rows}{summary.files} files, "
          f"{summary.num_bytes / 1e6:,.1f} MB in {summary.seconds:.1f} s → {summary.destination}")


def _leaderboard(args) -> None:
    from ovbench.evaluation.leaderboard import rebuild

    for path in rebuild(args.dir):
        print(f"leaderboard → {path}")


def _validate(args) -> None:
    from ovbench.formats.validate import validate

    report = validate(args.dir)
    if report.count:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        more = report.count - len(report.problems)
        raise ValidationFailed(f"{args.dir}: {report.count} violations" +
                               (f" ({more} not shown)" if more else ""))
    print(f"{args.dir}: valid")


class ValidationFailed(InputError):
    exit_code = 1


def _show(args) -> None:
    from ovbench.formats.show import sheet

    sheet(args.dir, args.split, args.count, args.seed).save(args.out)
    print(f"contact sheet → {args.out}")


def _import(args) -> None:
    from ovbench.generate.real import import_dataset

    if args.out is None:
        raise InputError("`out` is required: the dataset folder to write")
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    summary = import_dataset(
        args.layout, args.annotations, args.images, args.out, _names(args.categories) if args.categories else None,
        args.size, args.split, args.seed, args.workers, args.resume, progress=not args.quiet)
    left_out, summary.rejected = summary.rejected, {}
    _print_dataset_summary(summary)
    if left_out:
        print("instances left out: " + ", ".join(f"{n} {why}" for why, n in left_out.items()), file=sys.stderr)


def _convert(args) -> None:
    from ovbench.formats.convert import convert

    for path in convert(args.dir, args.to, args.out):
        print(f"{args.to} → {path}")


# Options of file meshes' axes; their values may begin with "-" (`--front -z`).
AXIS_OPTIONS = {"--up": "the mesh files' up axis, e.g. +y (default: per format)",
                "--front": "the mesh files' front axis, e.g. -z (default: per format)"}


def _attach_axis_values(argv: list[str]) -> list[str]:
    """`--front -z` → `--front=-z`: argparse would take "-z" for an option and say the value is missing."""
    attached: list[str] = []
    for word in argv:
        if attached and attached[-1] in AXIS_OPTIONS and word.startswith("-") and not word.startswith("--"):
            attached[-1] += "=" + word  # bad values such as "-q" then get the axis error
        else:
            attached.append(word)
    return attached


def _flags_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Parameter name → flag, for the options of the command that was run (and its parents)."""
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                flags.update(_flags_of(action.choices[chosen], args))
        elif action.option_strings:
            flags.setdefault(action.dest.removeprefix(SUITE), max(action.option_strings, key=len))
    return flags


def in_flags(message: str, flags: dict[str, str]) -> str:
    """A library message in the command line's words: `resume` becomes --resume."""
    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: flags.get(m.group(1), m.group(0)), message)


OUTPUT_OPTIONS = ("out", "to", "runs")
MAKES_DATASETS = ("generate", "import")  # their --out is the dataset they make (and resume)


def _refuse_outputs_in_datasets(args) -> None:
    """No command writes into a dataset folder it did not make (the folder would stop validating)."""
    from ovbench.formats.dataset import refuse_inside_dataset

    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, getattr(args, SUITE + name, None))
        if value is not None:
            path = Path(value).absolute()
            refuse_inside_dataset(path.parent if args.command in MAKES_DATASETS else path, f"--{name}")


def main(argv: list[str] | None = None) -> int:
    argv = _attach_axis_values(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handlers = {"generate": _generate, "models": _models, "validate": _validate, "show": _show,
                "convert": _convert, "evaluate": _evaluate, "leaderboard": _leaderboard,
                "train": _train, "publish": _publish, "reproduce": _reproduce, "import": _import}
    try:
        _refuse_outputs_in_datasets(args)
        handlers[args.command](args)
    except InputError as exc:
        message = " ".join(in_flags(str(exc), _flags_of(parser, args)).split())
        print(f"ovbench: error: {message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the machine's answer (permissions, a full disk): one line, like bad input
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ovbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ovbench: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return 0
