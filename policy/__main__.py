"""CrossGuard entry point: `pulumi preview --policy-pack policy` runs this file (wiring only).

The pack is self-contained: everything it imports lives in this folder, so `pulumi policy
publish` ships it as it is. Pulumi runs this file as a script from the pack's folder, which may
have any name once published, so the folder is loaded as the package `policy` by path.
"""

import importlib.util
import sys
from pathlib import Path

if "policy" not in sys.modules:
    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location(
        "policy", _here / "__init__.py", submodule_search_locations=[str(_here)]
    )
    assert _spec is not None and _spec.loader is not None
    sys.modules["policy"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["policy"])

from pulumi_policy import PolicyPack

from policy.adapter import PACK_NAME, policies

PolicyPack(name=PACK_NAME, policies=policies())
