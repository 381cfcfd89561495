"""Weights fetched by name (checkpoint=NAME), against an HTTP server this test starts on
127.0.0.1 serving a Kumar checkpoint it builds in the published format: the first use downloads
and verifies, a later use reads the cache with the server stopped, a truncated body and a wrong
checksum are refused with the file kept aside, a broken download resumes with a range request,
and offline mode opens no connection. No test reaches any other address."""

import hashlib
import http.server
import json
import os
import threading
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.config import TaskConfig
from esc50.core.errors import Esc50Error
from esc50.core.plugin_api.hookspecs import hookimpl
from esc50.core.plugin_api.registry import load_registry
from tests.test_pretrained import KUMAR, weak_mxh64_1024

FILE = "kumar-test.pkl"


class Server:
    """A file server on 127.0.0.1 that honours ranges, and can cut its first response short
    (``cut``: bytes sent before the connection drops) or serve a body other than promised."""

    def __init__(self, body: bytes) -> None:
        self.body, self.cut, self.requests = body, None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(dict(self.headers))
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(server.body) - start))
                self.end_headers()
                payload = server.body[start:]
                if server.cut is not None:
                    payload, server.cut = payload[:server.cut], None
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/{FILE}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A checkpoint of Kumar's network in its published format, served on 127.0.0.1, and a
    private cache folder."""
    torch.manual_seed(0)
    path = tmp_path / "source.pkl"
    torch.save({f"module.{k}": v for k, v in weak_mxh64_1024().state_dict().items()}, path)
    body = path.read_bytes()
    server = Server(body)
    monkeypatch.setenv("ESC50_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ESC50_OFFLINE", raising=False)
    yield server, body
    server.stop()


def cache_folder() -> Path:
    return Path(os.environ["ESC50_CACHE"]) / "weights"


def registry_with(url: str, checksum: str | None, size: int | None = None):
    """The installed plugins plus a package registering the served file as ``kumar-test``."""
    @hookimpl(specname="register_weights")
    def hook(register):
        register("kumar-test", FILE, [url], size=size, checksum=checksum, licence="test",
                 citation="none")

    registry = load_registry()
    registry.register_plugin(types.SimpleNamespace(__name__="w", register_weights=hook), "test")
    return registry


def build(registry):
    return registry.create("model", "plugins.kumar:checkpoint=kumar-test", KUMAR, (1, 128, 64))


def test_hook_register_weights(published):
    server, body = published
    registry = registry_with(server.url, f"sha256:{hashlib.sha256(body).hexdigest()}",
                             len(body))
    torch.manual_seed(0)  # the new classifier head's initial weights
    model = build(registry)  # downloaded, verified, loaded
    assert (cache_folder() / FILE).read_bytes() == body and len(server.requests) == 1
    server.stop()
    torch.manual_seed(0)
    again = build(registry)  # the cache, with the server gone
    assert len(server.requests) == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])


def test_without_a_published_checksum_the_first_download_is_recorded(published):
    server, body = published
    logged = []
    registry = registry_with(server.url, None)
    from esc50.commands.weights import download

    path = download(registry, "kumar-test", logged.append)
    recorded = path.with_name(f"{FILE}.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(body).hexdigest() and "recorded" in logged[0]
    path.write_bytes(body[:-10] + b"0123456789")  # the cached file changes afterwards
    with pytest.raises(Esc50Error, match=f"the cached .*{FILE} does not match \\(its sha256 "
                                         f"is [0-9a-f]+, not {recorded}\\); it is kept aside"):
        build(registry)
    assert not path.exists() and len(list(path.parent.glob(f"{FILE}.rejected-*"))) == 1


def test_a_wrong_checksum_is_refused_and_the_file_kept_aside(published):
    server, body = published
    registry = registry_with(server.url, "sha256:" + "0" * 64)
    with pytest.raises(Esc50Error, match=f"the download of {FILE} does not match \\(its sha256 "
                                         f"is {hashlib.sha256(body).hexdigest()}, not 0+\\)"):
        build(registry)
    assert not (cache_folder() / FILE).exists()
    assert len(list(cache_folder().glob(f"{FILE}.part.rejected-*"))) == 1


def test_a_truncated_body_is_refused_by_its_size(published):
    server, body = published
    server.body = body[: len(body) // 2]  # a server that sends half and says that is all
    registry = registry_with(server.url, None, len(body))
    with pytest.raises(Esc50Error, match=f"has {len(body) // 2} bytes where {len(body)} are "
                                         "published"):
        build(registry)


def test_a_broken_download_resumes_with_a_range_request(published):
    server, body = published
    server.cut = len(body) // 3
    registry = registry_with(server.url, f"sha256:{hashlib.sha256(body).hexdigest()}")
    with pytest.raises(Esc50Error, match=f"could not download .*the connection dropped after "
                                         f"{len(body) // 3} of {len(body)} bytes"):
        build(registry)
    partial = cache_folder() / f"{FILE}.part"
    assert partial.stat().st_size == len(body) // 3
    build(registry)  # resumed where it stopped
    assert server.requests[-1]["Range"] == f"bytes={len(body) // 3}-"
    assert not partial.exists()


def test_offline_opens_no_connection_and_names_where_to_put_the_file(published, monkeypatch):
    server, _ = published
    monkeypatch.setenv("ESC50_OFFLINE", "1")
    registry = registry_with(server.url, None)
    with pytest.raises(Esc50Error, match=f"not in the cache and esc50 is offline .*download "
                                         f"{server.url} on a machine with network and place it "
                                         f"at .*weights/{FILE}"):
        build(registry)
    assert server.requests == []


def test_no_network_is_one_line_with_the_same_advice(published):
    server, _ = published
    server.stop()
    registry = registry_with(server.url, None)
    with pytest.raises(Esc50Error, match="could not download .*place it at"):
        build(registry)


def test_the_weights_commands_list_download_verify_and_path(published, tmp_path):
    result = CliRunner().invoke(cli, ["weights", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["cnn14"]["checksum"] == "md5:541141fa2ee191a88f24a3219fff024e"
    assert rows["cnn14"]["file"] == "Cnn14_mAP=0.431.pth" and rows["cnn14"]["cached"] is None
    assert rows["kumar-audioset"]["urls"][0].startswith("https://github.com/anuragkr90/")
    path = CliRunner().invoke(cli, ["weights", "path", "cnn14"]).output.strip()
    assert path == str(tmp_path / "cache" / "weights" / "Cnn14_mAP=0.431.pth")
    verify = CliRunner().invoke(cli, ["weights", "verify"])
    assert verify.exit_code == 0 and "cnn14: not cached" in verify.output
    offline = CliRunner().invoke(cli, ["--offline", "weights", "download", "cnn14"])
    assert offline.exit_code == 1 and "esc50 is offline" in offline.output
    unknown = CliRunner().invoke(cli, ["weights", "path", "nope"])
    assert unknown.exit_code == 1 and "no weights are registered as 'nope'" in unknown.output


def test_a_path_keeps_working_as_before(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "mx.pkl"
    torch.save(weak_mxh64_1024().state_dict(), path)
    model = load_registry().create("model", f"plugins.kumar:checkpoint={path}",
                                   TaskConfig().override(num_classes=50), (1, 128, 64))
    assert model.f1[0].weight.shape[0] == 1024


def test_a_misspelled_weights_name_is_refused_naming_the_known_ones():
    registry = load_registry()
    config = TaskConfig().override(num_classes=50, sample_rate=44_100, length_wav=220_500)
    with pytest.raises(Esc50Error, match=r"^model plugins.cnn14: checkpoint='cnn41' is neither a "
                                         r"weights name nor a file \(did you mean cnn14\? "
                                         r"names: cnn14, kumar-audioset; esc50 weights list"):
        registry.create("model", "plugins.cnn14:checkpoint=cnn41", config, (1, 64, 501))
