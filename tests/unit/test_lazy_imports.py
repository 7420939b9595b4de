"""Libraries only some routes need stay out of a started gateway's memory until first use.

Pillow (images) and PyYAML (``/openapi.yaml``) cost about 15 MB of resident memory together; a
gateway on the embedded default that has served neither must not have loaded them. Checked in a
fresh interpreter, since this test process may have imported both already.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from gateway.app import create_app
from gateway.config.settings import load_settings
create_app(load_settings(None, env={}))
print(",".join(sorted(name for name in ("PIL", "yaml") if name in sys.modules)))
"""


def test_building_the_default_gateway_loads_neither_pillow_nor_yaml() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == ""
