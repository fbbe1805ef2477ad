"""Inference: trained runs rebuilt and wrapped into predictors.

- :mod:`cvpipe.inference.loading`: a run directory → its model and model card (the run's
  task rebuilds the network: :meth:`cvpipe.tasks.base.Task.load_model`);
- :mod:`cvpipe.inference.predictor`: what every predictor shares (decoding, batching,
  streaming over files in input order, unreadable files as error rows);
- :mod:`cvpipe.inference.classify`: class probabilities (classify and count runs);
- :mod:`cvpipe.inference.detect`: boxes (detect runs and benchmark detectors);
- :mod:`cvpipe.inference.outputs`: what one prediction becomes (``cvpipe predict`` rows,
  ``cvpipe serve`` responses).

BatchNorm folding stays in :mod:`cvpipe.models.fuse`: the feature cache of the training
engine folds with it too, and the engine sits below inference.

Inference imports only downwards (engine, models, data, tasks' registry); the task
modules choose which predictor and which outputs a run gets.
"""
