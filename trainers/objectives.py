"""The metrics a study may optimise and their direction, without the code that computes them
(scikit-learn): a study worker needs the names alone."""

OBJECTIVE_METRICS = {
    "micro_f1": "max",
    "macro_f1": "max",
    "tuned_macro_f1": "max",
    "macro_roc_auc": "max",
    "macro_ap": "max",
    "accuracy": "max",
    "weighted_f1": "max",
    "subset_accuracy": "max",
    "val_loss": "min",
}
