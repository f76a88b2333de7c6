"""The component registry: every sub-package of this package that defines ``COMPONENT`` is a component.

Adding a component is adding a folder here (``components/<name>/__init__.py`` with ``COMPONENT =
Component(...)``, its step modules, ``component.yaml`` and ``templates/``); nothing else is edited.
`plan`, `enable`, `status`, `doctor` and `bundle create` all read this registry (docs/adding-a-component.md).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from hybrid_knative.config import Config
from hybrid_knative.errors import PermanentError
from hybrid_knative.platform.component import LAST, Component, Step
from hybrid_knative.platform.context import HostFacts

__all__ = ["all_components", "branches", "by_name", "clear_cache", "enabled_components", "ordered", "plan_steps"]


@functools.lru_cache(maxsize=1)
def _discover() -> tuple[Component, ...]:
    found: dict[str, Component] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        component = getattr(module, "COMPONENT", None)
        if component is None:
            continue
        if not isinstance(component, Component):
            raise PermanentError(f"components/{info.name}: COMPONENT is not a Component")
        if component.name in found:
            raise PermanentError(f"two components are named {component.name!r}")
        found[component.name] = component
    steps: dict[str, str] = {}
    for component in found.values():
        if callable(component.steps):
            continue
        for step in component.steps:
            if steps.setdefault(step.name, component.name) != component.name:
                raise PermanentError(f"step {step.name} is declared by {steps[step.name]} and {component.name}")
    return tuple(sorted(found.values(), key=lambda c: c.name))


def clear_cache() -> None:
    """Forget the discovered components (tests that add a component folder to this package's path)."""
    _discover.cache_clear()


def all_components() -> tuple[Component, ...]:
    """Every component, sorted by name."""
    return _discover()


def by_name(name: str) -> Component:
    for component in _discover():
        if component.name == name:
            return component
    raise PermanentError(f"unknown component {name!r}",
                         details=f"known: {', '.join(c.name for c in _discover())}")


def ordered(components: tuple[Component, ...] | list[Component]) -> list[Component]:
    """``components`` in install order: each after the ones its ``after`` names (when present), ``"*"``
    after every component that does not say ``"*"``; ties by name. A cycle is an error."""
    present = {c.name: c for c in components}
    last = {c.name for c in components if LAST in c.after}

    def deps(c: Component) -> set[str]:
        named = {n for n in c.after if n in present and n != c.name}
        return named | ({n for n in present if n not in last} if c.name in last else set())

    pending = {c.name: deps(c) for c in components}
    out: list[Component] = []
    while pending:
        ready = sorted(n for n, d in pending.items() if not d - {c.name for c in out})
        if not ready:
            raise PermanentError(f"components order themselves in a cycle: {', '.join(sorted(pending))}")
        out.append(present[ready[0]])
        del pending[ready[0]]
    return out


def enabled_components(config: Config, host: HostFacts) -> list[Component]:
    """The components `enable` installs for this Config and host, in install order."""
    return ordered([c for c in _discover() if c.enabled(config, host)])


def plan_steps(config: Config, host: HostFacts) -> list[Step]:
    """Every step of every enabled component, in install order."""
    return [s for c in enabled_components(config, host) for s in c.steps_for(config, host)]


def branches(names: list[str]) -> list[list[str]]:
    """``names`` (components in install order) split into branches that need nothing of each other: two
    components are in one branch when one needs the other (``Component.dependencies``, through any chain
    of present components). Branches in the order of their first component; each keeps install order.
    Components this registry does not know (the installer's own steps) are each a branch of their own."""
    known = {c.name: c for c in _discover()}
    group = {name: name for name in names}

    def root(name: str) -> str:
        while group[name] != name:
            name = group[name]
        return name

    for name in names:
        component = known.get(name)
        for dep in component.dependencies if component is not None else ():
            if dep in group:
                group[root(name)] = root(dep)
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(root(name), []).append(name)
    return list(out.values())
