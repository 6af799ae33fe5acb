"""The dashboard in a real browser: Debian's headless Chromium driven by selenium through Debian's chromium-driver
(/usr/bin/chromedriver: selenium's own manager would download a driver), against the real uvicorn server over a
real PostgreSQL. Few and fast: the page loads with chart and table, a filter changes both, a bucket lists its
posts, and an attacker's post stays text."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from murmur.web.app import STATIC, create_app
from murmur.web.server import WebServer
from murmur.web.views import Context
from tests.test_web import TERMS, XSS, seed

DRIVER = Path("/usr/bin/chromedriver")
BROWSERS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
CHARTS = (STATIC / "vendor" / "uPlot.iife.min.js").is_file()

selenium = pytest.importorskip("selenium", reason="selenium is a dev dependency: pip install -e '.[dev]'")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not DRIVER.is_file() or not any(Path(b).is_file() for b in BROWSERS),
    reason="no chromium and chromium-driver: `apt-get install chromium chromium-driver` (make test installs them)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="murmur-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = next(b for b in BROWSERS if Path(b).is_file())
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    except WebDriverException as err:
        pytest.skip(f"chromium did not start under chromium-driver: {str(err).splitlines()[0]}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def dashboard(conn: psycopg.Connection, db_url: str) -> Iterator[str]:
    seed(conn)
    server = WebServer("127.0.0.1:0", create_app(db_url, context=Context(terms=TERMS)))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def loaded(driver: Any, after: str = "") -> str:
    """Wait for the page to finish rendering a view (a new `data-loaded` stamp than `after`); returns the stamp."""
    WebDriverWait(driver, 15).until(lambda d: (d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
                                               or "") not in ("", after))
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")


def table_rows(driver: Any) -> list[str]:
    return [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#tables tbody tr")]


def legend(driver: Any) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#charts [data-chart=posts] .u-legend .u-series th")]


def test_a_filter_changes_the_chart_and_the_table_and_the_url(browser: Any, dashboard: str) -> None:
    browser.get(dashboard + "/?view=trend&by=day")
    stamp = loaded(browser)
    before = table_rows(browser)
    assert len(before) == 6
    if CHARTS:
        assert len(browser.find_elements(By.CSS_SELECTOR, "#charts canvas")) >= 2
        assert "rednote · 小红书" in legend(browser)
    else:
        assert browser.find_element(By.ID, "nocharts").is_displayed()
    term = browser.find_element(By.NAME, "term")
    term.send_keys("TikTok refugee")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    loaded(browser, stamp)
    after = table_rows(browser)
    assert after != before and len(after) == 1 and "TikTok refugee" in after[0]
    assert "term=TikTok+refugee" in browser.current_url
    if CHARTS:
        assert [label for label in legend(browser) if "·" in label] == ["mastodon · TikTok refugee"]
    browser.get(browser.current_url)  # the URL reproduces the view
    loaded(browser)
    assert table_rows(browser) == after and browser.find_element(By.NAME, "term").get_attribute("value") == \
        "TikTok refugee"


def test_a_bucket_lists_its_posts(browser: Any, dashboard: str) -> None:
    browser.get(dashboard + "/?view=trend&by=day&source=mastodon&term=RedNote")
    stamp = loaded(browser)
    browser.find_element(By.CSS_SELECTOR, "#tables button.bucket").click()
    loaded(browser, stamp)
    assert "view=posts" in browser.current_url and "bucket=2025-01-13" in browser.current_url
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#tables td a")]
    assert links == [f"https://mastodon.example/m{i}" for i in (1, 2, 3)]


def test_an_attackers_post_is_shown_as_text_and_its_javascript_link_is_not_clickable(browser: Any,
                                                                                   dashboard: str) -> None:
    browser.get(dashboard + "/?view=posts&by=hour&bucket=2025-01-14T12:00:00Z")
    loaded(browser)
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#tables td")]
    assert XSS in cells and "<i>evil</i>" in cells and "javascript:alert(3)" in cells
    assert not browser.find_elements(By.CSS_SELECTOR, "#tables img, #tables script, #tables i, #tables b")
    assert not browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript']")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018  (no alert() ran)


def test_a_token_typed_once_in_the_page_opens_the_data(browser: Any, conn: psycopg.Connection, db_url: str) -> None:
    from tests.test_web import TOKEN

    seed(conn)
    server = WebServer("127.0.0.1:0", create_app(db_url, context=Context(terms=TERMS), token=TOKEN))
    server.start()
    try:
        browser.get(server.url + "/?view=trend")
        WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "token-box").is_displayed())
        assert not table_rows(browser)
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-box button").click()
        loaded(browser)
        assert len(table_rows(browser)) == 6 and not browser.find_element(By.ID, "token-box").is_displayed()
        assert TOKEN not in browser.current_url
    finally:
        browser.delete_all_cookies()
        browser.execute_script("sessionStorage.clear()")
        server.stop()
