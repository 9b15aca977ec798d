"""What a trained model was trained on, and the check that it is served on that data.

A model is only valid on the id maps and interactions it learned from: another data set
or split with the same numbers of users and items loads without complaint and gives
meaningless recommendations. The train node therefore stores a fingerprint of its split
in the model (``Recommender.data_fingerprint``, saved with the weights), and whoever
serves a model (the recommend pipeline, ``RecommendationService``) recomputes it from the
current split and refuses a model file whose fingerprint or model class differs. A model
saved through the catalog also carries its dataset key (``neurec.dataset_key``): a model
of another data set is refused naming both keys, before the fingerprints are compared.
Plain Python and numpy; no Kedro.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from neurec.errors import DataError
from neurec.models.base import Recommender

DIGEST_CHARS = 12


def split_fingerprint(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
) -> str:
    """``"<users>x<items>:<hash>"``: a short stable hash of the split a model learns from.

    Hashes the train and validation tables and the user and item id maps (every column,
    by name, rows in order; numbers as 64-bit values, so an int32 or nullable column read
    back from Parquet hashes like the int64 one the split wrote). The test table is left
    out on purpose: the train node does not read it (a model never sees it), and the
    fingerprint must come out the same from the train node's inputs and from the
    catalog's split tables at serving time.
    """
    digest = hashlib.sha256()
    tables = {"train": train, "validation": validation, "user_index": user_index}
    for name, table in {**tables, "item_index": item_index}.items():
        digest.update(f"\x1e{name}".encode())
        for column in sorted(table.columns):
            digest.update(f"\x1f{column}".encode())
            digest.update(_column_bytes(table[column]))
    return f"{len(user_index)}x{len(item_index)}:{digest.hexdigest()[:DIGEST_CHARS]}"


def _column_bytes(values: pd.Series) -> bytes:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype="<i8").tobytes()
    if pd.api.types.is_float_dtype(values):
        return values.to_numpy(dtype="<f8").tobytes()
    return "\x00".join(map(str, values.to_numpy())).encode()


def check_trained_on(
    model: Recommender,
    origin: str,
    name: str,
    fingerprint: str,
    dataset_key: str | None = None,
) -> None:
    """Refuse to serve, as model ``name`` on the split of ``fingerprint`` (of the data set
    ``dataset_key``, when known), a model loaded from ``origin`` (a file) that is another
    model class or was trained on other data.

    One :class:`DataError` naming the file, what differs and the command that retrains it.
    """
    retrain = f"retrain it: kedro run --pipelines={name}"
    if model.name != name:
        raise DataError(
            f"{origin}: holds a '{model.name}' model ({type(model).__name__}), "
            f"not the '{name}' model asked for; {retrain}"
        )
    if None not in (model.dataset_key, dataset_key) and model.dataset_key != dataset_key:
        raise DataError(
            f"{origin}: model '{name}' was trained on data set {model.dataset_key}, not on "
            f"this run's data set {dataset_key} (its data source, settings and split); "
            f"retrain it on {dataset_key}: kedro run --pipelines={name} with this run's "
            "--params and --env"
        )
    if model.data_fingerprint is None:
        raise DataError(
            f"{origin}: model '{name}' carries no fingerprint of the data and split it was "
            f"trained on (saved before models recorded one), so it cannot be checked "
            f"against the current split; {retrain}"
        )
    if model.data_fingerprint != fingerprint:
        raise DataError(
            f"{origin}: model '{name}' was trained on another data set or split "
            f"(data/split fingerprint {model.data_fingerprint}, users x items:hash), the "
            f"current split's is {fingerprint}; {retrain}"
        )
