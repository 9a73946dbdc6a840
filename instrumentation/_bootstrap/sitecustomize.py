"""Loaded at start-up of programs run by `llmloop-instrument` (this folder is put first on PYTHONPATH).

Turns on llmloop (OTel providers + patches), then runs any other `sitecustomize` found further down
`sys.path`, so the program's own start-up customisation still happens. Never stops the program.
"""

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))

try:
    from llmloop.instrumentation.agent import initialize

    initialize()
except Exception as _error:  # e.g. llmloop is not installed for this interpreter
    print(f"llmloop-instrument: tracing is off for this program: {_error!r}", file=sys.stderr)

_path = sys.path[:]
try:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    _self = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError:
        if _self is not None:
            sys.modules["sitecustomize"] = _self
finally:
    sys.path[:] = _path
