import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.data.clips import find_clips
from esc50.core.data.download import download_dataset
from esc50.core.errors import Esc50Error
from tests.conftest import small_config, write_synthetic_dataset


@pytest.fixture
def served(tmp_path):
    """A local HTTP server serving tmp_path/site; yields (site folder, base URL)."""
    site = tmp_path / "site"
    site.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def make_release_zip(tmp_path, site, drop=None):
    """A small archive laid out like the official one: ESC-50-master/{audio,meta}."""
    root = write_synthetic_dataset(tmp_path / "release" / "ESC-50-master", folds=(1, 2),
                                   clips_per_class_per_fold=1, with_csv=True)
    archive = site / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != drop:
                zf.write(path, path.relative_to(root.parent))
    return archive


def test_download_verifies_and_unpacks_a_release(tmp_path, served):
    site, url = served
    archive = make_release_zip(tmp_path, site)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "cache"
    result = CliRunner().invoke(cli, ["download", "--url", f"{url}/master.zip", "--dest",
                                      str(dest), "--sha256", digest])
    assert result.exit_code == 0, result.output
    root = dest / "ESC-50-master"
    assert f"ESC-50 is ready in {root}" in result.output
    table = find_clips(root, small_config(root))
    assert len(table.clips) == 8 and table.class_names[0] == "class0"
    assert sorted(p.name for p in dest.iterdir()) == ["ESC-50-master"]  # no leftovers


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, served):
    site, url = served
    make_release_zip(tmp_path, site)
    dest = tmp_path / "cache"
    with pytest.raises(Esc50Error, match="is corrupt: sha256"):
        download_dataset(f"{url}/master.zip", dest, sha256="0" * 64, progress=False)
    assert list(dest.iterdir()) == []


def test_incomplete_release_and_bad_urls_are_refused(tmp_path, served):
    site, url = served
    make_release_zip(tmp_path, site, drop="1-1000-A-0.wav")
    with pytest.raises(Esc50Error, match="incomplete: 1-1000-A-0.wav is missing"):
        download_dataset(f"{url}/master.zip", tmp_path / "a", progress=False)
    with pytest.raises(Esc50Error, match="cannot download .*missing.zip"):
        download_dataset(f"{url}/missing.zip", tmp_path / "b", progress=False)
    (site / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(Esc50Error, match="not a zip archive"):
        download_dataset(f"{url}/junk.zip", tmp_path / "c", progress=False)
