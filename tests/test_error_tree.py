"""One error tree: every exception class the packages define is a ``BrainstreamError``, so a
caller can catch brainstream's own failures in one clause (builtin bases such as
``RuntimeError`` or ``ValueError`` are kept beside it where callers catch those)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from schemas.errors import BrainstreamError

PACKAGES = ("schemas", "producers", "sinks", "streams", "brainstream")


def exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        modules = [root.__name__]
        modules += [i.name for i in pkgutil.walk_packages(root.__path__, f"{package}.")]
        for name in modules:
            if name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            for _attr, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == name and issubclass(cls, BaseException):
                    found.append(cls)
    return found


def test_every_exception_class_is_under_brainstream_error() -> None:
    classes = exception_classes()
    assert len(classes) > 30  # the walk found the packages' exceptions
    outside = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, BrainstreamError)
    )
    assert not outside, f"exception classes outside BrainstreamError: {outside}"
