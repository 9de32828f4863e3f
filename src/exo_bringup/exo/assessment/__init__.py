"""The clinical assessment the exo runs on a relaxed user (:mod:`exo.assessment.protocol`): slow, medium
and fast stretches of the knee, recorded through the graph with the safety monitor in the loop, the
input of the user's own twin (identification)."""

from exo.assessment.protocol import AssessmentProtocol, Segment

__all__ = ["AssessmentProtocol", "Segment"]
