"""A procedural thoracic CT phantom that writes real DICOM series, labels and lesion masks.

No real mediastinal tumour data can be shipped, so this is the data of the demo, the tests and the
benchmarks (DESIGN.md, "The CT phantom"). Public surface:

    write_phantom(PhantomRequest(...))   a whole phantom hospital on disk
    generate_study(profile, label, ...)  one patient in memory
    PROFILES / get_profile(name)         the scanner and population profiles
"""

from shared.phantom.dataset import PhantomRequest, PhantomSummary, read_labels, write_phantom
from shared.phantom.profiles import PROFILES, TRAINING_PROFILES, PhantomError, ScannerProfile, get_profile
from shared.phantom.study import Study, generate_study

__all__ = [
    "PROFILES",
    "TRAINING_PROFILES",
    "PhantomError",
    "PhantomRequest",
    "PhantomSummary",
    "ScannerProfile",
    "Study",
    "generate_study",
    "get_profile",
    "read_labels",
    "write_phantom",
]
