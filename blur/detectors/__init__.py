"""Face detectors behind one interface (`Detector`); build one with `make_detector`."""

from blur.detectors.base import Detector, make_detector

__all__ = ["Detector", "make_detector"]
