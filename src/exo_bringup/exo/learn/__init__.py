"""Learning the exo torque policy in the digital twin (imports torch and Stable-Baselines3).

- :mod:`exo.learn.config`: ``config/sac.yaml`` as a typed :class:`~exo.learn.config.SacConfig` (no torch);
- :mod:`exo.learn.rundir`: a run folder, its run.json, models and selection record (no torch);
- :mod:`exo.learn.evaluation`: the fixed-subject evaluation run during training (no torch);
- :mod:`exo.learn.actor`: a trained model's deterministic actor, as a torch module and as numpy weights;
- :mod:`exo.learn.sac`: SAC training with domain randomisation, evaluation, checkpoints, resume;
- :mod:`exo.learn.selection`: a run's checkpoints ranked by the paper's torque margins;
- :mod:`exo.learn.export`: the trained actor as policy.npz / policy.onnx / policy.pt + policy.json.

Imports run one way: ``sac``, ``selection`` and ``export`` use ``config``, ``rundir``,
``evaluation`` and ``actor``, and none of those four imports them.

Inference needs none of this: :class:`exo.control.sac.SacController` runs an
exported policy with numpy (or onnxruntime). Nothing under ``exo.nodes`` or
``exo.control`` imports this package.
"""
