"""Face anonymization engine: detectors, tracking, maskers, fail-closed policy. Knows nothing of networks,
users or policies."""

from blur.anonymizer import Anonymizer, FrameReport
from blur.detectors import Detector, DetectorUnavailable, make_detector
from blur.failsafe import FailReason
from blur.profiles import PROFILES, AnonymizerConfig
from blur.runtime import one_opencv_thread

__all__ = ["PROFILES", "Anonymizer", "AnonymizerConfig", "Detector", "DetectorUnavailable", "FailReason",
           "FrameReport", "make_detector", "one_opencv_thread"]
