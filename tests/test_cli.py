import json
from importlib.metadata import version

from click.testing import CliRunner

from esc50.cli.main import cli


def test_list_plugins_table_shows_every_builtin_with_package_and_size():
    result = CliRunner().invoke(cli, ["list-plugins", "--wait"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KIND", "ID", "PACKAGE", "PARAMS", "DESCRIPTION"]
    crnn = next(line for line in lines if "plugins.crnn" in line)
    assert crnn.split()[:5] == ["model", "plugins.crnn", "esc50", version("esc50"), "92.0k"]


def test_list_plugins_json():
    result = CliRunner().invoke(cli, ["list-plugins", "--json", "--wait"])
    data = json.loads(result.output)
    by_id = {row["id"]: row for row in data["plugins"]}
    assert by_id["plugins.crnn"]["kind"] == "model"
    # conv 808 + GRU 58,752 + 24,960 + attention 4,225 + classifier 3,250 (report's defaults)
    assert by_id["plugins.crnn"]["parameters"] == 91_994
    assert by_id["plugins.noise"]["kind"] == "augmentation"
    assert by_id["plugins.logmel"]["kind"] == "featurizer"
    assert data["problems"] == []
