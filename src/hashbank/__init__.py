"""hashbank: find, keep and share fingerprints of known child sexual abuse media.

The library entry points are re-exported here; see DESIGN.md for the layout.
"""

from hashbank.media import MediaError, MediaLimits
from hashbank.signals.compute import HashResult, hash_bytes, hash_file

__version__ = "0.1.0"

__all__ = ["HashResult", "MediaError", "MediaLimits", "__version__", "hash_bytes", "hash_file"]
