"""An executor from one string, for command lines and service configuration: :func:`executor_from_url`."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from secquant.backends.executors.base import Executor
from secquant.errors import ConfigError

__all__ = ["executor_from_url"]

_FORMS = ("'fork', 'fork:N', 'local' (a Ray cluster started on this machine), 'ray:auto', 'ray://host:port'; "
          "Ray forms take '?workers=N&in_flight=K'")


def _int(value: str, name: str, url: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} in executor {url!r} must be a positive integer, got {value!r}")
    return int(value)


def _ray_options(query: str, url: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key not in ("workers", "in_flight") or len(values) != 1:
            raise ConfigError(f"executor {url!r}: unknown or repeated option {key!r}; accepted: workers, in_flight")
        out[key] = _int(values[0], key, url)
    return out


def executor_from_url(url: str) -> Executor:
    """The executor a string names.

    Forms:
        * ``"fork"`` / ``"fork:N"``: :class:`~.local.LocalExecutor` with N (default
          ``os.cpu_count()``) forked workers on this machine;
        * ``"local"`` / ``"ray:local"``: :class:`~.ray.RayExecutor` on a Ray
          cluster it starts on this machine (loopback only);
        * ``"ray:auto"``: the Ray cluster this machine belongs to (``ray start``);
        * ``"ray://host:port"``: a remote Ray cluster through Ray Client (port 10001 by default);
        * Ray forms accept ``?workers=N&in_flight=K``.

    Raises:
        ConfigError: any other string (the message lists the forms).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"executor must be a string, one of {_FORMS}; got {url!r}")
    text = url.strip()
    if text == "fork" or text.startswith("fork:"):
        from secquant.backends.executors.local import LocalExecutor

        count = text.partition(":")[2]
        return LocalExecutor(_int(count, "the worker count", url) if count else (os.cpu_count() or 1))
    base, _, query = text.partition("?")
    from secquant.backends.executors.ray import RayExecutor

    if base in ("local", "ray:local"):
        return RayExecutor("local", **_ray_options(query, url))
    if base == "ray:auto":
        return RayExecutor("auto", **_ray_options(query, url))
    if base.startswith("ray://"):
        parts = urlsplit(base)
        if not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"executor {url!r} must look like ray://host:port")
        port = parts.port or 10001
        return RayExecutor(f"ray://{parts.hostname}:{port}", **_ray_options(query, url))
    raise ConfigError(f"unknown executor {url!r}; use one of {_FORMS}")
