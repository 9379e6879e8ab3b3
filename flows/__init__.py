"""Paperboy: the day's trending research papers, ranked by each subscriber's keywords."""

import os as _os

from flows.settings import prefect_env_defaults as _prefect_env_defaults

__version__ = "0.1.0"

# Before anything imports Prefect: keep its state in the project and its analytics off.
for _name, _value in _prefect_env_defaults().items():
    _os.environ.setdefault(_name, _value)
_os.makedirs(_os.environ["PREFECT_HOME"], exist_ok=True)
