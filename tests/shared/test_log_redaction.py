"""Every library's log records and warnings pass the UID filter once a command has set up logging."""

from __future__ import annotations

import subprocess
import sys

from shared.log_redaction import redact_uids

UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def test_uids_are_blanked_and_other_dotted_numbers_kept() -> None:
    assert redact_uids(f"series {UID} refused") == "series <uid> refused"
    assert redact_uids("2.25.1234567890123 at 127.0.0.1, fedsynth 0.2.0, 0.0.0.0") == (
        "<uid> at 127.0.0.1, fedsynth 0.2.0, 0.0.0.0"
    )


def test_a_third_party_logger_and_a_python_warning_never_print_a_uid() -> None:
    program = f"""
import logging, warnings
from shared.cli_support import setup_logging
setup_logging(verbose=True)
logging.getLogger("pydicom").warning("Invalid value for VR UI: %r", "{UID}")
logging.getLogger("flwr").info("node sent {UID}")
warnings.warn("The value {UID} is too long", UserWarning, stacklevel=1)
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert UID not in result.stderr + result.stdout
    assert result.stderr.count("<uid>") == 3, result.stderr
