"""Uploaded files, read into memory only (never spooled to disk) and hashed there."""

from __future__ import annotations

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from hashbank.service.config import ServiceConfig


def _first_file(body: bytes, content_type: str) -> bytes:
    """The ``file`` part (or the first part with a filename) of a multipart body."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart upload without a boundary")
    parts: list[tuple[bytes, bytearray]] = []
    header = bytearray()
    value = bytearray()

    def on_part_begin() -> None:
        parts.append((b"", bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])

    def on_header_end() -> None:
        if header.lower() == b"content-disposition":
            parts[-1] = (bytes(value), parts[-1][1])
        header.clear()
        value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:
        raise HTTPException(400, f"malformed multipart upload: {exc}") from None
    for disposition, data in parts:
        if b'name="file"' in disposition or b"filename=" in disposition:
            return bytes(data)
    raise HTTPException(400, "multipart upload has no file part (send it as the 'file' field)")


async def read_upload(request: Request, config: ServiceConfig) -> bytes:
    """The uploaded bytes: a multipart ``file`` field or the raw request body."""
    return upload_of(await request.body(), request.headers.get("content-type", ""), config)


def upload_of(body: bytes, content_type: str, config: ServiceConfig) -> bytes:
    """The file in a request body (a multipart ``file`` field or the body itself), or a 4xx why not."""
    data = _first_file(body, content_type) if content_type.startswith("multipart/form-data") else body
    if not data:
        raise HTTPException(400, "the upload is empty")
    if len(data) > config.max_upload_bytes:
        raise HTTPException(413, f"upload is {len(data)} bytes, over the {config.max_upload_bytes}-byte limit")
    return data
