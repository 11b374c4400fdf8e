"""`ovbench publish`: dataset folders and pools → a Hub dataset repository (or the same files locally).

The repository is built locally first (layout.py, card.py) and pushed as it is, so `--to DIR`
and a push give the same files. A push makes the repository equal to that folder: files of an
earlier version that are no longer part of it are deleted in the same upload.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from datasets.info import DatasetInfosDict
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import DatasetCard
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import disable_progress_bars, validate_repo_id

from ovbench.errors import InputError
from ovbench.hub import card, client, layout

README = "README.md"


@dataclass
class PublishSummary:
    destination: str
    rows: int
    files: int
    num_bytes: int
    seconds: float
    configs: list


def parse_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise InputError(f"bad `repo_id` {repo_id!r}: {exc}") from None
    if repo_id.count("/") != 1:
        raise InputError(f"bad `repo_id` {repo_id!r}: use ORG/NAME")
    return repo_id


def parse_shard_size(text: str) -> int:
    try:
        size = convert_file_size_to_int(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise InputError(f"bad `max_shard_size` {text!r}: use a size such as 500MB or 2GB")
    return size


def check_sources(sources: list[layout.Source], progress: bool = True) -> None:
    """Refuse folders that fail `ovbench validate` and pool files that do not open."""
    from ovbench.formats.poolfile import SilhouettePool
    from ovbench.formats.validate import validate

    for source in sources:
        if source.kind == "pool":
            with SilhouettePool(source.path):
                continue
        if progress:
            print(f"validating {source.path} ...", file=sys.stderr, flush=True)
        report = validate(source.path)
        if report.count:
            raise InputError(f"{source.path} fails validation ({report.count} violations, first: "
                            f"{report.problems[0]}); run `ovbench validate {source.path}` and fix it "
                            "before publishing")


def schema_of(features_by_config: dict) -> dict:
    """{config: features as YAML lists}: the form a card stores and comparisons use."""
    return {name: features._to_yaml_list() for name, features in features_by_config.items()}


def remote_schema(api, repo_id: str) -> dict | None:
    """The published repository's {config: features}; None when it does not exist or is empty.

    {"": []} stands for a repository holding files but no ovbench dataset card."""
    try:
        files = [f for f in api.list_repo_files(repo_id, repo_type="dataset") if f != ".gitattributes"]
    except RepositoryNotFoundError:
        return None
    if not files:
        return None
    if README not in files:
        return {"": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = api.hf_hub_download(repo_id, README, repo_type="dataset", local_dir=tmp)
        infos = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(path).data)
    return schema_of({name: info.features for name, info in infos.items() if info.features}) or {"": []}


def describe_difference(remote: dict, local: dict) -> str:
    if set(remote) == {""}:
        return "it holds files that are not an ovbench dataset"
    if set(remote) != set(local):
        return f"it has configs {', '.join(sorted(remote))}, this publish has {', '.join(sorted(local))}"
    changed = sorted(name for name in local if remote[name] != local[name])
    return f"the features of config(s) {', '.join(changed)} differ"


def check_destination(to: Path, published: list[Path], overwrite: bool) -> None:
    target = to.resolve()
    for source in published:
        path = Path(source).resolve()
        if target == path or target in path.parents or path in target.parents:
            raise InputError(f"`to` {to} overlaps the data being published ({source}); choose "
                            "another folder")
    if to.exists() and (not to.is_dir() or any(to.iterdir())) and not overwrite:
        raise InputError(f"{to} exists and is not empty; pass `overwrite` to replace it")


def publish(paths: list[Path], repo_id: str, to: Path | None = None, private: bool = False,
            max_shard_size: str = "500MB", overwrite: bool = False, license_id: str | None = None,
            progress: bool = True) -> PublishSummary:
    started = time.perf_counter()
    if not progress:
        disable_progress_bars()
    repo_id = parse_repo_id(repo_id)
    from ovbench.hub import models

    if any(models.is_run(path) for path in paths):
        if len(paths) != 1:
            raise InputError("a training run is published alone, as a model repository: give one run folder")
        return models.publish_model(Path(paths[0]), repo_id, to, private, overwrite, license_id)
    max_bytes = parse_shard_size(max_shard_size)
    sources = layout.find_sources(paths)
    check_sources(sources, progress)
    api = remote = None
    if to is not None:
        to = Path(to)
        check_destination(to, [source.path for source in sources], overwrite)
    else:
        api = client.connect(repo_id)  # fail on token or network before minutes of building
        with client.hub_errors(repo_id):
            remote = remote_schema(api, repo_id)
        local = schema_of({source.config: source.features() for source in sources})
        if remote is not None and remote != local and not overwrite:
            raise InputError(f"{repo_id} already exists and {describe_difference(remote, local)}; "
                            "pass `overwrite` to replace its contents")
    with client.build_folder(to) as build:
        layouts = layout.write_layout(sources, build, max_bytes, progress)
        license_id = license_id or card.default_license(layouts)
        (build / README).write_text(card.render(layouts, repo_id, license_id))
        files = [p for p in build.rglob("*") if p.is_file()]
        summary = PublishSummary(
            destination="", rows=sum(s.images for x in layouts for s in x.splits.values()),
            files=len(files), num_bytes=sum(p.stat().st_size for p in files), seconds=0.0,
            configs=[x.source.config for x in layouts])
        summary.destination = client.deliver(build, to, api, repo_id, "dataset", private, remote is not None,
                                             f"ovbench publish: {', '.join(summary.configs)}")
    summary.seconds = time.perf_counter() - started
    return summary
