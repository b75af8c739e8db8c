"""Reading CT series from DICOM, the same way at a site (ingestion) and at the coordinator (public
CT for a foundation): scan files into series, check each series' geometry, decode it to HU."""
