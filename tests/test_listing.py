"""esc50 list-plugins answers from a cache once it has run, without importing a plugin, and
builds the listing again when an installed plugin package changes."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_third_party import fake_distribution

LIST = ("import json, sys\nfrom esc50.cli.listing import listing\n"
        "found = listing()\n"
        "print(json.dumps({'ids': sorted(r['id'] for r in found['plugins']),"
        " 'torch': 'torch' in sys.modules}))")


def listed(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", LIST], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout)


def test_the_listing_is_cached_and_rebuilt_when_a_plugin_package_changes(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    first = listed(env)
    assert first["torch"] and "plugins.rescnn" in first["ids"]  # built: every plugin imported
    second = listed(env)
    assert not second["torch"] and second["ids"] == first["ids"]  # from the cache
    assert len(list((tmp_path / "cache" / "esc50" / "listing").glob("*.json"))) == 1
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
