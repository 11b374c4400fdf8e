"""`ovbench leaderboard`: rebuild leaderboards/<benchmark>.md (and an IoU-by-occlusion chart) from
every results JSON under leaderboards/<benchmark>/. The same files always give the same output.

The papers' numbers appear as separate reference rows, marked as reported on their own data
(OVD for "Visualizing the Invisible", DYCE for SeGAN): they are context, not comparable scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from ovbench.errors import InputError
from ovbench.evaluation.metrics import BUCKETS, AppearanceMetrics, MaskMetrics
from ovbench.evaluation.reproduce import STUDY_FILE, summarise, verdict

# BASELINES.md §7: Table III (synthetic OVD) of "Visualizing the Invisible", SeGAN Table 1 and 5.
REFERENCE_ROWS = {
    "ovd": ("reported on OVD, not this data", [
        # model, precision, recall, f1, iou, l1, l2
        ("Mask R-CNN [Y]", 0.7803, 0.7914, 0.7653, 0.6246, 0.1174, 0.1162),
        ("DeepLab [Y]", 0.8810, 0.8779, 0.8794, 0.7937, 0.0574, 0.0559),
        ("SharpMask [Y]", 0.8286, 0.9404, 0.8751, 0.7840, 0.0646, 0.0635),
        ("pix2pix [Y]", 0.8865, 0.8906, 0.8821, 0.7932, 0.0575, 0.0557),
        ("SeGAN [Y]", 0.7931, 0.9016, 0.8367, 0.7236, 0.0846, 0.0835),
        ("Yan et al. it1 [Y]", 0.9590, 0.8229, 0.8798, 0.7939, 0.0559, 0.0535),
        ("Yan et al. it2 [Y]", 0.9625, 0.8416, 0.8935, 0.8137, 0.0499, 0.0480),
    ]),
    "dyce": ("reported on DYCE, not this data", [
        # model, SeGAN full / visible / invisible IoU (%), depth layering (%)
        ("Multipath [S]", 36.0, 34.8, 12.3, None),
        ("Pix2Pix [S]", 52.3, 49.6, 11.9, None),
        ("SeGAN, predicted SV [S]", 68.78, 64.76, 15.59, 84.04),
        ("SeGAN, GT SV [S]", 75.71, 68.05, 23.26, None),
        ("Eigen-Fergus depth [S]", None, None, None, 60.18),
    ]),
}
LOWER_IS_BETTER = " ↓"   # marks the columns where a smaller value is better
METRICS = {"mask": MaskMetrics, "appearance": AppearanceMetrics}


def higher_is_better(path: tuple) -> bool:
    """What the metric under metrics.<path> declares (mask, appearance); True for the rest."""
    return METRICS[path[0]].higher_is_better.get(path[-1], True) if path[0] in METRICS else True


def _label(name: str, path: tuple) -> str:
    return name + ("" if higher_is_better(path) else LOWER_IS_BETTER)


MASK_COLUMNS = tuple((_label(name, ("mask", key)), key) for name, key in (
    ("P", "precision"), ("R", "recall"), ("F1", "f1"), ("IoU", "iou"), ("pooled IoU", "pooled_iou"),
    ("L1", "l1"), ("L2", "l2")))
SEGAN_COLUMNS = (("full", "segan_paper_full"), ("vis", "segan_paper_visible"),
                 ("invis", "segan_paper_invisible"), ("invis (code)", "segan_code_invisible"))


def _fmt(value, digits=4) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _metric(result: dict, *path):
    node = result["metrics"]
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _table(kind: str, entries: list[tuple[Path, dict]]) -> list[str]:
    header = ["model", "run", "instances", *[c for c, _ in MASK_COLUMNS],
              *[f"SeGAN {c}" for c, _ in SEGAN_COLUMNS],
              _label("app. L1", ("appearance", "l1")), _label("app. L2", ("appearance", "l2")),
              "PSNR", "SSIM", "ICP", "SS", "depth layering", "pretrained"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ordered = sorted(entries, key=lambda e: (-(_metric(e[1], "mask", "all", "iou") or 0), e[0].name))
    for path, result in ordered:
        mask = _metric(result, "mask", "all") or {}
        appearance = result["metrics"].get("appearance", {})
        row = [result["model"], path.stem, _fmt(mask.get("instances")),
               *[_fmt(mask.get(k)) for _, k in MASK_COLUMNS],
               *[_fmt(mask.get(k)) for _, k in SEGAN_COLUMNS],
               _fmt(appearance.get("l1")), _fmt(appearance.get("l2")),
               _fmt(appearance.get("psnr"), 2), _fmt(appearance.get("ssim")),
               _fmt(_metric(result, "icp", "icp")), _fmt(_metric(result, "ss", "ss")),
               _fmt(_metric(result, "depth_layering", "accuracy")),
               _initialisation(str(result.get("pretrained", "–")))]
        lines.append("| " + " | ".join(row) + " |")
    note, rows = REFERENCE_ROWS.get(kind, ("", []))
    if rows and kind == "ovd":
        lines += ["", f"Reference rows ({note}; Table III, synthetic input):", "",
                  "| model | P | R | F1 | IoU | L1 | L2 |", "|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join([r[0], *[_fmt(v) for v in r[1:]]]) + " |" for r in rows]
    elif rows:
        lines += ["", f"Reference rows ({note}; SeGAN Tables 1 and 5, IoU in %):", "",
                  "| model | full | visible | invisible | depth layering |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join([r[0], *[_fmt(v, 2) for v in r[1:]]]) + " |" for r in rows]
    return lines


def _read_entries(folder: Path) -> list[tuple[Path, dict]]:
    """Every results JSON of a folder (a study's own study.json aside), sorted by name."""
    entries = []
    for path in sorted(folder.glob("*.json")):
        if path.name == STUDY_FILE:
            continue
        try:
            entries.append((path, json.loads(path.read_text())))
        except ValueError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from exc
    return entries


def check_same_build(entries: list[tuple[Path, dict]]) -> None:
    """One table compares results on one dataset build and split: refuse a mix, naming both."""
    first_path, first = entries[0]
    for path, result in entries[1:]:
        for key in ("manifest_sha256", "split"):
            if result["dataset"].get(key) != first["dataset"].get(key):
                raise InputError(
                    f"{path} and {first_path} were scored on different dataset builds or splits "
                    f"({_build(result)} vs {_build(first)}): keep one build per leaderboard folder")


def _build(result: dict) -> str:
    return f"manifest {str(result['dataset'].get('manifest_sha256'))[:12]}, split {result['dataset'].get('split')}"


def _chart(entries: list[tuple[Path, dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [b for b, _, _ in BUCKETS]
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=100)
    width = 0.8 / max(len(entries), 1)
    colours = plt.get_cmap("tab20").colors
    for k, (file, result) in enumerate(sorted(entries, key=lambda e: e[0].name)):
        values = [(_metric(result, "mask", "by_occlusion", b, "iou") or 0.0) for b in names]
        ax.bar([i + k * width for i in range(len(names))], values, width, label=file.stem,
               color=colours[k % len(colours)])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], [f"occlusion {n}" for n in names])
    ax.set_ylabel("IoU (per instance, mean)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def rebuild(folder: Path = Path("leaderboards")) -> list[Path]:
    """Write <folder>/<benchmark>.md and <benchmark>-iou-by-occlusion.png for each benchmark."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no leaderboard folder {folder}")
    written = []
    for bench_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (bench_dir / STUDY_FILE).is_file():
            table, _ = rebuild_study(bench_dir)
            written += [table, folder / f"{bench_dir.name}-curves.png"]
            continue
        entries = _read_entries(bench_dir)
        if not entries:
            continue
        check_same_build(entries)
        kind = entries[0][1]["dataset"]["kind"]
        benchmark = bench_dir.name
        chart = folder / f"{benchmark}-iou-by-occlusion.png"
        _chart(entries, chart, f"{benchmark}: IoU by occlusion")
        lines = [f"# Leaderboard: {benchmark} ({kind})", "",
                 f"Generated by `ovbench leaderboard` from {len(entries)} result files in "
                 f"`{bench_dir.name}/`; split {entries[0][1]['dataset']['split']}, dataset manifest "
                 f"sha256 {entries[0][1]['dataset']['manifest_sha256'][:12]}. Per-instance means; "
                 "IoU at 0.5; SeGAN columns use the paper's definitions, with the released code's "
                 "invisible score beside them.", "", *_table(kind, entries), "",
                 f"![IoU by occlusion]({chart.name})", ""]
        target = folder / f"{benchmark}.md"
        target.write_text("\n".join(lines))
        written += [target, chart]
    return written


# --------------------------------------------------------------------------- reproduce studies

STUDY_COLUMNS = (("IoU", ("mask", "all", "iou")), ("F1", ("mask", "all", "f1")),
                 ("P", ("mask", "all", "precision")), ("R", ("mask", "all", "recall")),
                 ("L1", ("mask", "all", "l1")), ("SeGAN full", ("mask", "all", "segan_paper_full")),
                 ("SeGAN invis", ("mask", "all", "segan_paper_invisible")),
                 ("app. L1", ("appearance", "l1")), ("invisible app. L1", ("appearance", "l1_invisible")))


def _mean_std(values: list[float]) -> str:
    mean, std, n = summarise(values)
    if n == 0:
        return "–"
    return f"{mean:.4f} ± {std:.4f} ({n})" if n > 1 else f"{mean:.4f} (1)"


def _study_values(entries, study: dict) -> dict:
    """row name → metric path → {seed or "ref": value}."""
    values: dict = {}
    for path, result in entries:
        info = result.get("study")
        row, key = (info["row"], info["seed"]) if info else (path.stem, "ref")
        for _, metric in STUDY_COLUMNS + tuple((c["text"], tuple(c["metric"])) for c in study["claims"]):
            value = _metric(result, *metric)
            if isinstance(value, (int, float)):
                values.setdefault(row, {}).setdefault(metric, {})[key] = float(value)
    return values


def _curves(entries, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    curves: dict = {}
    for _, result in entries:
        if result.get("study"):
            curves.setdefault(result["study"]["row"], []).append(result["study"]["validation_iou"])
    colours = plt.get_cmap("tab10").colors
    for k, (row, runs) in enumerate(sorted(curves.items())):
        for j, curve in enumerate(runs):
            ax.plot(range(1, len(curve) + 1), curve, color=colours[k % len(colours)], linewidth=1,
                    marker="o", markersize=3, label=row if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("validation IoU")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def rebuild_study(folder: Path) -> tuple[Path, list[str]]:
    """Write <folder>.md (rows as mean ± std (n), a verdict per claim) and <folder>-curves.png
    from a reproduce study's files; returns the table's path and the verdicts."""
    folder = Path(folder)
    study = json.loads((folder / STUDY_FILE).read_text())
    entries = _read_entries(folder)
    if not entries:
        raise InputError(f"{folder} holds no result files yet")
    check_same_build(entries)
    values = _study_values(entries, study)
    labels = {r["name"]: r["paper"] for r in study["rows"]}
    header = ["row", "paper's row", *[_label(name, metric) for name, metric in STUDY_COLUMNS]]
    lines = [f"# Reproduction: {study['table']} — {study['paper']}", "",
             f"Generated by `ovbench reproduce` / `ovbench leaderboard` from {len(entries)} result files in "
             f"`{folder.name}/`. Dataset {entries[0][1]['dataset']['name']} (manifest sha256 "
             f"{entries[0][1]['dataset']['manifest_sha256'][:12]}), scored on "
             f"{entries[0][1]['dataset']['split']} ({entries[0][1]['dataset']['instances']} objects). "
             f"Every row trained with the same budget {_budget(study['budget'])} and seeds "
             f"{', '.join(map(str, study['seeds']))}; each run's checkpoint selected by IoU on "
             f"{study['budget']['validation']:g} of the train images held out (never on test). "
             "Cells: mean ± sample std (n seeds); references are scored once. Initialisation, as "
             "the results record it: " + "; ".join(sorted({_initialisation(str(r.get("pretrained")))
                                                            for _, r in entries if r.get("study")})) + ".", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in [r["name"] for r in study["rows"]] + study["references"]:
        cells = [_mean_std(list(values.get(row, {}).get(metric, {}).values())) for _, metric in STUDY_COLUMNS]
        lines.append("| " + " | ".join([row, labels.get(row, "reference (not in the paper)"), *cells]) + " |")
    verdicts = []
    lines += ["", "## Claims", "", "Δ: the claimed-better row minus the other, oriented so that Δ > 0 is "
              "the claim's direction; ± its standard error over paired seeds. Inconclusive when "
              "|Δ| < 2 SE or with fewer than two seeds.", "",
              "| claim | source | rows | metric | Δ ± SE | verdict |", "|---|---|---|---|---|---|"]
    for claim in study["claims"]:
        metric = tuple(claim["metric"])
        better = values.get(claim["better"], {}).get(metric, {})
        worse = values.get(claim["worse"], {}).get(metric, {})
        if not better or not worse:
            continue
        delta, se, word = verdict(better, worse, higher_is_better(metric))
        verdicts.append(word)
        lines.append(f"| {claim['text']} | {claim['source']} | {claim['better']} vs {claim['worse']} | "
                     f"{_label('.'.join(metric), metric)} | "
                     f"{_fmt(delta)} ± {_fmt(se)} | **{word}** |")
    curves = folder.parent / f"{folder.name}-curves.png"
    _curves(entries, curves, f"{folder.name}: validation IoU per epoch")
    lines += ["", f"![validation IoU per epoch]({curves.name})", ""]
    table = folder.parent / f"{folder.name}.md"
    table.write_text("\n".join(lines))
    return table, verdicts


def _initialisation(note: str) -> str:
    """A results record's `pretrained` note without its advice: "random: ImageNet ResNet-18
    weights unavailable", "ImageNet ResNet-18 (resnet18-f37072fd.pth)", "none (...)"."""
    head, unavailable, _ = note.partition(" could not be had")
    return head + " unavailable" if unavailable else note


def _budget(budget: dict) -> str:
    shown = {k: v for k, v in budget.items() if v is not None and k != "validation"}
    return "(" + ", ".join(f"{k} {v}" for k, v in shown.items()) + ")"
