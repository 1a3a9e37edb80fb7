"""Robustness and generalisation as benchmark axes (issue 13).

Three evaluations of the *validated fold models* of a finished (method, dataset) result, none of which retrains:
  missing      modalities removed at test time through the availability masks (`harness.robustness.missing`);
  corrupted    test media degraded before extraction, each corruption level a cached extractor configuration
               (`harness.features.extractors.corrupted`, evaluated by `harness.robustness.corrupt`);
and one that trains, because its question is a different training set:
  cross-corpus train on corpus A (hyperparameters chosen on A's validation parts), test once on corpus B over the
               shared classes of a label map (`harness.robustness.cross_corpus`).
`harness.robustness.run.run` schedules them on Ray and logs each as an MLflow child run (`harness.track`); the summary
statistics (relative and effective robustness, MultiBench's definitions) are in `harness.robustness.summary`.
The package imports neither Ray nor MLflow at import time.
"""
