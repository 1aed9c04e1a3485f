"""Heavy or optional dependencies, declared once at the top of the module that uses them and imported on first use.

`thop = lazy("thop")` reads like an import and costs nothing until an attribute is read; a missing package then
raises ImportError at that first use, where the caller decides what it means.
"""

from __future__ import annotations

import importlib
import importlib.util
import types
from typing import Any


class LazyModule(types.ModuleType):
    """A module object that imports the real module the first time one of its attributes is read."""

    def __getattr__(self, item: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, item)

    def available(self) -> bool:
        """True when the package is installed (without importing it)."""
        return importlib.util.find_spec(self.__name__) is not None


def lazy(name: str) -> LazyModule:
    """The module `name`, imported when first used."""
    return LazyModule(name)


__all__ = ["LazyModule", "lazy"]
