"""Third-party plugins through real entry points: the example package installed with pip, and
broken plugins that must not take the toolkit down."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.plugin_api.registry import load_registry
from tests.conftest import FREQS, SR, esc50_config, tone

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "esc50-ast"


def esc50(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esc50", *args], capture_output=True, text=True)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True)


@pytest.fixture
def installed_example():
    pip("install", "--no-deps", "--no-build-isolation", str(EXAMPLE))
    yield
    pip("uninstall", "-y", "esc50-ast")


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_example_package_installs_lists_and_trains(installed_example, tmp_path):
    listing = json.loads(esc50("list-plugins", "--json", "--wait").stdout)
    by_id = {row["id"]: row for row in listing["plugins"]}
    assert by_id["ast.ast"]["package"] == "esc50-ast" and by_id["ast.ast"]["version"] == "0.1.0"
    assert by_id["ast.ast"]["parameters"] > 1_000_000
    assert by_id["ast.logspec"]["kind"] == "featurizer"
    assert by_id["ast.filenames"]["kind"] == "dataset"
    data = tmp_path / "flat"
    data.mkdir()
    for i, freq in enumerate(FREQS):
        for k in range(4):
            sf.write(data / f"tone{i}_{k}.wav", tone(freq, seed=k), SR)
    LOGSPEC = "ast.logspec:n_fft=256,win_length=256,hop_length=64"  # the plugin's own options
    result = esc50("train", "--dataset", "ast.filenames:sample_rate=8000", "--model", "ast.ast",
                   "--featurizer", LOGSPEC, "--aug",
                   "spec_pitch_shift:p=1", "--aug", "spec_noise:p=1", "--data", str(data),
                   "--epochs", "1", "--output-dir", str(tmp_path), "--run-name", "ast",
                   "--no-progress", "--set", "train_ratio=0.5")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ast" / "metrics.json").read_text())
    for spec, kind in (("ast.ast", "model"), (LOGSPEC, "featurizer"),
                       ("ast.filenames:sample_rate=8000", "dataset")):
        assert metrics["plugins"][spec]["package"] == "esc50-ast"
        assert metrics["plugins"][spec]["kind"] == kind
    assert metrics["split"].startswith("grouped random split") and metrics["val_clips"] == 8
    own_tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(EXAMPLE / "tests")], capture_output=True, text=True)
    assert own_tests.returncode == 0 and "2 passed" in own_tests.stdout, own_tests.stdout


def fake_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed-looking distribution (dist-info with entry points) on a sys.path folder."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[esc50]\n{entry_points}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


HOOK = "from esc50.core.plugin_api.hookspecs import hookimpl\n"
BROKEN = {
    "import error": ("missing = no_such_module_anywhere", {}, "failed to import"),
    "exception in hook": ("raising = raising_plugin", {"raising_plugin": HOOK + (
        "@hookimpl\ndef register_models(register):\n    raise KeyError('oops')\n")},
        "failed in register_models: KeyError"),
    "nonsense registered": ("nonsense = nonsense_plugin", {"nonsense_plugin": HOOK + (
        "@hookimpl\ndef register_models(register):\n    register(42)\n")},
        "is not callable"),
    "id claimed twice": ("plugins.fake = claiming_plugin", {"claiming_plugin": HOOK + (
        "from esc50.plugins.models.lstm import LSTMClassifier\n"
        "@hookimpl\ndef register_models(register):\n    register(LSTMClassifier, name='crnn')\n")},
        "plugins.crnn is claimed by both esc50 and broken-pkg"),
    "no plugin API": ("old = old_plugin", {"old_plugin": HOOK + "ESC50_PLUGIN_API = 0\n"},
                      "declares ESC50_PLUGIN_API = 0, which is not a plugin API version"),
    "newer plugin API": ("new = new_plugin", {"new_plugin": HOOK + "ESC50_PLUGIN_API = 99\n"},
                         "built for plugin API 99, newer than this esc50's (4): upgrade esc50"),
}


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_named_and_the_rest_still_load(case, tmp_path, monkeypatch):
    entry, modules, message = BROKEN[case]
    fake_distribution(tmp_path, "broken-pkg", entry, modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert any(message in problem and "broken-pkg" in problem for problem in registry.problems), \
        registry.problems
    assert registry.resolve("model", "plugins.crnn").package == "esc50"
    result = CliRunner().invoke(cli, ["list-plugins"])
    assert result.exit_code == 0 and "plugins.kumar" in result.output
    broken = [line for line in result.output.splitlines() if line.startswith("broken: ")]
    assert len(broken) == 1 and "broken-pkg" in broken[0]
    strict = CliRunner().invoke(cli, ["list-plugins", "--strict"])
    assert strict.exit_code == 1 and "broken: " in strict.output


def test_a_bug_at_import_names_its_file_and_line_and_traceback_shows_it(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "buggy-pkg", "buggy = buggy_plugin", {"buggy_plugin": (
        "import math\n\nVALUE = math.sqrt(-1)\n")})
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = next(p for p in load_registry().problems if "buggy-pkg" in p)
    assert "ValueError: math domain error" in problem
    assert f"({tmp_path / 'buggy_plugin.py'}:3)" in problem
    quiet = CliRunner().invoke(cli, ["train", "--model", "buggy.thing"])
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output
    loud = CliRunner().invoke(cli, ["train", "--model", "buggy.thing"], env={"ESC50_DEBUG": "1"})
    assert loud.exit_code == 1 and "Traceback (most recent call last)" in loud.output
    assert loud.output.rstrip().splitlines()[-1].startswith("Error: unknown model 'buggy.thing'")


def test_options_are_listed_with_type_and_default_without_building_big_models():
    text = CliRunner().invoke(cli, ["list-plugins", "--options"]).output
    assert "model plugins.crnn (esc50" in text
    assert "    hidden_size: int = 64  # GRU hidden units per direction" in text
    assert "    kernel_size: tuple[int, int] = [5, 20]" in text
    assert "augmentation plugins.noise" in text and "    min_snr_db: float = 0.0" in text
    rows = {r["id"]: r for r in json.loads(CliRunner().invoke(
        cli, ["list-plugins", "--json", "--wait"]).output)["plugins"]}
    groups = next(o for o in rows["plugins.folder"]["options"] if o["name"] == "groups")
    assert (groups["type"], groups["default"]) == ("str", "file") and "recording" in groups["doc"]
    undocumented = [f"{r['id']}.{o['name']}" for r in rows.values() for o in r["options"]
                    if not o["doc"]]
    assert undocumented == []  # every built-in option has its one-line doc
    # counted on the meta device: VGG19's 140M weights need no memory
    assert rows["plugins.vgg19"]["parameters"] == 139_773_938


def test_using_a_broken_plugin_id_says_why(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "broken-pkg", "missing = no_such_module_anywhere", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(cli, ["train", "--model", "missing.model"])
    assert result.exit_code == 1
    assert "unknown model 'missing.model'" in result.output
    assert "a plugin failed to load: plugin missing (broken-pkg) failed to import" in result.output


def test_a_factory_returning_the_wrong_type_is_refused(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "odd-pkg", "odd = odd_plugin", {"odd_plugin": HOOK + (
        "def thing(config, input_shape):\n    '''Not a module.'''\n    return 'model'\n"
        "@hookimpl\ndef register_models(register):\n    register(thing)\n")})
    monkeypatch.syspath_prepend(str(tmp_path))
    from esc50.core.errors import Esc50Error

    with pytest.raises(Esc50Error, match=r"model odd.thing \(odd-pkg\) returned str, not a Module"):
        load_registry().create("model", "odd.thing", esc50_config(), (1, 64, 862))


def test_new_plugin_refuses_a_namespace_that_is_taken(tmp_path):
    result = CliRunner().invoke(cli, ["new-plugin", "plugins", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and not (tmp_path / "esc50-plugins").exists()
    assert "plugin name 'plugins' is the namespace of esc50's plugins (plugins.*): choose " \
        "another" in result.output


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_new_plugin_writes_a_package_that_installs_and_passes_its_own_test(tmp_path):
    result = CliRunner().invoke(cli, ["new-plugin", "mytools", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "esc50-mytools"
    assert (root / "pyproject.toml").is_file() and (root / "mytools_esc50" / "plugin.py").is_file()
    pip("install", "--no-deps", "--no-build-isolation", str(root))
    try:
        listing = {r["id"]: r for r in json.loads(esc50("list-plugins", "--json").stdout)["plugins"]}
        assert listing["mytools.meanpool"]["package"] == "esc50-mytools"
        assert listing["mytools.gain"]["kind"] == "augmentation"
        own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              str(root / "tests")], capture_output=True, text=True)
        assert own.returncode == 0 and "2 passed" in own.stdout, own.stdout + own.stderr
    finally:
        pip("uninstall", "-y", "esc50-mytools")
    again = CliRunner().invoke(cli, ["new-plugin", "mytools", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(cli, ["new-plugin", "My-Tools", "--dir", str(tmp_path)])
    assert bad.exit_code == 1 and "must be a lower-case identifier" in bad.output


def test_the_inline_example_package_in_the_docs_is_what_new_plugin_writes(tmp_path):
    from esc50.cli.skeleton import write_skeleton

    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    root = write_skeleton("mytools", tmp_path)
    for path, fence in (("pyproject.toml", "toml"), ("mytools_esc50/plugin.py", "python"),
                        ("tests/test_plugin.py", "python")):
        assert f"`{path}`:\n\n```{fence}\n{(root / path).read_text()}```" in docs, path
