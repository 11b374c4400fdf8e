"""`ovbench leaderboard`: rebuild leaderboards/<benchmark>.md (and an IoU-by-occlusion chart) from
every results JSON under leaderboards/<benchmark>/. The same files always give the same output.

The papers' numbers appear as separate reference rows, marked as reported on their own data
(OVD for "Visualizing the Invisible", DYCE for SeGAN): they are context, not comparable scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from ovbench.errors import UserError
from ovbench.metrics import BUCKETS

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
MASK_COLUMNS = (("P", "precision"), ("R", "recall"), ("F1", "f1"), ("IoU", "iou"),
                ("pooled IoU", "pooled_iou"), ("L1", "l1"), ("L2", "l2"))
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
              "app. L1", "app. L2", "PSNR", "SSIM", "ICP", "SS", "depth layering", "pretrained"]
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
               _fmt(_metric(result, "depth_layering", "accuracy")), str(result.get("pretrained", "–"))]
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
        raise UserError(f"no leaderboard folder {folder}")
    written = []
    for bench_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        entries = []
        for path in sorted(bench_dir.glob("*.json")):
            try:
                entries.append((path, json.loads(path.read_text())))
            except ValueError as exc:
                raise UserError(f"{path}: not valid JSON ({exc})") from exc
        if not entries:
            continue
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
