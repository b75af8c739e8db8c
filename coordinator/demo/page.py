"""The demo's overview page: every phantom hospital's preview images on one page, for a browser."""

from __future__ import annotations

import html
from pathlib import Path

from shared.classes import DEFAULT_CLASSES, DISPLAY_NAMES
from shared.phantom import get_profile

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h2 { margin-top: 2rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }
figure { margin: 0; } img { width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.9rem; color: #555; }
"""


def write_overview(out: Path, sites: list[str]) -> Path:
    """Write OUT/index.html linking each site's preview/<class>.png (paths relative to OUT)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fedsynth demo</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>fedsynth demo: phantom hospitals</h1>",
        "<p>Synthetic test patients written by each site agent as real DICOM. "
        "Red outline: the lesion mask.</p>",
    ]
    for site in sites:
        profile = get_profile(site)
        parts.append(
            f"<h2>{html.escape(site)}: {html.escape(profile.manufacturer)} {html.escape(profile.model)}</h2>"
        )
        parts.append(f"<p>{html.escape(profile.description)}.</p><div class='grid'>")
        for label in DEFAULT_CLASSES:
            image = Path("sites") / site / "phantom-dicom" / "preview" / f"{label}.png"
            if (out / image).is_file():
                parts.append(
                    f"<figure><img src='{image.as_posix()}' alt='{label}'>"
                    f"<figcaption>{html.escape(DISPLAY_NAMES[label])}</figcaption></figure>"
                )
        parts.append("</div>")
    parts.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page
