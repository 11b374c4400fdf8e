"""`--data hub:ORG/NAME[/CONFIG]` and `--pool hub:ORG/NAME`: a published dataset back as local files.

The repository is downloaded into the Hub cache (HF_HOME; offline use works once cached), then the
dataset folder is rebuilt from its rows under OVBENCH_CACHE (default ~/.cache/ovbench), keyed by
the repository's commit: images and annotation files byte for byte, checked against the
published manifest.json. Pools become an HDF5 pool file again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import httpx2
import numpy as np
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, HfApi, is_offline_mode, snapshot_download
from tqdm import tqdm

from ovbench.errors import InputError
from ovbench.formats import dataset
from ovbench.formats.fileio import member
from ovbench.formats.writer import ANNOTATION_INDENTS, write_annotations
from ovbench.hub import PREFIX, client, layout, schema


def parse_spec(spec: str) -> tuple[str, str | None]:
    """hub:ORG/NAME → (ORG/NAME, None: the default config); hub:ORG/NAME/CONFIG → (ORG/NAME, CONFIG)."""
    parts = spec[len(PREFIX):].strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"bad Hub dataset {spec!r}: use hub:ORG/NAME or hub:ORG/NAME/CONFIG")
    return "/".join(parts[:2]), (parts[2] if len(parts) == 3 else None)


def cache_root() -> Path:
    return Path(os.environ.get("OVBENCH_CACHE", Path.home() / ".cache" / "ovbench")) / "hub"


def _card_configs(snapshot: Path) -> dict:
    """{config: is default} from the card's YAML."""
    if not (snapshot / "README.md").is_file():
        return {}
    configs = DatasetCard.load(snapshot / "README.md").data.get("configs") or []
    return {c["config_name"]: bool(c.get("default")) for c in configs}


def current_revision(repo_id: str, repo_type: str = "dataset") -> str | None:
    """The repository's current commit, asked with a short timeout; None when offline or the Hub
    cannot be reached (the local cache is used then)."""
    if is_offline_mode():  # HF_HUB_OFFLINE
        return None
    with client.hub_errors(repo_id):
        try:
            return HfApi(endpoint=client.endpoint()).repo_info(
                repo_id, repo_type=repo_type, revision="main", timeout=client.PROBE_TIMEOUT).sha
        except httpx2.TransportError:
            return None


def download(spec: str, want_kind: str) -> tuple[Path, str, str]:
    """Download one config of a Hub dataset into the Hub cache: (snapshot dir, config, commit)."""
    repo_id, config = parse_spec(spec)
    online = current_revision(repo_id) is not None
    # By branch first, so that the cache records where main points (offline use finds it again),
    # then at that commit, so that the card and the shards are of one version.
    fetch = dict(repo_type="dataset", endpoint=client.endpoint(), local_files_only=not online)
    with client.hub_errors(repo_id):
        card = Path(snapshot_download(repo_id, allow_patterns=["README.md"], revision="main", **fetch))
        fetch["revision"] = card.name
        configs = _card_configs(card)
        if not configs:
            raise InputError(f"{repo_id} is not an ovbench dataset (its card lists no configs)")
        if config is None:
            config = want_kind if want_kind in configs else next(
                (name for name, default in configs.items() if default), next(iter(configs)))
        if config not in configs:
            raise InputError(f"{repo_id} has no config {config!r} (it has {', '.join(configs)})")
        dataset.check_split_name(config, "Hub config name")
        snapshot = Path(snapshot_download(repo_id, allow_patterns=["README.md", f"{config}/*"], **fetch))
    return snapshot, config, snapshot.name


def _batches(snapshot: Path, config: str, split: str):
    """A split's rows (images undecoded), in lists of at most ROWS_PER_GROUP, in published order."""
    for shard in sorted((snapshot / config).glob(f"{split}-*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=layout.ROWS_PER_GROUP):
            yield batch.to_pylist()


def _rebuild_folder(snapshot: Path, config: str, root: Path, bar: tqdm) -> None:
    manifest = json.loads((snapshot / config / dataset.MANIFEST).read_text())
    headers = json.loads((snapshot / config / layout.COCO_HEADER).read_text())
    kind = manifest["kind"]
    # Names come from the repository: each is checked before anything is written under it.
    for split in manifest["splits"]:
        dataset.check_split_name(split, "split name in the Hub manifest")
    for name in manifest.get("files", {}):
        member(root, name, "the Hub manifest")
    for split in manifest["splits"]:
        images, annotations, occluders = [], [], []
        for batch in _batches(snapshot, config, split):
            for row in batch:
                image, anns, others, files = schema.from_row(kind, row)
                for name, data in files.items():
                    path = member(root / split, name, "a Hub row")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                images.append(image)
                annotations += anns
                occluders += others
            bar.update(len(batch))
        document = {**headers[split], "images": images, "annotations": annotations,
                    "occluders": occluders}
        path, expected = root / split / "annotations.json", manifest.get("files", {}).get(f"{split}/annotations.json")
        for indent in ANNOTATION_INDENTS:  # the layout the manifest's checksum names
            write_annotations(path, document, indent)
            if expected is None or dataset.sha256(path) == expected:
                break
    (root / dataset.MANIFEST).write_text((snapshot / config / dataset.MANIFEST).read_text())
    _check_files(root, manifest)


def _check_files(root: Path, manifest: dict) -> None:
    from ovbench.formats.validate import Report, check_checksums

    report = Report()
    check_checksums(root, manifest, report)
    if report.count:
        raise InputError(f"the Hub copy does not rebuild the dataset byte for byte ({report.problems[0]}); "
                        "the repository may be corrupt or written by another tool")


def _rebuild_pool(snapshot: Path, config: str, path: Path, bar: tqdm) -> None:
    from ovbench.formats.poolfile import PoolWriter

    attributes = json.loads((snapshot / config / layout.POOL_ATTRIBUTES).read_text())
    with h5py.File(path, "w", track_order=True) as h5:
        writer = PoolWriter(h5, json.loads(attributes["config"])["size"])
        for batch in _batches(snapshot, config, layout.POOL_SPLIT):
            masks = np.stack([schema.mask_from_png(row["silhouette"]["bytes"]) for row in batch])
            writer.append(np.packbits(masks, axis=-1),
                          {name: [row[name] for row in batch] for name in schema.POOL_COLUMNS})
            bar.update(len(batch))
        h5.attrs.update(attributes)


def _row_count(snapshot: Path, config: str) -> int:
    return sum(pq.ParquetFile(shard).metadata.num_rows for shard in (snapshot / config).glob("*.parquet"))


def materialize(spec: str, want_kind: str, progress: bool = True) -> Path:
    """The local copy of a hub: spec: a dataset folder (want_kind "dataset") or a pool file ("pool")."""
    snapshot, config, commit = download(spec, want_kind)
    repo_id, _ = parse_spec(spec)
    marker = layout.POOL_ATTRIBUTES if want_kind == "pool" else dataset.MANIFEST
    if not (snapshot / config / marker).is_file():
        wanted = "a silhouette pool" if want_kind == "pool" else "a dataset folder (ovd, dyce)"
        raise InputError(f"config {config!r} of {repo_id} is not {wanted}; name one with "
                        f"hub:{repo_id}/CONFIG")
    target = cache_root() / repo_id.replace("/", "--") / commit / config
    if want_kind == "pool":
        target = target / "pool.h5"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".rebuild-", dir=target.parent))
    try:
        with tqdm(total=_row_count(snapshot, config), unit="row", desc=f"rebuild {repo_id}/{config}",
                  disable=not progress) as bar:
            if want_kind == "pool":
                _rebuild_pool(snapshot, config, build / "pool.h5", bar)
                (build / "pool.h5").rename(target)
            else:
                _rebuild_folder(snapshot, config, build, bar)
                try:
                    build.rename(target)
                except OSError:
                    if not target.exists():  # else another process (a DDP rank) finished first
                        raise
    finally:
        if build.exists():
            shutil.rmtree(build)
    return target
