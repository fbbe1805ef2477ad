"""Evaluation: trained runs (and benchmark models) scored on a dataset split, and compared.

- :mod:`~cvpipe.evaluation.evaluate` (``evaluate_run``) and
  :mod:`~cvpipe.evaluation.compare` (``compare_runs``): the entry points; the run's task
  chooses the :class:`~cvpipe.evaluation.base.Evaluator`
  (:meth:`cvpipe.tasks.base.Task.evaluator`);
- :mod:`~cvpipe.evaluation.selection`: which images (dataset, split, dataset.lock) and
  the eval folders left behind;
- classifiers and counters: :mod:`~cvpipe.evaluation.classify`,
  :mod:`~cvpipe.evaluation.classify_compare`, :mod:`~cvpipe.evaluation.classify_report`;
- detectors: :mod:`~cvpipe.evaluation.detect`, :mod:`~cvpipe.evaluation.detect_compare`
  (with :mod:`~cvpipe.evaluation.map_bootstrap`), :mod:`~cvpipe.evaluation.detect_report`;
- :mod:`cvpipe.evaluation.external`: benchmark detectors evaluated without training.

Evaluation imports only downwards (inference, engine, models, data, metrics, report,
the task registry), never the task modules, the CLI or the server.
"""
