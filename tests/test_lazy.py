"""nas.lazy: a dependency declared at the top of a module is imported on its first use only."""

from __future__ import annotations

import sys

import pytest

from nas.lazy import lazy


def test_imported_on_first_attribute_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    colorsys = lazy("colorsys")
    assert "colorsys" not in sys.modules and colorsys.available()
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules


def test_a_missing_package_fails_where_it_is_used():
    missing = lazy("nas_no_such_package")
    assert not missing.available()
    with pytest.raises(ImportError, match="nas_no_such_package"):
        getattr(missing, "anything")  # noqa: B009 - the attribute read is what imports
