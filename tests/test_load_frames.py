"""bench/load_frames.py reads Streamlit's websocket frames as the DevTools protocol reports them."""

import base64
import importlib.util
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

_path = Path(__file__).resolve().parents[1] / "bench" / "load_frames.py"
_spec = importlib.util.spec_from_file_location("load_frames", _path)
load_frames = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_frames)


def _frame(msg, t: float, opcode: int = 2) -> dict:
    """What ``Network.webSocketFrameSent/Received`` carries for one message at browser time ``t``."""
    return {"requestId": "1", "timestamp": t,
            "response": {"opcode": opcode, "mask": False, "payloadData": base64.b64encode(msg.SerializeToString()).decode()}}


def _rerun() -> BackMsg:
    msg = BackMsg()
    msg.rerun_script.query_string = "blocks=3"
    return msg


def _finished(value) -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = value
    return msg


def _chart(element_id: str, fig: go.Figure) -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.plotly_chart.id = element_id
    msg.delta.new_element.plotly_chart.spec = pio.to_json(fig, validate=False)
    return msg


def test_has_points_reads_lists_and_plotly_typed_arrays():
    assert load_frames.has_points(pio.to_json(go.Figure(go.Scatter(x=[1], y=[2]))))
    assert load_frames.has_points(pio.to_json(go.Figure(go.Scatter(x=np.arange(3.0), y=np.ones(3)))))
    assert not load_frames.has_points(pio.to_json(go.Figure(go.Scatter(x=[], y=[]))))
    assert not load_frames.has_points(pio.to_json(go.Figure()))
    assert not load_frames.has_points("not json")


def test_answer_runs_from_the_first_rerun_request_to_the_last_run_end():
    log = load_frames.SocketLog()
    log.sent(_frame(_rerun(), 1.0))  # before the mark: not this phase's
    log.received(_frame(_finished(ForwardMsg.FINISHED_SUCCESSFULLY), 1.5))
    mark = log.mark()
    assert log.answered(mark) is None
    log.sent(_frame(_rerun(), 10.0))
    log.sent(_frame(_rerun(), 10.2))  # a second request (the page reran itself): still from the first
    log.received(_frame(_finished(ForwardMsg.FINISHED_EARLY_FOR_RERUN), 10.4))  # cut for the rerun
    log.received(_frame(_finished(ForwardMsg.FINISHED_SUCCESSFULLY), 11.25))
    log.received(_frame(_finished(ForwardMsg.FINISHED_EARLY_FOR_RERUN), 12.0))  # not an end of a run
    assert log.answered(mark) == 1.25
    log.received(_frame(_finished(ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY), 12.5))
    assert log.answered(mark) == 2.5
    log.sent({"timestamp": 13.0, "response": {"opcode": 1, "payloadData": "ping"}})  # text frames are not messages
    assert log.reruns == [1.0, 10.0, 10.2]


def test_first_chart_point_is_the_keyed_chart_with_a_point_after_arming():
    log = load_frames.SocketLog(chart_key="train_loss_chart")
    with_point = go.Figure(go.Scatter(x=[1], y=[0.5]))
    log.received(_frame(_chart("$$ID-abc-train_loss_chart", with_point), 1.0))
    assert log.chart_points is None  # not armed yet: a previous run's chart
    log.arm()
    log.received(_frame(_chart("$$ID-abc-train_loss_chart", go.Figure(go.Scatter(x=[], y=[]))), 2.0))
    log.received(_frame(_chart("$$ID-abc-train_acc_chart", with_point), 3.0))
    assert log.chart_points is None  # an empty loss chart and another chart do not count
    log.received(_frame(_chart("$$ID-abc-train_loss_chart", with_point), 4.0))
    log.received(_frame(_chart("$$ID-abc-train_loss_chart", with_point), 5.0))
    assert log.chart_points == 4.0
