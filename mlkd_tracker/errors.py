"""User-facing errors: raised for bad input, printed by the CLI as one clear line."""


class MLKDError(Exception):
    """Base class for errors caused by user input (files, boxes, frames, options)."""


class InputError(MLKDError, ValueError):
    """A frame, box or option is not what the tracker accepts."""


class ModelFileError(MLKDError):
    """A model / checkpoint file is missing, unreadable, or does not fit the network."""


class SourceError(MLKDError):
    """A video, frame folder or camera cannot be opened or read."""
