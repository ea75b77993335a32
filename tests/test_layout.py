"""The project's shape: its top-level names are its own, and the packages import only what they may."""

from __future__ import annotations

import ast
import importlib.metadata
import socket

import pytest
from pytest_socket import SocketConnectBlockedError

from tests.conftest import ROOT

PACKAGES = ("listener", "rules", "storage", "notifiers", "passaparola")
# What each package may import from the others (architecture: listener and notifiers are leaves,
# rules and storage see only the shared nouns, only passaparola knows everything).
ALLOWED = {
    "listener": set(),
    "notifiers": set(),
    "rules": {"listener", "notifiers"},
    "storage": {"listener", "notifiers"},
    "passaparola": {"listener", "notifiers", "rules", "storage"},
}


@pytest.mark.parametrize("name", ["listener", "rules", "storage", "notifiers"])
def test_no_other_distribution_provides_our_top_level_names(name: str) -> None:
    providers = set(importlib.metadata.packages_distributions().get(name, []))
    assert providers <= {"passaparola"}, f"{name!r} is also installed by {providers - {'passaparola'}}"


def imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_architecture_allows(package: str) -> None:
    assert imported_packages(package) - {package} <= ALLOWED[package]


def test_tests_cannot_reach_beyond_loopback() -> None:
    # Refused inside Python before any packet is sent (192.0.2.1 is a documentation address anyway).
    with pytest.warns(UserWarning, match="192.0.2.1"), pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make demo" in readme
    assert ci.strip().splitlines()[-1] == "make test"
