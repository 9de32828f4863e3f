"""Identify a person's own twin from the exo's assessment recording (pure core, no rclpy).

- :mod:`exo.identify.recording`: :class:`AssessmentRecording` (from a bag or a simulation);
- :mod:`exo.identify.simulate`: :func:`simulate_assessment` (the protocol on a generated subject);
- :mod:`exo.identify.fit`: :func:`identify` (simulation-based fit of the reflex parameters);
- :mod:`exo.identify.report`: :class:`IdentificationResult` and :func:`run_identify` (the CLI's core).

Method and validation: ``docs/identification.md``.
"""

from __future__ import annotations
