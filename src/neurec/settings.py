"""Project settings (Kedro)."""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `conf/<env>/parameters*.yml` may override a single nested key
    "merge_strategy": {"parameters": "soft"},
}
