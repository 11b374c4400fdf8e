"""Trained models on the Hub: `ovbench publish runs/NAME --repo-id ORG/NAME` and `--checkpoint hub:ORG/NAME`.

A model repository:

    README.md                       model card: YAML (library, licence, tags, model-index with the
                                    leaderboard rows), then the rows, the training recipe, citations
    config.json                     the checkpoint record: model name and config, training settings,
                                    step, initialisation (the optimiser state is left out)
    model.safetensors               the weights: the run's model-S.safetensors, byte for byte
    results/<benchmark>/<name>.json the result files scored with exactly these weights (same sha256)

Reading one back downloads config.json and model.safetensors only, into the Hub cache (HF_HOME):
nothing pickled, no code. The token is only ever handed to huggingface_hub.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from ovbench import __version__
from ovbench.errors import InputError
from ovbench.formats.dataset import check_plain_name, sha256
from ovbench.formats.fileio import write_json
from ovbench.hub import PREFIX, card, client

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
RESULTS = "results"
README = "README.md"
TAGS = ["ovbench", "amodal-segmentation", "occlusion", "image-segmentation"]
CARD_METRICS = (("iou", "IoU"), ("f1", "F1"), ("precision", "precision"), ("recall", "recall"))
# The papers behind each model, beyond the benchmark's own two (card.CITATIONS).
MODEL_CITATIONS = {
    "deeplab": """@article{chen2017rethinking,
  title   = {Rethinking Atrous Convolution for Semantic Image Segmentation},
  author  = {Chen, Liang-Chieh and Papandreou, George and Schroff, Florian and Adam, Hartwig},
  journal = {arXiv:1706.05587},
  year    = {2017}
}""",
    "pix2pix": """@inproceedings{isola2017image,
  title     = {Image-to-Image Translation with Conditional Adversarial Networks},
  author    = {Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A.},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}""",
}


def is_run(path: Path) -> bool:
    """A training run folder (checkpoint-S.json inside) or one checkpoint record."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob("checkpoint-*.json"))
    return path.suffix == ".json" and path.name.startswith("checkpoint-")


def _checkpoint(run: Path) -> tuple[dict, Path]:
    from ovbench.baselines.checkpoints import find_checkpoint, read_record, weights_of

    record_path = find_checkpoint(run)
    record = read_record(record_path)
    weights = weights_of(record_path, record)
    if not weights.is_file():
        raise InputError(f"{record_path} has no weights beside it ({weights.name} missing)")
    return record, weights


def _plain(name) -> bool:
    try:
        check_plain_name(name, "benchmark")
    except InputError:
        return False
    return True


def matching_results(weights_sha: str, results: Path) -> list[tuple[Path, dict]]:
    """Result files (under `results`, e.g. leaderboards/) scored with exactly these weights."""
    found = []
    for path in sorted(Path(results).rglob("*.json")) if Path(results).is_dir() else []:
        try:
            result = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError):
            continue
        checkpoint = result.get("checkpoint") if isinstance(result, dict) else None
        if isinstance(checkpoint, dict) and checkpoint.get("sha256") == weights_sha and "metrics" in result \
                and _plain(result.get("benchmark")):  # it names the results/ folder the file goes to
            found.append((path, result))
    return found


def _rows(results: list[tuple[Path, dict]]) -> list[str]:
    lines = ["| benchmark | split | instances | IoU | F1 | P | R | pooled IoU | app. L1 ↓ | SSIM |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, result in results:
        mask = result["metrics"].get("mask", {}).get("all", {})
        appearance = result["metrics"].get("appearance", {})

        def cell(values, key, digits=4):
            value = values.get(key)
            return f"{value:.{digits}f}" if isinstance(value, float) else "–"

        lines.append(f"| {result['benchmark']} | {result['dataset']['split']} | {mask.get('instances', '–')} | "
                     + " | ".join(cell(mask, k) for k in ("iou", "f1", "precision", "recall", "pooled_iou"))
                     + f" | {cell(appearance, 'l1')} | {cell(appearance, 'ssim', 3)} |")
    return lines


def render_card(record: dict, repo_id: str, license_id: str, results: list[tuple[Path, dict]]) -> str:
    name = repo_id.split("/")[-1]
    model = record["model"]
    evals = [EvalResult(task_type="image-segmentation", task_name="amodal segmentation",
                        dataset_type=result["benchmark"], dataset_name=result["benchmark"],
                        dataset_split=result["dataset"]["split"], metric_type=key, metric_name=label,
                        metric_value=round(result["metrics"]["mask"]["all"][key], 4))
             for _, result in results for key, label in CARD_METRICS
             if isinstance(result["metrics"].get("mask", {}).get("all", {}).get(key), float)]
    data = ModelCardData(library_name="ovbench", license=license_id, tags=TAGS + [model],
                         model_name=name, eval_results=evals or None, pipeline_tag="image-segmentation")
    recipe = {key: record.get(key) for key in ("model", "config", "train", "step", "epoch", "pretrained",
                                                "ovbench_version")}
    body = [
        f"# {name}", "",
        f"An ovbench `{model}` model for amodal segmentation (the full mask of a partly hidden object, "
        "from the image and its visible mask), trained with ovbench "
        f"{record.get('ovbench_version', __version__)} for {record['step']} steps. Initialisation: "
        f"{record.get('pretrained', 'unknown')}.", "",
        "```sh",
        f"ovbench evaluate --model {model} --checkpoint hub:{repo_id} --data ovbench-data/ovd",
        "```", "",
        "Only `config.json` and `model.safetensors` are read (nothing pickled).", "",
        "## Results", "",
        *(_rows(results) if results else ["No result files were scored with these weights when this was published."]),
        "", "The full result files, as `ovbench evaluate` wrote them, are under `results/`.", "",
        "## Training recipe", "", "```json", json.dumps(recipe, indent=2, sort_keys=True), "```", "",
        "## Citation", "", "```bibtex",
        "\n\n".join(filter(None, [MODEL_CITATIONS.get(model), card.CITATIONS])), "```", "",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)))


def write_repository(run: Path, repo_id: str, folder: Path, license_id: str, results: Path) -> int:
    """The repository's files into `folder`; returns how many result files went in."""
    record, weights = _checkpoint(run)
    shutil.copyfile(weights, folder / WEIGHTS)
    write_json(folder / CONFIG, {key: value for key, value in record.items() if key != "optimizers"})
    matched = matching_results(sha256(weights), results)
    for path, result in matched:
        target = folder / RESULTS / result["benchmark"] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (folder / README).write_text(render_card(record, repo_id, license_id, matched))
    return len(matched)


def publish_model(run: Path, repo_id: str, to: Path | None, private: bool, overwrite: bool,
                  license_id: str | None, results: Path = Path("leaderboards")):
    from ovbench.hub.publish import PublishSummary, check_destination

    started = time.perf_counter()
    record, _ = _checkpoint(run)  # refuse a broken run before touching the Hub
    api = None
    if to is not None:
        check_destination(Path(to), [Path(run)], overwrite)
    else:
        api = client.connect(repo_id)
        with client.hub_errors(repo_id):
            _check_remote(api, repo_id, record["model"], overwrite)
    with client.build_folder(to) as build:
        write_repository(Path(run), repo_id, build, license_id or "other", results)
        files = [p for p in build.rglob("*") if p.is_file()]
        summary = PublishSummary("", 0, len(files), sum(p.stat().st_size for p in files), 0.0,
                                 [f"model {record['model']}"])
        summary.destination = client.deliver(build, to, api, repo_id, "model", private, True,
                                             f"ovbench publish: {record['model']} step {record['step']}")
    summary.seconds = time.perf_counter() - started
    return summary


def _check_remote(api, repo_id: str, model: str, overwrite: bool) -> None:
    """An existing repository holding another model, or not an ovbench model, is only replaced
    with `overwrite`."""
    try:
        files = [f for f in api.list_repo_files(repo_id) if f != ".gitattributes"]
    except RepositoryNotFoundError:
        return
    if not files or overwrite:
        return
    held = None
    if CONFIG in files:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                held = json.loads(Path(api.hf_hub_download(repo_id, CONFIG, local_dir=tmp)).read_text()).get("model")
            except (UnicodeDecodeError, ValueError, AttributeError):
                held = None
    if held != model:
        what = f"a {held} model" if held else "files that are not an ovbench model"
        raise InputError(f"{repo_id} already exists and holds {what}; pass `overwrite` to replace its contents")


def parse_model_spec(spec: str) -> str:
    parts = spec[len(PREFIX):].strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise InputError(f"bad Hub model {spec!r}: use hub:ORG/NAME")
    return "/".join(parts)


def download_model(spec: str) -> Path:
    """A published model's config.json and model.safetensors from the Hub cache (downloaded when
    missing or changed; offline, or with the Hub unreachable, the cached copy)."""
    from ovbench.hub.fetch import current_revision

    repo_id = parse_model_spec(spec)
    online = current_revision(repo_id, "model") is not None
    with client.hub_errors(repo_id):
        # By branch name, so that the cache records where main points for offline use.
        folder = Path(snapshot_download(repo_id, endpoint=client.endpoint(), revision="main" if online else None,
                                        allow_patterns=[CONFIG, WEIGHTS], local_files_only=not online))
    if not ((folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()):
        raise InputError(f"{repo_id} is not an ovbench model (it lacks {CONFIG} or {WEIGHTS})")
    return folder

