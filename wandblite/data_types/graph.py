"""``Graph`` (wandb.Graph): a model's module tree as a JSON blob (what ``watch(log_graph=True)`` records).

wandb keeps a model graph as a ``graph-file`` media value in the run's *summary* (``graph_0``,
``graph_1``, ... per watched model) and its nodes and edges in a JSON file under ``media/graph``.
wandblite does the same; the file is::

    {"format": "torch",
     "nodes": [{"id": 0, "name": "", "class_name": "Net", "parent": null, "depth": 0,
                "parameters": [["weight", [3, 4]], ...], "num_parameters": 15,
                "total_parameters": 19, "input_shape": [[8, 4]], "output_shape": [[8, 1]],
                "call_order": 5}, ...],
     "edges": [[0, 1], ...]}

``nodes`` are in module-tree order (a parent before its children); ``name`` is the dotted path
(``""`` for the model itself); ``parameters`` are the module's own (not its children's), as wandb
lists them, with ``num_parameters`` their element count and ``total_parameters`` the count with
every descendant; shapes are what the first forward pass saw (absent for a module it did not call);
``call_order`` is when the module's forward returned on that pass (0 first). ``edges`` are
``[parent id, child id]`` pairs of the module hierarchy. Everything is plain JSON; readers must
treat names and class names as untrusted text.

JSON value: ``{"_type": "graph-file", "format", "nodes" (count), "path", "sha256", "size"}`` plus
``blob``/``offset``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wandblite.data_types._base import Media, jsonable, store_bytes

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Graph"]


class Graph(Media):
    """wandb.Graph: nodes (dicts) and edges (``[from id, to id]``); built by ``watch(log_graph=True)``."""

    _log_type = "graph-file"

    def __init__(self, format: str = "torch", nodes: list[dict[str, Any]] | None = None,  # noqa: A002
                 edges: list[list[Any]] | None = None) -> None:
        self.format = str(format)
        self.nodes: list[dict[str, Any]] = list(nodes or [])
        self.edges: list[list[Any]] = [list(e) for e in (edges or [])]

    def add_node(self, **attrs: Any) -> dict[str, Any]:
        """Add a node (``id`` defaults to its index) and return it."""
        node = {"id": len(self.nodes), **attrs}
        self.nodes.append(node)
        return node

    def add_edge(self, from_id: Any, to_id: Any) -> None:
        self.edges.append([from_id, to_id])

    def to_dict(self) -> dict[str, Any]:
        """The JSON document stored as the blob."""
        return {"format": self.format, "nodes": jsonable(self.nodes, "graph node"),
                "edges": jsonable(self.edges, "graph edge")}

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        data = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")
        ref = store_bytes(store, data, "graph.json", "graph", key, step)
        out: dict[str, Any] = {"_type": "graph-file", "format": self.format, "nodes": len(self.nodes),
                               "path": ref.pop("path"), "sha256": ref.pop("sha256"), "size": ref.pop("size")}
        out.update(ref)
        return out
