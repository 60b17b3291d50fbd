"""Files the tree keeps generated from their declarations (charts, Procfiles): write them, or
only check that they are up to date."""
from __future__ import annotations

from pathlib import Path


def refresh(files: dict[Path, str], check: bool) -> int:
    """Write each path's text where it differs (``check``: write nothing); print one line per
    file; return 1 when checking found a stale file, else 0."""
    stale = []
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                path.write_text(text, encoding="utf-8")
        print("%s %s" % ("stale" if current != text else "ok   ", path))
    return 1 if (check and stale) else 0
