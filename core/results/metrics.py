"""Classification metrics from true and predicted class indices."""

from __future__ import annotations

import numpy as np


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true), np.asarray(pred)), 1)
    return matrix


def classification_report(true: np.ndarray, pred: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro F1 and per-class precision/recall/F1/support. Classes with no clips in
    ``true`` are left out of the macro average (their recall is undefined)."""
    matrix = confusion_matrix(true, pred, len(class_names))
    hits = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(hits),
                   where=denominator > 0)
    present = support > 0
    return {
        "clips": int(matrix.sum()),
        "accuracy": float(hits.sum() / max(matrix.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
                       "support": int(s)}
                      for name, p, r, f, s in zip(class_names, precision, recall, f1, support)],
        "confusion_matrix": matrix.tolist(),
    }


WORST_LISTED = 10  # clips `esc50 evaluate` lists as the worst classified
WORST_SHOWN = 5  # of those, the ones a logger receives as audio and the HTML report shows


def evaluation(probabilities: np.ndarray, targets: np.ndarray, paths: list[str],
               class_names: list[str]) -> dict:
    """:func:`classification_report` of class ``probabilities`` [clips, classes], with
    ``worst``: the clips whose true class got the lowest probability (path, true and predicted
    class, that probability, and the clip's row in ``paths``)."""
    report = classification_report(targets, probabilities.argmax(axis=1), class_names)
    p_true = probabilities[np.arange(len(targets)), targets]
    report["worst"] = [{"path": paths[i], "true": class_names[targets[i]],
                        "predicted": class_names[int(probabilities[i].argmax())],
                        "p_true": float(p_true[i]), "row": int(i)}
                       for i in np.argsort(p_true, kind="stable")[:WORST_LISTED]]
    return report
