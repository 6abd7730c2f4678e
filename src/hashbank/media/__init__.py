"""Safe decoding of media into what fingerprints need; nothing is kept."""

from hashbank.media.errors import MediaError
from hashbank.media.image import FORMATS, LumaImage, decode_luma
from hashbank.media.limits import MediaLimits

__all__ = ["FORMATS", "LumaImage", "MediaError", "MediaLimits", "decode_luma"]
