"""The HTML report in a real browser: headless Chromium renders it without console errors, every figure has a
non-zero rendered size (PNG figures decoded, inline SVGs laid out), and a screenshot is not blank.

Needs Chromium (Debian: ``apt-get install chromium``) and matplotlib; skipped, with the reason, without them.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastmlp.cli import main

pytest.importorskip("matplotlib", reason="the report's figures need matplotlib (pip install 'fastmlp[plot]')")
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="headless Chromium is not installed (Debian: apt-get "
                                                        "install chromium); the report's browser check needs it")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=4000"]

# appended to a copy of the report: once the page has loaded, every figure's rendered size (and a PNG's decoded
# size) is written into the DOM, which --dump-dom returns
PROBE = """<pre id="fastmlp-probe"></pre><script>
window.addEventListener("load", function () {
  var out = [];
  document.querySelectorAll("figure").forEach(function (f) {
    var el = f.querySelector("img, svg");
    var box = el ? el.getBoundingClientRect() : {width: 0, height: 0};
    out.push({tag: el ? el.tagName.toLowerCase() : null, width: box.width, height: box.height,
              natural: el && el.tagName.toLowerCase() === "img" ? el.naturalWidth : null});
  });
  document.getElementById("fastmlp-probe").textContent = JSON.stringify(out);
});
</script>"""


def _chromium(tmp_path, *args):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    p = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                       timeout=120)
    return p


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "b.db"
    r = CliRunner().invoke(main, ["grid", "--dataset", "xor", "--n-samples", "40", "--hidden", "3", "--hidden",
                                  "3x2", "--init", "zeros,constant,he_normal", "--scale", "0.3,1,3", "--seeds",
                                  "2", "--steps", "40", "-q", "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_report_renders_in_chromium(db, tmp_path, fmt):
    page = tmp_path / f"report-{fmt}.html"
    r = CliRunner().invoke(main, ["report", str(db), "--figure-format", fmt, "-o", str(page)])
    assert r.exit_code == 0, r.output
    html = page.read_text()
    n_figures = html.count("<figure>")
    assert n_figures == 3
    probe = tmp_path / f"probe-{fmt}.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    p = _chromium(tmp_path, "--window-size=1280,900", "--dump-dom", probe.as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console           # no script error, no failed resource, nothing logged
    found = re.search(r'<pre id="fastmlp-probe">(.*?)</pre>', p.stdout, re.S)
    assert found and found.group(1), p.stdout[-2000:]
    sizes = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(sizes) == n_figures
    for s in sizes:
        assert s["tag"] == ("img" if fmt == "png" else "svg")
        assert s["width"] > 100 and s["height"] > 50, s
        if fmt == "png":
            assert s["natural"] > 100, s     # the PNG decoded
    if fmt == "png":
        shot = tmp_path / "report.png"
        p = _chromium(tmp_path, "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}",
                      page.as_uri())
        assert p.returncode == 0 and shot.is_file(), p.stderr[-2000:]
        from matplotlib.image import imread
        pixels = imread(str(shot))
        assert pixels.shape[0] >= 2000 and pixels.shape[1] == 1280
        assert pixels[..., :3].std() > 0.05          # not a blank page
        keep = Path(__file__).resolve().parents[1] / "out"
        if keep.is_dir():                            # for a person to look at: out/ is ignored by git
            shutil.copy(shot, keep / "report-screenshot.png")
