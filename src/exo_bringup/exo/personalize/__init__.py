"""Personalisation: a user's controller tuned, gated and versioned on the user's own twin.

- :mod:`exo.personalize.evaluation`: :class:`UserTwin` (identified subject, intervals, the user's
  safety limits) and controllers on it through the safety monitor's core.
- :mod:`exo.personalize.search`: CMA-ES over the baselines' gains, cap and reference speed.
- :mod:`exo.personalize.gate`: the acceptance gate against the deployed version.
- :mod:`exo.personalize.run`: ``exo personalize --user ID`` end to end, versions in the profile.
"""
