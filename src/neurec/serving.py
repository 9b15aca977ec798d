"""A trained model as an MLflow model: history -> top-k over HTTP (``mlflow models serve``).

Every ``kedro run`` that trains a model logs it in its MLflow run as an MLflow model named
after it (``ease``, ``sasrec``, ...) and registers it as ``neurec-<model>``
(``neurec.hooks``). The MLflow model holds what :class:`RecommendationService` needs, as
files: ``model.pt`` (the weights and config ``neurec.datasets.save_model`` writes),
``items.parquet`` (index, source id, title, training popularity) and ``users.parquet``
(index, source id). Its inference step is :meth:`RecommendationService.recommend`, called
once per request row: the served answers are the Python API's, there is no second
scoring path.

Requests are MLflow's pandas records, one row per history::

    {"dataframe_records": [{"history": [50, 181, 7], "k": 10},
                           {"user": 196, "history": [], "k": 5}]}

``history`` (required): source item ids, oldest first; ``k`` (optional, default 10);
``user`` (optional): a source user id, which embedding models need. Each answer row has
``items`` (source ids), ``scores``, ``titles`` (None where unknown), ``strategy`` (model |
popularity), ``reason`` (why popularity) and ``unknown_items``. The logged signature
declares ``history`` as an array of longs, so MLflow itself refuses a missing history or
non-integer ids (HTTP 400, naming the column). ``k`` and ``user`` are declared ``any``:
with a ``long`` type MLflow's JSON parser would cast ``k: 2.5`` to 2 and ``true`` to 1
without a word, and a ``user`` given in only some rows arrives as NaN, which a ``long``
column refuses. :meth:`RecommenderModel.predict` checks them and answers a bad value with
one ``MlflowException(INVALID_PARAMETER_VALUE)`` (HTTP 400) naming the row and field.

Why MLflow's pyfunc directly and not kedro-mlflow's ``pipeline_ml_factory``: the factory
binds one training pipeline to one inference pipeline and logs exactly one model, at the
end of the run, while one ``kedro run`` here trains many models (the default run and
the family pipelines: one MLflow model per trained model); its artifacts must be catalog
file datasets whose ``_filepath`` it rewrites, which the ``Atomic``-wrapped and versioned
entries are not; and it would run a Kedro runner with a deep-copied catalog on every
request, whereas serving here is one call of ``RecommendationService.recommend`` per row.

The MLflow model needs this project's Python environment (``--env-manager local``): its
code is the installed ``neurec`` package, which is not on PyPI.
"""

from __future__ import annotations

import tempfile
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, Array, ColSpec, Schema

from neurec.datasets import load_model, save_model
from neurec.recommend import RecommendationService

DEFAULT_K = 10
REGISTERED_PREFIX = "neurec-"
ARTIFACTS = {"model": "model.pt", "items": "items.parquet", "users": "users.parquet"}
# the model's code, logged from its file (MLflow's models from code), not pickled
MODEL_CODE = str(Path(__file__).with_name("serving_model.py"))

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(Array("long"), "history"),
            ColSpec(AnyType(), "k", required=False),  # checked in predict (see above)
            ColSpec(AnyType(), "user", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec(Array("long"), "items"),
            ColSpec(Array("double"), "scores"),
            ColSpec(Array("string"), "titles"),
            ColSpec("string", "strategy"),
            ColSpec("string", "reason"),
            ColSpec(Array("long"), "unknown_items"),
        ]
    ),
)


def registered_name(model: str) -> str:
    """The model registry entry of a model: ``neurec-<model>``."""
    return f"{REGISTERED_PREFIX}{model}"


def save_bundle(service: RecommendationService, folder: Path) -> dict[str, str]:
    """Write the service's model and id maps to ``folder``: the MLflow model's artifacts."""
    save_model(service.model, folder / ARTIFACTS["model"])
    items = service.item_index[["item", "source_id"]].copy()
    titles = service.titles
    names = (
        pd.Series(dtype="string")
        if titles is None or titles.empty
        else titles.drop_duplicates("item").set_index("item")["title"]
    )
    items["title"] = items["source_id"].map(names).astype("string")
    items["popularity"] = np.asarray(service.popularity, dtype=np.int64)
    items.to_parquet(folder / ARTIFACTS["items"], index=False)
    users = pd.DataFrame(columns=["user", "source_id"], dtype=np.int64)
    if service.user_index is not None:
        users = service.user_index[["user", "source_id"]]
    users.to_parquet(folder / ARTIFACTS["users"], index=False)
    return {key: str(folder / name) for key, name in ARTIFACTS.items()}


def load_bundle(artifacts: dict[str, str]) -> RecommendationService:
    """The service :func:`save_bundle` wrote, from the artifact paths MLflow hands over."""
    items = pd.read_parquet(artifacts["items"])
    titles = items.loc[items["title"].notna(), ["source_id", "title"]]
    return RecommendationService(
        model=load_model(Path(artifacts["model"])),
        item_index=items[["item", "source_id"]],
        popularity=items["popularity"].to_numpy(dtype=np.int64, copy=True),
        user_index=pd.read_parquet(artifacts["users"]),
        titles=titles.rename(columns={"source_id": "item"}).reset_index(drop=True),
    )


def input_example(service: RecommendationService) -> pd.DataFrame:
    """Two rows as in the README: a history with k, and a known user with no history."""
    history = service.item_index["source_id"].head(3).tolist()
    users = [] if service.user_index is None else service.user_index["source_id"].head(1)
    user = int(users.iloc[0]) if len(users) else None
    return pd.DataFrame({"history": [history, []], "k": [DEFAULT_K, 5], "user": [None, user]})


def bad_request(row: int, field: str, expected: str, value: Any) -> MlflowException:
    if isinstance(value, np.generic):
        value = value.item()
    return MlflowException(
        f"request row {row}: '{field}' must be {expected}, got {value!r}",
        error_code=INVALID_PARAMETER_VALUE,
    )


def missing(value: Any) -> bool:
    """An absent optional field: None, or the NaN / NA pandas puts in rows that lack it."""
    return np.ndim(value) == 0 and bool(pd.isna(value))


def integer(value: Any) -> int | None:
    """``value`` as an int when it is one (10, or 10.0 from a column pandas made float)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real) and float(value).is_integer():
        return int(value)
    return None


def parse_row(row: int, record: dict[str, Any]) -> tuple[list[int], int, int | None]:
    """(history, k, user) of one request row, or the MlflowException that names what is wrong."""
    history = record.get("history")
    if isinstance(history, np.ndarray):
        history = history.tolist()
    if not isinstance(history, list):
        raise bad_request(row, "history", "a list of item ids (integers)", history)
    items = [integer(item) for item in history]
    if any(item is None for item in items):
        raise bad_request(row, "history", "a list of item ids (integers)", history)
    k = DEFAULT_K if missing(record.get("k")) else integer(record["k"])
    if k is None or k < 1:
        raise bad_request(row, "k", "a positive integer", record["k"])
    user = None if missing(record.get("user")) else integer(record["user"])
    if user is None and not missing(record.get("user")):
        raise bad_request(row, "user", "a user id (an integer)", record["user"])
    return items, k, user


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """``mlflow.pyfunc`` face of :class:`RecommendationService`: one answer per request row."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.service = load_bundle(context.artifacts)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if "history" not in model_input.columns:
            raise MlflowException(
                "request: every row needs 'history', a list of item ids (integers); "
                f"got columns {list(model_input.columns)}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        requests = [parse_row(row, record) for row, record in enumerate(records(model_input))]
        answers = [self.service.recommend(history, k=k, user=user) for history, k, user in requests]
        return pd.DataFrame(
            {
                "items": [answer.items for answer in answers],
                "scores": [answer.scores for answer in answers],
                "titles": [answer.titles for answer in answers],
                "strategy": [answer.strategy for answer in answers],
                "reason": [answer.reason for answer in answers],
                "unknown_items": [answer.unknown_items for answer in answers],
            }
        )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of Python values (``to_dict`` would turn an int column with NaN to float)."""
    return [dict(zip(frame.columns, values, strict=True)) for values in frame.itertuples(False)]


def log_service(service: RecommendationService, name: str) -> mlflow.models.model.ModelInfo:
    """Log ``service`` in the active MLflow run as model ``name``, registered as
    ``neurec-<name>``."""
    with tempfile.TemporaryDirectory() as folder:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=MODEL_CODE,
            artifacts=save_bundle(service, Path(folder)),
            signature=SIGNATURE,
            input_example=input_example(service),
            registered_model_name=registered_name(name),
            pip_requirements=requirements(),
        )


def requirements() -> list[str]:
    """What the MLflow model runs on, pinned as installed (besides neurec itself, see above)."""
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas", "pyarrow", "scipy", "implicit")
    return [f"{package}=={version(package)}" for package in names]
