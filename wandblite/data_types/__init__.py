"""wandb's rich value types: Image, Video, Audio, Histogram, Table, Object3D, Molecule, Html (and Chart, Graph).

Contract with the core (``wandblite.run``):

* any ``Media`` instance inside a logged value is replaced by ``obj.to_json(store, key, step)``,
  a plain JSON dict shaped like wandb's history JSON (docs/semantics.md section 6); its bytes are in the
  ``MediaStore`` before the dict exists;
* a list/tuple whose first element is a ``Media`` goes to ``encode_sequence``;
* a top-level matplotlib figure (``is_matplotlib_figure``) becomes ``figure_to_image(v)``;
* numpy arrays of more than 32 elements become ``histogram_json(arr, 32)``.

Constructors validate their input and raise ``wandblite.errors.DataError`` (a ValueError and a
TypeError) with wandb's message texts, or ``FileNotFoundError`` for a missing path.

Imports: stdlib and numpy; Pillow when an image/video is built; matplotlib and pandas never
(figures and DataFrames are recognised by their class's module and used through their methods).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wandblite.data_types._base import Media, jsonable, log
from wandblite.data_types.audio import Audio
from wandblite.data_types.chart import Chart
from wandblite.data_types.graph import Graph
from wandblite.data_types.histogram import Histogram, histogram_json
from wandblite.data_types.html import Html
from wandblite.data_types.image import Image, figure_to_image, is_matplotlib_figure
from wandblite.data_types.molecule import Molecule
from wandblite.data_types.object3d import Object3D
from wandblite.data_types.table import Table
from wandblite.data_types.video import Video

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = [
    "Audio",
    "Chart",
    "Graph",
    "Histogram",
    "Html",
    "Image",
    "Media",
    "Molecule",
    "Object3D",
    "Table",
    "Video",
    "encode_sequence",
    "figure_to_image",
    "histogram_json",
    "is_matplotlib_figure",
]

_root_log = logging.getLogger()  # wandb warns about image sizes on the root logger


def _images_json(items: list[Image], store: MediaStore, key: str, step: int) -> dict[str, Any]:
    if len(items) > Image.MAX_ITEMS:
        log.warning(f"Only {Image.MAX_ITEMS} Image will be uploaded.")
        items = items[: Image.MAX_ITEMS]
    first = items[0]
    if any((im.width, im.height) != (first.width, first.height) for im in items):
        _root_log.warning("Images sizes do not match. This will causes images to be display incorrectly in the UI.")
    each = [im.to_json(store, key, step) for im in items]
    out: dict[str, Any] = {
        "_type": "images/separated",
        "width": first.width,
        "height": first.height,
        "format": first.format,
        "count": len(items),
        "filenames": [j["path"] for j in each],
    }
    if first.caption is not None:
        out["captions"] = [im.caption if im.caption is not None else "" for im in items]
    if any("masks" in j for j in each):
        out["all_masks"] = [j.get("masks") for j in each]
    if any("boxes" in j for j in each):
        out["all_boxes"] = [j.get("boxes") for j in each]
    out["images"] = each
    return out


def encode_sequence(
    items: Sequence[Any],
    store: MediaStore,
    key: str,
    step: int,
    encode: Callable[[Any], Any] | None = None,
) -> Any:
    """The history JSON of a list whose first element is ``Media``.

    All images -> ``images/separated`` (at most 108, sizes from the first image); all videos ->
    ``videos``; all audio -> ``audio``; all Object3D -> ``object3D``; all Molecule -> ``molecule``
    (wandb's shape, with ``molecules``: each one's JSON); anything else -> a plain
    list of each item's JSON, with non-media items passed to ``encode`` (the core's value
    encoder; without it they must already be JSON values or numpy values).
    """
    items = list(items)
    kinds = {type(i) for i in items}
    if len(kinds) == 1:
        (kind,) = kinds
        if issubclass(kind, Image):
            return _images_json(items, store, key, step)
        if issubclass(kind, Video):
            each = [v.to_json(store, key, step) for v in items]
            out: dict[str, Any] = {"_type": "videos", "count": len(each), "videos": each}
            if any(v.caption is not None for v in items):
                out["captions"] = [v.caption for v in items]
            return out
        if issubclass(kind, Audio):
            each = [a.to_json(store, key, step) for a in items]
            out = {
                "_type": "audio",
                "count": len(each),
                "audio": each,
                "sampleRates": [a.sample_rate for a in items],
                "durations": [a.duration for a in items],
            }
            if any(a.caption is not None for a in items):
                out["captions"] = [a.caption for a in items]
            return out
        if issubclass(kind, Object3D):
            each = [o.to_json(store, key, step) for o in items]
            return {
                "_type": "object3D",
                "count": len(each),
                "filenames": [j["path"].rsplit("/", 1)[-1] for j in each],
                "objects": each,
            }
        if issubclass(kind, Molecule):
            each = [m.to_json(store, key, step) for m in items]
            return {
                "_type": "molecule",
                "count": len(each),
                "filenames": [j["path"] for j in each],
                "captions": [m.caption for m in items] if any(m.caption is not None for m in items) else False,
                "molecules": each,
            }
    result = []
    for item in items:
        if isinstance(item, Media):
            result.append(item.to_json(store, key, step))
        elif encode is not None:
            result.append(encode(item))
        else:
            result.append(jsonable(item, f"list value of {key!r}"))
    return result
