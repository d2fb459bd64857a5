"""The page at ``GET /`` in a real headless browser (Debian's chromium + chromedriver,
driven by selenium): it lists the served models, takes an uploaded Fashion-MNIST
test image and shows the model's top-5, which must equal the SavedModel's own.

Skipped, saying why, where chromium, chromedriver or selenium is missing
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_serving import COPY, _png, images, reference, server, trained  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER and SELENIUM),
    reason="needs a headless browser: apt-get install chromium chromium-driver, "
    "pip install selenium (kimnet[dev])",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_page_classifies_an_uploaded_image(browser, server, reference, images, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    image = tmp_path / "test-image.png"
    image.write_bytes(_png(images[3]))
    expected = reference.predict_bytes([image.read_bytes()])

    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    select = Select(browser.find_element(By.ID, "model"))
    labels = [option.text for option in select.options]
    assert f"{COPY}, version 1" in labels
    select.select_by_visible_text(f"{COPY}, version 1")
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") != "busy")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", (
        browser.find_element(By.ID, "error").text
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#top5 li")
    names = [row.get_attribute("data-name") for row in rows]
    scores = [float(row.get_attribute("data-score")) for row in rows]
    assert names == [n.decode() if isinstance(n, bytes) else n for n in expected["top5_names"][0]]
    np.testing.assert_allclose(scores, expected["top5_scores"][0], atol=1e-5)
    assert all(row.is_displayed() for row in rows)  # rendered, not only in the DOM
    assert browser.find_element(By.ID, "preview").get_attribute("src").startswith("blob:")
