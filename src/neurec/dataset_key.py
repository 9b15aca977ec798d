"""Which data set a run works on: a short readable key, and outputs kept apart by it.

Every file that depends on the data (intermediate tables, the split, models, checkpoints,
results, the report) lives under ``data/<layer>/<dataset key>/``, so switching
``data.source``, its settings or the ``split`` never overwrites another data set's split,
models or results; the raw download cache (``data/01_raw``) stays shared.

The key is a readable prefix and a hash of the settings that make the split (``conf``
merged with ``--params``): ``data.source``, ``data.path`` (as written, so a project copied
to another folder or machine keeps its keys), the chosen source's block and the ``split``
block completed with its defaults, e.g. ``synthetic-800u-400i-s7_loo5-1c9e0b`` or
``movielens-ml-100k-u_loo5-84d2f7``. A split setting stated at its default gives the same
key as leaving it out; a source setting spelt out at its default gives another (the split is
then made again in a folder of its own, never mixed with another).

Kedro glue: :class:`DatasetKeyConfigLoader` (``CONFIG_LOADER_CLASS`` in ``settings.py``)
resolves ``${dataset_key:}`` in the catalog from the run's own parameters, the way Kedro's
loader resolves ``${runtime_params:...}``; :class:`DatasetKeyHooks` logs the key at the
start and end of a run; :class:`DatasetKeyDataset` hands it to nodes (the report).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractDataset, CatalogProtocol, DatasetError
from omegaconf import OmegaConf
from omegaconf.resolvers import oc

from neurec.errors import ConfigError

logger = logging.getLogger(__name__)

RESOLVER = "dataset_key"  # ${dataset_key:} in conf/*/catalog*.yml
DATASET = "dataset_key"  # the catalog entry nodes read it from
HASH_CHARS = 6  # 16.7 M values: no collision between the few data sets of one project
SLUG_CHARS = 32  # the readable part of a file name stays short
# where a download is cached says nothing about what it holds
NOT_DATA_SETTINGS = frozenset({"cache_dir"})
SPLIT_NAMES = {"leave_one_out": "loo"}


def dataset_key(parameters: Mapping[str, Any]) -> str:
    """The key of the data set and split that ``parameters`` (all of a run's) describe."""
    data = parameters.get("data") or {}
    split = _effective_split(parameters.get("split"))
    source = data.get("source")
    options = data.get(source) if isinstance(source, str) else None
    options = {k: v for k, v in dict(options or {}).items() if k not in NOT_DATA_SETTINGS}
    settings = {"source": source, "path": data.get("path"), "options": options, "split": split}
    text = json.dumps(settings, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]
    return f"{_source_part(source, data.get('path'), options)}_{_split_part(split)}-{digest}"


def _effective_split(split: Mapping[str, Any] | None) -> dict[str, Any]:
    """The split block completed with SplitConfig's defaults: stating a default or leaving
    it out gives the same key. A block that does not build is kept as given (the run stops
    on it before its first node, ``neurec.validation``)."""
    from neurec.models.base import build_config
    from neurec.split import SplitConfig

    try:
        return dataclasses.asdict(build_config(SplitConfig, split, "split"))
    except ConfigError:
        return dict(split or {})


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-.")[:SLUG_CHARS] or "x"


def _source_part(source: Any, path: Any, options: Mapping[str, Any]) -> str:
    if path not in (None, ""):
        file = PurePosixPath(str(path).replace("\\", "/"))
        return "-".join(_slug(part) for part in (source, file.parent.name, file.stem) if part)
    if source == "synthetic":
        shape = {"n_users": "u", "n_items": "i"}
        parts = [f"{options[k]}{suffix}" for k, suffix in shape.items() if k in options]
        parts += [f"s{options['seed']}"] if "seed" in options else []
        return "-".join([_slug(source), *map(_slug, parts)])
    if source == "movielens" and "variant" in options:
        return f"movielens-{_slug(options['variant'])}"
    return _slug(source)


def _split_part(split: Mapping[str, Any]) -> str:
    method = split.get("method", "leave_one_out")
    name = SPLIT_NAMES.get(method, _slug(method))
    if "min_user_interactions" in split:
        return f"{name}{_slug(split['min_user_interactions'])}"
    return name


class DatasetKeyConfigLoader(OmegaConfigLoader):
    """Kedro's ``OmegaConfigLoader``, with ``${dataset_key:}`` in catalog files and
    ``${oc.env:VAR,default}`` in every file (mlflow.yml reads MLFLOW_TRACKING_URI).

    Kedro turns OmegaConf's ``oc.env`` off outside credentials when a loader is created, and
    its ``custom_resolvers`` setting registers through OmegaConf's deprecated
    ``register_new_resolver``; this registers it again with the current API, as OmegaConf
    registers its own built-ins (no annotation checks).

    The resolver gives :func:`dataset_key` of this loader's parameters (``conf`` merged
    with the runtime ``--params``), computed once per catalog load and only when a
    catalog entry uses it. Resolvers are process-wide in OmegaConf, so it is registered
    again at every catalog load, for the loader that is loading (as Kedro does for
    ``runtime_params``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        OmegaConf.register_resolver("oc.env", oc.env, replace=True, annotation_validation="off")

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key == "catalog":
            OmegaConf.register_resolver(RESOLVER, _KeyOf(self), replace=True)
        return super().__getitem__(key)


class _KeyOf:
    def __init__(self, loader: OmegaConfigLoader) -> None:
        self._loader, self._key = loader, ""

    def __call__(self) -> str:
        if not self._key:
            self._key = dataset_key(self._loader["parameters"])
        return self._key


def project_config_loader(
    project: str | Path, env: str | None = None, params: Mapping[str, Any] | None = None
) -> OmegaConfigLoader:
    """The configuration ``kedro run --env <env> --params <params>`` sees in ``project``
    (the project's settings), without starting a Kedro session."""
    from neurec import settings  # imports the hooks; not needed by the key itself

    return settings.CONFIG_LOADER_CLASS(
        str(Path(project) / "conf"),
        env=env,
        runtime_params=dict(params or {}),
        **settings.CONFIG_LOADER_ARGS,
    )


def project_dataset_key(
    project: str | Path = ".", env: str | None = None, params: Mapping[str, Any] | None = None
) -> str:
    """The key ``kedro run --env <env> --params <params>`` in ``project`` works under."""
    return dataset_key(project_config_loader(project, env, params)["parameters"])


class DatasetKeyDataset(AbstractDataset[None, str]):
    """Read-only: the run's dataset key (``key: ${dataset_key:}`` in the catalog)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def load(self) -> str:
        return self._key

    def save(self, data: None) -> None:
        raise DatasetError("the dataset key is read-only: it follows from data and split")

    def _describe(self) -> dict[str, Any]:
        return {"key": self._key}


class DatasetKeyHooks:
    """Log the data set a run works on when it starts and when it ends."""

    @hook_impl
    def before_pipeline_run(self, catalog: CatalogProtocol) -> None:
        self._log(catalog, "data set %s: files in data/<layer>/<data set>/")

    @hook_impl
    def after_pipeline_run(self, catalog: CatalogProtocol) -> None:
        self._log(catalog, "data set %s: run done")

    @staticmethod
    def _log(catalog: CatalogProtocol, message: str) -> None:
        if DATASET in catalog:  # a project whose catalog does not key its files
            logger.info(message, catalog[DATASET].load())  # the dataset: no "Loading" line
