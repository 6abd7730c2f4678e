"""The one exception bad media turns into."""


class MediaError(ValueError):
    """An input could not be decoded; the message is a one-line reason for a person."""
