"""What a browser session's Streamlit websocket carried, and when, read through the DevTools protocol.

``bench/load.py`` times the server as every real browser session sees it at its own socket: the
browser's network service stamps each websocket frame (``Network.webSocketFrameSent`` /
``Network.webSocketFrameReceived``, one monotonic clock for the whole browser), so a frame's time
does not wait for the session's page to run its JavaScript. That separates what the server takes
(a rerun request sent -> the script's end received) from what the browser takes to draw it, which
matters when twenty browsers share the server's two cores: in a lecture hall each runs on its own
machine.
"""

from __future__ import annotations

import base64
import json

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

#: ``ForwardMsg.script_finished`` values that end a full run of the page (not one cut for a rerun).
FULL_RUN_DONE = ForwardMsg.FINISHED_SUCCESSFULLY
FRAGMENT_RUN_DONE = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY


def _payload(response: dict) -> bytes | None:
    """A binary frame's bytes (Streamlit's messages are protobuf: opcode 2), else None."""
    if response.get("opcode") != 2:
        return None
    return base64.b64decode(response.get("payloadData", ""))


def _message(params: dict, kind):
    """The protobuf message of class ``kind`` in a CDP websocket-frame event, else None."""
    data = _payload(params.get("response", {}))
    if data is None:
        return None
    msg = kind()
    msg.ParseFromString(data)
    return msg


def has_points(spec: str) -> bool:
    """Whether a plotly figure's JSON has a trace with at least one x value (a list, or plotly's
    base64 typed array)."""
    try:
        fig = json.loads(spec)
    except ValueError:
        return False
    for trace in fig.get("data", []):
        x = trace.get("x")
        if (isinstance(x, list) and x) or (isinstance(x, dict) and x.get("bdata")):
            return True
    return False


class SocketLog:
    """Timestamps (the browser's monotonic seconds) of the Streamlit frames of one browser page.

    ``reruns``: a ``rerun_script`` request was sent (opening a page, a widget change). ``finished``:
    ``(time, value)`` of every ``script_finished`` received. ``chart_points``: the first time a plotly
    element whose id contains :attr:`chart_key` arrived with a point in it, once :meth:`arm` was called.
    """

    def __init__(self, chart_key: str = ""):
        self.chart_key = chart_key
        self.reruns: list[float] = []
        self.finished: list[tuple[float, int]] = []
        self.chart_points: float | None = None
        self.armed = False

    def arm(self) -> None:
        """Watch for the first point of :attr:`chart_key` from now on."""
        self.chart_points, self.armed = None, True

    def sent(self, params: dict) -> None:
        msg = _message(params, BackMsg)
        if msg is not None and msg.WhichOneof("type") == "rerun_script":
            self.reruns.append(params["timestamp"])

    def received(self, params: dict) -> None:
        msg = _message(params, ForwardMsg)
        if msg is None:
            return
        kind = msg.WhichOneof("type")
        if kind == "script_finished":
            self.finished.append((params["timestamp"], msg.script_finished))
        elif kind == "delta" and self.armed and self.chart_points is None:
            element = msg.delta.new_element
            if (element.WhichOneof("type") == "plotly_chart" and self.chart_key in element.plotly_chart.id
                    and has_points(element.plotly_chart.spec)):
                self.chart_points = params["timestamp"]

    def mark(self) -> int:
        """Where the logs stand now: pass it to :meth:`answered` to look only at what came after."""
        return len(self.reruns), len(self.finished)

    def answered(self, since: tuple[int, int]) -> float | None:
        """Seconds from the first rerun request sent after ``since`` to the last end of a full or
        fragment run received after it (the server's answer as this socket saw it); None if none."""
        reruns = self.reruns[since[0]:]
        ends = [t for t, v in self.finished[since[1]:] if v in (FULL_RUN_DONE, FRAGMENT_RUN_DONE)]
        if not reruns or not ends or ends[-1] < reruns[0]:
            return None
        return ends[-1] - reruns[0]

    async def attach(self, context, page) -> None:
        """Listen to ``page``'s websocket frames through a DevTools session of ``context``."""
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.webSocketFrameSent", self.sent)
        cdp.on("Network.webSocketFrameReceived", self.received)
        await cdp.send("Network.enable")
