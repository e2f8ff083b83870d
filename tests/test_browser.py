"""Browser tests of the built book: every page with a kernel-free scrubber shows a frame, scrubs and plays; and of the
drawable drum on a standalone page (no book build), whose in-page numbers must equal twi_core.drum's.

Uses the built HTML in ``$TWI_BOOK_HTML``; without it, the book README command 1 built (``_build/html``) when that is
newer than every notebook, page and module; otherwise builds the book once per session at the smoke preset (slow).
Serves it on 127.0.0.1 (random port) and drives Debian's ``/usr/bin/chromium`` through Playwright. Without Chromium the
tests skip, unless ``TWI_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCRUBBER = ".twi-scrubber"
EXPLORER = ".twi-explorer"


def _chromium() -> str | None:
    for candidate in (os.environ.get("TWI_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _missing(reason: str):
    if os.environ.get("TWI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (TWI_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def book_html(tmp_path_factory) -> Path:
    env_html = os.environ.get("TWI_BOOK_HTML")
    if env_html:
        html = Path(env_html)
        if not (html / "index.html").exists():
            pytest.fail(f"TWI_BOOK_HTML={env_html} holds no built book (index.html missing)")
        return html
    built = ROOT / "_build" / "html"  # README command 1's output: tested when it is newer than every source
    if (built / "index.html").exists():
        sources = [*ROOT.glob("book/*.ipynb"), *ROOT.glob("book/*.md"), *ROOT.glob("twi_core/**/*.py"),
                   *ROOT.glob("twi_core/resources/*.js")]
        if (built / "index.html").stat().st_mtime > max(p.stat().st_mtime for p in sources):
            return built
    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "TWI_PRESET": "smoke", "MPLBACKEND": "Agg"}
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out)], env=env, capture_output=True,
                          text=True, timeout=3600)
    html = out / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        pytest.fail(f"book build failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return html


@pytest.fixture(scope="session")
def server(book_html):
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def browser():
    path = _chromium()
    if path is None:
        _missing("Chromium not found (install Debian's package: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright for Python is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _scrubber_pages(book_html: Path) -> list[str]:
    """Pages whose embedded widget state holds a scrubber (its CSS class appears in the page)."""
    pages = []
    for page in sorted(book_html.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        # the class as the embedded widget state spells it ("..."), not as an API page mentions the constant ('...')
        if '"twi-scrubber"' in page.read_text(encoding="utf-8", errors="replace"):
            pages.append(page.relative_to(book_html).as_posix())
    return pages


def _visible_frame_src(page, box) -> str | None:
    """The pixels of the frame the scrubber shows, as a PNG data URL (image ``src`` values are blob URLs that change
    whenever a frame's view is re-rendered, so pixels are what is compared)."""
    return box.evaluate(
        """(box) => {
            const imgs = Array.from(box.querySelectorAll('img'));
            const shown = imgs.filter(i => i.offsetParent !== null && i.getBoundingClientRect().width > 0
                                           && i.complete && i.naturalWidth > 0);
            if (!shown.length) return null;
            const img = shown[0];
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            canvas.getContext('2d').drawImage(img, 0, 0);
            return canvas.toDataURL('image/png');
        }""")


def _first_frame(page, box, rel: str) -> str:
    """Scroll ``box`` into view, wait until it shows a decoded image, and return that frame's pixels."""
    box.scroll_into_view_if_needed()
    page.wait_for_function("(b) => Array.from(b.querySelectorAll('img')).some(i => i.offsetParent !== null "
                           "&& i.naturalWidth > 0)", arg=box.element_handle(), timeout=30000)
    first = _visible_frame_src(page, box)
    assert first and len(first) > 100, f"{rel}: no visible frame"
    return first


def test_book_has_scrubber_pages(book_html):
    assert _scrubber_pages(book_html), "no page of the built book contains a scrubber"


def test_scrubbers_show_scrub_and_play(book_html, server, browser):
    pages = _scrubber_pages(book_html)
    assert pages
    for rel in pages:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors, outside = [], []
        # sphinx-thebe's script declares THEBE_JS_URL twice on every page (the theme's, unrelated to widgets)
        page.on("pageerror", lambda exc: errors.append(str(exc)) if "THEBE_JS_URL" not in str(exc) else None)
        # The widget manager must come with the book (MathJax from its CDN is the theme's business, not checked here).
        page.on("request", lambda req: outside.append(req.url) if req.url.startswith("http")
                and not req.url.startswith(server) and ("widgets" in req.url or "require" in req.url) else None)
        page.goto(f"{server}/{rel}", wait_until="load")
        boxes = page.locator(SCRUBBER)
        boxes.first.wait_for(state="visible", timeout=60000)
        assert boxes.count() >= 1
        for k in range(boxes.count()):
            box = boxes.nth(k)
            first = _first_frame(page, box, rel)
            # Move the slider: keyboard on its handle (End jumps to the last frame).
            handle = box.locator(".noUi-handle, .widget-slider .ui-slider-handle, input[type=range]").first
            handle.focus()
            page.keyboard.press("End")
            page.wait_for_timeout(300)
            last = _visible_frame_src(page, box)
            assert last and last != first, f"{rel}: moving the slider did not change the displayed frame"
            page.keyboard.press("Home")
            page.wait_for_timeout(300)
            assert _visible_frame_src(page, box) == first
            # Play advances frames.
            box.locator("button").first.click()
            page.wait_for_timeout(1500)
            played = _visible_frame_src(page, box)
            assert played != first, f"{rel}: Play did not advance the frames"
        assert not errors, f"{rel}: JavaScript errors: {errors}"
        assert not outside, f"{rel}: the widget manager was requested from outside the book: {outside[:5]}"
        page.close()


def _pages_with(book_html: Path, marker: str) -> list[str]:
    return [p.relative_to(book_html).as_posix() for p in sorted(book_html.rglob("*.html"))
            if "_static" not in p.parts and "_sources" not in p.parts
            and marker in p.read_text(encoding="utf-8", errors="replace")]


def test_wave_explorer_switches_views_and_plays_without_a_kernel(book_html, server, browser):
    pages = _pages_with(book_html, '"twi-explorer"')
    assert pages, "no page of the built book contains a wave explorer"
    for rel in pages:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)) if "THEBE_JS_URL" not in str(exc) else None)
        page.goto(f"{server}/{rel}", wait_until="load")
        box = page.locator(EXPLORER).first
        box.wait_for(state="visible", timeout=60000)
        first = _first_frame(page, box, rel)
        select = box.locator("select").first
        options = select.locator("option")
        assert options.count() >= 2, f"{rel}: the explorer offers one view only"
        seen = {first}
        for k in range(1, options.count()):                   # every other sample and channel shows another frame
            select.select_option(index=k)
            page.wait_for_timeout(250)
            shown = _visible_frame_src(page, box)
            assert shown and shown != first, f"{rel}: view {k} shows the same frame as view 0"
            seen.add(shown)
        assert len(seen) >= 2
        select.select_option(index=0)
        page.wait_for_timeout(250)
        assert _visible_frame_src(page, box) == first, f"{rel}: switching back does not restore view 0"
        handle = box.locator(".noUi-handle, .widget-slider .ui-slider-handle, input[type=range]").first
        handle.focus()
        page.keyboard.press("End")
        page.wait_for_timeout(300)
        assert _visible_frame_src(page, box) != first, f"{rel}: the time slider does not move the frames"
        page.keyboard.press("Home")
        page.wait_for_timeout(300)
        box.locator("button").first.click()
        page.wait_for_timeout(1500)
        assert _visible_frame_src(page, box) != first, f"{rel}: Play did not advance the frames"
        assert not errors, f"{rel}: JavaScript errors: {errors}"
        page.close()


# ----------------------------------------------------------------------------------------------------------------------
# The drawable drum: a standalone page from twi_core.viz.drum_widget (no book build), checked against twi_core.drum
# ----------------------------------------------------------------------------------------------------------------------

DRUM = ".twi-drum"


@pytest.fixture
def drum_page(tmp_path, browser):
    from twi_core.viz import drum_widget

    path = tmp_path / "drum.html"
    path.write_text(drum_widget.drawable_drum_page(), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri(), wait_until="load")
    page.locator(f"{DRUM}[data-ready='1']").wait_for(timeout=30000)
    yield page, drum_widget.drum_config(), errors
    page.close()


def _python_run(mask, cfg):
    """Fundamental, peaks and probe of ``mask`` by twi_core.drum, at the page's settings."""
    from twi_core import drum

    run = drum.simulate(mask, cfg["steps"], cfg["dt"], cfg["c"])
    trace = run.trace[0]
    return (drum.fundamental_frequency(trace, cfg["dt"]),
            drum.spectral_peaks(trace, cfg["dt"], count=cfg["n_modes"]), tuple(run.probes[0, 0]))


def test_drawable_drum_mouse_stroke_paints_and_rings(drum_page):
    page, cfg, errors = drum_page
    n = cfg["grid"]
    root = page.locator(DRUM).first
    assert root.get_attribute("data-state") == "done"                 # the initial shape has been struck already
    assert page.evaluate("() => window.twiDrum.clear().run()") is None
    assert root.get_attribute("data-state") == "empty" and root.get_attribute("data-free-cells") == "0"
    # one horizontal stroke with the real mouse (Chromium's input events, pointerdown / move / up)
    board = page.locator(f"{DRUM} canvas").first.bounding_box()
    cell = board["width"] / n

    def at(i, j):
        return board["x"] + (j + 0.5) * cell, board["y"] + (i + 0.5) * cell

    row, c0, c1 = 20, 8, 34
    page.mouse.move(*at(row, c0))
    page.mouse.down()
    page.mouse.move(*at(row, c1), steps=6)                           # a fast stroke: few events, no gaps allowed
    page.mouse.up()
    painted = np.array(page.evaluate("() => window.twiDrum.getMask()"), dtype=bool)
    r = cfg["brush"]
    expected = np.zeros((n, n), dtype=bool)
    expected[row - r:row + r + 1, c0 - r:c1 + r + 1] = True           # the brush's square dab swept along the row
    assert np.array_equal(painted, expected), f"painted {np.argwhere(painted ^ expected).tolist()[:8]} wrongly"
    # the stroke ended a run (the page rings on pointer-up); it is a (2r+1) x (c1-c0+2r+1) rectangle of free neurons
    assert root.get_attribute("data-state") == "done"
    f_page = float(root.get_attribute("data-fundamental"))
    f_py, _, probe = _python_run(painted, cfg)
    assert abs(f_page / f_py - 1) < 5e-3
    assert abs(f_page / f_py - 1) < 1e-9                             # same scheme, same order of operations
    assert root.get_attribute("data-probe") == f"{probe[0]},{probe[1]}"
    assert not errors, errors


def test_drawable_drum_square_matches_twi_core_drum(drum_page):
    from twi_core import drum, sound

    page, cfg, errors = drum_page
    n, side = cfg["grid"], 30
    mask = np.zeros((n, n), dtype=bool)
    mask[5:5 + side + 1, 9:9 + side + 1] = drum.square_mask(side)     # off-centre, so no symmetry of the board helps
    result = page.evaluate("(m) => window.twiDrum.setMask(m).run()", mask.astype(int).tolist())
    f_py, peaks_py, probe = _python_run(mask, cfg)
    f_page = page.evaluate("() => window.twiDrum.fundamental()")
    assert result["fundamental"] == f_page
    assert float(page.locator(DRUM).first.get_attribute("data-fundamental")) == f_page
    assert result["freeCells"] == (side - 1) ** 2 and tuple(result["probe"]) == probe
    assert abs(f_page / f_py - 1) < 5e-3                             # the brief's tolerance ...
    assert abs(f_page / f_py - 1) < 1e-9                             # ... and what the transcription actually achieves
    # and both ring where the theory of the discrete square says (trace length limits the peak's accuracy)
    assert f_page == pytest.approx(float(drum.discrete_square_fundamental(side, cfg["dt"], cfg["c"])), rel=1e-4)
    np.testing.assert_allclose(result["peaks"], peaks_py, rtol=1e-9)
    # the tone is sound.tone on the eigenvalues of those peaks, sample for sample (float32 rounding)
    samples = np.array(page.evaluate("() => Array.from(window.twiDrum.toneSamples())"))
    lam = drum.eigenvalue_from_frequency(np.asarray(peaks_py), cfg["dt"], cfg["c"])
    wave = sound.tone(lam, reference=cfg["reference_eigenvalue"], base_hz=cfg["base_hz"], seconds=cfg["seconds"],
                      sample_rate=cfg["sample_rate"], decay_s=cfg["decay_s"])
    assert samples.shape == wave.shape
    np.testing.assert_allclose(samples, wave, atol=2e-6)
    # the button strikes and plays without an error (a click is the user gesture Web Audio asks for)
    page.get_by_role("button", name="strike and listen").click()
    page.wait_for_timeout(300)
    assert page.locator(DRUM).first.get_attribute("data-audio") == "played"
    assert not errors, errors


def test_drawable_drum_isospectral_presets_ring_alike(drum_page):
    page, cfg, errors = drum_page
    f = {}
    for name in ("gww1", "gww2"):
        f[name] = page.evaluate(f"() => window.twiDrum.preset('{name}').run().fundamental")
    mask = np.array(page.evaluate("() => window.twiDrum.getMask()"), dtype=bool)
    assert abs(f["gww1"] / f["gww2"] - 1) < 1e-6                       # different shapes, one fundamental
    assert abs(f["gww2"] / _python_run(mask, cfg)[0] - 1) < 1e-9
    assert not errors, errors


def test_every_table_downloads_as_csv(book_html, server, browser):
    """Each table of a chapter has a "⤓ CSV" link (book/_static/table-csv.js); the file it downloads holds the
    table's cells, header included, one row per table row."""
    import csv
    import io

    pages = [rel for rel in _pages_with(book_html, "<table") if not rel.startswith(("api_", "genindex", "search"))]
    assert pages, "no page of the built book has a table"
    for rel in pages[:3]:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{server}/{rel}", wait_until="load")
        links = page.locator("article a.twi-csv")
        page.wait_for_function("() => document.querySelectorAll('article a.twi-csv').length > 0", timeout=30000)
        n_tables = page.evaluate("() => Array.from(document.querySelectorAll('article table')).filter("
                                 "t => !t.closest('.twi-explorer, .twi-scrubber, .twi-drum')).length")
        assert links.count() == n_tables, f"{rel}: {links.count()} CSV links for {n_tables} tables"
        tables = page.locator("article table[data-twi-csv]")
        with page.expect_download() as info:
            links.first.click()
        text = Path(info.value.path()).read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        n_rows = tables.first.evaluate("(t) => t.rows.length")
        first_cell = tables.first.evaluate("(t) => t.rows[t.rows.length - 1].cells[0].textContent.trim()")
        assert len(rows) == n_rows, f"{rel}: the CSV has {len(rows)} rows, the table {n_rows}"
        assert len({len(r) for r in rows}) == 1, f"{rel}: ragged CSV rows {[len(r) for r in rows]}"
        assert " ".join(first_cell.split()) in rows[-1], f"{rel}: the last row's first cell is not in the CSV"
        page.close()
