"""Hyper-parameter search with Optuna, on validation NDCG@10 only (no Kedro here).

A study tries configurations of one registered model: each trial draws values from the
model's search space (the ``<model>_search_space`` block of its parameters file) on top of
the model's own block, trains on train with early stopping on validation, and scores the
best epoch's validation NDCG@10. The test split never reaches this module. A trial whose
validation curve falls below the median of earlier trials at the same epoch is pruned
(``optuna.pruners.MedianPruner``, fed by :class:`PruningValidator`, which wraps the
validator the training loop already calls once per epoch).

The study lives in an SQLite file (``optuna.db`` in the tuning folder) that Optuna writes
after every trial: running again continues the study up to ``tune.trials`` trials. The
best configuration is written as ``conf/<env>/parameters_<model>.yml`` (``kedro run --env
<env>`` trains it), and the study's plots and trials table beside the database.

A search space maps config fields to distributions::

    sasrec_search_space:
      learning_rate: {low: 0.0003, high: 0.01, log: true}   # float (log scale)
      n_layers: {low: 1, high: 3}                           # int: both bounds ints
      dropout: {low: 0.0, high: 0.5, step: 0.1}
      hidden_size: {choices: [32, 64, 128]}                 # categorical (lists too)
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import mlflow
import optuna
import yaml
from optuna.trial import TrialState

from neurec.errors import ConfigError
from neurec.evaluation import make_validator
from neurec.files import write_atomically
from neurec.interactions import Interactions
from neurec.models import Recommender, registry
from neurec.models.base import build_config, check_positive
from neurec.report.archive import STUDY_CHARTS, STUDY_FILE
from neurec.training import SELECTION_METRIC

logger = logging.getLogger(__name__)

SEARCH_SPACE_SUFFIX = "_search_space"
STORAGE_FILE = "optuna.db"
DISTRIBUTION_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass
class PrunerConfig:
    """``tune.pruner``: when a trial's validation curve may stop it (median rule)."""

    # trials run to the end before any is pruned: the median of fewer says little
    startup_trials: int = 3
    # epochs of every trial never pruned: early curves of good settings often start low
    warmup_epochs: int = 3

    def __post_init__(self) -> None:
        check_positive("startup_trials", self.startup_trials, allow_zero=True)
        check_positive("warmup_epochs", self.warmup_epochs, allow_zero=True)


@dataclass
class TuneConfig:
    """The ``tune`` parameters block (``conf/base/parameters_tune.yml``)."""

    model: str = "sasrec"
    # the study's size: completed and pruned trials count, so a rerun after a kill (or
    # with a larger number) continues the same study up to this many
    trials: int = 20
    # stop starting new trials after this long (null: no limit)
    timeout_seconds: float | None = None
    seed: int = 0  # the TPE sampler's: the same study draws the same configurations
    # null: "<model>.<dataset fingerprint>", one study per model and split
    study_name: str | None = None
    # the best configuration goes to conf/<env>/parameters_<model>.yml
    env: str = "tuned"
    pruner: PrunerConfig = field(default_factory=PrunerConfig)

    def __post_init__(self) -> None:
        models = registry()
        if self.model not in models:
            raise ValueError(f"model: expected one of {sorted(models)}, got {self.model!r}")
        check_positive("trials", self.trials)
        if self.timeout_seconds is not None:
            check_positive("timeout_seconds", self.timeout_seconds)
        check_positive("seed", self.seed, allow_zero=True)
        if not self.env or "/" in self.env or self.env in ("base", "local"):
            raise ValueError(
                f"env: expected a new configuration environment's name (not base or local), "
                f"got {self.env!r}"
            )


@dataclass(frozen=True)
class Tuning:
    """What a tuning run needs besides the data: settings, base block, search space."""

    config: TuneConfig
    model_params: dict[str, Any]  # the model's block as the run sees it (base + --env)
    search_space: dict[str, dict[str, Any]]

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> Tuning:
        """Build and check the ``tune`` block, the model's block and its search space."""
        config = build_config(TuneConfig, parameters.get("tune"), "tune")
        name = config.model
        model_params = dict(parameters.get(name) or {})
        space_key = f"{name}{SEARCH_SPACE_SUFFIX}"
        space = parameters.get(space_key)
        if not space:
            raise ConfigError(
                f"parameter {space_key}: missing; tune.model {name} needs a search space in "
                f"conf/base/parameters_{name}.yml (see conf/base/parameters_tune.yml)"
            )
        tuning = cls(config, model_params, {k: dict(v or {}) for k, v in space.items()})
        tuning.check()
        return tuning

    @property
    def model_class(self) -> type[Recommender]:
        return registry()[self.config.model]

    @property
    def space_key(self) -> str:
        return f"{self.config.model}{SEARCH_SPACE_SUFFIX}"

    def check(self) -> None:
        """Every distribution well-formed, and each of its ends a valid value of its field."""
        name, model_class = self.config.model, self.model_class
        model_config = build_config(model_class.config_class, self.model_params, name)
        if model_class.pretrained_from(model_config):
            raise ConfigError(
                f"parameter {name}.pretrain: a study trains one model alone, not the models "
                f"{name} starts from; tune with --params {name}.pretrain=false"
            )
        fields = {f.name for f in dataclasses.fields(model_class.config_class)}
        for key, distribution in self.search_space.items():
            where = f"{self.space_key}.{key}"
            if key not in fields:
                raise ConfigError(
                    f"parameter {where}: {key!r} is not a parameter of {name}; "
                    f"expected some of {sorted(fields)}"
                )
            unknown = sorted(set(distribution) - DISTRIBUTION_KEYS)
            has_choices = "choices" in distribution
            has_range = "low" in distribution and "high" in distribution
            if unknown or has_choices == has_range:
                raise ConfigError(
                    f"parameter {where}: expected {{low: .., high: ..}} (with optional log, "
                    f"step) or {{choices: [..]}}, got {distribution!r}"
                )
            ends = (
                distribution["choices"]
                if has_choices
                else [distribution["low"], distribution["high"]]
            )
            if has_range and not distribution["low"] < distribution["high"]:
                raise ConfigError(f"parameter {where}: expected low < high, got {distribution!r}")
            for value in ends:
                try:
                    build_config(model_class.config_class, {**self.model_params, key: value}, name)
                except ConfigError as error:
                    raise ConfigError(
                        f"parameter {where}: {value!r} is not valid: {error}"
                    ) from error

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One configuration's values for the searched fields (YAML-ready values)."""
        values = {}
        for key, spec in self.search_space.items():
            if "choices" in spec:
                # Optuna's choices are plain scalars: a list (a layer tower) travels as JSON
                choices = [json.dumps(c) if isinstance(c, list) else c for c in spec["choices"]]
                value = trial.suggest_categorical(key, choices)
                is_list = isinstance(value, str) and value.startswith("[")
                values[key] = json.loads(value) if is_list else value
            elif all(
                isinstance(spec[b], int) and not isinstance(spec[b], bool) for b in ("low", "high")
            ):
                values[key] = trial.suggest_int(
                    key,
                    spec["low"],
                    spec["high"],
                    step=spec.get("step", 1),
                    log=spec.get("log", False),
                )
            else:
                values[key] = trial.suggest_float(
                    key,
                    float(spec["low"]),
                    float(spec["high"]),
                    step=spec.get("step"),
                    log=spec.get("log", False),
                )
        return values

    def identity(self) -> dict[str, Any]:
        """What must not change within one study (kept in the study, checked on resume)."""
        return {
            "model": self.config.model,
            "model_params": self.model_params,
            "search_space": self.search_space,
        }


class PruningValidator:
    """The training loop's validator, reporting each epoch's value to an Optuna trial.

    The loop calls its validator once per epoch; this one passes the metrics through,
    records the curve, reports NDCG@10 at step = epoch and raises ``optuna.TrialPruned``
    when the pruner says so, which ends ``fit`` at once.
    """

    def __init__(
        self,
        validator: Callable[[Recommender], dict[str, float]],
        trial: optuna.Trial,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.validator, self.trial, self.on_epoch = validator, trial, on_epoch
        self.epoch = 0
        self.curve: list[float] = []

    def __call__(self, model: Recommender) -> dict[str, float]:
        metrics = self.validator(model)
        self.epoch += 1
        value = float(metrics[SELECTION_METRIC])
        self.curve.append(value)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch, metrics)
        self.trial.report(value, self.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"validation {SELECTION_METRIC} {value:.4f} at epoch {self.epoch}: below the "
                "median of earlier trials"
            )
        return metrics


class TrialTracker:
    """One MLflow child run per trial, nested in the run active when the study starts
    (``kedro run``'s); without an active run (plain Python) nothing is logged."""

    def __init__(self, model: str, study_name: str) -> None:
        parent = mlflow.active_run()
        self.enabled = parent is not None
        # the parent's experiment, not whichever is active: the two may differ
        self.experiment = None if parent is None else parent.info.experiment_id
        self.model, self.study_name = model, study_name

    def start(self, trial: optuna.Trial, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        mlflow.start_run(
            run_name=f"{self.model} trial {trial.number}",
            nested=True,
            experiment_id=self.experiment,
        )
        mlflow.set_tags(
            {
                "neurec.model": self.model,
                "optuna.study": self.study_name,
                "optuna.trial": trial.number,
            }
        )
        mlflow.log_params(
            {k: json.dumps(v) if isinstance(v, list) else v for k, v in values.items()}
        )

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.enabled:
            mlflow.log_metrics(
                {f"validation.{k.replace('@', '_at_')}": float(v) for k, v in metrics.items()},
                step=epoch,
            )

    def end(self, state: TrialState, value: float | None) -> None:
        if not self.enabled:
            return
        mlflow.set_tag("optuna.state", state.name)
        if value is not None:
            mlflow.log_metric("value", value)
        mlflow.end_run(
            "FINISHED" if state in (TrialState.COMPLETE, TrialState.PRUNED) else "FAILED"
        )

    def log_artifacts(self, folder: Path) -> None:
        if self.enabled:
            mlflow.log_artifacts(str(folder), artifact_path=f"tuning/{folder.name}")


def study_name(tuning: Tuning, dataset: str) -> str:
    """``tune.study_name``, else ``<model>.<dataset fingerprint>`` (``:`` is not in it)."""
    return tuning.config.study_name or f"{tuning.config.model}.{dataset.replace(':', '-')}"


def open_study(tuning: Tuning, name: str, folder: Path) -> optuna.Study:
    """The study ``name`` in ``folder/optuna.db``, created or continued.

    A continued study must have been made with the same model block and search space (its
    trials would not compare otherwise). Trials left RUNNING by a killed run are marked
    FAIL: they do not count, and their configuration is tried again first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / STORAGE_FILE).as_posix()}")
    pruner = tuning.config.pruner
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs
        ),
    )
    identity = json.loads(json.dumps(tuning.identity(), default=list))
    saved = study.user_attrs.get("identity")
    if saved is None:
        study.set_user_attr("identity", identity)
    elif saved != identity:
        changed = [k for k in identity if saved.get(k) != identity[k]]
        raise ConfigError(
            f"parameter tune.study_name: study '{name}' in {folder / STORAGE_FILE} was made with "
            f"another {' and '.join(changed)}; set tune.study_name to start a new study"
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)
        logger.info("tune: trial %d was interrupted; its configuration runs again", trial.number)
    # seeded by the trials so far, whatever their state: a continued study draws new
    # configurations, not the first run's again (an interrupted trial had drawn one too),
    # and the same study continued twice draws the same ones
    study.sampler = optuna.samplers.TPESampler(
        seed=tuning.config.seed + len(study.get_trials(deepcopy=False))
    )
    return study


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards ``tune.trials``: completed and pruned ones."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def tune(
    tuning: Tuning,
    train: Interactions,
    validation: Interactions,
    folder: Path,
    conf_folder: Path,
    dataset: str,
) -> dict[str, Any]:
    """Run (or continue) the study, then write the best configuration, plots and trials.

    Returns a summary: study, counts per state, best value and parameters, files written.
    """
    cfg, model_class = tuning.config, tuning.model_class
    name = study_name(tuning, dataset)
    study = open_study(tuning, name, folder)
    validator = make_validator(train, validation)
    if validator is None:
        raise ConfigError("tune: the split has no validation interactions to tune on")
    tracker = TrialTracker(cfg.model, name)

    def objective(trial: optuna.Trial) -> float:
        values = tuning.suggest(trial)
        model = model_class.from_params(
            {**tuning.model_params, **values}, train.n_users, train.n_items
        )
        pruning = PruningValidator(validator, trial, tracker.epoch)
        tracker.start(trial, values)
        state, value = TrialState.FAIL, None
        try:
            report = model.fit(train, pruning)
            value = max(e.get(f"val_{SELECTION_METRIC}", -math.inf) for e in report.history)
            trial.set_user_attr("best_epoch", report.best_epoch)
            state = TrialState.COMPLETE
            return value
        except optuna.TrialPruned:
            state = TrialState.PRUNED
            raise
        finally:
            tracker.end(state, value)

    done = len(counted(study))
    remaining = cfg.trials - done
    logger.info(
        "tune: study '%s' (%s) has %d of %d trials; running %d",
        name,
        folder / STORAGE_FILE,
        done,
        cfg.trials,
        max(0, remaining),
    )
    if remaining > 0:
        started = time.perf_counter()
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=cfg.timeout_seconds,
            catch=(),  # a failing trial is a bug or a bad value: stop, say which
        )
        ran = len(counted(study)) - done  # fewer than asked when tune.timeout_seconds ends it
        logger.info("tune: %d trials in %.0fs", ran, time.perf_counter() - started)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ConfigError(f"tune: study '{name}' has no completed trial; raise tune.trials")
    best = study.best_trial
    params_file = write_best_parameters(tuning, study, conf_folder)
    outputs = write_study_files(study, folder / name)
    tracker.log_artifacts(folder / name)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    summary = {
        "study": name,
        "split_fingerprint": dataset,
        "storage": (folder / STORAGE_FILE).as_posix(),
        "model": cfg.model,
        "metric": f"validation {SELECTION_METRIC}",
        "trials": {state: states.count(state) for state in sorted(set(states))},
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best_values(tuning, best),
        "best_epoch": best.user_attrs.get("best_epoch"),
        "parameters_file": params_file.as_posix(),
        "files": [p.as_posix() for p in outputs],
    }
    # beside the charts, for the reports of later runs on this split (StudyArchive)
    text = json.dumps(summary, indent=2, default=list)
    write_atomically(folder / name / STUDY_FILE, lambda file: file.write(text.encode()))
    logger.info(
        "tune: best trial %d, validation %s %.4f, %s; written to %s (kedro run --env %s "
        "--pipelines=%s)",
        best.number,
        SELECTION_METRIC,
        best.value,
        summary["best_params"],
        params_file,
        cfg.env,
        cfg.model,
    )
    return summary


def best_values(tuning: Tuning, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The searched fields' values of ``trial`` as the objective used them."""
    return tuning.suggest(optuna.trial.FixedTrial(trial.params))


def write_best_parameters(tuning: Tuning, study: optuna.Study, conf_folder: Path) -> Path:
    """``conf/<env>/parameters_<model>.yml``: the model's whole block with the best values.

    The whole block, not only the searched keys, so that ``--env <env>`` reproduces the
    best trial also when the study ran with another environment's budget; written whole
    or not at all.
    """
    cfg, best = tuning.config, study.best_trial
    block = {**tuning.model_params, **best_values(tuning, best)}
    block = json.loads(json.dumps(block, default=list))  # tuples -> YAML lists
    header = (
        f"# Written by `kedro run --pipelines=tune` (neurec.tuning): study '{study.study_name}',\n"
        f"# best of {len(study.trials)} trials: trial {best.number}, validation "
        f"{SELECTION_METRIC} {best.value:.4f}. Train it: kedro run --env {cfg.env} "
        f"--pipelines={cfg.model}\n"
    )
    text = header + yaml.safe_dump({cfg.model: block}, sort_keys=False)
    path = conf_folder / cfg.env / f"parameters_{cfg.model}.yml"
    write_atomically(path, lambda file: file.write(text.encode()))
    return path


def write_study_files(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importance charts, and the trials."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    trials = study.trials_dataframe()
    path = folder / "trials.csv"
    write_atomically(path, lambda file: file.write(trials.to_csv(index=False).encode()))
    written.append(path)
    plotters = {
        "optimisation_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
    }
    for chart in STUDY_CHARTS:
        plot = plotters[chart]
        try:
            with warnings.catch_warnings():  # "experimental" API; importance of few trials
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as error:  # importance needs 2+ distinct trials
            logger.info("tune: no %s chart yet (%s)", chart, error)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        path = folder / f"{chart}.png"
        png = buffer.getvalue()
        write_atomically(path, lambda file, png=png: file.write(png))
        written.append(path)
    return written
