"""The leaderboard as a package, its page model at the bottom (no module imports one above it, no cycle):

  model       the types one table is made of (`Section`, `RunData`, `Leaderboard`) and metric titles;
  text        the sentences and cells both pages print (intervals, fusion gain, paper claims, method notes);
  figures     score bars, per-class F1, fusion gain, critical-difference diagram (on `harness.plots`);
  markdown    `reports/leaderboard.md`;
  html        `reports/index.html`, one self-contained page;
  robustness  the robustness section (missing modalities, corruptions, cross-corpus), read and rendered;
  leaderboard reads MLflow, builds the model (`analyse`) and writes every file (`render`).

Importing the package (or any module of it) imports neither Ray, MLflow nor matplotlib; they are imported inside
the functions that need them.
"""
