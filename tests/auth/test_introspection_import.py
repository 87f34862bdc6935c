"""authlib's OAuth client (token introspection) is imported only when it is configured.

authlib releases before 1.8 import httpx there, which is not a dependency: imported at
start-up, it made ``import asgi_adminstats`` fail with them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import sys
from pathlib import Path
import asgi_adminstats
from asgi_adminstats.auth import TokenVerifier
from support.loopback import make_settings
TokenVerifier(make_settings(Path(sys.argv[1])))
print(" ".join(sorted(name for name in sys.modules if name.startswith("authlib"))))
"""


def test_a_jwt_only_setup_never_imports_authlib(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert result.stdout.strip() == ""
