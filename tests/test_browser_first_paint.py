"""Real-browser check of a fresh server's very first page load: the sidebar must never show Streamlit's file-based
list of ``pages/`` ("app", "attack lab", "home", … in lower case), not even for the moment before ``app.py``'s
navigation replaces it (issue 21). Streamlit sends that list only while no script in the process has called
``st.navigation`` yet, so this module starts its own server (module scope) and its one test is that server's first
visitor. Without /usr/bin/chromium the test skips, except under CI (``$CI`` set), where it fails.
"""

from __future__ import annotations

import pytest
from test_browser import ROOT, SHOTS, _no_exception, _settle, page, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

# From the first byte of the document: every text a sidebar link shows, by a MutationObserver (each DOM change) and
# a 50 ms poll (belt and braces), in the order first seen.
RECORD_SIDEBAR_LINKS = """
window.__sidebarLinks = [];
const record = () => {
  for (const link of document.querySelectorAll('[data-testid="stSidebar"] a, [data-testid="stSidebarNav"] a')) {
    const text = link.innerText.trim().split("\\n").pop().trim();  // the title, after a Material icon's name
    if (text && !window.__sidebarLinks.includes(text)) window.__sidebarLinks.push(text);
  }
};
new MutationObserver(record).observe(document, {childList: true, subtree: true, characterData: true});
setInterval(record, 50);
"""


def file_based_names() -> set[str]:
    """What Streamlit's automatic multipage mode calls the pages: the entry script and each ``pages/*.py``, by file
    name with underscores as spaces."""
    return {"app"} | {path.stem.replace("_", " ") for path in (ROOT / "pages").glob("*.py")}


def test_the_first_paint_never_lists_pages_by_file_name(page, server):
    page.add_init_script(RECORD_SIDEBAR_LINKS)
    page.goto(server)
    page.wait_for_selector('[data-testid="stPlotlyChart"]')  # Home's comparison: app.py and its page have run
    _settle(page)
    _no_exception(page)
    page.screenshot(path=str(SHOTS / "first_paint_home.png"), full_page=True)
    seen = page.evaluate("window.__sidebarLinks")
    assert seen is not None, "the recording script did not run"
    assert {"Home", "λ explorer", "Attack lab", "Models & data"} <= set(seen), f"app.py's navigation: {seen}"
    flashed = sorted(file_based_names() & set(seen))
    assert not flashed, f"the sidebar showed Streamlit's file-based page list {flashed} (all links seen: {seen})"
