"""Face detectors behind one interface (`Detector`); build one with `make_detector`."""

from blur.detectors.base import Detector, DetectorUnavailable
from blur.detectors.registry import make_detector

__all__ = ["Detector", "DetectorUnavailable", "make_detector"]
