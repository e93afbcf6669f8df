"""Typed errors. The CLI turns each into one line on stderr and exit code 1."""


class FacecolorError(Exception):
    """Base class for every error a user can cause and fix."""


class UsageError(FacecolorError):
    """The command was given the wrong arguments (the command line exits with 2, as for its own usage errors)."""


class InputError(FacecolorError):
    """The input path is missing, a directory, empty, or not readable media."""


class VideoOpenError(InputError):
    """PyAV could not open the file as media."""


class NoVideoStreamError(InputError):
    """The file opened but holds no video (or image) stream."""


class DecodeError(InputError):
    """The media opened but its frames could not be decoded."""


class OutputError(FacecolorError):
    """The output path is unusable: exists, equals the input, bad extension, folder missing."""


class EncodeError(FacecolorError):
    """Writing the output failed (codec refused the frames, disk full...)."""


class WeightsError(FacecolorError):
    """A weights file is missing, altered (sha256 mismatch) or malformed."""


class InfrastructureError(FacecolorError):
    """A worker process or the Ray cluster the run relied on failed; what was finished is kept for --resume."""
