"""The typed errors of chart acquisition; the program turns any of them into one RunError."""

from __future__ import annotations


class ChartError(ValueError):
    """A chart that cannot be fetched, read or planned; the message names the source and the cause."""


class FetchError(ChartError):
    """A source that cannot be reached, answers malformed data, or fails verification."""


class ArchiveError(ChartError):
    """A chart archive or chart file that is malformed, hostile or not holdable by Git and Helm."""


class AcquisitionError(ChartError):
    """Acquisition that ran past its wall-clock deadline, CPU or memory cap, or whose process died."""
