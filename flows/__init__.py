"""Paperboy: the day's trending research papers, ranked by each subscriber's keywords."""

import os as _os
from pathlib import Path as _Path

__version__ = "0.1.0"
PROJECT_ROOT = _Path(__file__).resolve().parent.parent  # the checkout (flows.settings uses it too)


def prefect_env_defaults() -> dict[str, str]:
    """Prefect state lives in the project (var/prefect) and sends no analytics (server and
    client), unless the operator says otherwise in the environment. (Here, not in
    flows.settings: importing the package must not import pydantic, which a render process
    does without, see flows/shipped.py.)"""
    return {
        "PREFECT_HOME": str(PROJECT_ROOT / "var" / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",  # the convention Prefect's client (and many tools) honour
    }


# Before anything imports Prefect: keep its state in the project and its analytics off.
for _name, _value in prefect_env_defaults().items():
    _os.environ.setdefault(_name, _value)
_os.makedirs(_os.environ["PREFECT_HOME"], exist_ok=True)
