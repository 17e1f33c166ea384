"""Fixtures starting real `docker-registry` processes (noauth, basic, token, tls) per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.oci.registries import Mode, Registry

RegistryFactory = Callable[..., Registry]


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[RegistryFactory]:
    """Factory `make_registry(mode="noauth", **options)` of started registries, all stopped at teardown."""
    started: list[Registry] = []
    counter = itertools.count()

    def make(mode: Mode = "noauth", **options: object) -> Registry:
        # One directory per registry so a test can run several side by side.
        registry = Registry(tmp_path / f"registry-{mode}-{next(counter)}", mode, **options)  # type: ignore[arg-type]
        started.append(registry)
        return registry.start()

    yield make
    for registry in started:
        registry.close()


@pytest.fixture
def registry(make_registry: RegistryFactory) -> Registry:
    """A registry without authentication on http://127.0.0.1:PORT."""
    return make_registry("noauth")


@pytest.fixture
def basic_registry(make_registry: RegistryFactory) -> Registry:
    """A registry with htpasswd (Basic) auth; credentials in `.user` / `.password`."""
    return make_registry("basic")


@pytest.fixture
def token_registry(make_registry: RegistryFactory) -> Registry:
    """A registry with bearer-token auth served by an in-process `TokenServer` (`.token_server`)."""
    return make_registry("token")


@pytest.fixture
def tls_registry(make_registry: RegistryFactory) -> Registry:
    """A registry without auth on https://127.0.0.1:PORT, signed by a test CA at `.ca_path`."""
    return make_registry("tls")
