"""`esc50 report --html` in a real headless browser: the system's Chromium, driven by Playwright
(which downloads no browser here: it is given Chromium's path). The page must load without a
console error, every audio element must decode (a duration equal to the clip's), every figure
must render, and a confusion-matrix cell must answer a hover."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from esc50.cli.main import cli
from esc50.core.plugin_api.registry import load_registry
from esc50.core.training.trainer import Trainer
from tests.conftest import FREQS, SR, small_config, write_synthetic_dataset

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

PAGE_FACTS = """async () => {
  const audios = [...document.querySelectorAll('audio')];
  const durations = await Promise.all(audios.map(a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done(-1));
    a.load();
  })));
  return {
    durations,
    images: [...document.images].map(i => i.complete ? i.naturalWidth : 0),
    svgs: [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width),
    cells: [...document.querySelectorAll('table.confusion td')].map(c => c.title),
  };
}"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    data = write_synthetic_dataset(tmp / "data", clips_per_class_per_fold=2)
    for name, epochs in (("short", 1), ("long", 2)):
        config = small_config(data, output_dir=str(tmp / "runs"), run_name=name,
                              num_epochs=epochs, batch_size=4)
        Trainer(config, load_registry(), log=lambda _: None).fit()
    result = CliRunner().invoke(cli, ["report", str(tmp / "runs" / "short"),
                                      str(tmp / "runs" / "long"), "--out", str(tmp / "report"),
                                      "--html"])
    assert result.exit_code == 0, result.output
    return tmp / "report" / "report.html"


def test_the_page_is_self_contained(report_page):
    text = report_page.read_text()
    assert "<script" not in text and not re.search(r"(src|href)=\"(https?:|//|file:)", text)
    assert text.count("<audio") == 2 * 5 and text.count("data:audio/ogg;base64,") == 10
    assert "<h2>short</h2>" in text and "<h2>long</h2>" in text


def test_the_page_works_in_headless_chromium(report_page, tmp_path):
    browser_path = next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser_path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path,
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: problems.append(message.text)
                if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(report_page.as_uri())
        facts = page.evaluate(PAGE_FACTS)
        cell = page.locator("table.confusion td").nth(1)
        cell.hover()
        outline = cell.evaluate("c => getComputedStyle(c).outlineStyle")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert problems == []
    # 1 s clips, all decoded. Chromium's Ogg demuxer reports a Vorbis stream up to one short
    # block (256 samples) longer than the file's last granule position says (libsndfile reads
    # exactly 1 s back), so the duration may exceed the clip by that much and no more.
    vorbis_short_block = 256 / SR
    assert all(1.0 - 1e-3 <= d <= 1.0 + vorbis_short_block + 1e-3 for d in facts["durations"])
    assert len(facts["durations"]) == 10
    assert len(facts["images"]) == 10 and min(facts["images"]) > 0  # spectrograms rendered
    assert len(facts["svgs"]) == 2 and min(facts["svgs"]) > 0  # learning curves rendered
    assert len(facts["cells"]) == 2 * len(FREQS) ** 2
    assert all(re.fullmatch(r"true \d, predicted \d: \d+ of \d+ clips \(\d+%\)", title)
               for title in facts["cells"])
    assert outline == "solid"  # the hovered cell is outlined
    from matplotlib.image import imread

    shot = imread(tmp_path / "report.png")
    assert shot.shape[0] > 900 and np.std(shot) > 0.05  # a long page, not a blank one
