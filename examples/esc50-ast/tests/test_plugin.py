"""This package's plugins keep esc50's contracts (run with pytest after installing it)."""

from esc50 import check_featurizer, check_model


def test_the_model_keeps_its_contract():
    check_model("ast.ast", featurizer="ast.logspec")


def test_the_featurizer_keeps_its_contract_with_a_builtin_model():
    check_featurizer("ast.logspec", model="plugins.lstm")
