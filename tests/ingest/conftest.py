"""Make the inline fixtures importable as `ingest_fixtures` in these tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
