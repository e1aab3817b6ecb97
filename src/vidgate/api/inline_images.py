"""Create-time refusal of images sent inline as data: URIs that the worker's fetch would refuse.

Everything about a data: URI is visible without fetching (its form, its base64, its size, whether its
bytes are an image), so a bad one is a 400 at create naming the image, never a task that fails later.
"""

from __future__ import annotations

from vidgate.domain.requests import VideoSpec
from vidgate.errors import InvalidRequest
from vidgate.net.datauri import DataUriRejected, check_image_data_uri, is_data_uri
from vidgate.runtime import Runtime


def check_inline_images(
    runtime: Runtime, spec: VideoSpec, *, first_param: str = "images", indexed: bool = True
) -> None:
    """Images are named as `check_urls_fetchable` names them: `images[1]`, or `input_reference`."""
    for param, ref in spec.named_images(first_param, indexed):
        if not is_data_uri(ref):
            continue
        try:
            check_image_data_uri(ref, max_bytes=runtime.settings.fetch_max_image_bytes)
        except DataUriRejected as exc:
            raise InvalidRequest(
                f"'{param}' is not usable: {exc.reason}", param=param, code="invalid_image"
            ) from exc
