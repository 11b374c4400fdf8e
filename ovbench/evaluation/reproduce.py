"""`ovbench reproduce TABLE`: re-verify a paper's table on this suite's data.

Every row of the table is trained with the same data budget (epochs, batch, size, preset) and the
same seeds; each run's checkpoint is selected, epoch by epoch, on a validation share carved from
the train split (data.holdout_images: the same images for every row and seed) — never on test —
and the selected checkpoint is scored on test. Rows that differ only in an evaluation option
(seganv's iterations) share their training runs. Non-learned references are scored once.

Output folder OUT (default leaderboards/TABLE):
  study.json               the table, its rows and claims, the budget and seeds
  <row>-seed<k>.json       a results record per (row, seed): evaluate's, plus "study" (seed,
                           selected epoch, validation IoU per epoch)
  <reference>.json         a results record per non-learned reference
and beside it OUT.md (mean ± std (n) per row, a verdict per claim) and OUT-curves.png (validation
IoU per epoch), which `ovbench leaderboard` rebuilds from the same files.

A claim compares two rows on one metric. With paired seeds, Δ is the mean of the per-seed
differences (oriented so that Δ > 0 means the claim's direction) and SE their standard error;
against a reference (one value) SE is the row's own standard error. Verdict: inconclusive when
|Δ| < 2·SE (or fewer than two seeds), else holds (Δ > 0) or fails (Δ < 0).

A killed study resumes where it stopped: training runs resume from their checkpoints, validation
scores are kept per epoch, finished result files are kept.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.fileio import write_json


@dataclass(frozen=True)
class Row:
    name: str                      # the row in our table
    model: str
    paper: str                     # the paper's name for it
    train: dict = field(default_factory=dict)      # model options at training
    evaluate: dict = field(default_factory=dict)   # model options at evaluation


@dataclass(frozen=True)
class Claim:
    text: str
    source: str
    better: str                    # the row claimed better ...
    worse: str                     # ... than this one
    metric: tuple                  # path under "metrics"; its metric says which way is better


@dataclass(frozen=True)
class Study:
    paper: str
    kind: str                      # dataset kind it runs on
    rows: tuple
    references: tuple              # non-learned models scored once
    claims: tuple


IOU = ("mask", "all", "iou")
YAN2019 = Study(
    paper='Yan et al., "Visualizing the Invisible" (ICCV 2019), Tables I-III', kind="ovd",
    rows=(
        Row("deeplab", "deeplab", "DeepLab"),
        Row("pix2pix", "pix2pix", "pix2pix"),
        Row("segan", "segan", "SeGAN"),
        Row("seganv-it1", "seganv", "Ours it1 (D_obj + D_ins, two paths)", evaluate={"iterations": 1}),
        Row("seganv-it2", "seganv", "Ours it2", evaluate={"iterations": 2}),
        Row("seganv-standard", "seganv", "D_standard", train={"discriminator": "standard"},
            evaluate={"iterations": 1}),
        Row("seganv-one-path", "seganv", "one-path G2", train={"paths": 1}, evaluate={"iterations": 1}),
    ),
    references=("pool-nn", "convex-hull", "visible"),
    claims=(
        Claim("coupled D_obj + D_ins beats a standard discriminator on IoU", "Table I",
              "seganv-it1", "seganv-standard", IOU),
        Claim("two-path G2 recovers the hidden appearance better (invisible L1)", "Table I",
              "seganv-it1", "seganv-one-path", ("appearance", "l1_invisible")),
        Claim("a second iteration improves IoU (it2 ≥ it1)", "Table II", "seganv-it2", "seganv-it1", IOU),
        Claim("seganv beats pix2pix on IoU", "Table III", "seganv-it2", "pix2pix", IOU),
        Claim("seganv beats DeepLab on IoU", "Table III", "seganv-it2", "deeplab", IOU),
        Claim("seganv beats SeGAN on IoU", "Table III", "seganv-it2", "segan", IOU),
        Claim("seganv beats the pool nearest neighbour on IoU", "ours (not in the paper)",
              "seganv-it2", "pool-nn", IOU),
    ))
SEGAN2018 = Study(
    paper='Ehsani et al., "SeGAN" (CVPR 2018), Tables 1-2', kind="dyce",
    rows=(Row("segan", "segan", "SeGAN (GT SV)"), Row("pix2pix", "pix2pix", "Pix2Pix")),
    references=("convex-hull", "visible"),
    claims=(
        Claim("SeGAN beats pix2pix on full IoU", "Table 1", "segan", "pix2pix", ("mask", "all", "segan_paper_full")),
        Claim("SeGAN beats pix2pix on invisible IoU", "Table 1", "segan", "pix2pix",
              ("mask", "all", "segan_paper_invisible")),
        Claim("SeGAN paints the object better than pix2pix (L1)", "Table 2", "segan", "pix2pix",
              ("appearance", "l1")),
    ))
STUDIES = {"yan2019": YAN2019, "segan2018": SEGAN2018}
STUDY_FILE = "study.json"


@dataclass(frozen=True)
class Budget:
    """What every row of a study is trained with (None: the training defaults)."""

    preset: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    size: int | None = None
    device: str = "cpu"
    pretrained: str = "imagenet"
    validation: float = 0.1


@dataclass
class Report:
    table: Path
    results: int
    claims: int
    verdicts: str
    seconds: float


def _run_key(row: Row) -> str:
    """Rows trained alike share a run: seganv-it1 and seganv-it2 are one model."""
    return row.model + "".join(f"-{k}-{v}" for k, v in sorted(row.train.items()))


def _check(study: Study, name: str, data: Path, pool: Path | None, seeds: int, budget: Budget,
           rows: list[str] | None) -> tuple:
    chosen = [r for r in study.rows if rows is None or r.name in rows]
    unknown = sorted(set(rows or []) - {r.name for r in study.rows} - set(study.references))
    if unknown:
        raise InputError(f"{name} has no row {', '.join(unknown)} (rows: "
                        f"{', '.join([r.name for r in study.rows] + list(study.references))})")
    manifest = dataset.load_manifest(Path(data))
    if manifest["kind"] != study.kind:
        raise InputError(f"{name} runs on {study.kind} data; {data} is {manifest['kind']}")
    for split in ("train", "test"):
        if split not in manifest["splits"]:
            raise InputError(f"{data} has no {split} split: {name} trains on train and scores on test")
    if not 0 < budget.validation < 1:
        raise InputError(f"the validation share must be in (0, 1), got {budget.validation}")
    from ovbench.baselines import get_model

    needs_pool = any(get_model(r.model).needs_pool for r in chosen) or (
        "pool-nn" in study.references and (rows is None or "pool-nn" in rows))
    if needs_pool and pool is None:
        raise InputError(f"{name} needs the silhouette pool (seganv, pool-nn): pass `pool` FILE.h5")
    references = [r for r in study.references if rows is None or r in rows]
    return chosen, references


def _check_resumable(out: Path, record: dict) -> None:
    """A study folder is only continued with the same table, budget and dataset build: more
    seeds or other rows may be added, nothing already measured is mixed with another recipe."""
    path = out / STUDY_FILE
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    for key, what in (("table", "table"), ("budget", "budget"), ("manifest_sha256", "dataset build")):
        if before.get(key) != record[key]:
            raise InputError(f"{out} holds a study with another {what} ({before.get(key)} vs "
                            f"{record[key]}): choose another `out`, or remove it")
    known = {r["name"] for r in record["rows"]}
    record["rows"] += [r for r in before["rows"] if r["name"] not in known]
    record["references"] += [r for r in before["references"] if r not in record["references"]]
    record["seeds"] = sorted(set(record["seeds"]) | set(before["seeds"]))


def _validation_iou(data: Path, run: Path, row: Row, pool, budget: Budget) -> float:
    from ovbench.evaluation.evaluator import evaluate

    result = evaluate(row.model, data, "train", run, row.evaluate, 16, budget.device, pool,
                      progress=False, holdout=budget.validation, part="validation")
    return result["metrics"]["mask"]["all"]["iou"]


def _train_selected(row: Row, seed: int, data: Path, pool, budget: Budget, run: Path,
                    progress: bool) -> dict:
    """Train one run epoch by epoch, scoring each epoch on validation and keeping the best
    checkpoint in run/best; returns {"curve": [IoU per epoch], "best_epoch": e}."""
    from ovbench.baselines import get_model
    from ovbench.baselines.training import TrainSettings, train

    factory = get_model(row.model)
    record_path = run / "validation.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"curve": [], "best_epoch": 0}
    settings = TrainSettings.with_preset(
        budget.preset, model=factory.name, data=str(data), pool=str(pool) if pool else None,
        epochs=budget.epochs, batch_size=budget.batch_size, size=budget.size, device=budget.device,
        seed=seed, out=str(run), pretrained=budget.pretrained, holdout=budget.validation,
        resume=True, options=dict(row.train))
    for epoch in range(len(record["curve"]) + 1, settings.epochs + 1):
        settings.until_epoch = epoch
        train(factory, settings, progress=progress)
        iou = _validation_iou(data, run, row, pool, budget)
        record["curve"].append(iou)
        if iou >= max(record["curve"]):
            _keep_best(run)
            record["best_epoch"] = epoch
        write_json(record_path, record)
    return record


def _keep_best(run: Path) -> None:
    from ovbench.baselines.checkpoints import steps_saved

    step = steps_saved(run)[-1]
    best = run / "best"
    staging = run / "best.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in (f"model-{step}.safetensors", f"checkpoint-{step}.json"):
        shutil.copy2(run / name, staging / name)
    shutil.rmtree(best, ignore_errors=True)
    staging.rename(best)


def reproduce(name: str, data: Path, pool: Path | None, seeds: int, budget: Budget, out: Path,
              runs: Path, rows: list[str] | None = None, progress: bool = True) -> Report:
    """Run study `name` (a key of STUDIES) and write its results and report; see the module doc."""
    from ovbench.evaluation.evaluator import evaluate

    if name not in STUDIES:
        raise InputError(f"no study {name!r}; studies: {', '.join(STUDIES)}")
    study = STUDIES[name]
    started = time.perf_counter()
    chosen, references = _check(study, name, data, pool, seeds, budget, rows)
    record = {"table": name, "paper": study.paper, "seeds": list(range(seeds)),
              "rows": [asdict(r) for r in chosen], "references": references,
              "claims": [asdict(c) for c in study.claims], "budget": asdict(budget),
              "manifest_sha256": dataset.sha256(Path(data) / dataset.MANIFEST)}
    _check_resumable(out, record)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / STUDY_FILE, record)
    for seed in range(seeds):
        for row in chosen:
            target = out / f"{row.name}-seed{seed}.json"
            if target.is_file():
                continue
            run = runs / f"{_run_key(row)}-seed{seed}"
            selection = _train_selected(row, seed, data, pool, budget, run, progress)
            result = evaluate(row.model, data, "test", run / "best", row.evaluate, 16, budget.device,
                              pool, progress=progress)
            result["study"] = {"table": name, "row": row.name, "seed": seed,
                               "selected_epoch": selection["best_epoch"],
                               "validation_iou": selection["curve"]}
            write_json(target, result)
    for model in references:
        target = out / f"{model}.json"
        if not target.is_file():
            write_json(target, evaluate(model, data, "test", None, {}, 16, budget.device, pool,
                                        progress=progress))
    from ovbench.evaluation.leaderboard import rebuild_study

    table, verdicts = rebuild_study(out)
    counts = {v: verdicts.count(v) for v in ("holds", "fails", "inconclusive")}
    return Report(table, len(list(out.glob("*.json"))) - 1, len(verdicts),
                  ", ".join(f"{n} {v}" for v, n in counts.items() if n), time.perf_counter() - started)


def summarise(values: list[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (nan below two values) and count."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n


def verdict(better: dict, worse: dict, higher_is_better: bool) -> tuple[float, float, str]:
    """(Δ, SE, verdict) from per-seed values {seed: value} of the two rows; a row with one value
    and no seed key shared (a reference) is taken as exact."""
    sign = 1.0 if higher_is_better else -1.0
    shared = sorted(set(better) & set(worse))
    if shared:
        differences = [sign * (better[s] - worse[s]) for s in shared]
    elif len(worse) == 1:
        (reference,) = worse.values()
        differences = [sign * (v - reference) for v in better.values()]
    else:
        return math.nan, math.nan, "inconclusive"
    delta, std, n = summarise(differences)
    se = std / math.sqrt(n) if n > 1 else math.nan
    if not math.isfinite(se) or abs(delta) < 2 * se or (se == 0 and delta == 0):
        return delta, se, "inconclusive"
    return delta, se, "holds" if delta > 0 else "fails"
