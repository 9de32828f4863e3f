"""Learning the exo torque policy in the digital twin (imports torch and Stable-Baselines3).

- :mod:`exo.learn.config`: ``config/sac.yaml`` as a typed :class:`~exo.learn.config.SacConfig` (no torch);
- :mod:`exo.learn.sac`: SAC training with domain randomisation, evaluation, checkpoints, resume;
- :mod:`exo.learn.evaluation`: the fixed-subject evaluation run during training (no torch);
- :mod:`exo.learn.export`: the trained actor as policy.npz / policy.onnx / policy.pt + policy.json.

Inference needs none of this: :class:`exo.control.sac.SacController` runs an
exported policy with numpy (or onnxruntime). Nothing under ``exo.nodes`` or
``exo.control`` imports this package.
"""
