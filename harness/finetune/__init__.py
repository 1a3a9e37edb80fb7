"""Two-stage runs (`harness run --finetune`): stage 1 fine-tunes each fold's unimodal encoders on the fold's training
part (`stage`), stage 2 is the ordinary search on the per-fold features (`perfold.PerFoldData`).

Light on purpose: `harness.search` imports `perfold` from here, so nothing heavy is imported at package level.
"""
