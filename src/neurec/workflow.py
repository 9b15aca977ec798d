"""The one chain from data to metrics: source -> split -> candidates -> fit -> evaluate.

Plain Python, no Kedro session: the Kedro nodes are thin adapters over these functions,
and ``neurec.benchmark``, the tests and anyone scripting an experiment call them directly,
so a split is made, a model trained and a model evaluated in one way only.

* :func:`prepare`: read the source, split it, draw the sampled protocols' negatives;
* :func:`train`: build a registered model from its parameters and fit it on a split
  (the only place a model is constructed and fitted);
* :func:`evaluate`: test metrics under every protocol, timed per protocol.

Parameter blocks may be given as the plain dicts of ``conf/base`` or as typed configs.
:func:`project_parameters` reads a Kedro project's parameters through Kedro itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from neurec.distributed import train_distributed
from neurec.errors import DataError
from neurec.evaluation import EvaluationConfig, build_candidates, make_validator
from neurec.evaluation import evaluate as evaluate_protocols
from neurec.models import Recommender, registry
from neurec.models.base import FitReport, build_config
from neurec.sources import load_source
from neurec.split import Split, SplitConfig
from neurec.training import Checkpoint, TorchRecommender, process_group, training_key

logger = logging.getLogger(__name__)

Config = TypeVar("Config")
Params = Mapping[str, Any] | None


def typed(config_class: type[Config], params: Config | Params, block: str) -> Config:
    """``params`` as ``config_class``: a typed config as it is, a dict (or None) checked
    and built as the parameters block ``block``."""
    if isinstance(params, config_class):
        return params
    return build_config(config_class, params, block)


def split(interactions: pd.DataFrame, split_params: SplitConfig | Params = None) -> Split:
    """Filter, remap ids and split the canonical interaction table."""
    return Split.build(interactions, typed(SplitConfig, split_params, "split"))


def candidates(
    split: Split,
    evaluation_params: EvaluationConfig | Params = None,
    given: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each sampled protocol's negatives, drawn once (seeded) so that every model sees the
    same ones; ``given``: a source's own negatives in source ids (the NCF files)."""
    config = typed(EvaluationConfig, evaluation_params, "evaluation")
    given = None if given is None or given.empty else given_to_index(given, split)
    return build_candidates(split.evaluation, config, given)


def given_to_index(given: pd.DataFrame, split: Split) -> pd.DataFrame:
    """Source-id negatives in index space; an id the split does not know is an error."""
    out = {}
    for column, index in (("user", split.user_index), ("item", split.item_index)):
        ids = index["source_id"].to_numpy()
        values = given[column].to_numpy()
        position = np.clip(np.searchsorted(ids, values), 0, len(ids) - 1)
        unknown = ids[position] != values
        if unknown.any():
            raise DataError(
                f"given test negatives: {column} id {values[unknown][0]} does not occur in the "
                f"split data ({int(unknown.sum())} such rows); the negatives file must match "
                "the interactions"
            )
        out[column] = position
    return pd.DataFrame(out)


def prepare(
    data_params: Mapping[str, Any],
    split_params: SplitConfig | Params = None,
    evaluation_params: EvaluationConfig | Params = None,
) -> tuple[Split, pd.DataFrame]:
    """The configured source split, and the test candidates of every sampled protocol."""
    source = load_source(dict(data_params))
    prepared = split(source.interactions, split_params)
    return prepared, candidates(prepared, evaluation_params, source.test_candidates)


def train(
    name: str,
    params: Params,
    split: Split,
    *,
    pretrained: Mapping[str, Recommender] | None = None,
    checkpoint_folder: Path | None = None,
) -> tuple[Recommender, FitReport]:
    """Fit the registered model ``name`` on ``split`` with early stopping on validation
    NDCG@10; ``params`` overrides its config's defaults.

    With ``checkpoint_folder``, a neural model saves its progress there after every epoch
    (``<name>.pt``) and resumes from it after an interrupted run. The model keeps the
    split's fingerprint, so that serving can refuse it on other data (``neurec.provenance``).
    ``<name>.distributed.world_size`` > 1 starts data-parallel workers from here.
    """
    pretrained = dict(pretrained or {})
    model = registry()[name].from_params(params, split.n_users, split.n_items, pretrained)
    model.data_fingerprint = split.fingerprint
    logger.info(
        "%s: training on %d interactions (%d users, %d items)",
        name,
        len(split.train),
        split.n_users,
        split.n_items,
    )
    checkpoint = None  # one-pass models have nothing to resume
    if checkpoint_folder is not None and isinstance(model, TorchRecommender):
        key = training_key(model, (split.train, split.validation), pretrained)
        checkpoint = Checkpoint(Path(checkpoint_folder) / f"{name}.pt", key)
    if isinstance(model, TorchRecommender) and starts_workers(model):
        report = train_distributed(model, split.train, split.validation, checkpoint)
    else:
        validator = make_validator(split.train, split.validation)
        resume = {} if checkpoint is None else {"checkpoint": checkpoint}
        report = model.fit(split.train, validator, **resume)
    if isinstance(model, TorchRecommender) and model.config.refit and report.best_epoch > 0:
        return refit(model, report, split, pretrained, checkpoint_folder)
    return model, report


def refit(
    selected: TorchRecommender,
    report: FitReport,
    split: Split,
    pretrained: Mapping[str, Recommender],
    checkpoint_folder: Path | None = None,
) -> tuple[TorchRecommender, FitReport]:
    """``selected``'s model trained anew on train + validation for its best epoch count.

    The same config and seed, from the same ``pretrained`` models, without a validator:
    validation then is training data, so the epoch count is the one chosen on it before.
    The report keeps the selection run's curve and adds the refit's epochs and seconds.
    A model started from refitted models (NeuMF from GMF and NCF) chooses its epochs on a
    validation its starting weights have seen: its validation curve reads high, and falls
    as fine-tuning on train alone forgets those items, which favours few epochs. The test
    figure is unaffected: no model sees the test items.
    """
    config = dataclasses.replace(selected.config, epochs=report.best_epoch)
    model = type(selected)(config, split.n_users, split.n_items)
    if pretrained:
        model.initialise_from(pretrained)
    model.data_fingerprint = selected.data_fingerprint
    train_and_validation = split.train.append(split.validation)
    logger.info(
        "%s: refitting on train + validation (%d interactions) for the %d epochs chosen on "
        "validation",
        model.name,
        len(train_and_validation),
        config.epochs,
    )
    checkpoint = None
    if checkpoint_folder is not None:
        key = training_key(model, (train_and_validation,), pretrained)
        checkpoint = Checkpoint(Path(checkpoint_folder) / f"{model.name}.refit.pt", key)
    if starts_workers(model):
        refit_report = train_distributed(model, train_and_validation, None, checkpoint)
    else:
        resume = {} if checkpoint is None else {"checkpoint": checkpoint}
        refit_report = model.fit(train_and_validation, None, **resume)
    return model, dataclasses.replace(
        report,
        train_seconds=report.train_seconds + refit_report.train_seconds,
        refit_epochs=refit_report.epochs,
        refit_seconds=refit_report.train_seconds,
    )


def starts_workers(model: TorchRecommender) -> bool:
    """``<model>.distributed.world_size`` > 1 in a process that is not one of a group
    already (``torchrun -m neurec.distributed`` sets the group up itself)."""
    return model.config.distributed.world_size > 1 and process_group()[1] == 1


@dataclass(frozen=True)
class Evaluation:
    """Test metrics of one model: per user (a row per protocol and user, for statistics),
    their means per protocol, and the seconds each protocol took."""

    per_user: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    seconds: dict[str, float]


def evaluate(
    model: Recommender,
    split: Split,
    candidates: pd.DataFrame | None,
    evaluation_params: EvaluationConfig | Params = None,
) -> Evaluation:
    """Test metrics under every configured protocol (``candidates`` from :func:`candidates`;
    None when only ``full`` is measured)."""
    config = typed(EvaluationConfig, evaluation_params, "evaluation")
    frames, metrics, seconds = [], {}, {}
    for protocol in config.protocols:
        started = time.perf_counter()
        one = dataclasses.replace(config, protocols=(protocol,))
        per_user, summary = evaluate_protocols(model, split.evaluation, candidates, one)
        seconds[protocol.name] = time.perf_counter() - started
        frames.append(per_user)
        metrics.update(summary)
        values = summary[protocol.name]
        logger.info(
            "%s %s: HR@10 %.4f NDCG@10 %.4f MRR %.4f",
            model.name,
            protocol.name,
            values["HR@10"],
            values["NDCG@10"],
            values["MRR"],
        )
    return Evaluation(pd.concat(frames, ignore_index=True), metrics, seconds)


def project_parameters(project: str | Path = ".", env: str | None = None) -> dict[str, Any]:
    """The parameters ``kedro run --env <env>`` uses in the Kedro project at ``project``,
    read by the project's own settings (its config loader class and merge rules), each typed
    block completed with its defaults as a run sees them (``neurec.validation``)."""
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project

    from neurec.validation import effective_parameters

    metadata = bootstrap_project(Path(project).resolve())
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(metadata.project_path / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    return effective_parameters(loader["parameters"])
