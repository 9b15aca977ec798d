"""The interface every recommender implements, its config handling and the registry.

A model is one class in one file under ``neurec/models/``, decorated with
:func:`register`; its hyper-parameters are a dataclass (``config_class``) whose fields are
the keys of its parameters block. Everything else (training loop, evaluation, Kedro
pipelines, report, benchmark) works from the registry and needs no edit.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch

from neurec.errors import ConfigError
from neurec.interactions import Histories, Interactions

T = TypeVar("T")

# validation callback: model -> {"NDCG@10": ..., "HR@10": ...} on the validation users
Validator = Callable[["Recommender"], dict[str, float]]


@dataclass
class FitReport:
    """What training did: per-epoch log, best epoch (chosen on validation) and wall time."""

    epochs: int = 0
    best_epoch: int = 0
    train_seconds: float = 0.0  # the whole fit, the refit on train + validation included
    history: list[dict[str, float]] = field(default_factory=list)
    refit_epochs: int = 0  # epochs of the refit on train + validation; 0: none
    refit_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Recommender(ABC):
    """Scores items for users. Subclasses set ``name``, ``config_class`` and ``family``.

    :meth:`pretrained_from` names, for a config, the registered models whose trained
    instances the model starts from (NeuMF with ``pretrain: true`` from GMF and NCF); they
    are handed over on construction (``from_params(..., pretrained=...)``), so ``fit``
    only ever takes the data. The pipeline factory reads the same declaration to train
    them first and wire them in, and leaves them out when the config needs none.

    ``uses_history``: True when scores depend only on the history given to :meth:`score`
    (EASE, sequence models, autoencoders, most popular), so a user never seen in training
    can be scored from their items under a user index the model does not know. False
    (embedding models such as GMF or iALS): new users get popular items instead
    (``neurec.recommend``).

    ``data_fingerprint``: the split the model was trained on
    (``neurec.provenance.split_fingerprint``), set by the train node and saved with the
    model; None until then. Serving refuses a model whose fingerprint is not the current
    split's. ``dataset_key``: the data set it was saved under (``neurec.dataset_key``),
    recorded by the catalog's model dataset; None for a model not saved that way.
    """

    name: ClassVar[str]
    family: ClassVar[str] = "other"
    config_class: ClassVar[type]
    uses_history: ClassVar[bool] = False

    def __init__(self, config: Any, n_users: int, n_items: int) -> None:
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.data_fingerprint: str | None = None
        self.dataset_key: str | None = None

    @abstractmethod
    def fit(self, train: Interactions, validator: Validator | None = None) -> FitReport:
        """Learn from the training interactions; ``validator`` scores the validation users."""

    @abstractmethod
    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        """Scores ``[len(users), n_items]``, or ``[len(users), C]`` for given ``items [.., C]``.

        ``histories`` holds every user's known items in time order (train at validation
        time, train + validation at test time): sequence and autoencoder models read it as
        input, embedding models may ignore it. Higher is better. Excluding history items
        from rankings is the evaluator's job, not the model's.
        """

    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """Learned tensors (CPU), enough with the config to rebuild the model."""

    @abstractmethod
    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what :meth:`state` returned."""

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any] | None,
        n_users: int,
        n_items: int,
        pretrained: Mapping[str, Recommender] | None = None,
    ) -> Recommender:
        """The model of this parameters block, started from ``pretrained`` trained models.

        ``pretrained`` must hold exactly the models the config declares
        (:meth:`pretrained_from`); None builds the model without them (a saved model being
        rebuilt loads its weights next).
        """
        config = build_config(cls.config_class, params, cls.name)
        model = cls(config, n_users, n_items)
        if pretrained is not None:
            needed = cls.pretrained_from(config)
            if set(pretrained) != set(needed):
                raise ConfigError(
                    f"parameter {cls.name}: this configuration starts from the trained models "
                    f"{sorted(needed)}, got {sorted(pretrained)}"
                )
            if needed:
                model.initialise_from(pretrained)
        return model

    @classmethod
    def pretrained_from(cls, config: Any) -> tuple[str, ...]:
        """Registered models whose trained instances this config starts from (default none)."""
        return ()

    def initialise_from(self, pretrained: Mapping[str, Recommender]) -> None:
        """Take the weights of the trained models that :meth:`pretrained_from` names."""
        raise ConfigError(f"model '{self.name}' takes no pre-trained models")

    @classmethod
    def check_pretrained_configs(cls, config: Any, pretrained: Mapping[str, Any]) -> None:
        """Raise ``ConfigError`` if ``config`` cannot start from models of these configs.

        ``pretrained`` maps the names :meth:`pretrained_from` gives to their configs. Called
        before a run trains anything, and again when the trained models are handed over.
        The default accepts any: most models start from nothing.
        """
        return


def gather_items(full_scores: torch.Tensor, items: np.ndarray | None) -> torch.Tensor:
    """Select candidate columns from full scores (the default for sampled protocols)."""
    if items is None:
        return full_scores
    return full_scores.gather(1, torch.as_tensor(items, device=full_scores.device))


def one_shot_report(model: Recommender, validator: Validator | None, started: float) -> FitReport:
    """Fit report of a model trained in one pass (closed form, counts): one 'epoch'."""
    seconds = time.perf_counter() - started
    metrics = validator(model) if validator is not None else {}
    entry = {"epoch": 1, "seconds": seconds, **{f"val_{k}": v for k, v in metrics.items()}}
    return FitReport(epochs=1, best_epoch=1, train_seconds=seconds, history=[entry])


# --- config ------------------------------------------------------------------------------


def build_config(config_class: type[T], params: Mapping[str, Any] | None, prefix: str) -> T:
    """Instantiate the dataclass ``config_class`` from a parameters block, checking keys/types.

    Used for every block: a model's (``prefix`` = the model name) and the ``split``,
    ``evaluation``, ``report`` and ``recommend`` blocks. Errors name the parameter as
    ``<prefix>.<key>`` so the user can find it in conf/; the dataclass's own checks (in
    ``__post_init__``) raise ``ValueError("<field>: ...")`` and get the prefix added here.
    An empty block (``None``) gives the defaults.
    """
    params = params or {}
    known = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"parameter {prefix}.{unknown[0]}: unknown in '{prefix}'; "
            f"expected some of {sorted(known)}"
        )
    hints = get_type_hints(config_class)
    values = {}
    for key, value in params.items():
        values[key] = _coerce(f"{prefix}.{key}", value, hints[key])
    try:
        return config_class(**values)
    except ConfigError:
        raise
    except ValueError as error:  # raised by the config's own checks as "<field>: ..."
        raise ConfigError(f"parameter {prefix}.{error}") from error


def _coerce(where: str, value: Any, hint: Any) -> Any:
    """Accept YAML's spelling of a typed field (ints for floats, lists for tuples, null);
    a dataclass field is built from its nested block (``sasrec.distributed.world_size``)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return build_config(hint, value, where)  # a nested block
    origin = get_origin(hint)
    if origin in (Union, UnionType) and type(None) in get_args(hint):
        if value is None:
            return None
        (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
        return _coerce(where, value, inner)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, list | tuple):
        item_type = hint.__args__[0]
        return tuple(_coerce(f"{where}[{i}]", v, item_type) for i, v in enumerate(value))
    if hint in (int, float, bool, str) or origin is tuple:
        expected = "a list" if origin is tuple else hint.__name__
        raise ConfigError(f"parameter {where}: expected {expected}, got {value!r}")
    return value


def check_choice(field_name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """For a config's ``__post_init__``: ``build_config`` adds the block name to the error."""
    if value not in choices:
        raise ValueError(f"{field_name}: expected one of {choices}, got {value!r}")


def check_positive(field_name: str, value: float, allow_zero: bool = False) -> None:
    """For a config's ``__post_init__``: value must be > 0 (or >= 0)."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{field_name}: expected {bound}, got {value!r}")


def check_dropout(field_name: str, value: float) -> None:
    """For a config's ``__post_init__``: a dropout probability in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{field_name}: expected a probability in [0, 1), got {value!r}")


# --- registry ----------------------------------------------------------------------------

_REGISTRY: dict[str, type[Recommender]] = {}


def register(model_class: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model known to pipelines, report and benchmark by its name."""
    name = model_class.name
    if name in _REGISTRY and _REGISTRY[name] is not model_class:
        raise ValueError(f"two models registered as '{name}'")
    _REGISTRY[name] = model_class
    return model_class


def registry() -> dict[str, type[Recommender]]:
    return dict(_REGISTRY)


def with_dependencies(names: list[str], parameters: Mapping[str, Any] | None = None) -> list[str]:
    """The models plus, recursively, those their configs start from (dependencies first).

    ``parameters``: the run's parameters, one block per model; a model whose block is
    missing or invalid counts with its defaults (the parameter check stops a run with an
    invalid block before its first node, :mod:`neurec.validation`).
    """
    ordered: list[str] = []

    def visit(name: str) -> None:
        for dependency in dependencies(name, parameters):
            visit(dependency)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def dependencies(name: str, parameters: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """What the registered model ``name`` starts from under ``parameters[name]``."""
    model_class = _REGISTRY[name]
    try:
        config = build_config(model_class.config_class, (parameters or {}).get(name), name)
    except ConfigError:
        config = model_class.config_class()
    return model_class.pretrained_from(config)
