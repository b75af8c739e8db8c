"""Root of fedsynth's exception tree, and the errors of the `shared` package.

    FedsynthError
     +-- ConfigError              settings: a settings file or variable is missing or invalid
     |    +-- SettingsFileExistsError  settings: init would overwrite a settings file
     +-- SchemaError              schemas: a message or file does not match its schema
     +-- UnknownClassError        classes: a label outside the label set (also a ValueError)
     +-- PhantomError             phantom: bad phantom parameters or output folder
     +-- DeviceError              devices: a device this machine does not have
     +-- SyntheticSetError        synthetic_set: a set that cannot be written or fails its checksums
     +-- SeriesRejected           dicom.checks: a DICOM series failed one check (`check`, `detail`)
     +-- PreprocessingError       preprocessing.box: a step failed (`check` names the ingest check)
     +-- MediastinumNotFound      preprocessing.mediastinum: no body or no lungs to crop by
     |    +-- IncompleteChest      preprocessing.mediastinum: stops short of the lung apices or bases
     +-- DatasetError             diagnosis.dataset: incomplete, inconsistent or failing its checksums
     +-- ModelError               diagnosis.bundle: files missing, unlike its card, or unfit for the data
     +-- IntensityError           diagnosis.lesion_features: an intensity text that names no HU window
     +-- FoundationError          foundation.artefact: files missing, unlike its card, or not the hash asked
     +-- PrivacyMathError         privacy.accounting: parameters no accountant can answer (a ValueError)
     +-- KitError                 startup_kit: a startup kit that cannot be written or read
     +-- SiteAgentError           the site agent's tree, drawn in site_agent.errors
     +-- CoordinatorError         the coordinator's tree, drawn in coordinator.errors

Every message names the thing that is wrong (field, file, value) so an operator can fix it
without reading code, and never contains patient data.
"""


class FedsynthError(Exception):
    """Base of every error fedsynth raises on purpose."""
