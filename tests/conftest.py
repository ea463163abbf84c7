"""Test-wide settings: quiet TensorFlow, and the real TrashNet folder when it sits beside the project."""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRASHNET_DIR = PROJECT_ROOT.parent / "shared" / "data" / "trashnet"
