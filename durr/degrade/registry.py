"""Name -> degradation registry: ``get_degradation("ct-lowdose")``, ``register(MyFamily)``."""

from __future__ import annotations

from durr.degrade.base import Degradation

__all__ = ["register", "get_degradation", "degradation_names"]

_REGISTRY: dict[str, type[Degradation] | Degradation] = {}


def register(family, *, replace: bool = False):
    """Register a ``Degradation`` subclass or instance under its ``name``; returns it (a decorator).

    A class is instantiated on every ``get_degradation``; an instance is returned as is.

    Raises
    ------
    TypeError if ``family`` is not a Degradation subclass or instance; ValueError if it has no
    name, or the name is taken and ``replace`` is False.
    """
    is_class = isinstance(family, type) and issubclass(family, Degradation)
    if not (is_class or isinstance(family, Degradation)):
        raise TypeError(f"register: expected a Degradation subclass or instance, got {family!r}")
    name = family.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"register: {family!r} has no name")
    if name in _REGISTRY and not replace:
        raise ValueError(f"register: a degradation named {name!r} exists (pass replace=True)")
    _REGISTRY[name] = family
    return family


def get_degradation(name: str) -> Degradation:
    """The degradation registered as ``name``.

    Raises
    ------
    ValueError listing the valid names when ``name`` is unknown.
    """
    try:
        family = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown degradation {name!r}; valid names: {', '.join(degradation_names())}") from None
    return family() if isinstance(family, type) else family


def degradation_names() -> tuple[str, ...]:
    """Registered names, sorted."""
    return tuple(sorted(_REGISTRY))
