"""The dashboards generator, loaded from its file: ``dashboards/`` is not an installed
package, and both dashboard tests need the same module object."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[1] / "dashboards" / "generate.py"


def load_generator() -> ModuleType:
    name = "linescale_dashboards_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module
