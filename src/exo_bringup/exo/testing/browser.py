"""Debian's headless Chromium driven by Selenium, for the console's browser test and benchmark.

Both the browser and its driver are the system's (``chromium``, ``chromedriver`` from Debian's packages):
nothing is downloaded at run time (``SE_OFFLINE`` keeps Selenium Manager off the network).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: The system's browser and driver (None where they are not installed).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: The flags Chromium needs on a machine without internet (otherwise it stalls on background connections).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1100")


def chromium_driver(profile: Path):
    """Selenium's Chrome driver on the system's chromium and chromedriver, with a fresh profile folder.

    Raises:
        FileNotFoundError: chromium or chromedriver is not installed (Debian: apt install chromium chromium-driver).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if CHROMIUM is None or CHROMEDRIVER is None:
        raise FileNotFoundError("chromium and chromedriver are needed (Debian: apt install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
