"""esc50 list-plugins answers from a cache once it has run, without importing a plugin, and
builds the listing again when an installed plugin package changes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_third_party import fake_distribution

LIST = ("import json, sys\nfrom esc50.cli.listing import listing\n"
        "found = listing()\n"
        "print(json.dumps({'ids': sorted(r['id'] for r in found['plugins']),"
        " 'torch': 'torch' in sys.modules}))")


def listed(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", LIST], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_the_listing_is_cached_and_rebuilt_when_a_plugin_package_changes(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    first = listed(env)
    assert first["torch"] and "plugins.rescnn" in first["ids"]  # built: every plugin imported
    second = listed(env)
    assert not second["torch"] and second["ids"] == first["ids"]  # from the cache
    cached = (tmp_path / "cache" / "esc50" / "listing").glob("*.json")
    assert len([p for p in cached if not p.name.endswith(".parameters.json")]) == 1
    fake_distribution(site, "extra-pkg", "extra = extra_plugin", {"extra_plugin": (
        "from esc50 import hookimpl\nfrom esc50.plugins.models.lstm import LSTMClassifier\n"
        "ESC50_PLUGIN_API = 4\n"
        "@hookimpl\ndef register_models(register):\n    register(LSTMClassifier, name='mine')\n")})
    installed = listed(env)
    assert installed["torch"] and "extra.mine" in installed["ids"]  # a new package: rebuilt
    module = site / "extra_plugin.py"
    module.write_text(module.read_text().replace("name='mine'", "name='yours'"))
    os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 10**9))
    edited = listed(env)
    assert "extra.yours" in edited["ids"] and "extra.mine" not in edited["ids"]


def test_building_the_listing_imports_no_plotting_library(tmp_path):
    """Loading every plugin (what a first listing costs) does not import matplotlib: figures
    are drawn by the modules that draw them, imported when a run writes its folder."""
    code = ("import sys\nfrom esc50.core.plugin_api.registry import load_registry\n"
            "load_registry()\nprint(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert done.stdout.strip() == "[]"


LAZY = ("from esc50 import hookimpl\nfrom esc50.plugins.models.lstm import LSTMClassifier\n"
        "ESC50_PLUGIN_API = 4\n"
        "class Lazy(LSTMClassifier):\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        import lazy_dependency  # a package only building the model imports\n"
        "        super().__init__(*args, **kwargs)\n"
        "@hookimpl\ndef register_models(register):\n    register(Lazy, name='lazy')\n")
# Importing it waits until the test lets it: the count stays "still being counted" meanwhile.
DEPENDENCY = ("import os, time\nfor _ in range(1200):\n"
              "    if os.path.exists(os.environ['LAZY_GO']):\n        break\n"
              "    time.sleep(0.05)\n")


def esc50(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esc50", "list-plugins", *args],
                          capture_output=True, text=True, env=env, check=True)


@pytest.mark.slow  # an end-to-end check: `pytest -m slow` (CI runs it)
def test_a_count_that_needs_a_new_package_is_finished_in_the_background(tmp_path):
    site, go = tmp_path / "site", tmp_path / "go"
    fake_distribution(site, "lazy-pkg", "lazy = lazy_plugin",
                      {"lazy_plugin": LAZY, "lazy_dependency": DEPENDENCY})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "LAZY_GO": str(go),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    first = esc50(env)
    row = next(line for line in first.stdout.splitlines() if "lazy.lazy" in line)
    assert row.split()[:5] == ["model", "lazy.lazy", "lazy-pkg", "1.0", "..."]
    assert "the parameters of lazy.lazy" in first.stderr and "--wait" in first.stderr
    pending = {r["id"]: r for r in json.loads(esc50(env, "--json").stdout)["plugins"]}
    assert pending["lazy.lazy"]["parameters"] == "counting"
    go.touch()
    done = {r["id"]: r for r in json.loads(esc50(env, "--json", "--wait").stdout)["plugins"]}
    assert done["lazy.lazy"]["parameters"] == done["plugins.lstm"]["parameters"] == 36_530
    assert done["plugins.crnn"]["parameters"] == 91_994
    again = esc50(env)  # from the caches, every count there
    assert "..." not in again.stdout and again.stderr == ""


def test_the_first_pass_counts_only_what_needs_no_new_package(tmp_path):
    code = ("from esc50.core.plugin_api.inventory import NoNewPackages\n"
            "with NoNewPackages() as guard:\n"
            "    try:\n        import colorsys\n    except ImportError:\n        pass\n"
            "    import json  # imported already: allowed\n"
            "print(guard.blocked)\nimport colorsys\nprint(colorsys.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["True", "colorsys"]


CRASHING = ("import os, sys\nfrom esc50 import hookimpl\n"
            "from esc50.plugins.models.lstm import LSTMClassifier\nESC50_PLUGIN_API = 4\n"
            "class Crash(LSTMClassifier):\n"
            "    def __init__(self, *args, **kwargs):\n"
            "        print('the counter met a crashing model', file=sys.stderr, flush=True)\n"
            "        os._exit(3)\n"
            "@hookimpl\ndef register_models(register):\n    register(Crash, name='crash')\n")


def test_a_counting_process_that_ends_early_says_where_its_errors_are(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "crash-pkg", "crash = crash_plugin", {"crash_plugin": CRASHING})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = esc50(env, "--wait")
    note = next(line for line in listed.stdout.splitlines() if "parameter counts" in line)
    log = Path(note.split("its errors are in ")[1].split(" (--refresh")[0])
    assert note.startswith("warning: the models' parameter counts are not all there ('-')")
    assert "the counter met a crashing model" in log.read_text()
