"""Reading CT series from DICOM, the same way at a site (ingestion) and at the coordinator (public
CT for a foundation): scan files into series, check each series' geometry, decode it to HU."""

from pydicom import config as _pydicom_config

# pydicom checks each value it decodes against its VR and, by default, reports a bad one with the
# value itself, as a warning and on its logger: an invalid UID would reach stderr and the logs,
# which must never hold one. Our own checks decide what a series is worth; pydicom only reads.
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
