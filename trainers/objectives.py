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

# Measured once after training on the model as deployed (trainers.measure), not per epoch: a
# multi-objective study may trade one of these against a validation metric.
DEPLOYED_METRICS = {
    "texts_per_second": "max",
    "model_size_mb": "min",
    "parameters": "min",
}
