"""Two-stage runs (`harness run --finetune`): stage 1 fine-tunes each fold's unimodal encoders on the fold's training
part (`stage`), stage 2 is the ordinary search on the per-fold features (`harness.perfold.PerFoldData`, a leaf module
so the search can read per-fold data without depending on this package).
"""
