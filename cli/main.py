"""The ``esc50`` command: one group assembling the commands, each in a module of its own
(train and cv, tune, evaluate, predict, analyze, export, package, report, list-plugins and
new-plugin, weights, download)."""

from __future__ import annotations

import os

import click

from esc50.cli.analyze import analyze
from esc50.cli.download import download
from esc50.cli.errors import DEBUG_VARIABLE
from esc50.cli.evaluate import evaluate
from esc50.cli.export import export
from esc50.cli.package import package
from esc50.cli.plugins import list_plugins, new_plugin
from esc50.cli.predict import predict
from esc50.cli.report import report
from esc50.cli.train import cv, train
from esc50.cli.tune import tune
from esc50.cli.weights import weights


@click.group()
@click.version_option(package_name="esc50")
@click.option("--traceback", "show_traceback", is_flag=True,
              help=f"print the full traceback of an error (also: {DEBUG_VARIABLE}=1).")
@click.option("--offline", is_flag=True, help="open no network connection: weights named by "
              "name must be in the cache (also: ESC50_OFFLINE=1).")
def cli(show_traceback: bool, offline: bool) -> None:
    """esc50: train, compare and use environmental sound classifiers."""
    if show_traceback:
        os.environ[DEBUG_VARIABLE] = "1"
    if offline:
        os.environ["ESC50_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"  # transformers' hub ids (plugins.ast) too


for command in (train, cv, tune, evaluate, predict, analyze, export, package, report,
                list_plugins, new_plugin, weights, download):
    cli.add_command(command)
