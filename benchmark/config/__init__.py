"""The run configuration: one dataclass, presets shipped as YAML, and the command-line flags derived
from it.
"""
