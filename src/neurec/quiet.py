"""The one place where warnings are silenced: third-party ones this project cannot fix.

Each filter names the exact message and the module that warns, so the same message from
anywhere else, this project's code included, still shows (``tests/test_warnings.py`` fails
on any warning a default run's project code raises). The filters are installed when ``neurec``
is imported, which every entry point does before Kedro loads kedro-mlflow
(``neurec/__init__.py``).
Remove a filter when the library in question is upgraded past the cause.
"""

import importlib
import re
import warnings

# (message regex, warning class, module regex): why it cannot be fixed here
THIRD_PARTY = (
    # Kedro 1.7 registers its own `globals` and `runtime_params` resolvers, and kedro-mlflow
    # 2.0.3 its `km.random_name`, through OmegaConf 2.4's deprecated register_new_resolver()
    # (kedro/config/omegaconf_config.py, kedro_mlflow/framework/hooks/mlflow_hook.py); both
    # are their latest releases. This project's own resolver uses register_resolver().
    (
        r"register_new_resolver\(\) is deprecated",
        UserWarning,
        r"kedro\.config\.omegaconf_config|kedro_mlflow\.framework\.hooks\.mlflow_hook",
    ),
)
# MLflow checks the type hints of every PythonModel subclass when it is defined and warns
# when there are none: kedro-mlflow 2.0.3's KedroPipelineModel.predict has none, and
# kedro-mlflow imports it whenever it loads (neurec.serving.RecommenderModel.predict is
# typed). MLflow raises it under its own "once" filter, which overrides any ignore filter,
# so the import that defines the class is made here, with that one warning dropped.
UNTYPED_PREDICT = re.compile(r"(\x1b\[\d+m)?Add type hints to the `predict` method")


def silence_third_party_warnings() -> None:
    for message, category, module in THIRD_PARTY:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def import_kedro_mlflow() -> None:
    """Import kedro-mlflow's pyfunc model class without MLflow's untyped-predict warning (any
    other warning of the import is shown as usual). Called by ``neurec.settings``, which
    Kedro imports before it loads the kedro-mlflow plugin."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module("kedro_mlflow.mlflow")
    for warning in caught:
        if not UNTYPED_PREDICT.match(str(warning.message)):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
