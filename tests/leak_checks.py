"""What must never leave a site, gathered from the site itself, for tests that inspect egress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from site_agent.config import SiteSettings
from site_agent.ingest.store import CaseStore

TEXT_VRS = {"UI", "LO", "SH", "PN", "DA", "TM", "DT", "ST", "LT", "AE", "CS", "UT"}


def header_strings(dicom: Path) -> set[str]:
    """Every identifying-looking value in the site's DICOM headers: UIDs, names, IDs, dates, text."""
    values: set[str] = set()
    for path in (p for p in dicom.glob("study_*/**/*") if p.is_file()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for element in ds.iterall():
            if element.VR in TEXT_VRS and element.value not in (None, ""):
                for value in element.value if element.VM > 1 else [element.value]:
                    text = str(value).strip()
                    if (len(text) >= 6 and not text.replace(".", "").isdigit()) or text.count(".") >= 3:
                        values.add(text)
    return values


def site_secrets(settings: SiteSettings, dicom: Path) -> tuple[set[str], np.ndarray]:
    """The strings (header values, case ids, patient pseudonyms, paths) and real cubes of a site."""
    with CaseStore(settings.paths.store) as store:
        cases = store.all_latest()
        real = np.stack([store.load(c.case_id)[1] for c in cases])
    strings = header_strings(dicom) | {c.case_id for c in cases} | {str(c.patient) for c in cases}
    strings |= {str(dicom), str(settings.paths.store), str(settings.paths.store.parent)}
    return strings, real


def nearest_real_pair(real: np.ndarray) -> float:
    spread = np.sqrt(((real[:, None] - real[None]) ** 2).mean(axis=(2, 3, 4)))
    return float(spread[~np.eye(len(real), dtype=bool)].min())
