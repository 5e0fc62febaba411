"""Reading a JSON file that a setting names, with errors that say which file and which setting.

>>> import tempfile, os
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "x.json")
...     _ = open(p, "w").write('{"a": 1}')
...     read_json(p, "rules", "STREAMREC_RULES_FILE", ValueError)
{'a': 1}
>>> read_json("/nonexistent.json", "rules", "STREAMREC_RULES_FILE", ValueError)
Traceback (most recent call last):
...
ValueError: rules file /nonexistent.json does not exist (STREAMREC_RULES_FILE)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path | str, what: str, setting: str, error: type[Exception]) -> Any:
    """The parsed JSON of ``path``; a missing or unreadable file raises ``error`` naming ``what`` and ``setting``."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} file {path} does not exist ({setting})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} file {path} is not readable JSON: {exc}") from None
