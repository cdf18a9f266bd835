"""The tracker node runs NanoTrack unchanged: the released checkpoint and its ONNX export, on a real UAV clip.

Real rclpy on loopback, as ``test_ros_node.py`` (whose rig and helpers this reuses): the node loads the
model through ``create_tracker`` from its ``model`` parameter, and every published box must equal the
library tracker's on the same frames.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels or a ROS install) is needed for node tests")

from mlkd_tracker.backends import create_tracker  # noqa: E402
from mlkd_tracker.tracker import Status, TrackResult  # noqa: E402
from nanotrack_reference import official, real_clip  # noqa: E402
from ros_helpers import iou, stamp_ns  # noqa: E402
from test_ros_node import box_of, ros_context, rig_factory  # noqa: E402,F401 - rclpy per module; rig fixture

FRAMES = 20


def released_v3() -> str:
    return str(official(3))


def exported_v2() -> str:
    from export_helpers import nanotrack_export
    return str(nanotrack_export(2)[1]["search"])


@pytest.mark.parametrize("model", [released_v3, exported_v2], ids=["v3-checkpoint", "v2-onnx"])
def test_the_node_tracks_a_real_clip_with_nanotrack(rig_factory, model):
    path = model()
    frames, truth = real_clip("bike1", FRAMES)  # the cyclist crosses 50 px in these frames
    init = tuple(float(round(v)) for v in truth[0])  # a RegionOfInterest holds whole pixels
    offline, loaded = create_tracker(path, "cpu")
    offline.init(frames[0], init)
    expected = [TrackResult(init, 1.0, Status.TRACKING)] + [offline.update(f) for f in frames[1:]]

    rig = rig_factory(factory=create_tracker, params={"model": path, "device": "cpu", "diagnostics_period": 0.2})
    stamps = [7 * 10**9 + i * 33_000_000 for i in range(FRAMES)]
    rig.send(frames[0], stamps[0])
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(init)
    rig.wait(lambda: rig.boxes, "the init box", timeout=30)
    arrays = [rig.boxes[0][1]]
    for i in range(1, FRAMES):
        rig.send(frames[i], stamps[i])
        rig.wait(lambda: stamp_ns(rig.arrays[-1]) == stamps[i], f"the array for frame {i}", timeout=30)
        arrays.append(rig.arrays[-1])
    assert all(r.status == Status.TRACKING for r in expected)  # the released weights hold this target
    assert all(len(m.detections) == 1 for m in arrays)
    boxes = [box_of(m) for m in arrays]
    np.testing.assert_allclose(boxes, [r.box_xywh for r in expected], atol=0.01)  # the library tracker, frame for frame
    tracked = np.mean([iou(b, t) for b, t in zip(boxes[1:], truth[1:])])
    standing = np.mean([iou(init, t) for t in truth[1:]])  # a box that never moves
    assert tracked > 0.6 and tracked > standing + 0.3, (tracked, standing)  # it follows the real target
    assert rig.statuses[-1] == "tracking"
    diagnostics = rig.latest_diagnostics()
    assert diagnostics["model"] == loaded.name and diagnostics["backend"] == loaded.info["backend"]
