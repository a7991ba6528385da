"""Debian's headless Chromium, driven by Playwright (which cannot download browsers here),
and what the tests check on every page it shows."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def chromium() -> Iterator:
    """A launched Playwright browser. Skips the test where Chromium is not installed, except
    in CI (.ci/run installs it and sets POSTWERK_REQUIRE_BROWSER)."""
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("POSTWERK_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed: apt-get install chromium")
        pytest.skip("no chromium here (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        yield browser
        browser.close()


# Every visible text on the page against the background it is drawn on (the nearest
# ancestor with an opaque background), by WCAG 2's contrast ratio: 4.5 for text, 3 for
# large text (24 px, or 18.66 px bold). Returns the texts that fall short.
LOW_CONTRAST_TEXTS = """() => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const linear = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const luminance = ([r, g, b]) => 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  const background = element => {
    for (let e = element; e; e = e.parentElement) {
      const color = rgb(getComputedStyle(e).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  const short = [];
  for (const element of document.querySelectorAll("body *")) {
    const text = [...element.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent)
      .join("").trim();
    if (!text || !element.getClientRects().length) continue;
    const style = getComputedStyle(element);
    if (style.visibility === "hidden") continue;
    const [light, dark] = [luminance(rgb(style.color)), luminance(background(element))]
      .sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    if (ratio < needed) short.push(`${text.slice(0, 30)}: ${ratio.toFixed(2)} < ${needed}`);
  }
  return short;
}"""
