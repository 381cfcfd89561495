import numpy as np

from esc50.core.results.metrics import classification_report, confusion_matrix


def test_metrics_match_hand_computed_values():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    assert confusion_matrix(true, pred, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    report = classification_report(true, pred, ["a", "b", "c"])
    assert report["accuracy"] == 4 / 6
    a, b, c = report["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 2 / 3, 3)
    assert (b["precision"], b["recall"]) == (0.5, 0.5)
    assert (c["precision"], c["recall"]) == (0.5, 1.0)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5]
    assert np.isclose(report["macro_f1"], np.mean(f1))


def test_absent_classes_are_left_out_of_the_macro_average():
    report = classification_report(np.array([0, 0]), np.array([0, 1]), ["a", "b", "c"])
    assert report["per_class"][2]["support"] == 0
    assert np.isclose(report["macro_f1"], 2 * 1 * 0.5 / 1.5)  # class b was predicted, never true
