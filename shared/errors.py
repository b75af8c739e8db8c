"""Root of fedsynth's exception tree.

    FedsynthError
     +-- ConfigError            shared.settings: a settings file or variable is missing or invalid
     +-- SchemaError            shared.schemas: a message or file does not match its schema
     +-- UnknownClassError      shared.classes: a label outside the label set
     +-- PhantomError           shared.phantom: bad phantom parameters or output folder

Every message names the thing that is wrong (field, file, value) so an operator can fix it
without reading code, and never contains patient data.
"""


class FedsynthError(Exception):
    """Base of every error fedsynth raises on purpose."""
