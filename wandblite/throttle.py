"""Which of a run's alerts wandb would not have sent: ``run.alert``'s ``wait_duration``, applied in order.

Layer 2: a pure rule over plain values, importing only the standard library and ``wandblite.vocab``,
so the server (``server/ingest.py``, migration ``0005_alert_throttle``) stores and ``wandblite show``
(``wandblite.report``) marks a run file's alerts by the very same rule, and neither needs the other.

The rule (wandb's ``run.alert``): an alert is *throttled* (suppressed, not notified) when the most
recent earlier alert of the same title that was *sent* (not throttled itself) was sent less than
``wait`` seconds before it, i.e. ``0 <= ts - sent_ts < wait``. ``wait`` is the NEW alert's own
``wait_duration``, the one passed with the call being decided, as wandb does; ``None`` or ``0``
means wandb's default, ``vocab.DEFAULT_ALERT_WAIT`` (one minute). A throttled alert does not
restart the window. Never throttled: the first alert of a title; an alert without a ``ts``, or whose sent
predecessor has none; an alert timed before that predecessor (a clock step back: an alert is not
hidden on an elapsed time that cannot be trusted); a negative ``wait``.

"Earlier" is the run's record order (the ``idx`` the sync protocol numbers alerts by), so the
answer for one alert never depends on how the alerts were batched, paged or read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wandblite.vocab import DEFAULT_ALERT_WAIT, is_number

__all__ = ["effective_wait", "throttle"]


def _num(v: Any) -> float | None:
    """``v`` as a float when it is a number (``vocab.is_number``) other than NaN, else None."""
    if is_number(v) and v == v:
        return float(v)
    return None


def effective_wait(wait_duration: Any) -> float:
    """The seconds an alert's ``wait_duration`` stands for (``None``, ``0``, NaN or not a number:
    the default minute, ``vocab.DEFAULT_ALERT_WAIT``)."""
    return _num(wait_duration) or DEFAULT_ALERT_WAIT


def throttle(alerts: Iterable[Mapping[str, Any]], last_sent: dict[str, float | None] | None = None) -> list[bool]:
    """One flag per alert of ``alerts`` (in the run's order): ``True`` for a throttled one.

    ``last_sent`` maps a title to the ``ts`` of the most recent sent alert of that title before
    ``alerts`` (``None`` if it had no ts); absent titles had none. It is updated in place, so
    alerts arriving in several pieces are decided exactly as if they came at once.
    """
    sent = {} if last_sent is None else last_sent
    out: list[bool] = []
    for a in alerts:
        title = str(a.get("title"))
        ts = _num(a.get("ts"))
        prev = sent.get(title)
        wait = effective_wait(a.get("wait_duration"))
        throttled = prev is not None and ts is not None and 0 <= ts - prev < wait
        if not throttled:
            sent[title] = ts
        out.append(throttled)
    return out
